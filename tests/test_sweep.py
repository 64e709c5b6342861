"""Sweeps: parsing and checking the TOML, grid and random trials, the ranked results table,
and real 2-trial sweeps on local processes and on a local Ray instance."""

import csv
import math
import os
import textwrap

import pytest

from mnistlab.core import runs
from mnistlab.training.sweep import combinations, load_sweep, results_rows, run_sweep, trial_name
from tests.conftest import run_cli

GRID = """
[sweep]
method = "grid"
out = "OUT"
[fixed]
epochs = 1
train_size = 1000
val_size = 200
verbose = 2
[grid]
model = ["mlp"]
learning_rate = [0.001, 0.003]
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sweeps]\nout='x'\n", r"unknown section\(s\) sweeps"),
        ("[sweep]\nmethods='grid'\n[grid]\nmodel=['mlp']\n", r"unknown key\(s\) in \[sweep\]"),
        ("[fixed]\nepoch=3\n[grid]\nmodel=['mlp']\n", r"unknown key\(s\) in \[fixed\]: epoch"),
        ("[grid]\nmodel=['mlp']\nlr=[0.1]\n", r"unknown key\(s\) in \[grid\]: lr"),
        ("[sweep]\nmethod='bayes'\n[grid]\nmodel=['mlp']\n", "method must be one of grid"),
        ("[grid]\nmodel='mlp'\n", "must be a non-empty list"),
        ("[grid]\nmodel=[]\n", "must be a non-empty list"),
        ("[grid]\nmodel=['mlp']\nlearning_rate={log_uniform=[0.001, 0.01]}\n", "non-empty list"),
        ("[sweep]\nmethod='random'\n[grid]\nmodel=['mlp']\n", "needs trials = N"),
        ("[sweep]\nout=3\n[grid]\nmodel=['mlp']\n", r"\[sweep\] out must be str, got 3"),
        (
            "[sweep]\nmethod='random'\ntrials=2\n[grid]\nmodel=['mlp']\n"
            "learning_rate={log_uniform=[0, 0.01]}\n",
            "low > 0 for log_uniform",
        ),
        ("[sweep]\ntrials=3\n[grid]\nmodel=['mlp']\n", "are for method = 'random'"),
        ("[fixed]\nmodel='mlp'\n[grid]\nmodel=['cnn']\n", "in both"),
        ("[fixed]\nepochs=1\n", r"name the model\(s\)"),
        ("[sweep\n", "not valid TOML"),
    ],
)
def test_bad_sweep_files_are_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(write(tmp_path, text))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sweep]\nout='o'\n[grid]\nmodel=['mlp', 'mpl']\n", "Unknown model 'mpl'"),
        ("[sweep]\nout='o'\n[fixed]\nval_size=0\n[grid]\nmodel=['mlp']\n", "val_size > 0"),
        ("[sweep]\nout='o'\n[grid]\nmodel=['mlp']\nepochs=[0, 1]\n", "epochs must be at least"),
        ("[sweep]\nout='o'\n[grid]\nmodel=['mlp']\nepochs=['2']\n", "must be int"),
        ("[grid]\nmodel=['mlp']\n", "Say where the sweep writes"),
        ("[sweep]\nout='o'\n[fixed]\ntrain_size=3000\n[grid]\nmodel=['mlp']\n", "no training"),
        (
            "[sweep]\nout='o'\nmethod='random'\ntrials=3\n[grid]\nmodel=['mlp', 'cnn']\n",
            "only 2 combinations",
        ),
    ],
)
def test_trials_that_cannot_train_are_refused_before_any_runs(tmp_path, text, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_sweep(write(tmp_path, text))
    assert not os.path.exists(tmp_path / "o")


def test_a_grid_is_every_combination_in_order(tmp_path):
    spec = load_sweep(
        write(tmp_path, "[grid]\nmodel=['mlp', 'cnn']\nlearning_rate=[0.001, 0.003]\nseed=[1]\n")
    )
    assert combinations(spec) == [
        {"model": "mlp", "learning_rate": 0.001, "seed": 1},
        {"model": "mlp", "learning_rate": 0.003, "seed": 1},
        {"model": "cnn", "learning_rate": 0.001, "seed": 1},
        {"model": "cnn", "learning_rate": 0.003, "seed": 1},
    ]


def test_random_search_is_seeded_distinct_and_in_range(tmp_path):
    listed = "[sweep]\nmethod='random'\ntrials=4\nseed=5\n[grid]\nmodel=['mlp','cnn']\n"
    listed += "batch_size=[50, 100, 200]\n"
    spec = load_sweep(write(tmp_path, listed))
    draws = combinations(spec)
    assert draws == combinations(spec)  # same file, same trials (so reruns find their folders)
    assert len({tuple(d.values()) for d in draws}) == 4  # drawn without replacement
    ranged = "[sweep]\nmethod='random'\ntrials=200\nseed=1\n[grid]\nmodel=['mlp']\n"
    ranged += "learning_rate={log_uniform=[0.0001, 0.01]}\nepochs={uniform=[1, 3]}\n"
    draws = combinations(load_sweep(write(tmp_path, ranged, "ranged.toml")))
    rates = [d["learning_rate"] for d in draws]
    assert all(0.0001 <= rate <= 0.01 for rate in rates)
    # log-uniform: about half the draws fall below the geometric middle, 0.001
    assert 70 <= sum(rate < 0.001 for rate in rates) <= 130
    assert {d["epochs"] for d in draws} == {1, 2, 3}
    assert all(isinstance(d["epochs"], int) for d in draws)
    assert all(math.isclose(float(f"{r:.4g}"), r) for r in rates)


def test_trial_names_follow_the_varied_values():
    assert trial_name(0, {"model": "cnn", "learning_rate": 0.001}) == "000-cnn-learning_rate-0.001"
    assert trial_name(12, {"batch_size": 128}) == "012-batch_size-128"


def test_results_rank_by_validation_error_never_by_test_error():
    def result(name, val, test, status="ok"):
        return {
            "name": name,
            "out": name,
            "varied": {"learning_rate": float(name[-1])},
            "status": status,
            "attempts": 1 if status == "ok" else 3,
            "val_error": val,
            "test_error": test,
            "best_epoch": 1 if val is not None else None,
            "epochs_run": 1 if val is not None else None,
            "error": None if status == "ok" else "exit status 1:\nTraceback...",
        }

    from mnistlab.training.sweep import rank_key

    ranked = sorted(
        [
            result("a1", 2.0, 0.5),  # best test error, worst validation error
            result("b2", None, None, "failed"),
            result("c3", 1.0, 3.0),
        ],
        key=rank_key,
    )
    header, rows = results_rows(ranked)
    assert header[:3] == ["rank", "trial", "learning_rate"]
    assert [row[1] for row in rows] == ["c3", "a1", "b2"]
    assert [row[0] for row in rows] == [1, 2, ""]
    assert rows[2][-1] == "exit status 1:" and rows[2][-3] == "failed"


def check_sweep_folder(folder, trials=2):
    """The results table against the run folders it summarises."""
    with open(os.path.join(folder, "results.csv"), newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == trials and all(row["status"] == "ok" for row in table)
    val_errors = [float(row["val_error_%"]) for row in table]
    assert val_errors == sorted(val_errors)
    for row in table:
        run = os.path.join(folder, row["trial"])
        history = runs.read_history(run)
        best = max(float(line["val_accuracy"]) for line in history)
        assert float(row["val_error_%"]) == pytest.approx(100 * (1 - best), abs=0.006)
        test = runs.read_json(os.path.join(run, runs.METRICS_FILE))["error"]
        assert float(row["test_error_%"]) == pytest.approx(test, abs=0.006)
    markdown = open(os.path.join(folder, "results.md")).read()
    assert (
        "| rank | trial | model | learning_rate | val_error_% | best_epoch | test_error_% |"
        in markdown
    )
    return table


def test_a_local_sweep_from_the_command_line(tmp_path, tiny_npz):
    folder = tmp_path / "sweep"
    config = write(tmp_path, GRID.replace("OUT", str(folder)))
    done = run_cli("sweep", config, "--data", tiny_npz, "--num-cpus", "2")  # both at once
    assert done.returncode == 0, done.stderr[-2000:]
    assert "000-mlp-learning_rate-0.001: ok" in done.stdout
    table = check_sweep_folder(str(folder))
    assert {row["trial"] for row in table} == {
        "000-mlp-learning_rate-0.001",
        "001-mlp-learning_rate-0.003",
    }
    # rerun: both trials are already complete, nothing trains again
    again = run_sweep(config, data=tiny_npz)
    assert [(r["status"], r["skipped"], r["attempts"]) for r in again] == [("ok", True, 0)] * 2
    # the same folder with another sweep is refused, not mixed
    other = write(tmp_path, GRID.replace("OUT", str(folder)).replace("0.003", "0.01"), "b.toml")
    with pytest.raises(ValueError, match="holds another sweep"):
        run_sweep(other, data=tiny_npz)


@pytest.mark.slow  # starts a Ray instance: ~25 s
def test_a_sweep_on_a_local_ray_instance(tmp_path, tiny_npz):
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'mnistlab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        folder = tmp_path / "ray-sweep"
        config = write(tmp_path, GRID.replace("OUT", str(folder)))
        ranked = run_sweep(config, executor="ray", data=tiny_npz)
    finally:
        ray.shutdown()
    assert [r["status"] for r in ranked] == ["ok", "ok"]
    assert all(r["attempts"] == 1 for r in ranked)
    check_sweep_folder(str(folder))
