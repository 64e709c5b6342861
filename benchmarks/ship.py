"""Rebuilds the model shipped with mnistlab from finished runs, chosen on validation alone.

The rule, fixed before any candidate's test error is looked at: among the run folders given,
the one whose saved model has the lowest error on its own held-out validation fold
(``val_error`` in its metrics.json); a tie goes to the run named first. Its network is
installed into src/mnistlab/models/pretrained as

- model.keras: the network without its optimizer's state (loaded without compiling, saved);
- calibration.json: the run's own, fitted on the same validation fold;
- shipped.json: which run it is, its recipe, and every candidate's validation error;
- model.onnx and onnx.json: exported and checked against Keras (export.build_pretrained_onnx).

Then the shipped model's test error is read, once, with its size on disk, and written to
benchmarks/results/NAME.md and .json. Speed is benchmarks/inference.py's; the own-digits check,
benchmarks/own_digits_accuracy.py's.

Usage:
    python benchmarks/ship.py runs/bench-x/members/member-0 runs/bench-x/members/member-1 ...
    python benchmarks/ship.py RUN ... --dry-run     # name the choice, install nothing
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)  # runinfo

from runinfo import git_commit  # noqa: E402

from mnistlab.core import runs  # noqa: E402
from mnistlab.training.calibrate import SHIPPED_RECORD  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def candidate(folder: str) -> dict:
    """What the rule reads of a finished run: its saved model's validation error and fold."""
    metrics_path = os.path.join(folder, runs.METRICS_FILE)
    if not os.path.exists(metrics_path):
        raise ValueError(f"'{folder}' is not a finished run (no {runs.METRICS_FILE}).")
    metrics = runs.read_json(metrics_path)
    config = runs.read_json(os.path.join(folder, runs.CONFIG_FILE))
    if metrics.get("val_error") is None:
        raise ValueError(f"'{folder}' validated on the test set; it cannot be chosen honestly.")
    return {
        "path": os.path.abspath(folder),
        "folder": os.path.relpath(os.path.abspath(folder), os.path.dirname(HERE)),
        "val_error": metrics["val_error"],
        "seed": config["seed"],
        "val_size": config["val_size"],
        "val_fold": config["val_fold"],
    }


def choose(candidates: list[dict]) -> dict:
    """The lowest validation error; the first named among equals.

    Example:
        >>> choose([{"val_error": 0.2}, {"val_error": 0.1}, {"val_error": 0.1}]) is not None
        True
    """
    return min(candidates, key=lambda row: row["val_error"])  # min keeps the first of ties


def install(folder: str, record: dict) -> None:
    """Writes model.keras, calibration.json and shipped.json of the chosen run, then the ONNX."""
    from mnistlab.models.saved import PRETRAINED_DIR, load_model
    from mnistlab.serving.export import build_pretrained_onnx

    model = load_model(folder, compile=False)
    runs.save_model_atomic(model, os.path.join(PRETRAINED_DIR, runs.MODEL_FILE))
    shutil.copyfile(
        os.path.join(folder, "calibration.json"), os.path.join(PRETRAINED_DIR, "calibration.json")
    )
    runs.write_json(os.path.join(PRETRAINED_DIR, SHIPPED_RECORD), record)
    record["onnx"] = build_pretrained_onnx()
    for name in (runs.MODEL_FILE, "calibration.json", SHIPPED_RECORD):
        os.chmod(os.path.join(PRETRAINED_DIR, name), 0o644)  # package files: readable by all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders, the candidates")
    parser.add_argument("--name", default="ship", help="results file name (default ship)")
    parser.add_argument("--dry-run", action="store_true", help="name the choice only")
    args = parser.parse_args(argv)
    try:
        candidates = [candidate(folder) for folder in args.runs]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    chosen = choose(candidates)
    print(f"Chosen on validation: {chosen['folder']} ({chosen['val_error']:.2f}%).", flush=True)
    if args.dry_run:
        return 0
    config = runs.read_json(os.path.join(chosen["path"], runs.CONFIG_FILE))
    record = {
        "rule": "lowest validation error of the candidates (their own folds), first of ties",
        "chosen": chosen,
        "candidates": candidates,
        "recipe": config,
        "command": "python benchmarks/ship.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": git_commit(),
        "machine": runs.machine_description(),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    install(chosen["path"], record)
    write_results(record, args.name)
    return 0


def write_results(record: dict, name: str) -> None:
    """Reads the installed model's test error once and writes NAME.md and NAME.json."""
    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.saved import PRETRAINED_DIR, load_model, measure

    _, (x_test, y_test) = load_mnist(None)
    metrics = measure(load_model(None, compile=False), x_test, y_test)
    sizes = {
        file: os.path.getsize(os.path.join(PRETRAINED_DIR, file))
        for file in (runs.MODEL_FILE, "model.onnx")
    }
    result = {**record, "test_error": metrics["error"], "bytes": sizes}
    runs.write_json(os.path.join(RESULTS, f"{name}.json"), result)
    chosen, config = record["chosen"], record["recipe"]
    lines = [
        "# The shipped model",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}; commit {record['commit']}; written {record['written']}.",
        "",
        f"Rule: {record['rule']}.",
        "",
        "| candidate | seed | val fold | val error % |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {row['folder']} | {row['seed']} | {row['val_fold']} | {row['val_error']:.2f} |"
            for row in record["candidates"]
        ),
        "",
        f"Shipped: `{chosen['folder']}` (`{config['model']}`, seed {chosen['seed']}"
        + (f", distilled from `{config['teacher']}`" if config.get("teacher") else "")
        + f"). **Test error {metrics['error']:.2f}%** ({round(metrics['error'] * 100)} of "
        f"{len(y_test):,}), read once, after the choice. On disk: model.keras "
        f"{sizes[runs.MODEL_FILE] / 1e6:.2f} MB, model.onnx {sizes['model.onnx'] / 1e6:.2f} MB.",
        "",
    ]
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
