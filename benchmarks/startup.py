"""Start-up: how long the mnistlab command takes, whole process, and how much memory it holds.

Times, over RUNS runs each (median, min-max), with each process's peak resident memory
(its own ``wait4`` rusage, children included only as far as the kernel counts them):

1. ``mnistlab --help`` (target: TARGETS);
2. ``mnistlab predict one.png``, the shipped model on ONNX Runtime from its model.onnx, where
   one.png is a 235x231 photo-like PNG (an MNIST test digit scaled up, dark ink on white)
   written by this script (target: TARGETS);
3. for reference, no target: the same prediction on Keras (``--model`` the shipped .keras),
   what predict cost before the ONNX file shipped.

Usage (2 shared cores: heavy jobs must not overlap):
    python benchmarks/startup.py                 # about 40 s
    python benchmarks/startup.py --rebuild-onnx  # after model.keras changed: rebuild
                                                 # model.onnx and onnx.json, then measure

Writes benchmarks/results/startup.json and .md; exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runinfo import git_commit  # noqa: E402

OUT = os.path.join(HERE, "results", "startup")  # .json and .md
RUNS = 5  # processes per command
IMAGE_SIZE = (235, 231)  # width, height in pixels of one.png
TEST_INDEX = 0  # the MNIST test digit one.png shows
PRETRAINED_MODEL = os.path.join(REPO, "src", "mnistlab", "models", "pretrained", "model.keras")
TARGETS = {  # command: (seconds, median; megabytes of peak resident memory, largest run)
    "mnistlab --help": (0.5, None),
    "mnistlab predict one.png": (1.5, 300.0),
}


def mnistlab_command() -> list[str]:
    """The installed ``mnistlab`` script, as a user runs it, else ``python -m mnistlab``."""
    script = shutil.which("mnistlab")
    return [script] if script else [sys.executable, "-m", "mnistlab"]


def write_digit_png(path: str) -> str:
    """one.png: MNIST test digit TEST_INDEX, dark on white, scaled to IMAGE_SIZE (bilinear).

    Made in a child process: Linux carries a process's peak memory into the children it
    starts, so this one stays small (stdlib only) for the children's peaks to be their own."""
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from mnistlab.data.mnist import load_mnist\n"
        "_, (images, _) = load_mnist()\n"
        f"digit = Image.fromarray(255 - images[{TEST_INDEX}], 'L')\n"
        f"digit.resize({IMAGE_SIZE}, Image.BILINEAR).save(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, path], check=True)
    return path


def rebuild_onnx() -> None:
    """Rebuilds the shipped model.onnx and onnx.json (``export.build_pretrained_onnx``), in a
    child process: it loads Keras, which this one must not hold (see write_digit_png)."""
    code = (
        "from mnistlab.serving.export import build_pretrained_onnx\n"
        "record = build_pretrained_onnx()\n"
        "print(f\"model.onnx rebuilt: {record['argmax_agree']} of {record['images']} \""
        "f\"predictions equal, largest difference {record['max_difference']:.1e}\")\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def run_once(command: list[str]) -> tuple[float, float]:
    """Runs a command to its end; returns (wall seconds, peak resident megabytes)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{errors}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure(command: list[str], runs: int) -> dict:
    """Median and range of wall time and peak memory over ``runs`` processes."""
    run_once(command)  # warm the file cache: not counted
    times, memory = zip(*(run_once(command) for _ in range(runs)), strict=True)
    return {
        "runs": runs,
        "seconds_median": statistics.median(times),
        "seconds_min": min(times),
        "seconds_max": max(times),
        "peak_mb_median": statistics.median(memory),
        "peak_mb_max": max(memory),
    }


def missed_targets(rows: dict) -> list[str]:
    """One line per target a measured row misses."""
    missed = []
    for name, (seconds, megabytes) in TARGETS.items():
        row = rows[name]
        if row["seconds_median"] > seconds:
            missed.append(f"{name}: {row['seconds_median']:.2f} s median > {seconds} s")
        if megabytes is not None and row["peak_mb_max"] > megabytes:
            missed.append(f"{name}: {row['peak_mb_max']:.0f} MB peak > {megabytes:.0f} MB")
    return missed


def markdown(report: dict) -> str:
    lines = [
        "# Start-up: the mnistlab command, whole process",
        "",
        f"Machine: {report['machine']}. Commit {report['commit']}, {report['date']}. "
        f"{RUNS} runs each after one warm-up run; `python benchmarks/startup.py`.",
        "",
        "| command | time, median (min-max) | peak memory | target |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in report["rows"].items():
        seconds, megabytes = TARGETS.get(name, (None, None))
        target = "reference" if seconds is None else f"<= {seconds} s"
        if megabytes is not None:
            target += f", <= {megabytes:.0f} MB"
        lines.append(
            f"| `{name}` | {row['seconds_median']:.2f} s ({row['seconds_min']:.2f}-"
            f"{row['seconds_max']:.2f}) | {row['peak_mb_max']:.0f} MB | {target} |"
        )
    lines += ["", "Missed: " + ("; ".join(report["missed"]) or "none") + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="processes per command")
    parser.add_argument(
        "--rebuild-onnx",
        action="store_true",
        help="first rebuild the shipped model.onnx and onnx.json from model.keras",
    )
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras reference row")
    parser.add_argument("--out", default=OUT, help="results path without extension")
    args = parser.parse_args()

    if args.rebuild_onnx:
        rebuild_onnx()
    mnistlab = mnistlab_command()
    with tempfile.TemporaryDirectory() as folder:
        image = write_digit_png(os.path.join(folder, "one.png"))
        commands = {
            "mnistlab --help": [*mnistlab, "--help"],
            "mnistlab predict one.png": [*mnistlab, "predict", image],
        }
        if not args.no_keras:
            commands["mnistlab predict one.png --model model.keras"] = [
                *mnistlab,
                "predict",
                image,
                "--model",
                PRETRAINED_MODEL,
            ]
        rows = {}
        for name, command in commands.items():
            rows[name] = measure(command, args.runs)
            print(
                f"{name}: {rows[name]['seconds_median']:.2f} s, {rows[name]['peak_mb_max']:.0f} MB"
            )
    from mnistlab.core import runs  # only now: see write_digit_png

    report = {
        "machine": runs.machine_description(),
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "rows": rows,
        "targets": {name: list(target) for name, target in TARGETS.items()},
    }
    report["missed"] = missed_targets(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    runs.write_json(args.out + ".json", report)
    with open(args.out + ".md", "w") as handle:
        handle.write(markdown(report))
    print(markdown(report))
    return 1 if report["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
