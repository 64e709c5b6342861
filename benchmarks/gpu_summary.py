"""Markdown summary of a benchmarks/gpu_check.sh run: per-epoch times and errors, speedrun.

Reads the folder gpu_check.sh wrote (cnn-BACKEND/, speedrun-TARGET.json, best-BACKEND/) and
prints tables: one row per epoch of each cnn/best run (seconds, validation error), one row
per speedrun target (seeds, training seconds, test accuracy), with the GPU's name.

Usage:
    python benchmarks/gpu_summary.py RESULTS_FOLDER > gpu_check.md
"""

from __future__ import annotations

import csv
import glob
import json
import os
import statistics
import subprocess
import sys


def gpu_name() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().replace("\n", "; ")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (nvidia-smi not found)"


def epoch_rows(folder: str) -> list[str]:
    """Table rows for one run folder: epoch, seconds, validation error, and the test error."""
    history = os.path.join(folder, "history.csv")
    if not os.path.exists(history):
        return [f"| {os.path.basename(folder)} | - | - | no history.csv (run failed?) | - |"]
    test_error = "-"
    metrics = os.path.join(folder, "metrics.json")
    if os.path.exists(metrics):
        with open(metrics) as handle:
            test_error = f"{100 * (1 - json.load(handle)['accuracy']):.2f}"
    rows = []
    with open(history) as handle:
        for row in csv.DictReader(handle):
            error = 100 * (1 - float(row["val_accuracy"]))
            rows.append(
                f"| {os.path.basename(folder)} | {int(row['epoch'])} | {float(row['seconds']):.2f} "
                f"| {error:.2f} | {test_error} |"
            )
    return rows


def speedrun_row(path: str) -> str:
    with open(path) as handle:
        report = json.load(handle)
    runs = report["runs"]
    seconds = [run["train_seconds"] for run in runs]
    accuracy = [run["accuracy"] for run in runs]
    return (
        f"| {report['target']} | `{report['model']}` | {report['backend']} | {len(runs)} | "
        f"{statistics.median(seconds):.2f} (min {min(seconds):.2f}) | "
        f"{report['accuracy_mean']:.2f} ± {report['accuracy_std']:.2f} (min {min(accuracy):.2f}) | "
        f"{report['budget_seconds']:.0f} (CPU budget) |"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        print("usage: python benchmarks/gpu_summary.py RESULTS_FOLDER", file=sys.stderr)
        return 2
    folder = argv[0]
    lines = [f"GPU: {gpu_name()}", ""]
    runs = sorted(glob.glob(os.path.join(folder, "cnn-*"))) + sorted(
        glob.glob(os.path.join(folder, "best-*"))
    )
    if runs:
        lines += [
            "Per epoch (cnn: tutorial settings, validation = test set; best: its recipe's held-out"
            " images as validation, test error once at the end):",
            "",
            "| run | epoch | seconds | validation error % | test error % |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for run in runs:
            lines += epoch_rows(run)
        lines.append("")
    reports = sorted(glob.glob(os.path.join(folder, "speedrun-*.json")))
    if reports:
        lines += [
            "Speedrun (training seconds on the stopwatch: process start, import and data apart):",
            "",
            "| target % | network | backend | seeds | training s, median | test accuracy %, "
            "mean ± std | budget s |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [speedrun_row(report) for report in reports]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
