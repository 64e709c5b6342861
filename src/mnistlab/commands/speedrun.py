"""``mnistlab speedrun``: 99% test accuracy against the clock."""

from __future__ import annotations

import json

from mnistlab.commands.common import add_backend_argument
from mnistlab.models.small import TARGETS
from mnistlab.training.speedrun import SEEDS, format_report, run_speedrun

# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "speedrun", help="train the speedrun recipe to 99%% test accuracy in seconds, 5 seeds"
    )
    parser.add_argument(
        "--target",
        choices=list(TARGETS),
        default="99.0",
        help="test accuracy to reach (%%): 99.0 (budget 8 s) or 99.5 (budget 90 s); default 99.0",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[SEEDS],
        metavar="N",
        help=f"one number: how many runs (seeds 1..N); several: those seeds (default {SEEDS})",
    )
    parser.add_argument(
        "--model", help="train this registered network instead of the target's (same settings)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--train-size", type=int, default=None, help="first N images (quick try)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--out", help="folder for the run folders (default runs/speedrun-...)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    add_backend_argument(parser)
    parser.set_defaults(func=_speedrun_command)


def _speedrun_command(args) -> int:
    report = run_speedrun(
        args.target,
        seeds=args.seeds[0] if len(args.seeds) == 1 else args.seeds,  # a count, or the seeds
        data=args.data,
        out=args.out,
        model=args.model,
        epochs=args.epochs,
        train_size=args.train_size,
    )
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 0
