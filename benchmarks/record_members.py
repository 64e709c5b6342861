"""Records the kept ensemble members' single-network test errors as the figures that
`mnistlab models` shows in its "ours" column.

`mnistlab models` reads src/mnistlab/measured.json; `reproduce_tutorial.py --record` writes the
rows of the tutorial's four networks. This writes the rows of the networks whose finished
members are kept in benchmarks/members/ (`best`, `best5`, `deotte`, ...): for each registered
model, the mean and the sample standard deviation of its members' test errors, each read from
the member's own metrics.json. It trains nothing and reads no test image: the errors are the
ones the members recorded when they finished, which the README's table reports.

Usage:
    python benchmarks/record_members.py                 # benchmarks/members -> measured.json
    python benchmarks/record_members.py --members DIR --out FILE
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from mnistlab.core import runs  # noqa: E402
from mnistlab.models.registry import MEASURED_FILE  # noqa: E402


def member_errors(members_root: str) -> dict[str, list[dict]]:
    """Each model's finished members under members_root/*/member-*: test error and recipe."""
    found: dict[str, list[dict]] = {}
    for folder in sorted(glob.glob(os.path.join(members_root, "*", "member-*"))):
        metrics_path = os.path.join(folder, runs.METRICS_FILE)
        if not os.path.exists(metrics_path):
            continue  # unfinished: a checkpoint kept for a later session
        with open(os.path.join(folder, runs.CONFIG_FILE)) as handle:
            config = json.load(handle)
        with open(metrics_path) as handle:
            error = json.load(handle)["error"]
        found.setdefault(config["model"], []).append(
            {"error": error, "epochs": config["epochs"], "folder": folder}
        )
    return found


def summarise(found: dict[str, list[dict]]) -> dict:
    """measured.json rows: error_mean, error_std (sample), runs and where they come from.

    Raises:
        ValueError: when one model's members trained for different numbers of epochs, so that
            their mean would mix two recipes.
    """
    rows = {}
    for model, members in sorted(found.items()):
        epochs = sorted({member["epochs"] for member in members})
        if len(epochs) > 1:
            raise ValueError(
                f"The kept '{model}' members trained for {epochs} epochs: one recipe per model, "
                "please (move the others out of the members folder)."
            )
        errors = [member["error"] for member in members]
        rows[model] = {
            "error_mean": statistics.mean(errors),
            "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "runs": len(errors),
            "epochs": epochs[0],
            "source": sorted({os.path.dirname(member["folder"]) for member in members}),
        }
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default=os.path.join(HERE, "members"), help="kept members")
    parser.add_argument("--out", default=MEASURED_FILE, help="measured.json to update")
    args = parser.parse_args(argv)
    try:
        rows = summarise(member_errors(args.members))
    except ValueError as error:
        print(f"record_members: {error}", file=sys.stderr)
        return 2
    if not rows:
        print(f"No finished members under {args.members}.", file=sys.stderr)
        return 2
    for row in rows.values():  # paths as the repository names them, wherever it lies
        row["source"] = [os.path.relpath(path, os.path.dirname(HERE)) for path in row["source"]]
    try:
        with open(args.out) as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        recorded = {}
    runs.write_json(args.out, {**recorded, **rows})
    for model, row in rows.items():
        print(f"{model}: {row['error_mean']:.3f}% ± {row['error_std']:.3f} over {row['runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
