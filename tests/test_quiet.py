"""Quiet by default and fast to start (issue 43): no backend log line reaches stderr, and the
shipped model predicts on ONNX Runtime without loading Keras, TensorFlow or torch."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO, SUBPROCESS_TIMEOUT, fresh_python, needs_mnist

# what TensorFlow, XLA, absl, oneDNN and CUDA print: absl's I/W/E0000 prefixes and their words
BACKEND_LOG = re.compile(
    r"[IWEF]0000|absl|oneDNN|WARNING:tensorflow|XLA|cuda|cpu_feature_guard", re.IGNORECASE
)
needs_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
)


def quiet_env(**extra) -> dict:
    """The environment a user has: none of the logging variables the test session sets."""
    env = {key: value for key, value in os.environ.items() if key not in _LOGGING_VARIABLES}
    return {**env, **extra}


_LOGGING_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "MNISTLAB_QUIET", "MNISTLAB_VERBOSE")


def mnistlab(*args, env=None, timeout=SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        env=env or quiet_env(),
        timeout=timeout,
        cwd=REPO,
    )


def backend_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if BACKEND_LOG.search(line)]


@needs_mnist
@pytest.mark.parametrize("model", [None, "keras"])  # the shipped ONNX file, and Keras
def test_predict_stderr_holds_no_backend_line(model):
    from mnistlab.models.saved import PRETRAINED_MODEL

    extra = [] if model is None else ["--model", PRETRAINED_MODEL]
    result = mnistlab("predict", "test:0", *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test:0: 7"), result.stdout
    assert backend_lines(result.stderr) == [], result.stderr


@needs_mnist
def test_verbose_lets_backend_lines_through():
    from mnistlab.models.saved import PRETRAINED_MODEL

    result = mnistlab("--verbose", "predict", "test:0", "--model", PRETRAINED_MODEL)
    assert result.returncode == 0, result.stderr
    assert backend_lines(result.stderr), result.stderr


@pytest.mark.parametrize(
    "env, quiet",
    [
        ({}, True),
        ({"MNISTLAB_VERBOSE": "1"}, False),
        ({"TF_CPP_MIN_LOG_LEVEL": "0"}, False),  # the user's own level wins
        ({"TF_CPP_MIN_LOG_LEVEL": "3", "MNISTLAB_QUIET": "1"}, True),  # a parent mnistlab's
    ],
)
def test_quiet_backends_yields_to_the_user(env, quiet):
    code = (
        "import os\n"
        "from mnistlab.core.quiet import quiet_backends\n"
        "print(quiet_backends(), os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=quiet_env(**env),
        timeout=SUBPROCESS_TIMEOUT,
    )
    expected_level = env.get("TF_CPP_MIN_LOG_LEVEL", "3" if quiet else None)
    assert result.stdout.split() == [str(quiet), str(expected_level)], result.stderr


@needs_mnist
def test_train_and_evaluate_stderr_hold_no_backend_line(tmp_path):
    run = str(tmp_path / "mlp")
    trained = mnistlab(
        "train", "mlp", "--epochs", "1", "--train-size", "2000", "--val-size", "500", "--out", run
    )
    assert trained.returncode == 0, trained.stderr
    assert backend_lines(trained.stderr) == [], trained.stderr
    evaluated = mnistlab("evaluate", run)
    assert evaluated.returncode == 0, evaluated.stderr
    assert backend_lines(evaluated.stderr) == [], evaluated.stderr


@needs_onnxruntime
def test_serve_stderr_holds_no_backend_line():
    pytest.importorskip("uvicorn")
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=quiet_env(),
        cwd=REPO,
    )
    try:
        deadline, health = time.monotonic() + SUBPROCESS_TIMEOUT, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    health = r.status
                break
            except OSError:
                time.sleep(0.2)
        assert health == 200
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert "on onnx" in stdout, stdout  # the shipped model.onnx, without Keras
    assert backend_lines(stderr) == [], stderr


@needs_mnist
@needs_onnxruntime
def test_predict_loads_no_keras_tensorflow_or_torch():
    code = (
        "import sys, mnistlab\n"
        "results = mnistlab.predict(['test:0', 'test:1'], tta=True)\n"
        "loaded = [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules]\n"
        "print([r['digit'] for r in results], loaded)"
    )
    assert fresh_python(code) == "[7, 2] []"


@needs_onnxruntime
def test_shipped_onnx_matches_its_recorded_keras_file():
    from mnistlab.core.runs import read_json
    from mnistlab.models.saved import PRETRAINED_MODEL
    from mnistlab.serving.export import (
        CHECK_TOLERANCE,
        PRETRAINED_ONNX,
        PRETRAINED_ONNX_RECORD,
        sha256_of,
    )
    from mnistlab.serving.inference import shipped_onnx_predictor

    record = read_json(PRETRAINED_ONNX_RECORD)
    assert record["keras_sha256"] == sha256_of(PRETRAINED_MODEL), (
        "rebuild: startup.py --rebuild-onnx"
    )
    assert record["onnx_sha256"] == sha256_of(PRETRAINED_ONNX)
    assert record["argmax_agree"] == record["images"] == 10000
    assert record["max_difference"] <= CHECK_TOLERANCE
    predictor, reason = shipped_onnx_predictor()
    assert reason is None and predictor.runtime == "onnx"
    assert predictor.first_layer_shape is not None  # the page shows the first layer


def test_silent_descriptor_2_keeps_python_stderr():
    code = (
        "import os, sys\n"
        "from mnistlab.core.quiet import silent_descriptor_2\n"
        "with silent_descriptor_2():\n"
        "    os.write(2, b'from C\\n')\n"
        "    print('from Python', file=sys.stderr)\n"
        "os.write(2, b'after\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=quiet_env(),
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.stderr.splitlines() == ["from Python", "after"]
