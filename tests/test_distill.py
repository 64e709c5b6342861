"""Distillation (training.distill): a teacher's probabilities as the training targets."""

import json
import os
import shutil

import numpy as np
import pytest

import mnistlab
from mnistlab.core import runs
from mnistlab.core.config import TrainConfig
from mnistlab.training import distill
from tests.conftest import run_cli_in_process

FIXED = np.array([0.05, 0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2], np.float32)


def fixed_teacher(folder, probabilities=FIXED) -> str:
    """A run folder whose model answers ``probabilities`` for every image: a Dense layer with
    zero weights and the probabilities' logarithms as biases, then a softmax."""
    import keras

    os.makedirs(folder)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                10,
                activation="softmax",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(np.log(probabilities)),
            ),
        ]
    )
    model.save(os.path.join(folder, runs.MODEL_FILE))
    return str(folder)


def test_targets_mix_the_teacher_and_the_label_and_are_kept_for_a_resume(tmp_path):
    teacher = fixed_teacher(tmp_path / "teacher")
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[[0, 3, 9, 9, 1, 5]]
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(teacher=teacher, teacher_weight=0.25, verbose=0)
    targets = distill.distilled_targets(config, str(run), x, labels)
    np.testing.assert_allclose(targets, 0.25 * FIXED + 0.75 * labels, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    shutil.rmtree(teacher)  # the run folder holds the teacher's answers now
    np.testing.assert_allclose(
        distill.distilled_targets(config, str(run), x, labels), targets, atol=1e-7
    )


def test_a_student_learns_the_teachers_answer_not_the_labels(tmp_path, tiny_data):
    # The teacher says "9, 20%" to every image, whatever its label; trained on the teacher
    # alone, the student answers that distribution, not the (easily learned) bars.
    teacher = fixed_teacher(tmp_path / "teacher")
    run = mnistlab.train(
        "mlp",
        data=tiny_data,
        out=str(tmp_path / "student"),
        epochs=6,
        val_size=200,
        teacher=teacher,
        learning_rate=0.003,
        verbose=0,
    )
    (_, _), (x_test, _) = tiny_data
    answers = run.model.predict(x_test[:100, ..., None] / 255.0, verbose=0)
    np.testing.assert_allclose(answers.mean(axis=0), FIXED, atol=0.03)
    assert (answers.argmax(axis=1) == 9).all()
    saved = json.load(open(os.path.join(run.path, runs.CONFIG_FILE)))
    assert (saved["teacher"], saved["teacher_weight"]) == (teacher, 1.0)
    assert os.path.exists(os.path.join(run.path, distill.TARGETS_FILE))


def test_a_missing_or_unfinished_teacher_is_refused_in_words(tmp_path):
    result = run_cli_in_process("train", "mlp", "--teacher", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "No teacher run folder" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli_in_process("train", "mlp", "--teacher", str(tmp_path / "empty"))
    assert result.returncode == 2 and "holds no model.keras" in result.stderr


def test_with_warps_the_teacher_answers_each_batch_as_it_is_warped(tmp_path, tiny_data):
    import keras

    from mnistlab.models.saved import load_model
    from mnistlab.training.augment import training_inputs

    teacher = tmp_path / "teacher"
    os.makedirs(teacher)
    keras.utils.set_random_seed(3)  # a teacher whose answer depends on every pixel
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    model.save(teacher / runs.MODEL_FILE)
    (x, y), _ = tiny_data
    config = TrainConfig(
        teacher=str(teacher),
        teacher_sees="warps",
        teacher_weight=0.5,
        augment="affine",
        batch_size=64,
    )
    labels = np.eye(10, dtype=np.float32)[y[:256]]
    inputs = training_inputs(config, x[:256, ..., None] / np.float32(255), labels)
    reference = load_model(str(teacher / runs.MODEL_FILE))
    batches = iter(distill.asking_teacher(inputs, config)["args"][0])
    plain = iter(training_inputs(config, x[:256, ..., None] / np.float32(255), labels)["args"][0])
    for _ in range(3):
        images, targets = next(batches)
        warped, batch_labels = (np.asarray(part) for part in next(plain))
        np.testing.assert_array_equal(images, warped)  # the same warps, in the same order
        expected = 0.5 * reference.predict(images, verbose=0) + 0.5 * batch_labels
        np.testing.assert_allclose(targets, expected, atol=1e-5)
    run = mnistlab.train(
        "mlp",
        data=tiny_data,
        out=str(tmp_path / "student"),
        epochs=1,
        val_size=200,
        teacher=str(teacher),
        teacher_sees="warps",
        augment="affine",
        verbose=0,
    )
    assert not os.path.exists(os.path.join(run.path, distill.TARGETS_FILE))


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_teacher_weight_outside_0_1_is_refused(weight):
    with pytest.raises(ValueError, match="teacher_weight must be in"):
        TrainConfig.from_dict({"teacher_weight": weight})


def finished_run(folder, seed, val_error, val_size=1000):
    os.makedirs(folder)
    runs.write_json(
        os.path.join(folder, runs.CONFIG_FILE),
        {"seed": seed, "val_size": val_size, "val_fold": seed % 3},
    )
    runs.write_json(os.path.join(folder, runs.METRICS_FILE), {"val_error": val_error, "error": 0})
    return str(folder)


def test_ship_chooses_the_lowest_validation_error_and_refuses_test_validated_runs(tmp_path):
    from tests.conftest import load_benchmark

    ship = load_benchmark("ship")
    folders = [
        finished_run(tmp_path / "a", 70, 0.3),
        finished_run(tmp_path / "b", 71, 0.1),
        finished_run(tmp_path / "c", 72, 0.1),
    ]
    chosen = ship.choose([ship.candidate(folder) for folder in folders])
    assert (chosen["seed"], chosen["val_fold"]) == (71, 2)  # b: the first of the two at 0.1
    finished_run(tmp_path / "t", 7, None, val_size=0)
    assert ship.main([str(tmp_path / "t"), "--dry-run"]) == 2
    assert ship.main([str(tmp_path / "nothing"), "--dry-run"]) == 2


@pytest.mark.parametrize("wins,losses", [(0, 0), (5, 0), (4, 3), (9, 2), (3, 12), (30, 14)])
def test_the_ship_sign_test_is_scipy_s_one_sided_binomial_test(wins, losses):
    from scipy.stats import binomtest

    from tests.conftest import load_benchmark

    ship = load_benchmark("ship")
    expected = 1.0 if wins + losses == 0 else binomtest(wins, wins + losses, 0.5, "greater").pvalue
    assert ship.sign_test_p(wins, losses) == pytest.approx(expected, rel=1e-12)


def test_ship_pairs_each_candidate_with_the_incumbent_of_its_fold(tmp_path):
    from tests.conftest import load_benchmark

    ship = load_benchmark("ship")
    candidates = [ship.candidate(finished_run(tmp_path / f"c{s}", s, 0.1)) for s in (70, 71)]
    incumbents = [ship.candidate(finished_run(tmp_path / f"i{s}", s, 0.3)) for s in (7, 8, 9)]
    # fold 1 (seeds 70 and 7): the candidate fixes images 0-5 and breaks image 9;
    # fold 2 (seeds 71 and 8): both wrong on image 0, the candidate also fixes image 1.
    wrong = {
        "c70": [9],
        "i7": [0, 1, 2, 3, 4, 5],
        "c71": [0],
        "i8": [0, 1],
        "i9": [7],
    }

    def mistakes(row):
        marks = np.zeros(10, dtype=bool)
        marks[wrong[os.path.basename(row["folder"])]] = True
        return marks

    test = ship.paired_test(candidates, incumbents, mistakes)
    assert (test["wins"], test["losses"]) == (7, 1)
    assert [pair["incumbent"].rsplit("/", 1)[-1] for pair in test["pairs"]] == ["i7", "i8"]
    assert test["p"] == pytest.approx(9 / 256) and test["passed"]
    lone = ship.candidate(finished_run(tmp_path / "c5", 5, 0.1, val_size=500))
    with pytest.raises(ValueError, match="no incumbent holds out fold 2 of 500"):
        ship.paired_test([lone], incumbents, mistakes)


def test_ship_measures_a_same_fold_ensemble_on_its_fold(
    trained_run, tiny_data, tmp_path, monkeypatch
):
    from mnistlab.training.ensemble import build_ensemble
    from tests.conftest import load_benchmark

    ship = load_benchmark("ship")
    monkeypatch.setattr(ship, "training_images", lambda: tiny_data[0])
    out = str(tmp_path / "twice")
    build_ensemble([trained_run, trained_run], out, data=tiny_data)  # the run, averaged with itself
    row = ship.candidate(out)
    assert row["val_error"] == pytest.approx(
        runs.read_json(os.path.join(trained_run, runs.METRICS_FILE))["val_error"], abs=1e-3
    )
    seed = runs.read_json(os.path.join(trained_run, runs.CONFIG_FILE))["seed"]
    assert (row["val_size"], row["seed"]) == (200, [seed, seed])


def test_ship_refuses_an_ensemble_without_images_all_its_members_held_out(tmp_path):
    from tests.conftest import load_benchmark

    ship = load_benchmark("ship")
    members = [finished_run(tmp_path / f"m{seed}", seed, 0.2) for seed in (1, 2)]  # folds 1, 2
    ens = tmp_path / "ens"
    os.makedirs(ens)
    runs.write_json(
        str(ens / "ensemble.json"), {"members": [os.path.relpath(m, ens) for m in members]}
    )
    runs.write_json(str(ens / runs.METRICS_FILE), {"error": 0.1})
    with pytest.raises(ValueError, match="held out different validation images"):
        ship.candidate(str(ens))
    assert ship.main([str(ens), "--dry-run"]) == 2
