"""What every benchmark's results file records about the code that made it."""

from __future__ import annotations

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
