"""``mnistlab models``: the registered networks, their parameters and measured errors."""

from __future__ import annotations

import json

from mnistlab.core.backend import default_backend
from mnistlab.models.registry import REGISTRY, count_parameters, measured_errors

# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the registered models")
    parser.add_argument("--json", action="store_true", help="print the registry as JSON")
    parser.set_defaults(func=_models_command)


def _models_command(args) -> int:

    measured = measured_errors()
    rows = []
    for spec in REGISTRY.values():
        ours = measured.get(spec.name, {})
        rows.append(
            {
                "name": spec.name,
                "parameters": count_parameters(spec.name),
                "tutorial_error": spec.tutorial_error,
                "our_error": ours.get("error_mean"),
                "our_error_std": ours.get("error_std"),
                "runs": ours.get("runs"),
                # where `mnistlab train NAME` trains it if the user names no backend
                "backend": default_backend(spec),
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'model':<12} {'parameters':>10} {'tutorial':>9} {'ours':>14} {'backend':<10}  "
        "description"
    )
    for row in rows:
        tutorial = f"{row['tutorial_error']:.2f}%" if row["tutorial_error"] is not None else "-"
        ours = (
            f"{row['our_error']:.2f}±{row['our_error_std']:.2f}%"
            if row["our_error"] is not None
            else "not measured"
        )
        print(
            f"{row['name']:<12} {row['parameters']:>10,} {tutorial:>9} {ours:>14} "
            f"{row['backend']:<10}  {row['description']}"
        )
    return 0
