"""Running many trainings (ensemble members, sweep trials) on local processes or on Ray.

Each trial is the keyword arguments of ``mnistlab.train`` (``model`` and ``out`` required)
and runs as its own ``python -m mnistlab train ...`` process, so a crash, a kill or a bad
backend state in one trial cannot take the others down. The run folder is the unit of work:

    complete folder (runs.is_complete)   skipped; its results are read back
    folder with a config.json            resumed from its last finished epoch (--resume)
    otherwise                            trained from scratch

A failed attempt is retried (and so resumed) up to ``max_retries`` times, if it was a fault
(a killed process or worker, an out-of-memory error); a trial whose process exited with
BAD_INPUT_STATUS (bad settings or data, the CLI's one-line error) is a configuration error,
reported at once and never retried. Whatever happens,
``run_trials`` returns one result per trial, in order, saying ok or failed, how many
attempts it took and why it failed. Nothing is dropped silently.

Engines: "local" runs trials on a pool of local processes (1 at a time by default: a
trial already uses every core). "ray" submits each attempt as a Ray task of one CPU, on a
local Ray instance or a cluster (``address="auto"`` or "ray://host:10001"); run folders and
data must then be on storage every node sees, at the same path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mnistlab.core import runs
from mnistlab.core.config import TrainConfig, fields_of
from mnistlab.training.train import resolve_config

EXECUTORS = ("local", "ray")
LOG_FILE = "train.log"  # each attempt's output, appended, inside the trial's run folder
ERROR_LINES = 12  # lines of a crashed trial's stderr kept as its error text
BAD_INPUT_STATUS = 2  # the exit status of `mnistlab train` on bad input: retrying cannot help
# train() keywords that are not TrainConfig keys, and the CLI flag each becomes
TRAIN_FLAGS = {
    "data": "--data",
    "config_file": "--config",
    "backend": "--backend",
    "distribute": "--distribute",
}


def check_trial(trial: dict) -> dict:
    """Checks one trial's keys and values before any process starts.

    Args:
        trial: keyword arguments of ``mnistlab.train``; "model" and "out" are required.

    Returns:
        The trial with ``out`` (and ``data`` when it is a path) made absolute.
    """

    if not isinstance(trial, dict):
        raise ValueError(f"A trial is a dict of mnistlab.train arguments, got {trial!r}.")
    missing = [key for key in ("model", "out") if not trial.get(key)]
    if missing:
        raise ValueError(
            f"Trial {trial} lacks {' and '.join(missing)}: each trial names its model and "
            "its own run folder (out)."
        )
    if "resume" in trial:
        raise ValueError("Trials resume by themselves; drop 'resume' and give 'out'.")
    known = set(fields_of(TrainConfig)) | set(TRAIN_FLAGS) | {"out"}
    unknown = sorted(set(trial) - known)
    if unknown:
        raise ValueError(
            f"Unknown trial key(s): {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
        )
    # the config the trial's process will resolve (recipe, config file, keys), checked here:
    # an unknown model or a bad setting fails at once, not in every attempt
    settings = {
        k: v for k, v in trial.items() if k not in TRAIN_FLAGS and k not in ("model", "out")
    }
    resolve_config(trial["model"], trial.get("config_file"), None, **settings)
    checked = dict(trial)
    checked["out"] = os.path.abspath(trial["out"])
    if trial.get("data") is not None and not isinstance(trial["data"], str):
        raise ValueError("A trial's data must be a path (trials run in other processes).")
    if isinstance(trial.get("data"), str):
        if not os.path.exists(trial["data"]):
            raise ValueError(f"No MNIST data at '{trial['data']}' (a trial's data path).")
        checked["data"] = os.path.abspath(trial["data"])
    return checked


def trial_command(trial: dict, resume: bool) -> list[str]:
    """The ``python -m mnistlab train`` command line that runs one trial.

    Example:
        >>> trial_command({"model": "mlp", "out": "/r/a", "epochs": 2}, resume=False)[3:]
        ['train', 'mlp', '--out', '/r/a', '--epochs', '2']
    """
    command = [sys.executable, "-m", "mnistlab", "train", trial["model"]]
    command += ["--resume" if resume else "--out", trial["out"]]
    for key, value in trial.items():
        if key in ("model", "out") or value is None:
            continue
        command += [TRAIN_FLAGS.get(key, "--" + key.replace("_", "-")), str(value)]
    return command


def summarize(folder: str) -> dict:
    """What a finished run folder measured, for results tables.

    Returns:
        dict: "val_error" (best validation error over the epochs, percent, from history.csv),
        "best_epoch", "test_error" (final test error, percent), "epochs_run", "validation"
        ("held-out" or "test": where val_error comes from) and "metrics" (metrics.json
        without the per-image lists).
    """
    metrics = runs.read_json(os.path.join(folder, runs.METRICS_FILE))
    history = runs.read_history(folder)
    meta_path = os.path.join(folder, runs.META_FILE)
    meta = runs.read_json(meta_path) if os.path.exists(meta_path) else {}
    accuracies = [float(row["val_accuracy"]) for row in history if row.get("val_accuracy")]
    best = max(range(len(accuracies)), key=accuracies.__getitem__) if accuracies else None
    return {
        "val_error": None if best is None else 100.0 * (1.0 - accuracies[best]),
        "best_epoch": None if best is None else int(history[best]["epoch"]),
        "test_error": metrics["error"],
        "epochs_run": len(history),
        "validation": meta.get("validation"),
        "metrics": {
            key: value
            for key, value in metrics.items()
            if key not in ("predicted", "misclassified", "confusion")
        },
    }


def attempt_trial(trial: dict) -> dict:
    """One attempt at one trial, in a new process; runs wherever it is called (a Ray task).

    Returns:
        dict with "status" ("ok" or "failed"), "skipped", "resumed", "error" (None or the
        reason), and on success the fields of ``summarize``.
    """
    folder = trial["out"]
    if runs.is_complete(folder):
        return {
            "status": "ok",
            "skipped": True,
            "resumed": False,
            "error": None,
            **summarize(folder),
        }
    resume = os.path.exists(os.path.join(folder, runs.CONFIG_FILE))
    command = trial_command(trial, resume)
    os.makedirs(folder, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True)
    with open(os.path.join(folder, LOG_FILE), "a") as log:
        log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        log.write(f"[exit status {done.returncode}]\n")
    if done.returncode == 0 and runs.is_complete(folder):
        return {
            "status": "ok",
            "skipped": False,
            "resumed": resume,
            "error": None,
            **summarize(folder),
        }
    return {
        "status": "failed",
        "skipped": False,
        "resumed": resume,
        "error": _failure_reason(done),
        # the CLI's bad-input status: the same settings would fail the same way again
        "retry": done.returncode != BAD_INPUT_STATUS,
    }


def _failure_reason(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("mnistlab train: error:"):  # a user error: the CLI's one line
            return line.removeprefix("mnistlab train: error:").strip()
    if done.returncode < 0:
        reason = f"killed by signal {-done.returncode}"
    else:
        reason = f"exit status {done.returncode}"
    tail = "\n".join(lines[-ERROR_LINES:])
    return f"{reason}" + (f":\n{tail}" if tail else "")


def _record(trial: dict, outcome: dict, attempts: int) -> dict:
    return {"out": trial["out"], "trial": trial, "attempts": attempts, **outcome}


def _with_retries(trial: dict, max_retries: int, attempt: Callable) -> dict:
    for number in range(1, max_retries + 2):
        try:
            outcome = attempt(trial)
        except Exception as error:  # the launcher itself failed: report it, never drop it
            outcome = {
                "status": "failed",
                "skipped": False,
                "resumed": False,
                "error": f"{type(error).__name__}: {error}",
            }
        if outcome["status"] == "ok":
            return _record(trial, outcome, 0 if outcome["skipped"] else number)
        if not outcome.get("retry", True):  # a configuration error: no attempt can pass
            break
    return _record(trial, outcome, number)


def run_trials(
    trials: list[dict],
    executor: str = "local",
    address: str | None = None,
    max_retries: int = 2,
    num_cpus: int | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Trains many run folders, each in its own process, skipping and resuming as it can.

    Args:
        trials: keyword arguments of ``mnistlab.train``, one dict per run, each with "model"
            and its own "out" folder; "data" must be a path, not arrays.
        executor: "local" (processes on this machine) or "ray" (Ray tasks).
        address: Ray cluster to join ("auto", "ray://head:10001"); None starts a local Ray.
        max_retries: extra attempts for a failed trial; each one resumes the folder.
        num_cpus: local: trials run at once (default 1); ray: CPUs of a local Ray instance.
        on_result: called with each trial's result as soon as it is final.

    Returns:
        One dict per trial, in the order given: "out", "trial", "status" ("ok" or "failed"),
        "attempts" (0 when already complete), "skipped", "resumed", "error" (None or why it
        failed) and, when ok, "val_error", "best_epoch", "test_error" (percent), "epochs_run",
        "metrics".

    Example:
        >>> trials = [{"model": "mlp", "out": f"runs/mlp-{s}", "seed": s} for s in range(3)]
        >>> [r["test_error"] for r in run_trials(trials)]   # doctest: +SKIP
        [1.91, 1.87, 1.95]
    """
    if executor not in EXECUTORS:
        raise ValueError(f"Unknown executor '{executor}'. Available: {', '.join(EXECUTORS)}.")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}.")
    trials = [check_trial(trial) for trial in trials]
    folders = [trial["out"] for trial in trials]
    repeated = sorted({folder for folder in folders if folders.count(folder) > 1})
    if repeated:
        raise ValueError(
            f"Several trials write the same run folder: {', '.join(repeated)}. "
            "Give each trial its own 'out'."
        )
    if executor == "ray":
        return _run_on_ray(trials, address, max_retries, num_cpus, on_result)
    if address:
        raise ValueError("address is for executor='ray'; the local executor needs none.")

    def one(trial):
        result = _with_retries(trial, max_retries, attempt_trial)
        if on_result:
            on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=num_cpus or 1) as pool:  # each thread waits on a process
        return list(pool.map(one, trials))


def import_ray():
    """Imports Ray, or says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "executor='ray' needs Ray: pip install 'mnistlab[ray]' (or use --executor local, "
            "which runs the same trials in local processes)."
        ) from None
    return ray


def _run_on_ray(trials, address, max_retries, num_cpus, on_result) -> list[dict]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)  # a running cluster decides its own CPUs
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    # Ray's own retries are off: each attempt is a task, so its result and error are counted.
    remote_attempt = ray.remote(num_cpus=1, max_retries=0)(attempt_trial)
    results: list[dict | None] = [None] * len(trials)
    pending = {remote_attempt.remote(trial): (index, 1) for index, trial in enumerate(trials)}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index, number = pending.pop(ready[0])
            trial = trials[index]
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # worker or node died: the trial failed
                outcome = {
                    "status": "failed",
                    "skipped": False,
                    "resumed": False,
                    "error": f"{type(error).__name__}: {error}",
                }
            retry = outcome["status"] != "ok" and outcome.get("retry", True)
            if retry and number <= max_retries:
                pending[remote_attempt.remote(trial)] = (index, number + 1)
                continue
            attempts = 0 if outcome.get("skipped") else number
            results[index] = _record(trial, outcome, attempts)
            if on_result:
                on_result(results[index])
    finally:
        if started_here:
            ray.shutdown()
    return results
