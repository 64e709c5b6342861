"""Medians of a settings_probe.sh log: seconds of the timed epochs per network and variant.

Usage: python benchmarks/probe_summary.py benchmarks/results/probe_determinism.log
Each probe process trains 3 epochs (the first is warm-up); its timed figure is the mean of
epochs 2 and 3, and the table shows the median over rounds, and each variant against plain.
"""

from __future__ import annotations

import ast
import statistics
import sys
from collections import defaultdict


def parse(lines) -> dict:
    """{(network, variant): [timed seconds per round]} from the probe's output lines."""
    times: dict = defaultdict(list)
    key = None
    for line in lines:
        if line.startswith("== "):
            network, variant, _ = line[3:].split()
            key = (network, variant)
        elif key and line.startswith("["):
            epochs = ast.literal_eval(line.split("]")[0] + "]")
            times[key].append(statistics.mean(epochs[1:]))
            key = None
    return times


def table(times: dict) -> str:
    rows = [
        "| network | variant | s/epoch (median) | rounds | x plain |",
        "|---|---|---:|---:|---:|",
    ]
    for (network, variant), values in sorted(times.items()):
        median = statistics.median(values)
        plain = times.get((network, "plain"))
        ratio = f"{statistics.median(plain) / median:.2f}" if plain else "-"
        rows.append(f"| {network} | {variant} | {median:.2f} | {len(values)} | {ratio} |")
    return "\n".join(rows)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(table(parse(handle)))
