"""``mnistlab sweep``: a grid or random search from a TOML file, in processes or on Ray."""

from __future__ import annotations

import os

from mnistlab.commands.common import add_backend_argument
from mnistlab.training.executors import EXECUTORS
from mnistlab.training.sweep import _percent, run_sweep

# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "sweep", help="grid or random search: one run folder per trial, a ranked results table"
    )
    parser.add_argument("config", help="sweep TOML file ([sweep], [fixed], [grid])")
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="local processes or Ray tasks (default: [sweep] executor, else local)",
    )
    parser.add_argument("--address", help="Ray cluster to join, e.g. auto or ray://head:10001")
    parser.add_argument("--out", help="sweep folder (default: [sweep] out)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument(
        "--num-cpus",
        dest="num_cpus",
        type=int,
        default=None,
        help="local: trials at once (default 1); ray: CPUs of a local Ray",
    )
    parser.add_argument(
        "--max-retries",
        dest="max_retries",
        type=int,
        default=None,
        help="extra attempts for a failed trial (default 2)",
    )
    add_backend_argument(parser)
    parser.set_defaults(func=_sweep_command)


def _sweep_command(args) -> int:
    def report(result):
        line = f"{os.path.basename(result['out'])}: {result['status']}"
        if result["status"] == "ok":
            line += f", val error {_percent(result['val_error'])}%"
        else:
            line += f" after {result['attempts']} attempts: {result['error'].splitlines()[0]}"
        print(line, flush=True)

    ranked = run_sweep(
        args.config,
        executor=args.executor,
        address=args.address,
        out=args.out,
        data=args.data,
        backend=args.backend,
        max_retries=args.max_retries,
        num_cpus=args.num_cpus,
        on_result=report,
    )
    folder = os.path.dirname(ranked[0]["out"]) if ranked else args.out
    with open(os.path.join(folder, "results.md")) as handle:
        print(handle.read(), end="")
    failed = [result for result in ranked if result["status"] != "ok"]
    if failed:
        print(
            f"{len(failed)} of {len(ranked)} trials failed; rerun the same command to retry "
            "them (finished trials are kept)."
        )
        return 1
    return 0
