"""Faults, for real: a training process killed with SIGKILL mid-epoch, a second writer on the
same run folder, and a kill in the middle of an atomic write.

One training (``python -m mnistlab train``, in its own process) is followed through its life:
a second process tries to write its folder and is refused, it is killed mid-epoch, the folder
is refused as incomplete, and ``--resume`` finishes it. Its final test error is compared with
an uninterrupted run of the same recipe.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mnistlab
from mnistlab.core import runs
from tests.conftest import REPO, SUBPROCESS_TIMEOUT, run_cli, synthetic_digits

EPOCHS = 4
# one-cycle, as `best` trains: its schedule is saved inside the checkpoint and must load again
# in the fresh process that resumes (it once did not)
RECIPE = ["--epochs", str(EPOCHS), "--batch-size", "50", "--val-size", "300", "--verbose", "2"]
RECIPE += ["--schedule", "onecycle"]
ERROR_TOLERANCE = 1.0  # percentage points of test error: 3 of the 300 test images
STARTUP_TIMEOUT = SUBPROCESS_TIMEOUT  # seconds to wait for the first epoch (TF loads in ~10 s)


def reap(process):
    """Kills a child process the test left running (after a failed assertion) and waits."""
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """3300 training images (3000 after 300 held out) and 300 test images, as mnist.npz."""
    x_train, y_train = synthetic_digits(3300, seed=3)
    x_test, y_test = synthetic_digits(300, seed=4)
    path = tmp_path_factory.mktemp("faults") / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def wait_for_epoch(folder, process, epoch):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training exited early: {process.stderr.read()[-2000:]}")
        try:
            if runs.finished_epochs(folder) >= epoch:
                return
        except (OSError, ValueError):  # state.json is replaced atomically, but may not exist yet
            pass
        time.sleep(0.05)
    pytest.fail(f"no epoch {epoch} after {STARTUP_TIMEOUT} s")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, digits_npz):
    """Runs the whole story once and records what each step saw."""
    folder = str(tmp_path_factory.mktemp("killed") / "run")
    record = {"folder": folder}
    training = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "train", "cnn", "--data", digits_npz, "--out", folder]
        + RECIPE,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_epoch(folder, training, 1)
        # a second writer while the first holds the folder
        record["second_writer"] = run_cli("train", "--resume", folder, "--data", digits_npz)
        record["first_alive_during_second"] = training.poll() is None
        record["epoch_at_kill"] = runs.finished_epochs(folder)
        training.send_signal(signal.SIGKILL)
        training.wait(timeout=30)
    finally:
        reap(training)
    record["kill_status"] = training.returncode
    record["files_after_kill"] = sorted(os.listdir(folder))
    record["history_after_kill"] = runs.read_history(folder)
    record["state_after_kill"] = runs.finished_epochs(folder)
    record["evaluate"] = run_cli("evaluate", folder, "--data", digits_npz)
    try:
        mnistlab.load_model(folder)
        record["load_refused"] = None
    except runs.IncompleteRunError as error:
        record["load_refused"] = str(error)
    checkpoint = mnistlab.load_model(os.path.join(folder, runs.CHECKPOINT_FILE))
    record["checkpoint_outputs"] = checkpoint.output_shape
    record["resume"] = run_cli("train", "--resume", folder, "--data", digits_npz)
    reference = mnistlab.train(
        "cnn",
        data=digits_npz,
        out=str(tmp_path_factory.mktemp("uninterrupted") / "run"),
        epochs=EPOCHS,
        batch_size=50,
        val_size=300,
        schedule="onecycle",
        verbose=0,
    )
    record["reference_error"] = reference.metrics["error"]
    return record


@pytest.mark.slow  # the kill-and-resume story: three trainings, one killed: ~20 s
def test_a_second_writer_is_refused_while_the_first_runs(killed_and_resumed):
    second = killed_and_resumed["second_writer"]
    assert killed_and_resumed["first_alive_during_second"]
    assert second.returncode == 2, second.stderr
    assert "is in use by another mnistlab process (pid" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.slow  # the kill-and-resume story: three trainings, one killed: ~20 s
def test_the_kill_landed_mid_training(killed_and_resumed):
    assert killed_and_resumed["kill_status"] == -signal.SIGKILL
    done = killed_and_resumed["state_after_kill"]
    assert killed_and_resumed["epoch_at_kill"] == done  # no epoch finished after the kill
    assert 1 <= done < EPOCHS
    assert [int(row["epoch"]) for row in killed_and_resumed["history_after_kill"]] == list(
        range(1, done + 1)
    )


@pytest.mark.slow  # the kill-and-resume story: three trainings, one killed: ~20 s
def test_a_killed_run_leaves_nothing_that_evaluate_or_predict_would_load(killed_and_resumed):
    files = killed_and_resumed["files_after_kill"]
    assert runs.MODEL_FILE not in files and runs.METRICS_FILE not in files
    # whatever a write in flight left is a hidden temporary, never under a name a reader opens
    leftovers = [name for name in files if name.startswith(".tmp-")]
    expected = {runs.CONFIG_FILE, runs.META_FILE, runs.HISTORY_FILE, runs.STATE_FILE}
    assert expected | {runs.CHECKPOINT_FILE, runs.LOCK_FILE} >= set(files) - set(leftovers)
    assert "incomplete" in killed_and_resumed["load_refused"]
    evaluate = killed_and_resumed["evaluate"]
    assert evaluate.returncode == 2
    done = killed_and_resumed["state_after_kill"]
    assert f"incomplete: training stopped after epoch {done} of {EPOCHS}" in evaluate.stderr
    assert "--resume" in evaluate.stderr
    # the checkpoint beside it is whole: it loads as a model
    assert tuple(killed_and_resumed["checkpoint_outputs"]) == (None, 10)


@pytest.mark.slow  # the kill-and-resume story: three trainings, one killed: ~20 s
def test_resume_finishes_the_run_with_every_epoch_once(killed_and_resumed):
    resumed = killed_and_resumed["resume"]
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    done = killed_and_resumed["state_after_kill"]
    assert f"after epoch {done} of {EPOCHS}" in resumed.stdout
    folder = killed_and_resumed["folder"]
    assert runs.is_complete(folder)
    history = runs.read_history(folder)
    assert [int(row["epoch"]) for row in history] == list(range(1, EPOCHS + 1))
    assert history[:done] == killed_and_resumed["history_after_kill"]  # kept, not redone
    temporaries = {name for name in os.listdir(folder) if name.startswith(".tmp-")}
    assert temporaries <= set(killed_and_resumed["files_after_kill"])  # none of its own left


@pytest.mark.slow  # the kill-and-resume story: three trainings, one killed: ~20 s
def test_the_resumed_model_is_as_good_as_an_uninterrupted_one(killed_and_resumed):
    metrics = json.load(open(os.path.join(killed_and_resumed["folder"], runs.METRICS_FILE)))
    assert metrics["epochs_run"] == EPOCHS
    assert metrics["error"] <= killed_and_resumed["reference_error"] + ERROR_TOLERANCE
    assert metrics["error"] < 5.0  # and both actually learned the bars


WRITER = """
import sys
from mnistlab.core import runs
path, payload = sys.argv[1], "x" * 5_000_000  # 5 MB per write: long enough to be caught
index = 0
while True:
    runs.write_json(path, {"index": index, "payload": payload})
    index += 1
    print(index, flush=True)
"""


def kill_a_writer(path):
    """Starts WRITER, lets it finish a few writes, then kills it wherever it is."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):
            assert writer.stdout.readline(), "the writer died"
        time.sleep(0.013)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        reap(writer)


def test_a_kill_during_an_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    caught_mid_write = 0
    for attempt in range(5):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        kill_a_writer(folder / "state.json")
        data = json.loads((folder / "state.json").read_text())  # whole, never half of one
        assert data["index"] >= 2 and len(data["payload"]) == 5_000_000
        names = os.listdir(folder)
        assert all(name == "state.json" or name.startswith(".tmp-") for name in names), names
        caught_mid_write += any(name.startswith(".tmp-") for name in names)
        if caught_mid_write:
            break
    assert caught_mid_write, "no kill landed inside a write; the test proved nothing"
