"""Ensembles average exactly, survive a save/load round trip, and reuse finished members."""

import io
import os
import zipfile

import h5py
import numpy as np
import pytest

from mnistlab.core import runs
from mnistlab.core.config import TrainConfig
from mnistlab.training.ensemble import average_models, build_ensemble, member_trials
from mnistlab.training.train import prepare_data
from tests.conftest import run_cli, run_cli_in_process


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def tiny_member(seed):
    """A linear softmax classifier with known random weights, and the weights themselves."""
    import keras

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(flat)
    model = keras.Model(inputs, outputs, name="tiny")  # both members share one name
    rng = np.random.default_rng(seed)
    weights = [
        rng.normal(0, 0.1, (784, 10)).astype("float32"),
        rng.normal(0, 1, 10).astype("float32"),
    ]
    model.set_weights(weights)
    return model, weights


def test_ensemble_is_the_mean_of_hand_computed_probabilities(tmp_path):
    import keras

    (first, (w1, b1)), (second, (w2, b2)) = tiny_member(1), tiny_member(2)
    images = np.random.default_rng(3).random((5, 28, 28, 1)).astype("float32")
    flat = images.reshape(5, -1)
    expected = (softmax(flat @ w1 + b1) + softmax(flat @ w2 + b2)) / 2  # by hand, in numpy
    model = average_models([first, second])
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)
    path = str(tmp_path / "ensemble.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-5)


def test_weighted_ensemble_is_the_weighted_mean_by_hand_and_survives_saving(tmp_path):
    import keras

    import mnistlab.models.layers  # noqa: F401  (registers WeightedAverage for keras.saving)

    (first, (w1, b1)), (second, (w2, b2)) = tiny_member(1), tiny_member(2)
    images = np.random.default_rng(4).random((5, 28, 28, 1)).astype("float32")
    flat = images.reshape(5, -1)
    expected = 0.25 * softmax(flat @ w1 + b1) + 0.75 * softmax(flat @ w2 + b2)  # weights 1 : 3
    model = average_models([first, second], weights=[1, 3])
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)
    path = str(tmp_path / "weighted.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-5)
    assert loaded.get_layer("average_probabilities").member_weights == [0.25, 0.75]


@pytest.mark.parametrize(
    "weights, message",
    [
        ([1], "1 member weights for 2 members"),
        ([1, -1], "positive"),
        ([1, float("nan")], "positive"),
    ],
)
def test_weighted_average_refuses_bad_weights(weights, message):
    members = [tiny_member(1)[0], tiny_member(2)[0]]
    with pytest.raises(ValueError, match=message):
        average_models(members, weights=weights)


def test_member_trials_differ_in_seed_and_validation_fold(tmp_path):
    trials = member_trials("cnn", 3, str(tmp_path), seed=10, epochs=2, verbose=None)
    assert [t["seed"] for t in trials] == [10, 11, 12]
    assert [t["val_fold"] for t in trials] == [0, 1, 2]
    assert [t["out"] for t in trials] == [
        os.path.join(str(tmp_path), "members", f"member-{i}") for i in range(3)
    ]
    assert all(t["epochs"] == 2 and "verbose" not in t for t in trials)
    assert member_trials("best", 1, "x")[0]["seed"] == TrainConfig().seed
    with pytest.raises(ValueError, match="val_size"):
        member_trials("cnn", 2, "x", val_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        member_trials("cnn", 0, "x")


def test_validation_folds_are_disjoint_slices_from_the_end():
    x = np.arange(100)
    arrays = ((x, x % 10), (x[:5], x[:5] % 10))
    held_out = []
    for fold in range(3):
        split = prepare_data(TrainConfig(val_size=20, val_fold=fold), arrays)
        expected = x[100 - 20 * (fold + 1) : 100 - 20 * fold]
        np.testing.assert_array_equal(split["x_val"], expected)
        np.testing.assert_array_equal(np.sort(np.r_[split["x_train"], split["x_val"]]), x)
        held_out.append(set(split["x_val"].tolist()))
    assert not (held_out[0] & held_out[1]) and not (held_out[1] & held_out[2])
    with pytest.raises(ValueError, match="val_fold"):
        prepare_data(TrainConfig(val_size=20, val_fold=5), arrays)


def test_build_ensemble_writes_a_folder_evaluate_accepts(trained_run, tiny_data, tmp_path):
    import mnistlab
    from mnistlab.inspect.evaluate import evaluate
    from mnistlab.models.saved import load_model

    out = str(tmp_path / "ensemble")
    metrics = build_ensemble([trained_run, trained_run], out, data=tiny_data)
    member_error = mnistlab.evaluate(trained_run, data=tiny_data)["error"]
    assert metrics["error"] == pytest.approx(member_error)  # two copies average to the same
    assert metrics["member_test_errors"] == [member_error, member_error]
    assert runs.is_complete(out)
    assert evaluate(out, data=tiny_data)["error"] == pytest.approx(member_error)
    assert len(load_model(out).layers) == 4  # input, two members, average
    recipe = runs.read_json(os.path.join(out, "ensemble.json"))
    assert recipe["model"] == "cnn" and len(recipe["members"]) == 2
    # the saved ensemble holds the members' networks, not their optimizers' state
    with zipfile.ZipFile(os.path.join(out, runs.MODEL_FILE)) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        names = []
        weights.visit(names.append)
    assert any(name.endswith("/vars") for name in names)
    assert not any("optimizer" in name for name in names)


@pytest.mark.slow  # trains members in four fresh processes: ~30 s
def test_cli_trains_members_then_reuses_them(tiny_npz, tmp_path):
    out = str(tmp_path / "ens")
    args = ["ensemble", "mlp", "--members", "2", "--out", out, "--data", tiny_npz]
    args += ["--epochs", "1", "--val-size", "200", "--verbose", "0"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "Ensemble of 2" in first.stdout
    member = os.path.join(out, "members", "member-1", runs.MODEL_FILE)
    stamp = os.path.getmtime(member)
    config = runs.read_json(os.path.join(out, "members", "member-1", runs.CONFIG_FILE))
    assert config["seed"] == TrainConfig().seed + 1 and config["val_fold"] == 1
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert os.path.getmtime(member) == stamp  # finished members are kept, not retrained
    shown = run_cli("evaluate", out, "--data", tiny_npz)
    assert shown.returncode == 0 and "Classification error" in shown.stdout


def test_cli_refuses_bad_member_counts(tmp_path):
    done = run_cli("ensemble", "cnn", "--members", "0", "--out", str(tmp_path / "e"))
    assert done.returncode == 2 and "at least 1 member" in done.stderr


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, tiny_data):
    """A finished mlp run (1 epoch) beside conftest's cnn run, for ensembles of the two; a test
    that changes it works on a copy."""
    import mnistlab

    folder = str(tmp_path_factory.mktemp("runs") / "mlp")
    mnistlab.train("mlp", data=tiny_data, out=folder, epochs=1, val_size=200, verbose=0)
    return folder


def test_cli_averages_finished_runs_of_different_models(
    trained_run, mlp_run, tiny_data, tiny_npz, tmp_path
):
    import shutil

    from mnistlab.models.saved import load_model, predict_probabilities

    mlp = shutil.copytree(mlp_run, str(tmp_path / "mlp"))
    # as a run from before the elastic and precision settings existed: its config.json lacks
    # them (it trained in float32, as a run of that day did)
    config_file = os.path.join(mlp, runs.CONFIG_FILE)
    old_config = runs.read_json(config_file)
    del old_config["elastic_alpha"], old_config["elastic_sigma"], old_config["precision"]
    runs.write_json(config_file, old_config)
    out = str(tmp_path / "mixed")
    done = run_cli_in_process(
        "ensemble", "--runs", trained_run, mlp, "--out", out, "--data", tiny_npz
    )
    assert done.returncode == 0, done.stderr
    assert "Ensemble of 2" in done.stdout
    _, (x_test, y_test) = tiny_data
    # the mean of the two runs' probabilities, each run's model loaded and asked on its own
    mean = (
        predict_probabilities(load_model(trained_run), x_test)
        + predict_probabilities(load_model(mlp), x_test)
    ) / 2
    np.testing.assert_allclose(predict_probabilities(load_model(out), x_test), mean, atol=1e-5)
    metrics = runs.read_json(os.path.join(out, runs.METRICS_FILE))
    assert metrics["error"] == pytest.approx(100 * np.mean(mean.argmax(axis=1) != y_test))
    recipe = runs.read_json(os.path.join(out, "ensemble.json"))
    assert recipe["model"] == "cnn+mlp"
    assert recipe["member_differences"]["model"] == ["cnn", "mlp"]
    assert recipe["member_config"]["val_size"] == 200  # shared settings stay together
    # a key the older run lacks is the default it trained with, not a difference
    # cnn ran 2 epochs, mlp 1; cnn trained in bfloat16 where auto chose it (backend.py)
    cnn_precision = runs.read_json(os.path.join(trained_run, runs.CONFIG_FILE))["precision"]
    mixed = {"precision"} if cnn_precision != "float32" else set()
    assert set(recipe["member_differences"]) == {"model", "epochs"} | mixed
    assert recipe["member_config"]["elastic_alpha"] == 34.0
    # the older run's missing key counts as the float32 it trained with
    if mixed:
        assert recipe["member_differences"]["precision"] == [cnn_precision, "float32"]
    else:
        assert recipe["member_config"]["precision"] == "float32"


def test_cli_weights_runs_and_records_the_weights(
    trained_run, mlp_run, tiny_data, tiny_npz, tmp_path
):
    from mnistlab.models.saved import load_model, predict_probabilities

    mlp = mlp_run
    out = str(tmp_path / "weighted")
    args = ["ensemble", "--runs", trained_run, mlp, "--weights", "3", "1", "--out", out]
    done = run_cli_in_process(*args, "--data", tiny_npz)
    assert done.returncode == 0, done.stderr
    assert "Members' weights: 0.7500, 0.2500" in done.stdout
    _, (x_test, y_test) = tiny_data
    expected = 0.75 * predict_probabilities(load_model(trained_run), x_test)
    expected += 0.25 * predict_probabilities(load_model(mlp), x_test)
    np.testing.assert_allclose(predict_probabilities(load_model(out), x_test), expected, atol=1e-5)
    metrics = runs.read_json(os.path.join(out, runs.METRICS_FILE))
    assert metrics["error"] == pytest.approx(100 * np.mean(expected.argmax(axis=1) != y_test))
    assert runs.read_json(os.path.join(out, "ensemble.json"))["member_weights"] == [0.75, 0.25]
    shown = run_cli_in_process("evaluate", out, "--data", tiny_npz)
    assert shown.returncode == 0, shown.stderr


def test_cli_refuses_mixing_runs_with_training_settings(trained_run, tmp_path, capsys):
    from mnistlab.commands.main import main

    refusals = [
        (["--runs", trained_run], "give --out"),
        (["--runs", trained_run, "--epochs", "3", "--out", str(tmp_path / "e")], "--epochs"),
        (["best", "--runs", trained_run, "--out", str(tmp_path / "e")], "no MODEL"),
        (["--runs", trained_run, "--out", trained_run], "training run folder"),
        (["--runs", str(tmp_path)], "give --out"),
        ([], "Give a MODEL"),
        (["cnn", "--weights", "1", "2"], "--weights goes with --runs"),
        (
            ["--runs", trained_run, "--weights", "1", "2", "--out", str(tmp_path / "e")],
            "give one per folder",
        ),
        (["--runs", trained_run, "--weights", "0", "--out", str(tmp_path / "e")], "positive"),
    ]
    for args, message in refusals:
        assert main(["ensemble", *args]) == 2
        assert message in capsys.readouterr().err
    assert not os.path.exists(os.path.join(trained_run, "ensemble.json"))  # left untouched
    assert main(["ensemble", "--runs", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "not an mnistlab run folder" in capsys.readouterr().err
