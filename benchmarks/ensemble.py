"""Test error of an ensemble of `best` networks that average their probabilities.

Re-uses the finished seeds of benchmarks/best.py (same folder, same member recipe): members
already trained there are read back, not retrained; missing ones are trained (or resumed)
first through executors.run_trials. The ensemble is saved as one model (OUT/model.keras) that
``mnistlab evaluate OUT`` accepts, and its test error is read once.

Usage (after benchmarks/best.py; heavy only if members are missing, ~43 CPU min each):
    flock /tmp/mnistlab-heavy.lock python benchmarks/ensemble.py --members 3
Larger ensembles, e.g. 15 members on Ray:
    mnistlab ensemble best --members 15 --out runs/best-x15 --executor ray
Networks trained apart (other recipes, other best.py folders) are averaged as they are with
    python benchmarks/ensemble.py --runs RUN [RUN ...] --out FOLDER --name NAME
(add --weights W [W ...], one per RUN, for a weighted average, e.g. half to each of two designs).
Writes benchmarks/results/ensemble.json and ensemble.md (NAME.json and NAME.md with --name NAME,
e.g. --members 5 --name ensemble-x5, to keep another size's results beside these).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from mnistlab.core import runs  # noqa: E402

MODEL = "best"
RESULTS = os.path.join(HERE, "results")
DEFAULT_OUT = os.path.join(REPO, "runs", "bench-best")  # benchmarks/best.py's folder


def weighting(weights: list[float]) -> str:
    """The sentence's ending for a weighted ensemble; empty when every member counts the same.

    Example:
        >>> weighting([0.25, 0.25, 0.5])
        ', weighted 0.2500, 0.2500, 0.5000 (member by member, adding up to 1).'
        >>> weighting([0.5, 0.5])
        ''
    """
    if max(weights) - min(weights) < 1e-9:
        return ""
    shown = ", ".join(f"{weight:.4f}" for weight in weights)
    return f", weighted {shown} (member by member, adding up to 1)."


def write_results(result: dict, name: str = "ensemble") -> None:
    os.makedirs(RESULTS, exist_ok=True)
    runs.write_json(os.path.join(RESULTS, f"{name}.json"), result)
    errors = ", ".join(f"{error:.2f}%" for error in result["member_test_errors"])
    lines = [
        f"# Ensemble of {result['members']} `{result['model']}` networks",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Written: {result['written']}",
        "",
        f"**Ensemble test error: {result['error']:.2f}%** "
        f"({result['errors_count']} of {result['test_images']} test images) with "
        f"{result['members']} members averaging their probabilities"
        + (weighting(result["member_weights"]) or "."),
        "",
        f"Members alone: {errors} (mean {result['member_error_mean']:.2f}%). Seeds "
        f"{result['seeds']}, validation folds {result['val_folds']}.",
        "",
        *(
            line
            for key, values in result["member_differences"].items()
            for line in (f"Members differ in {key}: {values}.", "")
        ),
        "One ensemble, one test-set reading: its spread over ensembles is not measured here.",
        f"Evaluate it again with `mnistlab evaluate {result['folder']}`.",
        "",
    ]
    with runs.atomic_path(os.path.join(RESULTS, f"{name}.md")) as temporary:
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3, help="ensemble size (default 3)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="ensemble folder (best.py's folder)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument(
        "--val-size", type=int, help="images each member holds out (default: the recipe's)"
    )
    parser.add_argument(
        "--ema", type=float, help="override the recipe's weight-average decay (0 = off)"
    )
    parser.add_argument("--train-size", type=int, help="quick check: train on N images only")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="RUN",
        help="average these finished run folders instead (no training; --out is written)",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        metavar="W",
        help="with --runs: one positive weight per run folder (default: all the same)",
    )
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument(
        "--name", default="ensemble", help="results file names in benchmarks/results"
    )
    args = parser.parse_args(argv)

    from mnistlab.training.ensemble import build_ensemble, ensemble

    if args.weights and not args.runs:
        parser.error("--weights goes with --runs")
    if args.runs:
        metrics = build_ensemble(args.runs, args.out, data=args.data, weights=args.weights)
    else:
        metrics = ensemble(
            MODEL,
            args.members,
            out=args.out,
            data=args.data,
            epochs=args.epochs,
            val_size=args.val_size,
            ema=args.ema,
            train_size=args.train_size,
        )
    recipe = runs.read_json(os.path.join(args.out, "ensemble.json"))
    result = {
        "model": recipe["model"],
        "members": metrics["members"],
        "error": metrics["error"],
        "errors_count": len(metrics["misclassified"]),
        "test_images": metrics["test_images"],
        "member_test_errors": metrics["member_test_errors"],
        "member_error_mean": statistics.mean(metrics["member_test_errors"]),
        "member_val_errors": recipe["member_val_errors"],
        "member_weights": metrics["member_weights"],
        "seeds": recipe["seeds"],
        "val_folds": recipe["val_folds"],
        "member_differences": recipe["member_differences"],
        "folder": os.path.relpath(args.out, REPO),
        "machine": runs.machine_description(),
        "command": "flock /tmp/mnistlab-heavy.lock python benchmarks/ensemble.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_results(result, args.name)
    print(open(os.path.join(RESULTS, f"{args.name}.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
