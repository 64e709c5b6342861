"""Speed: the FLOP counter against hand counts, the speedrun recipe, the benchmarks' tiny mode."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from mnistlab.models import flops, get_spec
from tests.conftest import REPO, SUBPROCESS_TIMEOUT, run_cli


def _model(*layers_after_input, shape):
    import keras

    inputs = keras.Input(shape)
    x = inputs
    for layer in layers_after_input:
        x = layer(x)
    return keras.Model(inputs, x)


def test_dense_multiply_adds_match_a_hand_count():
    from keras import layers

    model = _model(layers.Dense(10), shape=(784,))
    assert flops.forward_macs(model) == 784 * 10
    # first layer: forward + weight gradient only (nothing trainable before it)
    assert flops.training_macs(model) == 2 * 784 * 10
    assert flops.forward_flops(model) == 2 * 784 * 10
    on_sequences = _model(layers.Dense(3), shape=(5, 7))  # Dense acts on each of 5 positions
    assert flops.forward_macs(on_sequences) == 5 * 7 * 3


def test_convolution_multiply_adds_match_a_hand_count():
    from keras import layers

    model = _model(layers.Conv2D(32, 5), shape=(28, 28, 1))  # (24, 24, 32) out, 5x5x1 kernel
    assert flops.forward_macs(model) == 24 * 24 * 32 * 5 * 5 * 1
    same = _model(layers.Conv2D(8, 3, strides=2, padding="same"), shape=(10, 10, 4))
    assert flops.forward_macs(same) == 5 * 5 * 8 * 3 * 3 * 4


def test_training_counts_input_gradients_only_after_a_trainable_layer():
    from keras import layers

    model = _model(
        layers.Conv2D(4, 3),  # (6, 6, 4): 6*6*4*9 = 1296 multiply-adds
        layers.MaxPooling2D(2),  # (3, 3, 4): not counted
        layers.Flatten(),  # (36,)
        layers.Dense(10),  # 360 multiply-adds, and its input gradient is needed
        shape=(8, 8, 1),
    )
    assert flops.forward_macs(model) == 1296 + 360
    assert flops.training_macs(model) == 2 * 1296 + 3 * 360
    assert flops.training_flops(model) == 2 * (2 * 1296 + 3 * 360)


def test_tutorial_cnn_count_matches_its_layers():
    from mnistlab.models.registry import create_model

    conv, hidden, output = 24 * 24 * 32 * 25, 12 * 12 * 32 * 128, 128 * 10
    assert flops.forward_macs(create_model("cnn")) == conv + hidden + output


def test_matmul_benchmark_reports_a_positive_rate():
    assert flops.matmul_gflops(size=128, repeats=2) > 0


def test_speedrun_networks_are_registered_with_their_recipes():
    from mnistlab.models.registry import REGISTRY, create_model
    from mnistlab.training import speedrun
    from mnistlab.training.train import resolve_config

    for target, spec in speedrun.TARGETS.items():
        assert spec["model"] in REGISTRY
        config = resolve_config(spec["model"])
        assert config.schedule == "onecycle" and config.val_size == 0
        for key, value in spec["settings"].items():
            assert getattr(config, key) == value, (target, key)
    assert speedrun.TARGETS["99.0"]["model"] == "speedrun"
    model = create_model("speedrun")
    assert tuple(model.output.shape) == (None, 10)
    # 6x6 stride-2 conv to (12, 12, 32), pool, 3x3 conv 32 -> 64 to (4, 4, 64), pool,
    # 256 -> 128 -> 10
    conv1, conv2 = 12 * 12 * 32 * 36, 4 * 4 * 64 * 9 * 32
    assert flops.forward_macs(model) == conv1 + conv2 + 256 * 128 + 128 * 10
    # 5x5 conv to (24, 24, 24), pool, 5x5 conv 24 -> 32 to (8, 8, 32), pool, 512 -> 128 -> 10
    conv1, conv2 = 24 * 24 * 24 * 25, 8 * 8 * 32 * 25 * 24
    large = create_model("speedrun_large")
    assert flops.forward_macs(large) == conv1 + conv2 + 512 * 128 + 128 * 10


def test_strided_speedrun_convolution_matches_a_hand_computation():
    """The 6x6 stride-2 first convolution reads output (i, j) from rows and columns 2i..2i+5."""
    import keras
    import numpy as np

    from mnistlab.models.registry import create_model

    model = create_model("speedrun")
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    first = keras.Model(model.inputs, conv.output)
    images = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    kernel = conv.get_weights()[0]  # (6, 6, 1, 32), no bias
    got = keras.ops.convert_to_numpy(first(images))
    assert got.shape == (2, 12, 12, 32)
    for i, j in ((0, 0), (5, 7), (11, 11)):
        window = images[:, 2 * i : 2 * i + 6, 2 * j : 2 * j + 6, 0]
        expected = np.einsum("byx,yxf->bf", window, kernel[:, :, 0, :])
        np.testing.assert_allclose(got[:, i, j, :], expected, rtol=1e-4, atol=1e-5)


def test_each_speedrun_target_overrides_what_the_registered_recipe_sets():
    """A key another target sets must not leak into a target's settings through its recipe."""
    from dataclasses import asdict

    from mnistlab.core.config import TrainConfig
    from mnistlab.training import speedrun
    from mnistlab.training.train import resolve_config

    defaults = asdict(TrainConfig())
    for target, spec in speedrun.TARGETS.items():
        config = asdict(resolve_config(spec["model"], **spec["settings"]))
        for other in speedrun.TARGETS.values():
            for key in set(other["settings"]) - set(spec["settings"]):
                assert config[key] == defaults[key], (target, key)
        assert config["schedule"] == "onecycle" and config["val_size"] == 0


def test_speedrun_recipe_trains_and_reports(tmp_path, tiny_data):
    from mnistlab.training import speedrun

    report = speedrun.run_speedrun(
        "99.0", seeds=[1], data=tiny_data, out=str(tmp_path), epochs=2, batch_size=64
    )
    (run,) = report["runs"]
    assert report["settings"]["epochs"] == 2
    assert run["accuracy"] > 50  # ten bar classes; chance is 10 %
    # the stopwatch's last measure is of the final model: it must agree with evaluate's
    seconds, accuracy, steps = run["curve"][-1]
    assert steps == 2 * 19  # 1200 images in batches of 64, two epochs
    assert accuracy == pytest.approx(run["accuracy"], abs=1e-6)
    assert seconds == pytest.approx(run["train_seconds"])
    assert 0 < run["train_seconds"] < run["fit_seconds"]
    expected = run["accuracy"] >= 99.0 and run["train_seconds"] <= 8.0  # one seed: mean = it
    assert report["reached"] is expected
    assert "seed" in speedrun.format_report(report)
    with pytest.raises(ValueError, match="Unknown target"):
        speedrun.run_speedrun("98")


def test_speedrun_with_another_network_trains_the_targets_whole_recipe(tmp_path, tiny_data):
    """--model swaps the network only: schedule, validation and the target's settings stay."""
    from mnistlab.training import speedrun

    report = speedrun.run_speedrun(
        "99.5", seeds=[3], data=tiny_data, out=str(tmp_path), model="mlp", epochs=1
    )
    assert report["model"] == "mlp"
    (run,) = report["runs"]
    config = json.load(open(os.path.join(run["folder"], "config.json")))
    assert config["model"] == "mlp" and config["seed"] == 3 and config["epochs"] == 1
    expected = {**speedrun.recipe("99.5"), "epochs": 1}
    assert {key: config[key] for key in expected} == expected


def test_stopwatch_does_not_count_checkpoints_or_measures(tmp_path, tiny_data):
    """A slow end of epoch (as a slow disk would make the checkpoint) is not training time."""
    import keras

    import mnistlab
    from mnistlab.core import runs
    from mnistlab.training.speedrun import stopwatch

    (_, _), (x_test, y_test) = tiny_data
    clock = stopwatch(x_test, y_test, every=5)
    pause = 0.6

    class SlowEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(pause)

    started = time.perf_counter()
    mnistlab.train(
        "mlp", data=tiny_data, out=str(tmp_path / "run"), epochs=2, batch_size=100, val_size=0,
        steps_per_execution=1, verbose=0, callbacks=[clock, SlowEpochEnd()],
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert clock.seconds < wall - 2 * pause
    steps = [point[2] for point in clock.curve]
    assert steps == [5, 10, 15, 20, 24]  # 12 steps per epoch: every 5th step, and the last
    times = [point[0] for point in clock.curve]
    assert times == sorted(times) and times[-1] == pytest.approx(clock.seconds)
    # validated on the test set (val_size=0): no held-out validation error to record
    assert runs.read_json(str(tmp_path / "run" / runs.METRICS_FILE))["val_error"] is None


def test_speedrun_command_refuses_bad_seeds():
    result = run_cli("speedrun", "--seeds", "0")
    assert result.returncode == 2 and "seeds must be a count of at least 1" in result.stderr


def test_speedrun_command_refuses_an_unknown_network_before_training():
    result = run_cli("speedrun", "--model", "nope", "--seeds", "1", "--data", "/nonexistent")
    assert result.returncode == 2 and "Unknown model 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def _script(*args, data, timeout=SUBPROCESS_TIMEOUT):
    # TensorFlow's kernels as a fresh shell has them: mnistlab may have set them in this process
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "MNISTLAB_DATA": data})
    env["PYTHONPATH"] = os.path.join(REPO, "src")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )


@pytest.mark.slow  # a benchmark script in tiny mode: fresh processes, ~10-50 s
def test_speed_benchmark_runs_in_tiny_mode(tmp_path, tiny_npz):
    result = _script(
        "benchmarks/speed.py",
        "--tiny",
        "--float32",
        "--bf16",
        "--keras-adam",
        "--out",
        str(tmp_path),
        data=tiny_npz,
        timeout=2 * SUBPROCESS_TIMEOUT,  # seven fresh processes, each importing TF or torch
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.load(open(tmp_path / "speed.json"))["rows"]
    torch_rows = {"pytorch", "pytorch-bf16"} if importlib.util.find_spec("torch") else set()
    peers = {"keras", "keras-bf16"} | torch_rows
    mnistlab_rows = {"mnistlab", "mnistlab-f32", "mnistlab-bf16", "mnistlab-keras-adam"}
    assert {row["implementation"] for row in rows} == mnistlab_rows | peers
    precision = {row["implementation"]: row["precision"] for row in rows}
    assert precision["mnistlab-f32"] == "float32"
    assert precision["mnistlab-bf16"] == "mixed_bfloat16"
    optimizer = {row["implementation"]: row["optimizer"] for row in rows}
    assert optimizer["mnistlab"] == "FusedAdam" and optimizer["mnistlab-keras-adam"] == "Adam"
    # the default row trains as users do: cnn in bfloat16 where the CPU computes it (oneDNN on)
    from mnistlab.core.backend import bfloat16_in_hardware

    assert precision["mnistlab"] == ("mixed_bfloat16" if bfloat16_in_hardware() else "float32")
    assert all(row["images_per_second"] > 0 and row["gflops"] > 0 for row in rows)
    # like for like: the plain script gets TensorFlow's oneDNN kernels as mnistlab sets them,
    # in float32 and in Keras's mixed_bfloat16 policy
    kernels = {row["implementation"]: row["onednn"] for row in rows}
    assert kernels["mnistlab"] is kernels["keras"] is kernels["keras-bf16"] is True
    assert precision["keras"] == "float32" and precision["keras-bf16"] == "mixed_bfloat16"
    if torch_rows:  # the PyTorch loop in float32 and under bfloat16 autocast
        assert precision["pytorch"] == "float32" and precision["pytorch-bf16"] == "mixed_bfloat16"
    (pair,) = [
        p
        for p in json.load(open(tmp_path / "speed.json"))["like_for_like"]
        if p["precision"] == "float32"
    ]
    assert pair["mnistlab_process_seconds"] > 0 and pair["x_keras_epoch"]["value"] > 0
    assert "| cnn | **mnistlab** | tensorflow |" in (tmp_path / "speed.md").read_text()
    assert (tmp_path / "speed.png").stat().st_size > 0


def test_the_ynn_rows_force_the_other_matrix_products_on_jax_only(monkeypatch):
    """--ynn-ab adds, on JAX, one row with XLA's dots the other way from mnistlab's choice for
    the network (the CNNs on YNNPACK, the MLP not), and that row's process gets the flag."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    args = speed.build_parser().parse_args(
        ["--models", "mlp", "cnn", "--backends", "tensorflow", "jax", "--ynn-ab"]
    )
    jobs = {(impl, backend, model) for impl, backend, model, _ in speed.plan(args)}
    ynn_rows = {job for job in jobs if job[0].startswith("mnistlab-ynn")}
    assert ynn_rows == {("mnistlab-ynn-dot", "jax", "mlp"), ("mnistlab-ynn-off", "jax", "cnn")}

    seen = {}

    def fake_run(command, env, **kwargs):
        seen["XLA_FLAGS"] = env.get("XLA_FLAGS")
        line = json.dumps({"epoch_seconds": [1.0, 1.0], "fit_seconds": 2.0})
        return subprocess.CompletedProcess(command, 0, stdout=line + "\n", stderr="")

    monkeypatch.setattr(speed.subprocess, "run", fake_run)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    args.timed_epochs, args.train_images, args.val_images = 1, 100, 10
    flag = "--xla_cpu_experimental_ynn_fusion_type"  # config.JAX_YNN_FLAG, written out
    for impl, expected in [
        ("mnistlab-ynn-dot", f"{flag}=dot"),
        ("mnistlab-ynn-off", f"{flag}="),
        ("mnistlab", None),  # mnistlab's own choice, made in the worker (backend.use_backend)
    ]:
        seen.clear()
        speed.run_measurement(impl, "jax", "cnn", args)
        assert list(seen.values()) == [expected]


def test_the_keras_step_row_is_on_torch_only():
    """--keras-step adds, on PyTorch alone (where the lean step applies), a row that trains
    with --lean-step false."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    args = speed.build_parser().parse_args(
        ["--models", "mlp", "--backends", "tensorflow", "torch", "--keras-step"]
    )
    rows = [job for job in speed.plan(args) if job[0] == "mnistlab-keras-step"]
    assert rows == [("mnistlab-keras-step", "torch", "mlp", ("lean_step=false",))]


@pytest.mark.parametrize(
    "options, expected",
    [
        ([], {"pytorch", "pytorch-bf16"}),
        (["--no-pytorch-bf16"], {"pytorch"}),
        (["--no-pytorch"], set()),
    ],
)
def test_the_pytorch_loop_is_timed_in_float32_and_in_bfloat16_autocast(
    monkeypatch, options, expected
):
    """Rows pytorch and pytorch-bf16, once a network on torch, beside the Keras rows; each
    process gets its --precision."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    monkeypatch.setattr(speed, "installed_backends", lambda: ["tensorflow", "jax", "torch"])
    args = speed.build_parser().parse_args(
        ["--models", "mlp", "cnn", "--backends", "tensorflow", "jax", *options]
    )
    jobs = [job for job in speed.plan(args) if job[0].startswith("pytorch")]
    assert sorted(jobs) == sorted(
        (impl, "torch", model, ()) for impl in expected for model in ("mlp", "cnn")
    )

    seen = []

    def fake_run(command, env, **kwargs):
        seen.append(command)
        line = json.dumps({"epoch_seconds": [1.0, 1.0], "fit_seconds": 2.0})
        return subprocess.CompletedProcess(command, 0, stdout=line + "\n", stderr="")

    monkeypatch.setattr(speed.subprocess, "run", fake_run)
    args.timed_epochs, args.train_images, args.val_images = 1, 100, 10
    for impl, precision in [("pytorch", "float32"), ("pytorch-bf16", "mixed_bfloat16")]:
        result = speed.run_measurement(impl, "torch", "cnn", args)
        assert seen[-1][1].endswith("torch_loop.py")
        assert seen[-1][-2:] == ["--precision", precision] and result["precision"] == precision


def test_the_jax_loop_steps_as_keras_adam_does():
    """benchmarks/plain/jax_loop.py's step against Keras's MLP with Keras's Adam, same weights."""
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import keras

    sys.path.insert(0, os.path.join(REPO, "benchmarks", "plain"))
    import jax_loop

    from mnistlab.models.registry import create_model

    rng = np.random.default_rng(1)
    images = rng.random((8, 28, 28, 1)).astype("float32")
    one_hot = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    start = jax_loop.initial_params(seed=3)
    model = create_model("mlp")
    model.set_weights(start)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy")
    state = ([jnp.asarray(p) for p in start], [jnp.zeros_like(jnp.asarray(p)) for p in start])
    state = (*state, list(state[1]), jnp.float32(0))
    for _ in range(3):
        model.train_on_batch(images, one_hot)
        state, _ = jax_loop.adam_step(state, (jnp.asarray(images.reshape(8, 784)), one_hot))
    for theirs, ours, first in zip(model.get_weights(), state[0], start, strict=True):
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-4, atol=1e-6)
        assert not np.allclose(theirs, first)
    assert float(state[3]) == 3


def test_the_jax_loop_row_is_for_the_mlp_on_jax():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    args = speed.build_parser().parse_args(
        ["--models", "mlp", "cnn", "--backends", "jax", "--jax-loop"]
    )
    assert [job for job in speed.plan(args) if job[0] == "jax-loop"] == [
        ("jax-loop", "jax", "mlp", ())
    ]


def test_default_backend_times_each_network_where_the_command_trains_it():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    from mnistlab.core.backend import default_backend

    args = speed.build_parser().parse_args(["--default-backend", "--backends", "torch"])
    timed = {(impl, model): backend for impl, backend, model, _ in speed.plan(args)}
    for model in speed.MODELS:
        assert timed[("mnistlab", model)] == default_backend(get_spec(model))
        assert timed[("keras", model)] == default_backend(
            get_spec(model)
        )  # the plain script beside it
    if importlib.util.find_spec("jax") and importlib.util.find_spec("torch"):
        assert timed[("mnistlab", "mlp")] == "jax" and timed[("pytorch", "mlp")] == "torch"


@pytest.mark.parametrize("statistic, expected", [("median", 3.0), ("fastest", 2.0)])
def test_a_process_figure_is_the_median_or_the_fastest_of_its_timed_epochs(
    monkeypatch, statistic, expected
):
    """Epochs of 9 (the warm-up, left out), 4, 2 and 3 s, and 1 s of fit outside the epochs,
    shared over the 4 epochs: 3.25 s by the median, 2.25 s by the fastest."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    line = json.dumps({"epoch_seconds": [9.0, 4.0, 2.0, 3.0], "fit_seconds": 19.0})
    done = subprocess.CompletedProcess([], 0, stdout=line + "\n", stderr="")
    monkeypatch.setattr(speed.subprocess, "run", lambda *args, **kwargs: done)
    args = speed.build_parser().parse_args(["--epoch-statistic", statistic])
    args.timed_epochs, args.train_images, args.val_images = 3, 1000, 10
    result = speed.run_measurement("keras", "tensorflow", "cnn", args)
    assert result["seconds_per_epoch"] == pytest.approx(expected + 0.25)
    assert result["images_per_second"] == pytest.approx(1000 / (expected + 0.25))


def test_the_chart_draws_each_row_s_figures(tmp_path):
    """Bar lengths against the rows' images/s and whiskers' ends against their [min, max]; the
    second panel against mnistlab's % of the matrix-multiply rate; and --replot redraws it."""
    pytest.importorskip("matplotlib")
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    def row(model, impl, backend, images_per_second, spread, percent=0.0):
        return {
            "model": model,
            "implementation": impl,
            "backend": backend,
            "images_per_second": images_per_second,
            "spread": spread,
            "percent_of_matmul": percent,
        }

    rows = [
        row("cnn", "mnistlab", "tensorflow", 300.0, [250.0, 320.0], 41.0),
        row("cnn", "keras", "tensorflow", 100.0, [90.0, 110.0]),
        row("cnn", "pytorch", "torch", 150.0, [140.0, 160.0]),
        row("mlp", "mnistlab", "jax", 800.0, [700.0, 900.0], 12.0),
        row("mlp", "keras", "jax", 400.0, [400.0, 400.0]),
    ]
    figure = speed.plot(rows, "a title", str(tmp_path / "speed.png"))
    speeds, shares = figure.axes
    widths = sorted(round(bar.get_width()) for bar in speeds.patches)
    assert widths == [100, 150, 300, 400, 800]
    assert sorted(bar.get_width() for bar in shares.patches) == [12.0, 41.0]
    texts = {text.get_text() for text in speeds.texts}
    assert texts == {"3.00x Keras, 2.00x PyTorch", "2.00x Keras"}
    whisker_ends = {
        tuple(np.round(segment[:, 0]))
        for collection in speeds.collections
        for segment in collection.get_segments()
    }
    assert {(250, 320), (90, 110), (140, 160), (700, 900), (400, 400)} <= whisker_ends

    report = {"cpu": "a CPU", "matmul_gflops": [100.0], "rows": rows}
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "speed.json").write_text(json.dumps(report))
    assert speed.main(["--replot", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "speed.png").stat().st_size > 0
    assert speed.main(["--replot", str(tmp_path / "nowhere")]) == 2


def test_the_chart_sets_each_precision_against_the_peers_in_it(tmp_path):
    """mnistlab's bfloat16 default against keras-bf16 and pytorch-bf16, mnistlab-f32 against
    keras and pytorch; without pytorch-bf16, no PyTorch ratio beside the bfloat16 row."""
    pytest.importorskip("matplotlib")
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import speed

    def row(impl, backend, precision, images_per_second):
        return {
            "model": "cnn",
            "implementation": impl,
            "backend": backend,
            "precision": precision,
            "images_per_second": images_per_second,
            "spread": [images_per_second, images_per_second],
            "percent_of_matmul": 30.0,
        }

    rows = [
        row("mnistlab", "tensorflow", "mixed_bfloat16", 300.0),
        row("mnistlab-f32", "tensorflow", "float32", 200.0),
        row("keras", "tensorflow", "float32", 100.0),
        row("keras-bf16", "tensorflow", "mixed_bfloat16", 150.0),
        row("pytorch", "torch", "float32", 100.0),
        row("pytorch-bf16", "torch", "mixed_bfloat16", 200.0),
    ]
    figure = speed.plot(rows, "a title", str(tmp_path / "speed.png"))
    speeds = figure.axes[0]
    assert sorted(round(bar.get_width()) for bar in speeds.patches) == [
        100,
        100,
        150,
        200,
        200,
        300,
    ]
    assert {text.get_text() for text in speeds.texts} == {
        "2.00x Keras, 2.00x PyTorch",  # float32: 200 / 100 and 200 / 100
        "2.00x Keras, 1.50x PyTorch",  # bfloat16: 300 / 150 and 300 / 200
    }
    figure = speed.plot(rows[:-1], "a title", str(tmp_path / "speed.png"))
    assert {text.get_text() for text in figure.axes[0].texts} == {
        "2.00x Keras, 2.00x PyTorch",
        "2.00x Keras",
    }


@pytest.mark.slow  # a benchmark script in tiny mode: fresh processes, ~10-50 s
def test_speedrun_benchmark_runs_in_tiny_mode(tmp_path, tiny_npz):
    result = _script("benchmarks/speedrun.py", "--tiny", "--out", str(tmp_path), data=tiny_npz)
    assert result.returncode == 0, result.stderr[-2000:]
    (report,) = json.load(open(tmp_path / "speedrun.json"))
    assert len(report["runs"]) == 1 and report["runs"][0]["accuracy"] > 0
    assert (tmp_path / "speedrun.png").stat().st_size > 0


@pytest.mark.slow  # a benchmark script in tiny mode: two trainings in fresh processes, ~15 s
def test_main_job_benchmark_runs_the_command_in_tiny_mode(tmp_path, tiny_npz):
    """benchmarks/main_job.py times `mnistlab train` itself: its rows come from the runs' own
    records (backend, precision, one epoch line per epoch) and its wall time holds the training."""
    result = _script(
        "benchmarks/main_job.py", "--tiny", "--models", "mlp", "--backends", "tensorflow",
        "--rounds", "2", "--data", tiny_npz, "--out", str(tmp_path), data=tiny_npz,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.load(open(tmp_path / "main_job.json"))["rows"]
    assert (row["model"], row["backend"], row["epochs"]) == ("mlp", "tensorflow", 2)
    assert row["precision"] == "float32"  # the MLP on TensorFlow: no bfloat16 measured faster
    assert len(row["test_errors"]) == 2 and all(0 <= error <= 100 for error in row["test_errors"])
    assert row["wall_seconds"] > row["train_seconds"] >= row["first_epoch_seconds"] > 0
    assert row["fastest"] and row["x_fastest"] == 1.0
    assert "| mlp | **tensorflow** | float32 |" in (tmp_path / "main_job.md").read_text()
