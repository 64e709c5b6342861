"""Keeps finished ensemble members in the repository, so that a new machine need not retrain them.

Anything under runs/ is lost with the machine; benchmarks/members/ is committed. Each finished
member run folder is copied there whole but for its checkpoint and lock, and its model.keras
is loaded without compiling and saved again, which drops the optimizer's state (Adam's two
moments per weight: 2.0 MB a `best` network with them, 0.7 MB without). Unfinished members
(no metrics.json) and members already kept are left alone.

Usage:
    python benchmarks/keep_members.py runs/bench-best-e40/members benchmarks/members/best-e40
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from mnistlab.core import runs  # noqa: E402

LEFT_BEHIND = {runs.CHECKPOINT_FILE, ".lock"}  # training state a finished member no longer needs


def keep(source: str, target: str) -> list[str]:
    """Copies each finished member folder of source into target; returns the names it copied."""
    from mnistlab.models.saved import load_model

    kept = []
    for name in sorted(os.listdir(source)):
        member, copy = os.path.join(source, name), os.path.join(target, name)
        if not os.path.exists(os.path.join(member, runs.METRICS_FILE)) or os.path.exists(copy):
            continue
        partial = copy + ".partial"  # renamed into place last: a kill leaves no half member
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        for file in sorted(set(os.listdir(member)) - LEFT_BEHIND - {runs.MODEL_FILE}):
            shutil.copy2(os.path.join(member, file), os.path.join(partial, file))
        model = load_model(os.path.join(member, runs.MODEL_FILE), compile=False)
        model.save(os.path.join(partial, runs.MODEL_FILE))
        os.rename(partial, copy)
        kept.append(name)
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="an ensemble's members folder, e.g. runs/ENS/members")
    parser.add_argument("target", help="where to keep them, e.g. benchmarks/members/NAME")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.source):
        parser.error(f"'{args.source}' is not a folder of member runs")
    os.makedirs(args.target, exist_ok=True)
    kept = keep(args.source, args.target)
    print(f"kept {len(kept)}: {', '.join(kept) or 'none new'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
