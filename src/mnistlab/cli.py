"""The ``mnistlab`` command: one subcommand per verb, each defined beside the code it runs.

Each module in COMMAND_MODULES has ``add_cli(subparsers)``; it registers its parsers and sets
``func``. Modules import their heavy dependencies inside functions, so ``mnistlab --help`` and
the commands that do not train stay quick, and ``--backend`` is applied before Keras loads.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = [
    "mnistlab.models",
    "mnistlab.train",
    "mnistlab.evaluate",
    "mnistlab.ensemble",
    "mnistlab.predict",
    "mnistlab.visualize",
    "mnistlab.export",
    "mnistlab.serve",
    "mnistlab.speedrun",
    "mnistlab.sweep",
]


class UserError(ValueError):
    """Bad input from a user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from mnistlab import __version__

    parser = argparse.ArgumentParser(
        prog="mnistlab",
        description="Deep learning on handwritten digits (MNIST) with Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_cli(subparsers)
    return parser


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    from mnistlab.config import BACKENDS

    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else the one a resumed run trained on, "
        "else the fastest measured for the network: tensorflow, or jax for the MLP)",
    )


def network_of(args) -> str | None:
    """The network a command will train, where it says (``train MODEL``, ``train --resume RUN``),
    so that the backend is set up for it before Keras loads; None where it does not say."""
    from mnistlab.runs import CONFIG_FILE

    model = getattr(args, "model", None) or _resumed_record(args, CONFIG_FILE).get("model")
    return model if isinstance(model, str) else None


def backend_of(args) -> str | None:
    """The backend a command asks for: ``--backend``, else (unless $KERAS_BACKEND names one) the
    backend a resumed run (``train --resume RUN``) trained on, from its meta.json, so that it goes
    on there; None leaves the choice to ``backend.use_backend`` ($KERAS_BACKEND, else the
    network's own, else the default)."""
    from mnistlab.config import BACKEND_ENV, BACKENDS
    from mnistlab.runs import META_FILE

    named = getattr(args, "backend", None)
    if named or os.environ.get(BACKEND_ENV):
        return named
    versions = _resumed_record(args, META_FILE).get("versions")
    backend = versions.get("backend") if isinstance(versions, dict) else None
    return backend if backend in BACKENDS else None


def _resumed_record(args, name: str) -> dict:
    """The JSON file ``name`` of the run that ``--resume`` names; {} where there is none to
    read (train() reports a bad folder itself)."""
    from mnistlab.runs import read_json

    resume = getattr(args, "resume", None)
    if not isinstance(resume, str):
        return {}
    try:
        record = read_json(os.path.join(resume, name))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from mnistlab.backend import use_backend

        use_backend(backend_of(args), network_of(args))
        status = args.func(args)
    except (ValueError, FileNotFoundError) as error:  # user errors: one clear line, no traceback
        print(f"mnistlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnistlab {args.command}: interrupted; finished epochs are kept.", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
