"""Training, run folders, save/load, determinism, resume and locking, on the tiny synthetic set."""

import json
import os

import numpy as np
import pytest

import mnistlab
from mnistlab.core import runs
from mnistlab.models.saved import measure


def test_run_folder_holds_the_recipe_and_results(trained_run):
    names = set(os.listdir(trained_run))
    assert {"model.keras", "config.json", "meta.json", "history.csv", "metrics.json"} <= names
    config = json.load(open(os.path.join(trained_run, "config.json")))
    assert (config["model"], config["epochs"], config["seed"]) == ("cnn", 2, 7)
    meta = json.load(open(os.path.join(trained_run, "meta.json")))
    assert meta["versions"]["backend"] == "tensorflow" and meta["validation"] == "held-out"
    assert meta["train_images"] == 1000  # 1200 minus the 200 held out
    history = runs.read_history(trained_run)
    assert [int(row["epoch"]) for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history[0])
    metrics = json.load(open(os.path.join(trained_run, "metrics.json")))
    assert metrics["error"] < 5.0  # the bars are easy: a working loop separates them


def test_save_load_round_trip_gives_identical_predictions(trained_run, tiny_data):
    _, (x_test, _) = tiny_data
    model = mnistlab.load_model(trained_run)
    again = mnistlab.load_model(os.path.join(trained_run, "model.keras"))
    np.testing.assert_array_equal(
        model.predict(x_test[:50, ..., None] / 255.0, verbose=0),
        again.predict(x_test[:50, ..., None] / 255.0, verbose=0),
    )


def test_evaluate_matches_a_hand_count(trained_run, tiny_data):
    _, (x_test, y_test) = tiny_data
    metrics = mnistlab.evaluate(trained_run, data=tiny_data)
    predicted = np.asarray(metrics["predicted"])
    assert metrics["error"] == pytest.approx(100 * np.mean(predicted != y_test))
    confusion = np.asarray(metrics["confusion"])
    assert confusion.sum() == len(y_test) and np.trace(confusion) == np.sum(predicted == y_test)
    for digit in range(10):
        expected = np.mean(predicted[y_test == digit] == digit)
        assert metrics["per_digit_accuracy"][digit] == pytest.approx(expected, abs=1e-6)


def test_measure_orders_mistakes_most_confident_first():
    class Fixed:
        def predict(self, inputs, batch_size, verbose):
            return np.array([[0.1, 0.9] + [0] * 8, [0.4, 0.6] + [0] * 8, [0.95, 0.05] + [0] * 8])

    metrics = measure(Fixed(), np.zeros((3, 28, 28), np.uint8), np.array([0, 0, 0]))
    assert metrics["misclassified"] == [0, 1]
    assert metrics["error"] == pytest.approx(200 / 3)


def test_same_seed_same_weights(tmp_path, tiny_data):
    weights = []
    for name in ("a", "b"):
        run = mnistlab.train(
            "larger_cnn",
            data=tiny_data,
            out=str(tmp_path / name),
            epochs=1,
            train_size=400,
            val_size=100,
            verbose=0,
        )
        weights.append(run.model.get_weights())
    for first, second in zip(*weights, strict=False):
        np.testing.assert_array_equal(first, second)
    # ... with the kernels users get: oneDNN's, unless the environment turned them off
    versions = runs.read_json(os.path.join(run.path, runs.META_FILE))["versions"]
    if versions["backend"] == "tensorflow":
        expected = os.environ.get("TF_ENABLE_ONEDNN_OPTS") in ("1", "true")
        assert versions["onednn"] is expected


@pytest.mark.parametrize("setting", ["false", "true", "false"])  # and back: the switch is global
def test_deterministic_setting_turns_tensorflow_op_determinism_on_and_off(
    tmp_path, tiny_data, setting
):
    from tensorflow.python.framework import config as tf_config

    mnistlab.train(
        "mlp",
        data=tiny_data,
        out=str(tmp_path / "run"),
        epochs=1,
        train_size=200,
        val_size=100,
        deterministic=setting,
        verbose=0,
    )
    assert tf_config.is_op_determinism_enabled() == (setting == "true")


def test_resume_continues_after_the_last_finished_epoch(tmp_path, tiny_data, capsys):
    folder = str(tmp_path / "run")
    mnistlab.train("mlp", data=tiny_data, out=folder, epochs=1, val_size=100, verbose=0)
    os.remove(os.path.join(folder, runs.METRICS_FILE))  # as if killed before the end
    with pytest.raises(runs.IncompleteRunError, match="--resume"):
        mnistlab.load_model(folder)
    run = mnistlab.train(data=tiny_data, resume=folder, epochs=3, verbose=2)
    out = capsys.readouterr().out
    assert "Resuming" in out and "Epoch 2/3" in out and "Epoch 1/3" not in out
    assert [int(row["epoch"]) for row in run.history] == [1, 2, 3]
    assert "Classification error:" in out


def test_existing_run_folder_is_not_overwritten(trained_run, tiny_data):
    with pytest.raises(ValueError, match="already holds a run"):
        mnistlab.train("cnn", data=tiny_data, out=trained_run, epochs=1)


def test_a_second_writer_is_refused(tmp_path):
    folder = str(tmp_path / "busy")
    with runs.lock_run(folder):
        with pytest.raises(ValueError, match="in use by another mnistlab process"):
            with runs.lock_run(folder):
                pass
    with runs.lock_run(folder):  # released again
        pass


def test_early_stopping_on_the_test_set_is_refused(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="validation split"):
        mnistlab.train("mlp", data=tiny_data, out=str(tmp_path / "r"), val_size=0, early_stopping=2)


def test_architecture_name_is_not_a_trained_model():
    with pytest.raises(ValueError, match="architecture, not a trained model"):
        mnistlab.load_model("cnn")


def test_a_mixed_bfloat16_run_learns_and_saves_its_weights_as_a_float32_network(
    tmp_path, tiny_data
):
    run = mnistlab.train(
        "cnn",
        data=tiny_data,
        out=str(tmp_path / "bf16"),
        epochs=2,
        val_size=200,
        precision="mixed_bfloat16",
        verbose=0,
    )
    assert run.metrics["error"] < 10  # the synthetic bars are easy; chance is 90%
    assert runs.read_json(os.path.join(run.path, "config.json"))["precision"] == "mixed_bfloat16"
    # the checkpoint (what --resume continues) trained in bfloat16 ...
    checkpoint = mnistlab.load_model(os.path.join(run.path, runs.CHECKPOINT_FILE))
    assert checkpoint.layers[1].compute_dtype == "bfloat16"
    # ... and the saved model is that network computing in float32, with the same weights
    saved = mnistlab.load_model(run.path)
    assert all(layer.compute_dtype == "float32" for layer in saved.layers)
    for trained, kept in zip(checkpoint.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, kept)
    _, (x_test, y_test) = tiny_data
    assert measure(saved, x_test, y_test)["error"] == run.metrics["error"]


@pytest.mark.parametrize("hardware, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_precision_trains_and_records_what_it_resolved_to(
    monkeypatch, tmp_path, tiny_data, hardware, expected
):
    from mnistlab.core import backend

    # the test process runs oneDNN's kernels (conftest), so the CPU's instructions decide
    monkeypatch.setattr(backend, "bfloat16_in_hardware", lambda: hardware)
    run = mnistlab.train(
        "cnn", data=tiny_data, out=str(tmp_path / "auto"), epochs=1, val_size=200, verbose=0
    )
    assert runs.read_json(os.path.join(run.path, "config.json"))["precision"] == expected
    hidden = "bfloat16" if expected == "mixed_bfloat16" else "float32"
    trained = mnistlab.load_model(os.path.join(run.path, runs.CHECKPOINT_FILE))
    assert trained.layers[1].compute_dtype == hidden  # the 5x5 convolution, as it trained
    assert trained.layers[-1].compute_dtype == "float32"  # the output layer, always


def test_a_run_saved_before_auto_precision_resumes_in_float32(tmp_path):
    from mnistlab.training.train import resolve_config

    folder = tmp_path / "old"
    folder.mkdir()
    old = {"model": "cnn", "epochs": 3, "seed": 1}  # config.json of an older mnistlab
    runs.write_json(str(folder / "config.json"), old)
    assert resolve_config(None, resume=str(folder)).precision == "float32"
