"""Fused Adam against Keras's Adam, side by side in one process: ``ab_probe.py --compare adam``.

Kept so that the README's commands stay as they were; see benchmarks/ab_probe.py.

Usage:
    python benchmarks/adam_probe.py --model mlp
    python benchmarks/adam_probe.py --model cnn --reps 15

Writes benchmarks/results/adam_probe-MODEL.json and .md.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ab_probe  # noqa: E402

if __name__ == "__main__":
    sys.exit(ab_probe.main(["--compare", "adam", *sys.argv[1:]]))
