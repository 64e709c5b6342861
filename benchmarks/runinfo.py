"""What every benchmark's results file records about the code that made it."""

from __future__ import annotations

import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit() -> str:
    """The checkout's commit (with "+changes" when its tracked files differ from it), or "?"."""

    def git(*words):
        try:
            done = subprocess.run(["git", *words], capture_output=True, text=True, cwd=REPO)
        except OSError:  # no git on this machine
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "?"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def write_report(report: dict, out: str, markdown: str) -> int:
    """Writes OUT (Markdown) and the JSON beside it, prints the Markdown; returns the exit
    status: 1 when the report lists missed targets, else 0."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(os.path.splitext(out)[0] + ".json", "w") as handle:
        json.dump(report, handle, indent=2)
    with open(out, "w") as handle:
        handle.write(markdown)
    print(markdown)
    return 1 if report["missed"] else 0
