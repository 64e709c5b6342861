"""A registered network's MNIST test error over several seeds, measured honestly (`best` by
default; --model best5 --seed 40 --epochs 80, say, for another recipe or schedule).

Each seed is one run of ``mnistlab train best`` (its registry recipe) that holds out its own
1,000-image validation fold (the recipe's val_size) of the 60,000 training images (seed i:
fold i) and never looks at the test set while training; the epoch count is fixed in advance, so nothing is chosen on
the test set. The test error of each finished network is read once, at the end.

The run folders double as ensemble members (benchmarks/ensemble.py re-uses them): they are
``OUT/members/member-I``, trained through executors.run_trials, so an interrupted benchmark
resumes where it stopped and finished seeds are never retrained. Results are rewritten
after every seed, so a partial benchmark still leaves its numbers.

Usage (heavy: about 23 minutes, 43 CPU minutes, per seed on a 2-core CPU):
    flock /tmp/mnistlab-heavy.lock python benchmarks/best.py --seeds 3
Writes benchmarks/results/best.json and best.md (NAME.json and NAME.md with --name NAME, to keep
another setting's results beside the recipe's, e.g. --epochs 24 --name best-e24, or
--augment elastic --name best-elastic). --teacher RUN distils: each seed trains on the
probabilities of a finished ensemble (or network) instead of the labels (training.distill).
--val-size N holds out N images per seed instead of the recipe's 1,000 (e.g. --epochs 18
--val-size 5000 for the earlier recipe); the test set is never the validation set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)  # runinfo

from runinfo import git_commit  # noqa: E402

from mnistlab.core import runs  # noqa: E402
from mnistlab.core.config import AUGMENTS  # noqa: E402

DEFAULT_MODEL = "best"  # --model: any registered network with a held-out recipe
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DEFAULT_OUT = os.path.join(REPO, "runs", "bench-best")


def seed_row(result: dict, cpu_seconds: float | None) -> dict:
    """One finished run folder as a results row (errors in percent, times in minutes)."""
    folder = result["out"]
    config = runs.read_json(os.path.join(folder, runs.CONFIG_FILE))
    history = runs.read_history(folder)
    # the saved model's validation error (with --ema, the averaged weights'); runs from before
    # train() recorded it have only history.csv's last epoch, the same model without ema
    val_error = result["metrics"].get("val_error")
    if val_error is None:
        val_error = 100.0 * (1.0 - float(history[-1]["val_accuracy"]))
    return {
        "seed": config["seed"],
        "val_fold": config.get("val_fold", 0),
        "epochs": len(history),
        "final_val_error": round(val_error, 3),
        "test_error": result["test_error"],
        "train_minutes": round(sum(float(row["seconds"]) for row in history) / 60.0, 2),
        "cpu_minutes": None if cpu_seconds is None else round(cpu_seconds / 60.0, 2),
        "folder": os.path.relpath(folder, REPO),
    }


def summary(
    rows: list[dict], planned: int, config: dict, model: str = DEFAULT_MODEL, commit: str = "?"
) -> dict:
    errors = [row["test_error"] for row in rows]
    return {
        "model": model,
        "seeds_planned": planned,
        "seeds_done": len(rows),
        "test_error_mean": round(statistics.mean(errors), 4) if errors else None,
        "test_error_std": round(statistics.stdev(errors), 3) if len(errors) > 1 else None,
        "val_error_mean": round(statistics.mean(r["final_val_error"] for r in rows), 3)
        if rows
        else None,
        "train_minutes_mean": round(statistics.mean(r["train_minutes"] for r in rows), 2)
        if rows
        else None,
        "per_seed": rows,
        "recipe": {k: v for k, v in config.items() if k not in ("seed", "val_fold")},
        "machine": runs.machine_description(),
        "commit": commit,  # the checkout's when the benchmark started
        "versions": runs.read_json(os.path.join(REPO, rows[0]["folder"], runs.META_FILE))[
            "versions"
        ]
        if rows
        else None,
        "command": "flock /tmp/mnistlab-heavy.lock python benchmarks/best.py "
        + " ".join(sys.argv[1:]),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_results(result: dict, name: str = "best") -> None:
    os.makedirs(RESULTS, exist_ok=True)
    val_size = result["recipe"]["val_size"]
    runs.write_json(os.path.join(RESULTS, f"{name}.json"), result)
    lines = [
        f"# `{result['model']}`: single-network test error",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']} (shared with other jobs)  ",
        f"Commit: {result.get('commit', '?')}  ",
        f"Seeds finished: {result['seeds_done']} of {result['seeds_planned']}  ",
        f"Written: {result['written']}",
        "",
        "Protocol: each seed trains the registry recipe for a fixed number of epochs on "
        f"{(result['recipe']['train_size'] or 60_000) - val_size:,}",
        f"training images, holding out its own {val_size:,}-image validation fold; the test set is",
        "used once, after training, for the numbers below.",
        "",
    ]
    if result["seeds_done"]:
        spread = (
            f" ± {result['test_error_std']:.2f}% (sample std)"
            if result["test_error_std"] is not None
            else ""
        )
        lines += [
            # every decimal the mean has (to 4): 0.4033 must not read as the 0.40% target
            f"**Test error: {result['test_error_mean']:g}%{spread} over "
            f"{result['seeds_done']} seed(s)**; mean final validation error "
            f"{result['val_error_mean']:.2f}%; {result['train_minutes_mean']:.1f} minutes of "
            "training per network.",
            "",
            "| seed | val fold | epochs | val error % | test error % | train min | CPU min |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in result["per_seed"]:
            lines.append(
                f"| {row['seed']} | {row['val_fold']} | {row['epochs']} | "
                f"{row['final_val_error']:.2f} | {row['test_error']:.2f} | "
                f"{row['train_minutes']:.1f} | {row['cpu_minutes'] or '-'} |"
            )
    lines += ["", "Recipe:", "", "```json", json.dumps(result["recipe"], indent=2), "```", ""]
    with runs.atomic_path(os.path.join(RESULTS, f"{name}.md")) as temporary:
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="registered network to train (default best)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="networks to train (default 3)")
    parser.add_argument(
        "--seed", type=int, help="the first network's seed (default: the recipe's); fold i next"
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the seeds' run folders")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument(
        "--val-size",
        type=int,
        help="images each seed holds out for validation (default: the recipe's, 1,000)",
    )
    parser.add_argument(
        "--ema", type=float, help="override the recipe's weight-average decay (0 = off)"
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENTS,
        help="override the recipe's augmentation (elastic: affine plus a smooth random field)",
    )
    parser.add_argument(
        "--elastic-alpha", type=float, help="elastic field strength in pixels (default 34)"
    )
    parser.add_argument(
        "--elastic-sigma", type=float, help="elastic field smoothness in pixels (default 4)"
    )
    parser.add_argument(
        "--label-smoothing", type=float, help="override the recipe's label smoothing"
    )
    parser.add_argument(
        "--teacher",
        help="distil: a finished run or ensemble folder whose probabilities are the targets",
    )
    parser.add_argument(
        "--teacher-weight", type=float, help="distil: the teacher's share of each target (1)"
    )
    parser.add_argument(
        "--teacher-sees",
        choices=("images", "warps"),
        help="distil: the teacher answers each image once (images) or every augmented batch",
    )
    parser.add_argument("--train-size", type=int, help="quick check: train on N images only")
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument(
        "--name", default="best", help="results file names in benchmarks/results (default best)"
    )
    args = parser.parse_args(argv)

    from mnistlab.training.ensemble import member_trials
    from mnistlab.training.executors import run_trials

    trials = member_trials(
        args.model,
        args.seeds,
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        val_size=args.val_size,
        ema=args.ema,
        augment=args.augment,
        elastic_alpha=args.elastic_alpha,
        elastic_sigma=args.elastic_sigma,
        label_smoothing=args.label_smoothing,
        teacher=args.teacher and os.path.abspath(args.teacher),
        teacher_weight=args.teacher_weight,
        teacher_sees=args.teacher_sees,
        train_size=args.train_size,
        data=args.data,
    )
    rows: list[dict] = []
    commit = git_commit()
    cpu_before = [resource.getrusage(resource.RUSAGE_CHILDREN)]

    def on_result(result: dict) -> None:  # one trial at a time: children's CPU is this trial's
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - cpu_before[0].ru_utime - cpu_before[0].ru_stime
        cpu_before[0] = usage
        if result["status"] != "ok":
            print(f"{result['out']} failed: {result['error']}", flush=True)
            return
        rows.append(seed_row(result, None if result["skipped"] else cpu))
        config = runs.read_json(os.path.join(result["out"], runs.CONFIG_FILE))
        write_results(summary(rows, args.seeds, config, args.model, commit), args.name)
        print(f"seed {rows[-1]['seed']}: test error {rows[-1]['test_error']:.2f}%", flush=True)

    run_trials(trials, on_result=on_result)
    if not rows:
        print("No seed finished.", file=sys.stderr)
        return 1
    print(open(os.path.join(RESULTS, f"{args.name}.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
