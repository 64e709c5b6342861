"""run_trials: one process per trial, skip finished folders, resume unfinished ones, retry and
report failures, never drop a trial."""

import os
import sys

import pytest

import mnistlab
from mnistlab.core import runs
from mnistlab.training.executors import check_trial, run_trials, trial_command


def test_trial_command_spells_each_argument_as_its_cli_flag():
    trial = {
        "model": "cnn",
        "out": "/runs/a",
        "learning_rate": 0.003,
        "train_size": 1000,
        "data": "/data/mnist.npz",
        "config_file": "/c.toml",
        "backend": "jax",
        "distribute": "data-parallel",
    }
    assert trial_command(trial, resume=False) == [
        sys.executable, "-m", "mnistlab", "train", "cnn", "--out", "/runs/a",
        "--learning-rate", "0.003", "--train-size", "1000", "--data", "/data/mnist.npz",
        "--config", "/c.toml", "--backend", "jax", "--distribute", "data-parallel",
    ]  # fmt: skip
    assert trial_command(trial, resume=True)[4:7] == ["cnn", "--resume", "/runs/a"]


@pytest.mark.parametrize(
    "trials, message",
    [
        ([{"model": "mlp"}], "lacks out"),
        ([{"out": "x"}], "lacks model"),
        ([{"model": "mlp", "out": "x", "learning_rat": 0.1}], "Unknown trial key.*learning_rat"),
        ([{"model": "mpl", "out": "x"}], "Unknown model 'mpl'"),
        ([{"model": "mlp", "out": "x", "epochs": "3"}], "epochs' must be int"),
        ([{"model": "mlp", "out": "x", "resume": "x"}], "resume by themselves"),
        ([{"model": "mlp", "out": "x"}, {"model": "cnn", "out": "x"}], "same run folder"),
        ([{"model": "mlp", "out": "x", "data": ((1, 2), (3, 4))}], "must be a path"),
    ],
)
def test_bad_trials_are_refused_before_any_process_starts(trials, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_trials(trials)
    assert os.listdir(tmp_path) == []


def test_unknown_executor_and_missing_ray_are_explained(monkeypatch):
    with pytest.raises(ValueError, match="Unknown executor 'dask'"):
        run_trials([], executor="dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'mnistlab\[ray\]'"):
        run_trials([{"model": "mlp", "out": "x"}], executor="ray")


def test_check_trial_makes_paths_absolute(tmp_path, tiny_npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = check_trial({"model": "mlp", "out": "runs/a", "data": tiny_npz})
    assert checked["out"] == str(tmp_path / "runs" / "a")
    assert os.path.isabs(checked["data"])


@pytest.fixture(scope="module")
def interrupted_and_locked(tmp_path_factory, tiny_data, tiny_npz):
    """Two trials: one stopped after epoch 1 of 2, one whose folder another process holds."""
    root = tmp_path_factory.mktemp("trials")
    stopped = str(root / "stopped")
    mnistlab.train("mlp", data=tiny_data, out=stopped, epochs=1, val_size=200, verbose=0)
    # the files a crash after epoch 1 leaves: checkpoint, state and history, no final model
    for name in (runs.MODEL_FILE, runs.METRICS_FILE):
        os.remove(os.path.join(stopped, name))
    first_epoch = runs.read_history(stopped)[0]
    trials = [
        dict(model="mlp", out=stopped, data=tiny_npz, epochs=2, val_size=200, verbose=2),
        dict(model="mlp", out=str(root / "busy"), data=tiny_npz, epochs=1, val_size=200),
    ]
    seen = []
    with runs.lock_run(trials[1]["out"]):  # held by this process: every attempt is refused
        results = run_trials(trials, max_retries=1, on_result=seen.append)
    return {"trials": trials, "results": results, "seen": seen, "first_epoch": first_epoch}


def test_an_unfinished_trial_resumes_from_its_last_epoch(interrupted_and_locked):
    result = interrupted_and_locked["results"][0]
    assert (result["status"], result["attempts"], result["resumed"]) == ("ok", 1, True)
    folder = result["out"]
    history = runs.read_history(folder)
    assert [row["epoch"] for row in history] == ["1", "2"]  # each epoch once
    assert history[0] == interrupted_and_locked["first_epoch"]  # epoch 1 was kept, not redone
    assert runs.is_complete(folder)
    best = max(range(2), key=lambda i: float(history[i]["val_accuracy"]))
    assert result["val_error"] == pytest.approx(100 * (1 - float(history[best]["val_accuracy"])))
    assert result["best_epoch"] == best + 1
    metrics = runs.read_json(os.path.join(folder, runs.METRICS_FILE))
    assert result["test_error"] == metrics["error"] and result["epochs_run"] == 2
    # no weight average: the saved model's validation error is Keras's for the last epoch
    last = 100 * (1 - float(history[-1]["val_accuracy"]))
    assert metrics["val_error"] == pytest.approx(last, abs=1e-3)
    assert "Resuming" in open(os.path.join(folder, "train.log")).read()


def test_a_failing_trial_is_retried_and_reported_not_dropped(interrupted_and_locked):
    results = interrupted_and_locked["results"]
    assert len(results) == 2 and [r["out"] for r in results] == [
        os.path.abspath(t["out"]) for t in interrupted_and_locked["trials"]
    ]
    failed = results[1]
    # exit status 2 is mnistlab's bad input: reported at once, not retried (max_retries=1)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "in use by another mnistlab process" in failed["error"]
    assert failed.get("test_error") is None
    log = open(os.path.join(failed["out"], "train.log")).read()
    assert log.count("[exit status 2]") == 1
    # on_result saw each final result once
    assert sorted(r["out"] for r in interrupted_and_locked["seen"]) == sorted(
        r["out"] for r in results
    )


def test_a_complete_trial_is_skipped_without_a_process(interrupted_and_locked):
    trial = interrupted_and_locked["trials"][0]
    log = os.path.join(trial["out"], "train.log")
    before = open(log).read()
    (again,) = run_trials([trial], max_retries=0)
    assert (again["status"], again["skipped"], again["attempts"]) == ("ok", True, 0)
    assert again["test_error"] == interrupted_and_locked["results"][0]["test_error"]
    assert open(log).read() == before  # nothing ran


def test_only_faults_are_retried_never_configuration_errors():
    from mnistlab.training.executors import _with_retries

    def attempts_of(outcome):
        calls = []

        def attempt(trial):
            calls.append(trial)
            return {"status": "failed", "skipped": False, "resumed": False, **outcome}

        result = _with_retries({"out": "x"}, 2, attempt)
        assert result["attempts"] == len(calls)
        return len(calls)

    assert attempts_of({"error": "killed by signal 9", "retry": True}) == 3  # 1 + max_retries
    assert attempts_of({"error": "val_size=5000 leaves no training images", "retry": False}) == 1


def test_a_trial_is_checked_as_its_process_resolves_it(tmp_path):
    with pytest.raises(ValueError, match="leaves no training images"):
        check_trial({"model": "mlp", "out": "a", "train_size": 3000})  # beside val_size 5000
    with pytest.raises(ValueError, match="No MNIST data at"):
        check_trial({"model": "mlp", "out": "a", "data": str(tmp_path / "missing.npz")})
    # the recipe counts: best holds out 1,000 images, so 3,000 leave 2,000 to train on
    assert check_trial({"model": "best", "out": "a", "train_size": 3000})["model"] == "best"
