"""The server's footprint: start-up time, idle memory, and memory under large uploads.

Starts ``mnistlab serve`` (the shipped model on ONNX Runtime) as its own process and measures:

1. ready: seconds from starting the process to the first answer of /api/health
   (median of RUNS starts; target: TARGETS);
2. idle: its resident memory (VmRSS) after start-up and one small prediction (target);
3. load: CONCURRENT uploads at once of a transparent LARGE_SIZE PNG with one stroke on it
   (about 60 KB each, 64 MB decoded), all answered 200; the process's peak resident memory
   (VmHWM) must stay below idle + PEAK_ABOVE_IDLE_MB, and its resident memory SETTLE_S after
   the last answer below idle + AFTER_ABOVE_IDLE_MB.

Usage (2 shared cores: heavy jobs must not overlap):
    python benchmarks/serve_memory.py            # about 30 s
    python benchmarks/serve_memory.py --quick    # smaller numbers, no targets (tests)

Writes benchmarks/results/serve_memory.json and .md (--out another path); exits with status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runinfo import git_commit, write_report  # noqa: E402
from server_process import free_port, start_server, stop  # noqa: E402

OUT = os.path.join(HERE, "results", "serve_memory")  # .json and .md
RUNS = 3  # server starts timed
CONCURRENT = 16  # uploads at once
LARGE_SIZE = 4096  # pixels per side of each upload
SETTLE_S = 2.0  # seconds after the last answer before "after" is read
TARGETS = {
    "ready_s": 3.0,  # seconds to the first /api/health answer, median
    "idle_mb": 250.0,  # resident megabytes while idle
    "peak_above_idle_mb": 500.0,  # peak resident megabytes above idle under the load
    "after_above_idle_mb": 100.0,  # resident megabytes above idle, SETTLE_S after the load
}


def large_png(size: int) -> bytes:
    """A transparent size x size RGBA PNG with one black stroke: a canvas drawing, scaled up."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).line(
        [(size * 0.5, size * 0.15), (size * 0.48, size * 0.85)],
        fill=(0, 0, 0, 255),
        width=max(2, size // 20),
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def memory_mb(pid: int, field: str) -> float:
    """A /proc/PID/status field in megabytes: VmRSS (resident now) or VmHWM (peak resident)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} in /proc/{pid}/status")


def post_png(port: int, data: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/predict",
        data=data,
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def measure(runs: int, concurrent: int, size: int) -> dict:
    ready = []
    for _ in range(runs - 1):  # the last start is the one loaded below
        process, seconds, _ = start_server(free_port())
        ready.append(seconds)
        stop(process)
    port = free_port()
    process, seconds, _ = start_server(port)
    ready.append(seconds)
    small = large_png(280)
    assert post_png(port, small) == 200
    time.sleep(0.5)
    idle = memory_mb(process.pid, "VmRSS")
    idle_peak = memory_mb(process.pid, "VmHWM")
    data = large_png(size)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        statuses = list(pool.map(lambda _: post_png(port, data), range(concurrent)))
    elapsed = time.perf_counter() - start
    time.sleep(SETTLE_S)
    peak = memory_mb(process.pid, "VmHWM")
    after = memory_mb(process.pid, "VmRSS")
    errors = stop(process)
    return {
        "ready_s": round(statistics.median(ready), 3),
        "ready_all_s": [round(value, 3) for value in ready],
        "idle_mb": round(idle, 1),
        "peak_before_load_mb": round(idle_peak, 1),
        "upload": f"{concurrent} concurrent {size}x{size} transparent RGBA PNGs of {len(data):,} B",
        "statuses": statuses,
        "load_s": round(elapsed, 2),
        "peak_mb": round(peak, 1),
        "peak_above_idle_mb": round(peak - idle, 1),
        "after_mb": round(after, 1),
        "after_above_idle_mb": round(after - idle, 1),
        "stderr": errors.strip(),
    }


def missed_targets(figures: dict) -> list[str]:
    missed = [
        f"{name} = {figures[name]} > {limit}"
        for name, limit in TARGETS.items()
        if figures[name] > limit
    ]
    if any(status != 200 for status in figures["statuses"]):
        missed.append(f"not every upload was answered 200: {figures['statuses']}")
    if figures["stderr"]:
        missed.append(f"the server wrote to stderr: {figures['stderr'][:200]}")
    return missed


def markdown(report: dict) -> str:
    figures = report["figures"]
    rows = [
        ("ready (first /api/health answer), median", f"{figures['ready_s']} s", "≤ 3 s"),
        ("resident memory, idle", f"{figures['idle_mb']:.0f} MB", "≤ 250 MB"),
        (
            f"peak resident above idle, {figures['upload']}",
            f"{figures['peak_above_idle_mb']:.0f} MB",
            "< 500 MB",
        ),
        ("all answered in", f"{figures['load_s']} s", ""),
        (
            f"resident above idle, {SETTLE_S:.0f} s later",
            f"{figures['after_above_idle_mb']:.0f} MB",
            "< 100 MB",
        ),
    ]
    lines = [
        "# The server's footprint",
        "",
        f"`{report['command']}`. Machine: {report['machine']}. Commit {report['commit']}, "
        f"{report['date']}. `mnistlab serve` with the shipped model on ONNX Runtime, its own "
        f"process; {report['runs']} starts timed.",
        "",
        "| measure | result | target |",
        "|---|---:|---:|",
        *[f"| {name} | {result} | {target} |" for name, result, target in rows],
        "",
        f"Statuses: {sorted(set(figures['statuses']))}. Server stderr: "
        f"{figures['stderr'] or 'nothing'}.",
        "",
    ]
    if report["missed"]:
        lines += ["Missed: " + "; ".join(report["missed"]), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, targets not applied")
    parser.add_argument("--out", default=OUT + ".md", help="markdown path (.json beside it)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(REPO, "src"))
    from mnistlab.core import runs

    if args.quick:
        figures = measure(runs=1, concurrent=4, size=1500)
    else:
        figures = measure(runs=RUNS, concurrent=CONCURRENT, size=LARGE_SIZE)
    command = "python benchmarks/serve_memory.py" + (" --quick" if args.quick else "")
    report = {
        "command": command,
        "machine": runs.machine_description(),
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "runs": 1 if args.quick else RUNS,
        "figures": figures,
        "targets": TARGETS,
        "missed": [] if args.quick else missed_targets(figures),
    }
    return write_report(report, args.out, markdown(report))


if __name__ == "__main__":
    sys.exit(main())
