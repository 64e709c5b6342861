"""``mnistlab models``: the registered networks, their parameters and measured errors."""

from __future__ import annotations

import json

from mnistlab.core.backend import default_backend
from mnistlab.models.registry import (
    REGISTRY,
    count_parameters,
    create_model,
    get_spec,
    measured_errors,
)

# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list the registered models, or show one network's layers"
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="NAME",
        help="a registered network: build it and print its layers (Keras's summary)",
    )
    parser.add_argument("--json", action="store_true", help="print the registry as JSON")
    parser.set_defaults(func=_models_command)


def _models_command(args) -> int:
    if args.model:
        return _summary(args.model, args.json)
    # the registry's data only (parameter counts included): listing builds nothing, no Keras
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


def _summary(name: str, as_json: bool) -> int:
    """Builds one network and prints its layers, with the indexes ``--layer`` takes."""
    spec = get_spec(name)  # an unknown name fails before Keras loads
    model = create_model(spec.name)
    if as_json:
        layers = [
            {"index": index, "name": layer.name, "class": type(layer).__name__}
            for index, layer in enumerate(model.layers)
        ]
        print(
            json.dumps(
                {"name": spec.name, "parameters": model.count_params(), "layers": layers}, indent=2
            )
        )
        return 0
    model.summary()
    names = ", ".join(f"{index} {layer.name}" for index, layer in enumerate(model.layers))
    print(f"Layer indexes for --layer (responses, maximize): {names}")
    return 0
