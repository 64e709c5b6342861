"""The command line end to end, in fresh processes, on the tiny synthetic set and real MNIST."""

import importlib.util
import json
import os

import pytest

from tests.conftest import SUBPROCESS_TIMEOUT, needs_mnist, real_data_path, run_cli


def test_train_then_evaluate_end_to_end(tmp_path, tiny_npz):
    out = str(tmp_path / "run")
    trained = run_cli(
        "train", "mlp", "--epochs", "2", "--val-size", "100", "--data", tiny_npz, "--out", out
    )
    assert trained.returncode == 0, trained.stderr
    assert "Epoch 1/2 - " in trained.stdout and "val_accuracy" in trained.stdout
    assert "Classification error: " in trained.stdout
    evaluated = run_cli("evaluate", out, "--data", tiny_npz)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Per-digit accuracy" in evaluated.stdout and "Confusion matrix" in evaluated.stdout
    # the error printed by train and by evaluate agree: same model, same test images
    train_line = [line for line in trained.stdout.splitlines() if "Classification" in line][0]
    assert train_line.split(":")[1].strip() in evaluated.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "cnnn"], "Unknown model 'cnnn'. Available: mlp, cnn"),
        (["train", "mlp", "--data", "/nonexistent/mnist"], "/nonexistent/mnist"),
        (["evaluate", "cnn"], "architecture, not a trained model"),
        (["evaluate", "no/such/run"], "No run folder or model file"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_models_name_prints_the_layer_summary():
    result = run_cli("models", "cnn")
    assert result.returncode == 0, result.stderr
    assert "conv2d (Conv2D)" in result.stdout and "592,074" in result.stdout
    assert "1 conv2d" in result.stdout  # the index --layer takes for the first convolution


def test_models_lists_the_registry_with_parameter_counts():
    import subprocess
    import sys

    # listing reads the registry's data: no network is built, Keras never loads
    code = "import sys; from mnistlab.commands.main import main; main(['models']); "
    code += "assert 'keras' not in sys.modules, 'keras loaded'"
    listed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert listed.returncode == 0, listed.stderr
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["cnn"]["parameters"] == 592_074 and rows["cnn"]["tutorial_error"] == 1.10
    assert {"mlp", "cnn", "larger_cnn", "branch_cnn"} <= set(rows)
    # the backend `mnistlab train NAME` picks where the user names none (the fastest measured)
    mlp_backend = "jax" if importlib.util.find_spec("jax") else "tensorflow"
    assert rows["mlp"]["backend"] == mlp_backend and rows["cnn"]["backend"] == "tensorflow"


@pytest.mark.slow  # torch training in a fresh process: ~10 s
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_a_non_default_backend_trains(tmp_path, tiny_npz):
    out = str(tmp_path / "torch-run")
    result = run_cli(
        "train",
        "larger_cnn",
        "--backend",
        "torch",
        "--epochs",
        "1",
        "--val-size",
        "100",
        "--data",
        tiny_npz,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["versions"]["backend"] == "torch"
    assert json.load(open(os.path.join(out, "metrics.json")))["error"] < 50


@pytest.mark.slow  # real MNIST
@needs_mnist
def test_mlp_one_epoch_on_real_mnist_is_below_5_percent(tmp_path):
    import mnistlab

    run = mnistlab.train(
        "mlp", data=real_data_path(), out=str(tmp_path / "mlp"), epochs=1, verbose=0
    )
    assert run.metrics["test_images"] == 10_000
    assert run.metrics["error"] < 5.0
