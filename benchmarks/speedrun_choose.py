"""Choosing the speedrun's settings on a validation split, never on the test set.

``mnistlab speedrun`` reports test accuracy over seeds 1 to 5 (benchmarks/speedrun.py). Its
settings must therefore be picked without the test images and without those seeds: this script
trains on the first 55,000 training images, measures accuracy on the last 5,000 (which no run
here trains on), with seeds 100 to 102, over a small grid of the settings that matter around
each target's recipe (mnistlab.models.small.TARGETS). It picks, per target, the setting with the
fewest training seconds whose mean validation accuracy reaches the target plus MARGIN.

The clock is the speedrun's own (mnistlab.training.speedrun.stopwatch: every training step,
tracing included; stopped while accuracy is measured).

Usage:
    python benchmarks/speedrun_choose.py                      # both targets, ~15 min
    python benchmarks/speedrun_choose.py --targets 99.0       # the short one, ~5 min
    python benchmarks/speedrun_choose.py --tiny               # smoke test, one small run

Writes OUT/speedrun_choice.md and OUT/speedrun_choice.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

VALIDATION_IMAGES = 5000  # the last 5,000 training images; the runs train on the 55,000 before
SEEDS = (100, 101, 102)  # not among the reported seeds (1 to 5)
MARGIN = 0.1  # points above the target the validation mean must reach (~1 s.e. of 5,000 images)
# The settings tried around each recipe: every combination of the values given.
GRIDS = {
    "99.0": {
        "learning_rate": [0.01, 0.02, 0.04],
        "batch_size": [64, 128],
        "train_size": [30000, 40000, 55000],  # images, seen once
    },
    # ~17 s a run at 4 epochs: the number of epochs alone, up to twice the recipe's
    "99.5": {"epochs": [3, 4, 6, 8]},
}
# one more setting per target, each on top of the recipe: label smoothing off
EXTRA = {"99.0": [{"label_smoothing": 0.0}], "99.5": []}


def split(data):
    """MNIST's training set cut into (train, validation): the test set is left out."""
    (x_train, y_train), _ = data
    cut = len(x_train) - VALIDATION_IMAGES
    return (x_train[:cut], y_train[:cut]), (x_train[cut:], y_train[cut:])


def candidates(target: str) -> list[dict]:
    """The settings to try for target: the grid's combinations, then EXTRA's, each a dict of
    the keys that differ from the recipe (the recipe itself is among them)."""
    grid = GRIDS[target]
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    return combos + EXTRA[target]


def try_setting(target: str, changes: dict, data, seeds, folder: str) -> dict:
    """Trains target's recipe with changes once per seed; returns the validation figures."""
    from mnistlab.training.speedrun import run_speedrun

    report = run_speedrun(target, seeds=list(seeds), data=data, out=folder, **changes)
    accuracy = [run["accuracy"] for run in report["runs"]]
    return {
        "changes": changes,
        "settings": report["settings"],
        "val_accuracy_mean": statistics.mean(accuracy),
        "val_accuracy_min": min(accuracy),
        "train_seconds_mean": report["train_seconds_mean"],
        "fit_seconds_mean": statistics.mean(run["fit_seconds"] for run in report["runs"]),
        "runs": [
            {
                "seed": run["seed"],
                "accuracy": run["accuracy"],
                "train_seconds": run["train_seconds"],
            }
            for run in report["runs"]
        ],
    }


def choose(target: str, tried: list[dict]) -> dict | None:
    """The fastest setting whose mean validation accuracy reaches target + MARGIN, or None
    where none does (then validation confirms no setting, and the recipe stays as it is)."""
    good = [row for row in tried if row["val_accuracy_mean"] >= float(target) + MARGIN]
    return min(good, key=lambda row: row["train_seconds_mean"]) if good else None


def is_recipe(row: dict, target: str) -> bool:
    from mnistlab.models.small import recipe

    return row["settings"] == {**recipe(target)}


def markdown(results: dict, args, elapsed: float, commit: str) -> str:
    from mnistlab.core.runs import machine_description

    lines = [
        "# Speedrun settings, chosen on validation",
        "",
        f"Machine: {machine_description()}. Date {time.strftime('%Y-%m-%d')}, commit "
        f"{commit}. Command: `python benchmarks/speedrun_choose.py "
        f"{' '.join(args.argv)}`. ".replace(" `", "`"),
        f"Trained on the first {60000 - VALIDATION_IMAGES:,} training images, accuracy on the "
        f"last {VALIDATION_IMAGES:,} (validation; the test set is not used), seeds "
        f"{', '.join(map(str, args.seeds))}. Chosen: the fewest training seconds (mean) among "
        f"the settings whose mean validation accuracy reaches the target + {MARGIN} points. "
        f"Whole run: {elapsed / 60:.1f} min.",
        "",
    ]
    for target, tried in results.items():
        chosen = choose(target, tried)
        lines += [
            f"## Target {target}%",
            "",
            "| changes from the recipe | val accuracy % (mean) | min | training s (mean) | "
            "fit s (mean) | |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in sorted(tried, key=lambda row: row["train_seconds_mean"]):
            changes = ", ".join(
                f"{key}={value}"
                for key, value in row["changes"].items()
                if value != row["recipe_settings"].get(key)
            )
            marks = []
            if is_recipe(row, target):
                marks.append("the recipe")
            if row is chosen:
                marks.append("**chosen**")
            lines.append(
                f"| {changes or '(none)'} | {row['val_accuracy_mean']:.2f} | "
                f"{row['val_accuracy_min']:.2f} | {row['train_seconds_mean']:.2f} | "
                f"{row['fit_seconds_mean']:.1f} | {', '.join(marks)} |"
            )
        if chosen is None:
            verdict = (
                f"no setting: none reaches {float(target) + MARGIN:.2f}% on validation, so the "
                "recipe stays as it is, not re-picked"
            )
        elif is_recipe(chosen, target):
            verdict = "the recipe as it is"
        else:
            changes = ", ".join(f"{key}={value}" for key, value in chosen["changes"].items())
            verdict = f"a change: {changes}"
        lines += ["", f"Validation chooses {verdict}.", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Choose the speedrun's settings on validation.")
    parser.add_argument("--targets", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--tiny", action="store_true", help="one setting, one small run")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument(
        "--redo",
        metavar="JSON",
        help="write OUT/speedrun_choice.md again from a speedrun_choice.json, training nothing",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.redo:
        return redo(args)
    from runinfo import git_commit

    from mnistlab.core import runs
    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.small import recipe

    data = split(load_mnist())
    commit = git_commit()  # of the code that trains, before anything is written
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for target in args.targets:
            tried = []
            settings = candidates(target)
            if args.tiny:
                settings, args.seeds = [{"train_size": 600, "epochs": 1}], args.seeds[:1]
            for index, changes in enumerate(settings):
                out = os.path.join(folder, f"{target}-{index}")
                row = try_setting(target, changes, data, args.seeds, out)
                row["recipe_settings"] = recipe(target)
                tried.append(row)
                print(
                    f"{target} {changes}: val {row['val_accuracy_mean']:.2f}% "
                    f"(min {row['val_accuracy_min']:.2f}), {row['train_seconds_mean']:.2f} s",
                    flush=True,
                )
            results[target] = tried
    text = markdown(results, args, time.perf_counter() - started, commit)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "speedrun_choice.md"), "w") as handle:
        handle.write(text)
    report = {
        "machine": runs.machine_description(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "argv": args.argv,
        "seeds": args.seeds,
        "validation_images": VALIDATION_IMAGES,
        "margin": MARGIN,
        "elapsed_seconds": time.perf_counter() - started,
        "targets": {
            target: {"chosen": (choose(target, tried) or {}).get("settings"), "tried": tried}
            for target, tried in results.items()
        },
    }
    runs.write_json(os.path.join(args.out, "speedrun_choice.json"), report)
    print(text)
    return 0


def redo(args) -> int:
    """Writes the tables again from a run's JSON (its command, seeds and figures)."""
    from mnistlab.core import runs

    report = runs.read_json(args.redo)
    args.argv, args.seeds = report["argv"], report["seeds"]
    results = {target: entry["tried"] for target, entry in report["targets"].items()}
    for target, tried in results.items():
        report["targets"][target]["chosen"] = (choose(target, tried) or {}).get("settings")
    text = markdown(results, args, report["elapsed_seconds"], report["commit"])
    with open(os.path.join(args.out, "speedrun_choice.md"), "w") as handle:
        handle.write(text)
    runs.write_json(os.path.join(args.out, "speedrun_choice.json"), report)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
