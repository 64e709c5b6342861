"""``mnistlab ensemble``: train N members and average them, or average finished runs."""

from __future__ import annotations

import os

from mnistlab.commands.common import add_backend_argument
from mnistlab.commands.train import add_config_arguments
from mnistlab.core.config import TrainConfig, fields_of
from mnistlab.training.ensemble import build_ensemble, ensemble

# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "ensemble", help="train N members of a model and save their average as one model"
    )
    parser.add_argument(
        "model", nargs="?", help="registry name of the members (see 'mnistlab models')"
    )
    parser.add_argument("--members", type=int, help="number of members (default 3)")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="RUN",
        help="instead of MODEL: average these finished run folders (no training); needs --out",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        metavar="W",
        help="with --runs: one positive weight per run folder, divided by their sum "
        "(default: all the same)",
    )
    parser.add_argument("--out", help="ensemble folder (default runs/MODEL-ensemble-N)")
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where members train: local processes or Ray tasks (default local)",
    )
    parser.add_argument("--address", help="Ray cluster address for --executor ray")
    parser.add_argument(
        "--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA, caches)"
    )
    add_config_arguments(parser)
    add_backend_argument(parser)
    parser.set_defaults(func=_ensemble_command)


def _ensemble_command(args) -> int:

    overrides = {key: getattr(args, key) for key in fields_of(TrainConfig) if key != "model"}
    if args.runs:
        given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
        if args.members is not None:
            given.insert(0, "--members")
        if args.model or given or not args.out:
            raise ValueError(
                "--runs averages finished run folders as they are: give --out, and no MODEL "
                "or training settings" + (f" (got {', '.join(given)})" if given else "") + "."
            )
        metrics = build_ensemble(args.runs, args.out, data=args.data, weights=args.weights)
        out = args.out
    elif args.weights:
        raise ValueError("--weights goes with --runs: members trained here count the same.")
    elif not args.model:
        raise ValueError("Give a MODEL to train members of (see 'mnistlab models'), or --runs.")
    else:
        if args.backend:
            overrides["backend"] = args.backend
        members = 3 if args.members is None else args.members
        metrics = ensemble(
            args.model,
            members,
            out=args.out,
            executor=args.executor,
            address=args.address,
            data=args.data,
            on_result=_report_member,
            **overrides,
        )
        out = args.out or os.path.join("runs", f"{args.model}-ensemble-{members}")
    errors = ", ".join(f"{error:.2f}%" for error in metrics["member_test_errors"])
    print(f"Members' test errors: {errors}")
    if args.runs and args.weights:
        print("Members' weights: " + ", ".join(f"{w:.4f}" for w in metrics["member_weights"]))
    print(f"Ensemble of {metrics['members']}: classification error {metrics['error']:.2f}%")
    print(f"Ensemble folder: {out}")
    return 0


def _report_member(result: dict) -> None:
    """One line per member as it finishes (members train for minutes each)."""
    name = os.path.basename(result["out"])
    if result["status"] != "ok":
        line = f"{name}: failed after {result['attempts']} attempts: "
        line += (result["error"] or "").splitlines()[0] if result["error"] else "no reason given"
    elif result.get("skipped"):
        line = f"{name}: already complete, test error {result['test_error']:.2f}%"
    else:
        line = f"{name}: test error {result['test_error']:.2f}%"
        if result.get("val_error") is not None:
            line += f", val error {result['val_error']:.2f}%"
    print(line, flush=True)
