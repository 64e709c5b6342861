"""Run folders: everything a training run leaves behind, written so that no crash corrupts it.

A run folder holds:
    config.json    the resolved TrainConfig (the recipe)
    meta.json      seed, backend, versions, machine, data source
    history.csv    one row per finished epoch (appended as each epoch ends)
    checkpoint.keras, state.json   the model and optimizer after the last finished epoch
    model.keras    the final model, written only when training has finished
    metrics.json   final test metrics; written last, so its presence marks a complete run
    .lock          held (fcntl) while a process writes the folder; a second writer is refused

Every file is written to a temporary name in the same folder and renamed into place, so a
reader sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import platform
import shutil
import sys
import tempfile
from contextlib import contextmanager

from mnistlab.core.version import __version__

MODEL_FILE = "model.keras"
CHECKPOINT_FILE = "checkpoint.keras"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".lock"


class IncompleteRunError(ValueError):
    """A run folder whose training has not finished (crashed, killed or still running)."""


@contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside ``path``; renames it to ``path`` if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]  # keras wants the .keras extension on the file it writes
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        # mkstemp makes its file 0600; a run file gets the mode open() would give it
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so it is set back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str, data) -> None:
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def save_model_atomic(model, path: str) -> None:
    with atomic_path(path) as temporary:
        model.save(temporary)


def append_history(folder: str, epoch: int, logs: dict) -> None:
    """Rewrites history.csv with one more row (atomically; the file is a few KB at most)."""
    rows = read_history(folder)
    rows = [row for row in rows if int(row["epoch"]) < epoch]
    rows.append({"epoch": epoch, **{key: float(value) for key, value in logs.items()}})
    keys = list(dict.fromkeys(key for row in rows for key in row))
    path = os.path.join(folder, HISTORY_FILE)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def read_history(folder: str) -> list[dict]:
    path = os.path.join(folder, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@contextmanager
def lock_run(folder: str, discard_unstarted: bool = False):
    """Holds an exclusive lock on a run folder; refuses if another process holds it.

    The lock is an fcntl lock, so the kernel drops it when its process dies, even by SIGKILL.

    Args:
        folder: the run folder, made (with its parents) where it does not exist.
        discard_unstarted: where this call made the folder and the block fails before a first
            epoch is written (no state.json), remove what it made, parents included, so a
            failed start leaves nothing behind. A folder that existed before is never removed.
    """
    made = _first_missing(folder)
    os.makedirs(folder, exist_ok=True)
    handle = open(os.path.join(folder, LOCK_FILE), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise ValueError(
            f"Run folder '{folder}' is in use by another mnistlab process ({owner}). "
            "Wait for it to finish, or choose another --out folder."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {platform.node()}")
    handle.flush()
    try:
        yield
    except BaseException:
        if discard_unstarted and made and not os.path.exists(os.path.join(folder, STATE_FILE)):
            shutil.rmtree(made, ignore_errors=True)  # still locked: no one else writes it
        raise
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _first_missing(folder: str) -> str | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None: it exists)."""
    path, missing = os.path.abspath(folder), None
    while not os.path.exists(path):
        path, missing = os.path.dirname(path), path
    return missing


def is_complete(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, METRICS_FILE)) and os.path.exists(
        os.path.join(folder, MODEL_FILE)
    )


def finished_epochs(folder: str) -> int:
    path = os.path.join(folder, STATE_FILE)
    return read_json(path)["epoch"] if os.path.exists(path) else 0


def check_complete(folder: str) -> None:
    if is_complete(folder):
        return
    if not os.path.exists(os.path.join(folder, CONFIG_FILE)):
        raise ValueError(f"'{folder}' is not an mnistlab run folder (no {CONFIG_FILE}).")
    done = finished_epochs(folder)
    total = read_json(os.path.join(folder, CONFIG_FILE)).get("epochs", "?")
    raise IncompleteRunError(
        f"Run folder '{folder}' is incomplete: training stopped after epoch {done} of {total}. "
        f"Finish it with: mnistlab train --resume {folder}"
    )


# CPU instructions that decide TensorFlow's kernels: with any of these TensorFlow turns its oneDNN
# kernels on by itself, and bfloat16 runs in hardware (runs are only comparable on like CPUs)
CPU_FEATURES = {
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx_vnni": "AVX-VNNI",
    "amx_tile": "AMX",
}


def cpu_model_and_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """The first CPU's model name and instruction flags from cpuinfo (none where unreadable)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, flags


def machine_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model and core count, with its neural-network instructions (or AVX2 alone)."""
    model, flags = cpu_model_and_flags(cpuinfo)
    features = [label for flag, label in CPU_FEATURES.items() if flag in flags]
    features = features or (["AVX2"] if "avx2" in flags else [])
    extra = f" ({', '.join(features)})" if features else ""
    return f"{model}, {os.cpu_count()} cores{extra}"


def environment_versions() -> dict:
    """Versions of everything that decides the numbers a run produces."""
    import keras
    import numpy

    backend = keras.backend.backend()
    backend_module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    versions = {
        "mnistlab": __version__,
        "keras": keras.__version__,
        "backend": backend,
        backend: sys.modules[backend_module].__version__
        if backend_module in sys.modules
        else __import__(backend_module).__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": machine_description(),
    }
    if backend == "tensorflow":
        versions["onednn"] = tensorflow_onednn()
    if backend == "jax":  # XLA's settings (backend.use_backend adds one for the CPU)
        from mnistlab.core.config import XLA_FLAGS_ENV

        versions["xla_flags"] = os.environ.get(XLA_FLAGS_ENV, "")
    return versions


def tensorflow_onednn() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process (None if it cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # the module is private: a later TensorFlow may move it
        return None
    return bool(_pywrap_util_port.IsMklEnabled())
