"""Benchmarks that can fail: measured figures against the README's, kept in benchmarks/expected.json.

Each headline figure in the README has one entry there, under the benchmark that measures it:
the figure as the README states it (``readme``) and the range a rerun must fall in to reproduce
it (``low`` and/or ``high``; the file says how each range was set). ``--check`` on
benchmarks/speed.py, speedrun.py and main_job.py compares a run's figures with them, prints
each one, and the script exits 1 when any figure falls outside its range.

Example:
    >>> failed = report_checks({"a": 1.5}, {"a": {"readme": 1.6, "low": 1.4}}, "speed.py")
    check speed.py: ok    a = 1.50 (README 1.6, allowed >= 1.4)
    >>> failed
    []
"""

from __future__ import annotations

import json
import os

EXPECTED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected.json")


def load_expected(benchmark: str, path: str = EXPECTED_FILE) -> dict:
    """The expected figures of one benchmark ("speed.py", "speedrun.py", "main_job.py")."""
    with open(path) as handle:
        return json.load(handle)["benchmarks"][benchmark]


def allowed(expected: dict) -> str:
    """The range of one figure, in words: ">= 1.4", "<= 2.6" or "1.4 to 2.6"."""
    low, high = expected.get("low"), expected.get("high")
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f">= {low}" if low is not None else f"<= {high}"


def check_figures(measured: dict, expected: dict) -> tuple[list[str], list[str], list[str]]:
    """Compares measured figures with expected ones.

    Args:
        measured: {figure name: value} from one run.
        expected: {figure name: {"readme": value, "low": bound, "high": bound}}; either bound
            may be missing (no limit that way).

    Returns:
        (passed, failed, not_measured): the names of the expected figures in each case. A
        figure the run did not measure (e.g. a network left out with --models) is neither
        passed nor failed.
    """
    passed, failed, missing = [], [], []
    for name, bounds in expected.items():
        if name not in measured:
            missing.append(name)
            continue
        value = measured[name]
        low, high = bounds.get("low"), bounds.get("high")
        inside = (low is None or value >= low) and (high is None or value <= high)
        (passed if inside else failed).append(name)
    return passed, failed, missing


def report_checks(measured: dict, expected: dict, benchmark: str) -> list[str]:
    """Prints one line per expected figure (ok, FAILED or not measured) and returns the names
    of the failed ones. With no expected figure measured at all, that is a failure too
    ("nothing checked"): a run that checks nothing must not pass for one that held."""
    passed, failed, missing = check_figures(measured, expected)
    for name in expected:
        bounds = expected[name]
        if name in missing:
            print(f"check {benchmark}: -     {name}: not measured in this run")
            continue
        verdict = "ok   " if name in passed else "FAILED"
        print(
            f"check {benchmark}: {verdict} {name} = {measured[name]:.2f} "
            f"(README {bounds['readme']}, allowed {allowed(bounds)})"
        )
    if not passed and not failed:
        print(f"check {benchmark}: FAILED: none of the README's figures was measured")
        return ["nothing checked"]
    return failed


def speed_figures(pairs: list[dict]) -> dict:
    """speed.py's figures by name from its like-for-like pairs (speed_report.like_for_like):
    "NETWORK PRECISION x plain Keras, median epoch" and "..., whole process", and the same with
    "x plain PyTorch" where the PyTorch loop ran in that precision."""
    figures = {}
    for pair in pairs:
        for peer, key in (("Keras", "keras"), ("PyTorch", "pytorch")):
            if f"x_{key}_epoch" not in pair:
                continue
            name = f"{pair['model']} {pair['precision']} x plain {peer}"
            figures[f"{name}, median epoch"] = pair[f"x_{key}_epoch"]["value"]
            figures[f"{name}, whole process"] = pair[f"x_{key}_process"]["value"]
    return figures


def speedrun_figures(reports: list[dict]) -> dict:
    """speedrun.py's figures by name from its reports (one per target): the mean test accuracy
    and the mean and largest training seconds of each target."""
    figures = {}
    for report in reports:
        seconds = [run["train_seconds"] for run in report["runs"]]
        target = report["target"]
        figures[f"{target} test accuracy %, mean"] = report["accuracy_mean"]
        figures[f"{target} training seconds, mean"] = report["train_seconds_mean"]
        figures[f"{target} training seconds, max"] = max(seconds)
    return figures


def main_job_figures(rows: list[dict], default_backends: dict) -> dict:
    """main_job.py's figures: for each network, the wall time of the backend the command line
    picks for it (default_backends: {network: backend}) as a share of the fastest backend's
    ("NETWORK default backend x fastest", 1.0 when the default is the fastest)."""
    return {
        f"{row['model']} default backend x fastest": row["x_fastest"]
        for row in rows
        if default_backends.get(row["model"]) == row["backend"]
    }
