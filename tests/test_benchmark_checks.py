"""The benchmarks' --check: measured figures against the README's ranges (benchmarks/expected.json).

Synthetic measurements only: nothing here is timed.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import speed_checks  # noqa: E402
import speed_report  # noqa: E402

EXPECTED = {
    "cnn float32 x plain Keras, median epoch": {"readme": 1.2, "low": 1.0, "high": 1.5},
    "cnn float32 x plain Keras, whole process": {"readme": 1.1, "low": 0.9},
    "mlp float32 x plain Keras, median epoch": {"readme": 0.9, "high": 1.2},
}


@pytest.mark.parametrize(
    "measured, passed, failed",
    [
        ({"cnn float32 x plain Keras, median epoch": 1.2}, ["cnn float32 x plain Keras, median epoch"], []),
        ({"cnn float32 x plain Keras, median epoch": 1.0}, ["cnn float32 x plain Keras, median epoch"], []),  # a bound holds
        ({"cnn float32 x plain Keras, median epoch": 0.99}, [], ["cnn float32 x plain Keras, median epoch"]),
        ({"cnn float32 x plain Keras, median epoch": 1.51}, [], ["cnn float32 x plain Keras, median epoch"]),
        ({"cnn float32 x plain Keras, whole process": 50.0}, ["cnn float32 x plain Keras, whole process"], []),  # no high bound
        ({"mlp float32 x plain Keras, median epoch": -3.0}, ["mlp float32 x plain Keras, median epoch"], []),  # no low bound
    ],
)  # fmt: skip
def test_a_figure_passes_inside_its_range_and_fails_outside(measured, passed, failed):
    got_passed, got_failed, missing = speed_checks.check_figures(measured, EXPECTED)
    assert (got_passed, got_failed) == (passed, failed)
    assert sorted(missing) == sorted(set(EXPECTED) - set(measured))


def test_the_report_names_the_failed_figure(capsys):
    measured = {
        "cnn float32 x plain Keras, median epoch": 0.8,
        "cnn float32 x plain Keras, whole process": 1.0,
    }
    failed = speed_checks.report_checks(measured, EXPECTED, "speed.py")
    assert failed == ["cnn float32 x plain Keras, median epoch"]
    lines = capsys.readouterr().out.splitlines()
    assert any(
        "FAILED" in line and "median epoch = 0.80" in line and "1.0 to 1.5" in line
        for line in lines
    )
    assert any(
        line.startswith("check speed.py: ok") and "whole process = 1.00" in line for line in lines
    )
    assert any("mlp float32" in line and "not measured" in line for line in lines)


def test_a_run_that_measured_none_of_the_figures_fails():
    assert speed_checks.report_checks({"something else": 1.0}, EXPECTED, "speed.py") == [
        "nothing checked"
    ]


def _row(model, impl, precision, speeds, processes, backend="tensorflow"):
    """A speed.json row with each round's images/s and process seconds."""
    return {
        "model": model,
        "implementation": impl,
        "backend": backend,
        "precision": precision,
        "images_per_second": sorted(speeds)[len(speeds) // 2],
        "images_per_second_rounds": speeds,
        "spread": [min(speeds), max(speeds)],
        "process_seconds": sorted(processes)[len(processes) // 2],
        "process_seconds_rounds": processes,
        "percent_of_matmul": 30.0,
        "val_accuracy": 0.98,
        "onednn": True,
    }


def _rows():
    return [
        _row("cnn", "mnistlab", "mixed_bfloat16", [300.0, 330.0, 270.0], [20.0, 22.0, 21.0]),
        _row("cnn", "mnistlab-f32", "float32", [200.0, 210.0, 190.0], [30.0, 31.0, 29.0]),
        _row("cnn", "keras", "float32", [100.0, 100.0, 100.0], [40.0, 40.0, 40.0]),
        _row("cnn", "keras-bf16", "mixed_bfloat16", [150.0, 165.0, 120.0], [44.0, 42.0, 40.0]),
    ]


def test_like_for_like_sets_each_precision_against_its_own():
    """Ratios by hand: float32 200/100 by epoch and 40/30 by process; bfloat16 300/150 and
    42/21, round by round 300/150, 330/165, 270/120 (2.0 to 2.25) and 44/20, 42/22, 40/21."""
    pairs = {pair["precision"]: pair for pair in speed_report.like_for_like(_rows())}
    assert set(pairs) == {"float32", "bfloat16"}
    assert pairs["float32"]["x_keras_epoch"]["value"] == pytest.approx(2.0)
    assert pairs["float32"]["x_keras_process"]["value"] == pytest.approx(40 / 30)
    bf16 = pairs["bfloat16"]
    assert bf16["mnistlab_precision"] == "mixed_bfloat16" == bf16["plain_precision"]
    assert bf16["x_keras_epoch"]["value"] == pytest.approx(2.0)
    assert bf16["x_keras_epoch"]["rounds"] == pytest.approx([2.0, 2.25])
    assert bf16["x_keras_process"]["value"] == pytest.approx(2.0)
    assert bf16["x_keras_process"]["rounds"] == pytest.approx([40 / 21, 44 / 20])
    figures = speed_checks.speed_figures(list(pairs.values()))
    assert figures["cnn bfloat16 x plain Keras, median epoch"] == pytest.approx(2.0)
    assert figures["cnn float32 x plain Keras, whole process"] == pytest.approx(40 / 30)


def _torch_rows():
    return [
        _row("cnn", "pytorch", "float32", [80.0, 100.0, 50.0], [60.0, 60.0, 60.0], "torch"),
        _row(
            "cnn",
            "pytorch-bf16",
            "mixed_bfloat16",
            [200.0, 220.0, 90.0],
            [35.0, 33.0, 30.0],
            "torch",
        ),
    ]


def test_like_for_like_sets_each_precision_against_the_pytorch_loop_in_it():
    """By hand: float32 mnistlab-f32 200 against pytorch 80 by epoch (2.5x; rounds 200/80,
    210/100, 190/50: 2.1 to 3.8) and 60/30 by process; bfloat16 mnistlab 300 against
    pytorch-bf16 200 (1.5x; rounds 1.5, 1.5, 3.0) and 33/21 by process (rounds 35/20, 33/22,
    30/21). The Keras figures stay as they were."""
    pairs = {p["precision"]: p for p in speed_report.like_for_like(_rows() + _torch_rows())}
    f32, bf16 = pairs["float32"], pairs["bfloat16"]
    assert f32["pytorch_precision"] == "float32"
    assert f32["x_pytorch_epoch"]["value"] == pytest.approx(2.5)
    assert f32["x_pytorch_epoch"]["rounds"] == pytest.approx([2.1, 3.8])
    assert f32["x_pytorch_process"]["value"] == pytest.approx(2.0)
    assert bf16["pytorch_precision"] == "mixed_bfloat16"
    assert bf16["pytorch_images_per_second"] == 200.0 and bf16["pytorch_process_seconds"] == 33.0
    assert bf16["x_pytorch_epoch"]["value"] == pytest.approx(1.5)
    assert bf16["x_pytorch_epoch"]["rounds"] == pytest.approx([1.5, 3.0])
    assert bf16["x_pytorch_process"]["value"] == pytest.approx(33 / 21)
    assert bf16["x_pytorch_process"]["rounds"] == pytest.approx([30 / 21, 35 / 20])
    assert bf16["x_keras_epoch"]["value"] == pytest.approx(2.0)
    figures = speed_checks.speed_figures(list(pairs.values()))
    assert figures["cnn bfloat16 x plain PyTorch, median epoch"] == pytest.approx(1.5)
    assert figures["cnn float32 x plain PyTorch, whole process"] == pytest.approx(2.0)
    table = "\n".join(speed_report.like_for_like_lines(list(pairs.values())))
    assert "| mixed_bfloat16 / mixed_bfloat16 / mixed_bfloat16 |" in table
    assert "| 200 | **1.50x** [1.50-3.00] |" in table  # faster in every round: bold


def test_without_the_pytorch_loop_in_a_precision_its_columns_are_empty():
    """Only the float32 loop timed (--no-pytorch-bf16, or an older speed.json): the bfloat16
    pair has no PyTorch figures, and is not set against the float32 loop."""
    rows = _rows() + _torch_rows()[:1]
    pairs = {p["precision"]: p for p in speed_report.like_for_like(rows)}
    assert "x_pytorch_epoch" in pairs["float32"] and "x_pytorch_epoch" not in pairs["bfloat16"]
    figures = speed_checks.speed_figures(list(pairs.values()))
    assert not any("bfloat16 x plain PyTorch" in name for name in figures)
    (line,) = [
        line
        for line in speed_report.like_for_like_lines([pairs["bfloat16"]])
        if line.startswith("| cnn")
    ]
    assert "mixed_bfloat16 / mixed_bfloat16 / - |" in line and "| - | - |" in line


def test_where_mnistlab_trains_in_float32_its_default_row_is_the_float32_one():
    """On a CPU without bfloat16 (mnistlab's default resolves to float32) there is no bfloat16
    pair, and the default row stands for float32."""
    rows = [
        _row("cnn", "mnistlab", "float32", [120.0], [10.0]),
        _row("cnn", "keras", "float32", [100.0], [12.0]),
    ]
    (pair,) = speed_report.like_for_like(rows)
    assert pair["precision"] == "float32" and pair["x_keras_epoch"]["value"] == pytest.approx(1.2)


def test_speed_check_exits_1_when_a_ratio_no_longer_holds(monkeypatch):
    import speed

    expected = {
        "cnn bfloat16 x plain Keras, median epoch": {"readme": 2.0, "low": 1.8, "high": 2.5}
    }
    monkeypatch.setattr(speed, "load_expected", lambda name: expected)
    report = {"like_for_like": speed_report.like_for_like(_rows())}
    assert speed.check(report) == 0
    slower = _rows()
    slower[0]["images_per_second"] = 250.0  # 250/150 = 1.67x: below 1.8
    assert speed.check({"like_for_like": speed_report.like_for_like(slower)}) == 1


def test_speedrun_figures_are_the_mean_accuracy_and_the_mean_and_largest_seconds():
    report = {
        "target": "99.0",
        "accuracy_mean": 99.1,
        "train_seconds_mean": 2.0,
        "runs": [{"train_seconds": 1.5}, {"train_seconds": 2.5}],
    }
    figures = speed_checks.speedrun_figures([report])
    assert figures == {
        "99.0 test accuracy %, mean": 99.1,
        "99.0 training seconds, mean": 2.0,
        "99.0 training seconds, max": 2.5,
    }
    expected = speed_checks.load_expected("speedrun.py")
    slow = {**figures, "99.0 training seconds, mean": 9.0}
    assert "99.0 training seconds, mean" in speed_checks.report_checks(
        slow, expected, "speedrun.py"
    )
    short = {**figures, "99.0 test accuracy %, mean": 98.9}
    assert "99.0 test accuracy %, mean" in speed_checks.report_checks(
        short, expected, "speedrun.py"
    )


def test_main_job_figures_take_the_default_backend_s_share_of_the_fastest():
    rows = [
        {"model": "cnn", "backend": "tensorflow", "x_fastest": 1.0},
        {"model": "cnn", "backend": "jax", "x_fastest": 0.4},
        {"model": "mlp", "backend": "tensorflow", "x_fastest": 0.6},
        {"model": "mlp", "backend": "jax", "x_fastest": 1.0},
    ]
    figures = speed_checks.main_job_figures(rows, {"cnn": "tensorflow", "mlp": "tensorflow"})
    assert figures == {"cnn default backend x fastest": 1.0, "mlp default backend x fastest": 0.6}
    expected = speed_checks.load_expected("main_job.py")
    assert speed_checks.report_checks(figures, expected, "main_job.py") == [
        "mlp default backend x fastest"
    ]


def test_every_expected_figure_has_the_readme_s_value_and_a_range():
    with open(speed_checks.EXPECTED_FILE) as handle:
        benchmarks = json.load(handle)["benchmarks"]
    assert set(benchmarks) == {"speed.py", "speedrun.py", "main_job.py"}
    for figures in benchmarks.values():
        for name, bounds in figures.items():
            assert "readme" in bounds and ("low" in bounds or "high" in bounds), name
            assert (
                bounds.get("low", float("-inf"))
                <= bounds["readme"]
                <= bounds.get("high", float("inf"))
            ), name
