"""One failure contract for every command: bad input exits 2 with one line of mnistlab's
words, no traceback, and leaves nothing behind; run files get the user's umask."""

import os

import pytest

from mnistlab.commands.main import main
from mnistlab.core import runs

SWEEP_TOO_SMALL = (  # 3,000 training images beside the default 5,000 validation images
    "[sweep]\nout = 'sweep'\n[fixed]\ntrain_size = 3000\nepochs = 1\n[grid]\nmodel = ['mlp']\n"
)

BAD_INPUTS = [  # (argv, words the one line must hold)
    (["models", "mlpp"], "Unknown model 'mlpp'"),
    (["train", "cnnn"], "Unknown model 'cnnn'"),
    (["train", "--resume", "no/such/run"], "No run folder 'no/such/run' to resume"),
    (["train", "mlp", "--data", "corrupt.npz", "--epochs", "1"], "corrupt.npz"),
    (["train", "mlp", "--train-size", "3000"], "leaves no training images"),
    (["evaluate", "no/such/run"], "No run folder or model file"),
    (["ensemble", "mlp", "--members", "0"], "at least 1 member"),
    (["ensemble", "mlp", "--train-size", "3000"], "leaves no training images"),
    (["ensemble", "mlp", "--data", "no/such/mnist.npz"], "no/such/mnist.npz"),
    (["predict", "no-such-image.png"], "no-such-image.png"),
    (["export", "no/such/run"], "no/such/run"),
    (["filters", "no/such/run"], "no/such/run"),
    (["responses", "no/such/run", "test:0"], "no/such/run"),
    (["speedrun", "--seeds", "0"], "seeds must be a count of at least 1"),
    (["sweep", "no-such-sweep.toml"], "no-such-sweep.toml"),
    (["sweep", "too-small.toml", "--executor", "ray"], "leaves no training images"),
]


@pytest.mark.parametrize("argv, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(
    argv, words, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    (tmp_path / "too-small.toml").write_text(SWEEP_TOO_SMALL)
    before = sorted(os.listdir(tmp_path))
    status = main(argv)
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert len(lines) == 1 and lines[0].startswith(f"mnistlab {argv[0]}: error: "), stderr
    assert words in lines[0] and "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == before  # no run folder, no runs/, no sweep folder


def test_run_files_get_the_users_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(umask)
        try:
            path = tmp_path / f"written-{umask:o}.json"
            runs.write_json(str(path), {"a": 1})
        finally:
            os.umask(previous)
        assert os.stat(path).st_mode & 0o777 == mode, oct(os.stat(path).st_mode)


def test_a_failed_start_removes_only_what_it_made(tmp_path):
    made = tmp_path / "runs" / "new"
    with pytest.raises(RuntimeError), runs.lock_run(str(made), discard_unstarted=True):
        raise RuntimeError("corrupt data")
    assert not (tmp_path / "runs").exists()  # the parent it made goes too

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError), runs.lock_run(str(existing), discard_unstarted=True):
        raise RuntimeError("corrupt data")
    assert (existing / "notes.txt").read_text() == "mine"

    started = tmp_path / "started"  # a first epoch written: the folder can be resumed, kept
    with pytest.raises(RuntimeError), runs.lock_run(str(started), discard_unstarted=True):
        runs.write_json(str(started / runs.STATE_FILE), {"epoch": 1})
        raise RuntimeError("killed in epoch 2")
    assert (started / runs.STATE_FILE).exists()


def test_a_failed_training_leaves_no_folder_but_a_resumed_one_is_kept(tmp_path, tiny_data):
    import mnistlab

    (x_train, y_train), test = tiny_data
    corrupt = ((x_train[:, :20], y_train), test)  # 28x20 images: refused inside training
    with pytest.raises(ValueError):
        mnistlab.train("mlp", data=corrupt, out=str(tmp_path / "run"), epochs=1, verbose=0)
    assert not (tmp_path / "run").exists()
    run = mnistlab.train(
        "mlp", data=tiny_data, out=str(tmp_path / "ok"), epochs=1, val_size=200, verbose=0
    )
    with pytest.raises(ValueError):
        mnistlab.train(resume=run.path, data=corrupt, epochs=2)
    assert runs.is_complete(run.path)  # a resumed folder's files are never removed


def test_short_runs_of_long_recipes_say_so():
    from mnistlab.commands.train import short_run_note

    note = short_run_note("best", 1)
    assert note.startswith("note: best's recipe trains 40 epochs; --epochs 1 gives a rough")
    assert "onecycle schedule is squeezed into 1 epoch" in note
    assert short_run_note("best", 10) is None  # a quarter of the recipe or more
    assert short_run_note("cnn", 1) is None  # the lab's networks have no long recipe
    assert short_run_note("best", None) is None


def test_speedrun_seeds_are_a_count_or_a_list():
    from mnistlab.training.speedrun import SEEDS, seed_list

    assert seed_list(3) == [1, 2, 3] and seed_list([7, 9]) == [7, 9]
    assert seed_list(None) == list(range(1, SEEDS + 1)) and seed_list(range(4, 6)) == [4, 5]
    for bad in (0, [], True, ["1"], 2.5):
        with pytest.raises(ValueError, match="seeds must be"):
            seed_list(bad)


def test_python_train_picks_the_backend_the_command_line_picks(tmp_path):
    from tests.conftest import fresh_python

    code = f"""
import os, numpy as np, mnistlab
from mnistlab.core import runs
from mnistlab.core.backend import default_backend
from mnistlab.models.registry import get_spec
rng = np.random.default_rng(0)
digits = (rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), rng.integers(0, 10, 40))
run = mnistlab.train("mlp", data=(digits, digits), out={str(tmp_path / "run")!r}, epochs=1,
                     val_size=10, batch_size=10, verbose=0)
meta = runs.read_json(os.path.join(run.path, "meta.json"))
assert meta["versions"]["backend"] == default_backend(get_spec("mlp")), meta["versions"]
print("ok")
"""
    assert fresh_python(code) == "ok"
