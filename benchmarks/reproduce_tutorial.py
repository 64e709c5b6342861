"""Reproduces the tutorial's results table: its four networks, trained as the tutorial does.

As the tutorial: all 60,000 training images, validation on the test set (val_size=0), Adam,
batch 200, 10 epochs. Each (model, seed) is its own run folder under --out, so a rerun skips
finished runs and resumes interrupted ones. Writes a Markdown table and a JSON summary, and
with --record the measured errors that `mnistlab models` shows. One network alone (--models
mlp) trains with the settings that `mnistlab train` gives it (its backend, unless
KERAS_BACKEND names one, and its kernels); several train with the defaults.

Usage:
    MNISTLAB_DATA=../shared/data/mnist python benchmarks/reproduce_tutorial.py --seeds 7 8 9
    python benchmarks/reproduce_tutorial.py --tiny      # a few batches; what CI runs
    ... --precision mixed_bfloat16 --name reproduce-bf16 --out runs/reproduce-bf16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import mnistlab
from mnistlab.core import runs
from mnistlab.core.backend import use_backend
from mnistlab.core.config import PRECISIONS
from mnistlab.models.registry import MEASURED_FILE, REGISTRY

TUTORIAL_MODELS = ["mlp", "cnn", "larger_cnn", "branch_cnn"]
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def train_once(model: str, seed: int, out: str, tiny: bool, precision: str = "float32") -> dict:
    folder = os.path.join(out, f"{model}-seed{seed}")
    if runs.is_complete(folder):
        metrics = runs.read_json(os.path.join(folder, runs.METRICS_FILE))
    else:
        settings = {"epochs": 1, "train_size": 400} if tiny else {}
        resume = folder if os.path.exists(os.path.join(folder, runs.CONFIG_FILE)) else None
        run = mnistlab.train(
            None if resume else model,
            out=None if resume else folder,
            resume=resume,
            seed=None if resume else seed,
            val_size=None if resume else 0,
            precision=None if resume else precision,
            verbose=0,
            **settings,
        )
        metrics = run.metrics
    history = runs.read_history(folder)
    epoch_seconds = [float(row["seconds"]) for row in history]
    return {
        "model": model,
        "seed": seed,
        "error": metrics["error"],
        "seconds_per_epoch": statistics.median(epoch_seconds),
        "backend": runs.read_json(os.path.join(folder, runs.META_FILE))["versions"]["backend"],
    }


def summarise(results: list[dict]) -> dict:
    summary = {}
    for model in TUTORIAL_MODELS:
        rows = [r for r in results if r["model"] == model]
        if not rows:
            continue
        errors = [r["error"] for r in rows]
        summary[model] = {
            "error_mean": statistics.mean(errors),
            "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "runs": len(errors),
            "errors": errors,
            "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in rows),
            "backend": rows[0]["backend"],
        }
    return summary


def markdown(
    summary: dict, machine: str, seeds: list[int], tiny: bool, precision: str = "float32"
) -> str:
    protocol = (
        "TINY smoke mode (1 epoch on 400 images): not a result"
        if tiny
        else "the tutorial's (60,000 training images, validated on the test set, Adam, "
        "batch 200, 10 epochs)"
    )
    if precision != "float32":
        protocol += f", trained in {precision} (`--precision {precision}`)"
    lines = [
        f"Machine: {machine}. Seeds: {', '.join(map(str, seeds))}. Protocol: {protocol}.",
        "",
        "| model | parameters | tutorial error | our error (mean ± std) | runs | seconds/epoch | backend |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for model, row in summary.items():
        tutorial = REGISTRY[model].tutorial_error
        parameters = mnistlab.create_model(model).count_params()
        lines.append(
            f"| {model} | {parameters:,} | {f'{tutorial:.2f}%' if tutorial else '—'} | "
            f"{row['error_mean']:.2f}% ± {row['error_std']:.2f} | {row['runs']} | "
            f"{row['seconds_per_epoch']:.1f} | {row['backend']} |"
        )
    lines += [
        "",
        "Seconds per epoch include the validation pass over the 10,000 test images; they come",
        "from the training logs and vary with whatever else the machine ran at the time. For",
        "training speed measured on a quiet machine, see the speed benchmark (benchmarks/speed.py).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9], help="one run per seed")
    parser.add_argument("--models", nargs="+", default=TUTORIAL_MODELS, help="registry names")
    parser.add_argument("--out", default="runs/reproduce", help="folder for the run folders")
    parser.add_argument("--tiny", action="store_true", help="1 epoch on 400 images (CI smoke)")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the errors into mnistlab's measured.json (`mnistlab models`)",
    )
    parser.add_argument("--results", default=RESULTS_DIR, help="where to write the table")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="train in float32 (the tutorial's), mixed_bfloat16 or bfloat16_products (JAX, PyTorch)",
    )
    parser.add_argument("--name", help="results file name (default reproduce, or reproduce_tiny)")
    args = parser.parse_args(argv)
    if args.record and args.precision != "float32":
        parser.error("--record keeps the tutorial's float32 figures; drop it with --precision")
    # one network: the settings `mnistlab train NETWORK` runs it with (its backend where none is
    # named, its kernels); several share the defaults, as in any process that trains them all
    use_backend(None, args.models[0] if len(args.models) == 1 else None)
    results = []
    for seed in args.seeds:  # seed-major order: every model gets a result early
        for model in args.models:
            started = time.perf_counter()
            result = train_once(model, seed, args.out, args.tiny, args.precision)
            results.append(result)
            print(
                f"{model} seed {seed}: {result['error']:.2f}% "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    summary = summarise(results)
    table = markdown(summary, runs.machine_description(), args.seeds, args.tiny, args.precision)
    print(table)
    name = args.name or ("reproduce_tiny" if args.tiny else "reproduce")
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, f"{name}.md"), "w") as handle:
        handle.write(table)
    runs.write_json(os.path.join(args.results, f"{name}.json"), summary)
    if args.record and not args.tiny:
        recorded = {
            **mnistlab.models.registry.measured_errors(),
            **{
                model: {k: row[k] for k in ("error_mean", "error_std", "runs")}
                for model, row in summary.items()
            },
        }
        runs.write_json(MEASURED_FILE, recorded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
