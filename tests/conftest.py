"""Shared fixtures: small synthetic digit sets that any model learns in one epoch."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# mnistlab's settings for TensorFlow (its oneDNN kernels) before any test module imports Keras,
# so that in-process tests run the kernels users get
from mnistlab.core.backend import use_backend  # noqa: E402

use_backend(None)
# The README's command gives MNISTLAB_DATA relative to the repository (../shared/data/mnist);
# some tests run in other folders, so the path is made absolute once, against where pytest started.
if os.environ.get("MNISTLAB_DATA"):
    os.environ["MNISTLAB_DATA"] = os.path.abspath(os.environ["MNISTLAB_DATA"])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seconds a test's subprocess may take: generous, for a loaded shared machine (a fresh
# TensorFlow or JAX process that takes 20 s when idle once ran past 120 s under load).
# MNISTLAB_TEST_TIMEOUT_SCALE multiplies it (and every other test timeout) on a slower machine.
TIMEOUT_SCALE = float(os.environ.get("MNISTLAB_TEST_TIMEOUT_SCALE", "1"))
SUBPROCESS_TIMEOUT = 600 * TIMEOUT_SCALE
# Where run_cli's processes start: a folder outside the repository, so that a command's default
# output (runs/MODEL-TIMESTAMP, even from a command that then fails) never lands in the tree.
CLI_FOLDER = tempfile.mkdtemp(prefix="mnistlab-cli-")


def repository_state() -> set[str] | None:
    """git's view of the checkout's files (changed, untracked, ignored), caches left out; None
    where the tests do not run from a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--ignored", "--untracked-files=normal"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    caches = ("__pycache__", ".pytest_cache", ".ruff_cache")
    return {line for line in done.stdout.splitlines() if not any(c in line for c in caches)}


@pytest.fixture(scope="session", autouse=True)
def repository_stays_clean():
    """Fails the session (an error after its last test) if the tests wrote into the checkout."""
    before = repository_state()
    yield
    after = repository_state()
    if before is not None and after is not None and after - before:
        pytest.fail(
            "the tests wrote into the repository (write to tmp_path instead): "
            + ", ".join(sorted(after - before)),
            pytrace=False,
        )


def load_benchmark(name: str):
    """The module benchmarks/NAME.py, loaded from its file (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO, "benchmarks", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_digits(count: int, seed: int = 0):
    """(count, 28, 28) uint8 images and (count,) labels: class k is a bright bar at place k.

    Each class has its own position and orientation, jittered by a pixel, plus noise, so any
    of the registered networks separates them after a few hundred steps.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        shift = rng.integers(-1, 2)
        if label < 5:  # horizontal bars at five heights
            row = 4 + 5 * label + shift
            images[index, row : row + 3, 4:24] = 255
        else:  # vertical bars at five places
            column = 4 + 5 * (label - 5) + shift
            images[index, 4:24, column : column + 3] = 255
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_data():
    """((x_train, y_train), (x_test, y_test)) with 1200 training and 300 test images."""
    x_train, y_train = synthetic_digits(1200, seed=1)
    x_test, y_test = synthetic_digits(300, seed=2)
    return (x_train, y_train), (x_test, y_test)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory, tiny_data):
    """The tiny set saved as a Keras-style mnist.npz file."""
    (x_train, y_train), (x_test, y_test) = tiny_data
    path = tmp_path_factory.mktemp("tiny") / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_data):
    """One finished cnn run on the tiny set, shared by tests that only read it."""
    import mnistlab

    folder = str(tmp_path_factory.mktemp("runs") / "cnn")
    mnistlab.train("cnn", data=tiny_data, out=folder, epochs=2, val_size=200, verbose=0)
    return folder


ONEDNN = "TF_ENABLE_ONEDNN_OPTS"  # TensorFlow's kernel switch, which mnistlab sets (backend.py)


def fresh_python(code: str, **env_changes: str) -> str:
    """Runs code in a new interpreter with neither the kernel switch nor a Keras backend set
    (as a fresh shell has them) plus env_changes; returns its last printed line."""
    env = {k: v for k, v in os.environ.items() if k not in (ONEDNN, "KERAS_BACKEND")}
    env.update(env_changes)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


# The driver of fresh_python_checks: each check's code in its own namespace, one after another;
# prints {name: {"ok": ..., "last_line": ... or "error": the traceback's end}} as JSON.
_CHECKS_DRIVER = """
import contextlib, io, json, traceback
results = {}
for name, code in json.loads(%r).items():
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
        lines = printed.getvalue().strip().splitlines()
        results[name] = {"ok": True, "last_line": lines[-1] if lines else ""}
    except BaseException:
        results[name] = {"ok": False, "error": traceback.format_exc()[-3000:]}
print(json.dumps(results))
"""


def fresh_python_checks(checks: dict[str, str], **env_changes: str) -> dict[str, dict]:
    """Runs several checks in ONE new interpreter (as fresh_python sets it up), to pay a
    backend's start-up once; each check's code runs in its own namespace, and one that raises
    does not stop the others. Returns {name: {"ok": True, "last_line": its last printed line}
    or {"ok": False, "error": the end of its traceback}}; pass each to ``check_passed``."""
    import json

    return json.loads(fresh_python(_CHECKS_DRIVER % json.dumps(checks), **env_changes))


def check_passed(results: dict[str, dict], name: str, where: str) -> str:
    """The last line check ``name`` printed, failing the test with the check's own traceback
    (``where``: the process it ran in, for the message) when it raised."""
    result = results[name]
    assert result["ok"], f"the check {name!r} failed in {where}:\n{result['error']}"
    return result["last_line"]


def recorded_step_check(step: str) -> str:
    """Code for a fresh interpreter (numpy as np, rng, tempfile and os in scope): trains the MLP
    one epoch through mnistlab.train, resumes it for a second, and checks that meta.json records
    ``step`` as the training step both times."""
    return f"""
import mnistlab
from mnistlab.core import runs
with tempfile.TemporaryDirectory() as folder:
    digits = (rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60))
    run = mnistlab.train("mlp", data=(digits, digits), out=os.path.join(folder, "run"),
                         epochs=1, val_size=20, batch_size=10, verbose=0)
    meta = runs.read_json(os.path.join(run.path, "meta.json"))
    assert meta["train_step"] == {step!r}, meta["train_step"]
    resumed = mnistlab.train(resume=run.path, epochs=2, data=(digits, digits))
    assert len(resumed.history) == 2, resumed.history  # a resumed run trains on, as before
    assert runs.read_json(os.path.join(run.path, "meta.json"))["train_step"] == {step!r}
"""


def run_cli(*args, env=None, timeout=SUBPROCESS_TIMEOUT):
    """Runs ``python -m mnistlab ARGS`` in a fresh process, in a folder outside the repository
    (CLI_FOLDER); returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=CLI_FOLDER,
    )


def run_cli_in_process(*args) -> subprocess.CompletedProcess:
    """Runs ``mnistlab ARGS`` as the console script does (``commands.main.main``), but in this
    process, whose Keras is already loaded: for tests of what a command does, not of how a fresh
    process starts (those use run_cli). In CLI_FOLDER, as run_cli; the environment and the
    working folder are restored after. Returns a CompletedProcess of its exit status and what it
    printed to sys.stdout and sys.stderr."""
    import contextlib
    import io

    from mnistlab.commands.main import main

    environment, folder = dict(os.environ), os.getcwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        os.chdir(CLI_FOLDER)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(list(args))
    finally:
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environment)
    return subprocess.CompletedProcess(
        ["mnistlab", *args], status, stdout.getvalue(), stderr.getvalue()
    )


def real_data_path():
    return os.environ.get("MNISTLAB_DATA")


needs_mnist = pytest.mark.skipif(
    not real_data_path(), reason="set MNISTLAB_DATA to the MNIST folder to run this test"
)


def default_onednn() -> bool:
    """Whether TensorFlow turns oneDNN on by itself on this CPU, asked in a clean process."""
    code = "import tensorflow.python.util._pywrap_util_port as p; print(p.IsMklEnabled())"
    return fresh_python(code) == "True"
