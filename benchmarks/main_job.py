"""The main job on each backend: which backend trains a network fastest, start to finish.

speed.py times epochs after a warm-up. A user who types ``mnistlab train NETWORK`` waits for
more than that: Python and Keras starting, the data loading, the first epoch's tracing and
compiling, every epoch, its checkpoint, and the test set's evaluation. This benchmark runs that
command itself, ``python -m mnistlab train NETWORK --backend BACKEND`` with the network's own
defaults (10 epochs for the tutorial's networks), in a fresh process each time, on every
installed backend, interleaved (round r of every measurement before round r+1 of any), and
reports for each:

- wall seconds, from the process's start to its exit (what the user waits for);
- the training seconds that mnistlab records (``train_seconds_this_process`` in metrics.json);
- the first epoch's seconds (tracing and compiling included) and the median of the others,
  from history.csv;
- the test error, which tells the backends' runs are the same training.

Median over rounds, [min-max] over rounds. The fastest backend by median wall seconds is the one
``ModelSpec.backend`` should name for the network (mnistlab.models), which is what the command line
uses where the user names no backend.

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/main_job.py --models mlp cnn \
        --out benchmarks/results/main-job
    python benchmarks/main_job.py --tiny --data tiny.npz     # a smoke test, a few seconds a run
    python benchmarks/main_job.py --check    # exit 1 if a default backend is not the fastest

Writes OUT/main_job.md and OUT/main_job.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from speed import BACKENDS, MODELS, installed_backends, run_timed, write_table  # noqa: E402
from speed_checks import load_expected, main_job_figures, report_checks  # noqa: E402

from mnistlab.core import runs  # noqa: E402

TINY_SETTINGS = ["--epochs", "2", "--train-size", "600", "--val-size", "100"]


def run_job(model: str, backend: str, folder: str, args) -> dict:
    """Runs ``mnistlab train`` once in a fresh process; returns its times and test error."""
    out = os.path.join(folder, f"{model}-{backend}")
    command = [sys.executable, "-m", "mnistlab", "train", model, "--backend", backend]
    command += ["--out", out, "--verbose", "0", *args.extra]
    if args.data:
        command += ["--data", args.data]
    if args.tiny:
        command += TINY_SETTINGS
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done, wall = run_timed(command, env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    metrics = runs.read_json(os.path.join(out, runs.METRICS_FILE))
    meta = runs.read_json(os.path.join(out, runs.META_FILE))
    config = runs.read_json(os.path.join(out, runs.CONFIG_FILE))
    epochs = [float(row["seconds"]) for row in runs.read_history(out)]
    return {
        "wall_seconds": wall,
        "train_seconds": metrics["train_seconds_this_process"],
        "first_epoch_seconds": epochs[0],
        "later_epoch_seconds": statistics.median(epochs[1:]) if len(epochs) > 1 else None,
        "epochs": len(epochs),
        "test_error": metrics["error"],
        "backend": meta["versions"]["backend"],
        "precision": config["precision"],
    }


def summarize(results: dict) -> list[dict]:
    rows = []
    for (model, backend), measured in results.items():
        walls = [run["wall_seconds"] for run in measured]
        later = [run["later_epoch_seconds"] for run in measured if run["later_epoch_seconds"]]
        rows.append(
            {
                "model": model,
                "backend": backend,
                "wall_seconds": statistics.median(walls),
                "wall_spread": [min(walls), max(walls)],
                "train_seconds": statistics.median(run["train_seconds"] for run in measured),
                "first_epoch_seconds": statistics.median(
                    run["first_epoch_seconds"] for run in measured
                ),
                "later_epoch_seconds": statistics.median(later) if later else None,
                "epochs": measured[0]["epochs"],
                "test_errors": [run["test_error"] for run in measured],
                "precision": measured[0]["precision"],
            }
        )
    for model in {row["model"] for row in rows}:
        mine = [row for row in rows if row["model"] == model]
        fastest = min(mine, key=lambda row: row["wall_seconds"])
        for row in mine:
            row["x_fastest"] = fastest["wall_seconds"] / row["wall_seconds"]
            row["fastest"] = row is fastest
    return rows


def markdown(rows: list[dict], args, elapsed: float) -> list[str]:
    from mnistlab.core.runs import machine_description
    from mnistlab.models.registry import REGISTRY

    lines = [
        "# The main job on each backend",
        "",
        f"Machine: {machine_description()}. {args.rounds} rounds, interleaved, each run "
        "`python -m mnistlab train NETWORK --backend BACKEND` in a fresh process with the "
        "network's defaults; wall seconds from the process's start to its exit. Median over "
        f"rounds; [min-max] over rounds. Whole run: {elapsed / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/main_job.py {' '.join(args.argv)}`".replace(" `", "`"),
        "",
        "| network | backend | precision | wall s | [min-max] | x fastest | training s | "
        "first epoch s | later epochs s | test error % (each round) | the network's backend |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        low, high = row["wall_spread"]
        later = row["later_epoch_seconds"]
        name = f"**{row['backend']}**" if row["fastest"] else row["backend"]
        spec = REGISTRY[row["model"]]
        lines.append(
            f"| {row['model']} | {name} | {row['precision']} | {row['wall_seconds']:.1f} | "
            f"{low:.1f}-{high:.1f} | {row['x_fastest']:.2f} | {row['train_seconds']:.1f} | "
            f"{row['first_epoch_seconds']:.1f} | {'-' if later is None else f'{later:.2f}'} | "
            f"{', '.join(f'{error:.2f}' for error in row['test_errors'])} | "
            f"{'yes' if spec.backend == row['backend'] else ''} |"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The main job, start to finish, per backend.")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--data", help="MNIST folder or .npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--tiny", action="store_true", help="2 epochs of 600 images, for CI")
    parser.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="more `mnistlab train` options"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless each network's default backend is the fastest within the README's "
        "range (benchmarks/expected.json)",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "main-job"))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.backends = args.backends or installed_backends()
    started = time.perf_counter()
    results: dict = {(model, backend): [] for model in args.models for backend in args.backends}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for model in args.models:
                # the backends' order turns with the round, so that none always runs first
                turn = round_index % len(args.backends)
                for backend in args.backends[turn:] + args.backends[:turn]:
                    out = os.path.join(folder, str(round_index))
                    result = run_job(model, backend, out, args)
                    results[model, backend].append(result)
                    print(
                        f"round {round_index + 1}/{args.rounds} {model:>10} {backend:>10} "
                        f"{result['wall_seconds']:7.1f} s  error {result['test_error']:.2f}%",
                        flush=True,
                    )
    rows = summarize(results)
    write_table(args.out, "main_job.md", markdown(rows, args, time.perf_counter() - started))
    runs.write_json(os.path.join(args.out, "main_job.json"), {"rows": rows, "argv": args.argv})
    return check(rows) if args.check else 0


def check(rows: list[dict]) -> int:
    """1 unless each network's default backend is within the README's range of the fastest."""
    from mnistlab.core.backend import default_backend
    from mnistlab.models import get_spec

    defaults = {row["model"]: default_backend(get_spec(row["model"])) for row in rows}
    failed = report_checks(
        main_job_figures(rows, defaults), load_expected("main_job.py"), "main_job.py"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
