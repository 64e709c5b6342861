"""What several commands share: the ``--backend`` flag and the error that means bad user input."""

from __future__ import annotations

import argparse

from mnistlab.core.config import BACKENDS


class UserError(ValueError):
    """Bad input from a user: printed as one line, exit status 2."""


def add_backend_argument(parser: argparse.ArgumentParser) -> None:

    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else the one a resumed run trained on, "
        "else the fastest measured for the network: tensorflow, or jax for the MLP)",
    )
