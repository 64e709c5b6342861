"""What the peer scripts share, and nothing of their training: the command line that
benchmarks/speed.py calls them with, and the JSON line it reads back."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

# so that a peer run as a script finds mnistlab's MNIST loader (its data, not its training)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))


def parse_args(
    description: str, models: tuple, argv=None, precisions: tuple = ()
) -> argparse.Namespace:
    """--model (one of ``models``, default the first or cnn), --epochs, --batch-size,
    --train-images, --val-images; and --precision (one of ``precisions``, default the first)
    where the script offers more than one."""
    default = "cnn" if "cnn" in models else models[0]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--model", choices=models, default=default, help=f"network (default {default})"
    )
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    parser.add_argument("--batch-size", type=int, default=200, help="images per step (default 200)")
    parser.add_argument("--train-images", type=int, default=60000, help="images per epoch")
    parser.add_argument("--val-images", type=int, default=10000, help="test images per epoch")
    if precisions:
        parser.add_argument(
            "--precision",
            choices=precisions,
            default=precisions[0],
            help=f"precision of the layers' arithmetic, {' or '.join(precisions)}; the "
            f"script's docstring says how it sets it (default {precisions[0]})",
        )
    return parser.parse_args(argv)


def report(epoch_seconds: list, started: float, val_accuracy: float, backend: str, **extra) -> None:
    """Prints the one JSON line benchmarks/speed.py reads: the epochs' seconds, the whole
    training's seconds since ``started`` (time.perf_counter), the last validation accuracy,
    the process's peak memory and the backend."""
    result = {
        "epoch_seconds": epoch_seconds,
        "fit_seconds": time.perf_counter() - started,
        "val_accuracy": val_accuracy,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backend": backend,
        **extra,
    }
    print(json.dumps(result))
