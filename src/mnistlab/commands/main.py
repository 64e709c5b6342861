"""The ``mnistlab`` command: one subcommand per verb, each in its own module of this package.

Each module in COMMANDS has ``add_cli(subparsers)``; it registers its parsers and sets
``func``. Nothing below this package imports Keras when it loads, so ``mnistlab --help`` stays
quick, and ``--backend`` is applied (``use_backend``) before the command first loads Keras.
"""

from __future__ import annotations

import argparse
import os
import sys

from mnistlab.commands import (
    ensemble,
    evaluate,
    export,
    models,
    pictures,
    predict,
    serve,
    speedrun,
    sweep,
    train,
)
from mnistlab.core.backend import use_backend
from mnistlab.core.config import BACKEND_ENV, BACKENDS
from mnistlab.core.quiet import VERBOSE_ENV, quiet_backends, show_everything
from mnistlab.core.runs import CONFIG_FILE, META_FILE, read_json
from mnistlab.core.version import __version__
from mnistlab.models.registry import REGISTRY

# one module a verb (pictures has five: samples, filters, responses, maximize, curves), in the
# order ``mnistlab --help`` lists them
COMMANDS = (models, train, evaluate, ensemble, predict, pictures, export, serve, speedrun, sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistlab",
        description="Deep learning on handwritten digits (MNIST) with Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    parser.add_argument(
        "--verbose",
        dest="backend_logs",
        action="store_true",
        help=f"let TensorFlow's, XLA's and absl's own log lines through (as {VERBOSE_ENV}=1 "
        "does); goes before the command, as `train --verbose N` is training's progress",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_cli(subparsers)
    return parser


def network_of(args) -> str | None:
    """The network a command will train, where it says (``train MODEL``, ``train --resume RUN``),
    so that the backend is set up for it before Keras loads; None where it does not say."""
    model = getattr(args, "model", None) or _resumed_record(args, CONFIG_FILE).get("model")
    return model if isinstance(model, str) else None


def backend_of(args) -> str | None:
    """The backend a command asks for: ``--backend``, else (unless $KERAS_BACKEND names one) the
    backend a resumed run (``train --resume RUN``) trained on, from its meta.json, so that it goes
    on there; None leaves the choice to ``backend.use_backend`` ($KERAS_BACKEND, else the
    network's own, else the default)."""
    named = getattr(args, "backend", None)
    if named or os.environ.get(BACKEND_ENV):
        return named
    versions = _resumed_record(args, META_FILE).get("versions")
    backend = versions.get("backend") if isinstance(versions, dict) else None
    return backend if backend in BACKENDS else None


def _resumed_record(args, name: str) -> dict:
    """The JSON file ``name`` of the run that ``--resume`` names; {} where there is none to
    read (train() reports a bad folder itself)."""
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
    if args.backend_logs:
        show_everything()
    quiet_backends()  # before any backend loads: its import-time lines go to descriptor 2
    try:
        network = network_of(args)
        use_backend(backend_of(args), REGISTRY.get(network) if network else None)
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
