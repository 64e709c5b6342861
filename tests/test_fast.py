"""The seam (fast/seam.py): the fast path against plain Keras, for every registered network on
every installed backend, and saved files that plain Keras loads."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import pytest

from mnistlab.models.registry import REGISTRY
from tests.conftest import REPO, SUBPROCESS_TIMEOUT, fresh_python

BACKENDS = [name for name in ("tensorflow", "jax", "torch") if importlib.util.find_spec(name)]
# the networks with a layer of mnistlab's own (models/layers.py), which `import mnistlab`
# registers; every other network's file is Keras's classes alone
CUSTOM_LAYERS = {"best_deskew": "Deskew"}

# Each network trained twice from the same seed on the same 24 synthetic images, three steps of
# 8 with the run's own compile settings: plain Keras, then mnistlab's fast path (seam.speed_up:
# the fast layers, the fused Adam, the lean or scanned step). On PyTorch and TensorFlow
# mnistlab's Dropout draws its mask from other random bits than Keras's (fast/layers.py), so
# there the dropout rates are 0 in both runs; on JAX it is Keras's layer, rates as built.
# Tolerance: rtol 1e-4, atol 1e-5 on float32 weights and losses. The fused Adam puts epsilon
# after the bias correction and sums in another order, the lean step pools before a bias add,
# so the paths differ by float32 rounding (about 1e-7 relative a step). Adam's epsilon is 1e-4
# in both runs, not Keras's 1e-7: Adam divides by sqrt(v) + epsilon, which turns a gradient
# that is zero but for rounding (a ReLU channel no pixel of 24 images turns on) into steps of
# up to the learning rate, drawn by the rounding; measured so, best_deskew's weights differed
# by 3e-4 in one element of 32 on PyTorch. A larger epsilon keeps such steps rounding-sized,
# but not all of them: with it, 14 of best_deskew's 9,216 weights of one 3x3x32x32 kernel still
# differed by up to 1.1e-4 on PyTorch after 3 steps (learning rate 1e-3), every other weight and
# every loss agreeing to 1e-5 (and on best, 2 of 288 weights of the first kernel by 2.6e-4, 11%
# of its weights by more than 1e-5, 3 of 160,618 by up to 1.6e-3). So losses are compared to
# 1e-5, and weights twice: their mean absolute difference to a tenth of one Adam step (the
# learning rate, 1e-3), and every weight to within the 3 steps taken. A real difference in the
# math (a missing bias, a wrong pooling) moves most weights by whole steps, so the mean catches
# it, and the loss by far more. That the few far weights differ by amplified rounding alone is
# our reading, not proven here.
MEAN_ATOL = 1e-4  # the weights' mean absolute difference: a tenth of one Adam step
WEIGHTS_ATOL = 3e-3  # every weight: within the 3 Adam steps taken
PATHS_CHECK = f"""
import json, sys
sys.path.insert(0, {REPO!r})
import keras, numpy as np
from mnistlab.core.config import TrainConfig
from mnistlab.models.registry import create_model
from mnistlab.training.train import compile_model, seed_everything

rng = np.random.default_rng(0)
x = rng.random((24, 28, 28, 1)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 10, 24), 10)
keep_dropout = keras.backend.backend() == "jax"
report = {{}}
for name in sys.argv[1].split(","):
    trained = {{}}
    for plain in ("true", "false"):
        seed_everything(3)
        model = create_model(name, "float32")
        if not keep_dropout:
            for layer in model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    layer.rate = 0.0
        config = TrainConfig.from_dict({{"model": name, "plain": plain, "precision": "float32",
                                        "schedule": "constant", "augment": "none"}})
        step = compile_model(model, config, steps_per_epoch=3)
        model.optimizer.epsilon = 1e-4  # both runs (see above)
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
        kinds = sum(type(layer).__module__.startswith("mnistlab.fast") for layer in model.layers)
        trained[plain] = (step, history["loss"], model.get_weights(), kinds,
                          type(model.optimizer).__name__)
    (_, plain_loss, plain_weights, plain_kinds, _), (step, loss, weights, kinds, adam) = (
        trained["true"], trained["false"])
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-4, atol=1e-5, err_msg=name)
    ours = np.concatenate([w.ravel() for w in weights])
    theirs = np.concatenate([w.ravel() for w in plain_weights])
    mean_difference = float(np.abs(ours - theirs).mean())
    assert mean_difference <= {MEAN_ATOL}, (name, mean_difference)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol={WEIGHTS_ATOL}, err_msg=name)
    report[name] = dict(mean_difference=mean_difference, step=step, plain_fast_layers=plain_kinds, fast_layers=kinds, adam=adam,
                        plain_adam=trained["true"][4], plain_step=trained["true"][0])
print(json.dumps(report))
"""

# cnn holds every layer that mnistlab swaps (Dense, Conv2D, MaxPooling2D, Dropout): the quick
# run, which the README's test command runs; the rest of REGISTRY (best_deskew's Deskew and
# BatchNormalization among them) with -m slow, as each backend's check costs a fresh process
# and its compilations (JAX's about 30 s a network here).
QUICK = ("cnn",)


def check_paths(backend: str, names) -> dict:
    code = PATHS_CHECK.replace("sys.argv[1]", repr(",".join(names)))
    return json.loads(fresh_python(code, KERAS_BACKEND=backend))


def assert_paths_agree(backend: str, report: dict) -> None:
    for name, result in report.items():
        assert result["plain_step"] == "keras (plain)", (name, result)
        assert result["plain_fast_layers"] == 0 and result["plain_adam"] != "FusedAdam", result
        assert result["adam"] == "FusedAdam", (name, result)
        assert result["fast_layers"] > 0 or name == "mlp", (name, result)  # no Dropout, pooling
        expected = {"torch": "lean", "jax": "scan" if name == "mlp" else "keras"}.get(backend)
        if expected:
            assert result["step"].startswith(expected), (name, result["step"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_and_plain_paths_train_the_same_weights(backend):
    report = check_paths(backend, QUICK)
    assert sorted(report) == sorted(QUICK)
    assert_paths_agree(backend, report)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_and_plain_paths_train_the_same_weights_for_every_network(backend):
    report = check_paths(backend, [name for name in REGISTRY if name not in QUICK])
    assert_paths_agree(backend, report)


# A private Keras name gone (as in another Keras version): plain Keras, after one line.
MISSING_CHECK = f"""
import sys
sys.path.insert(0, {REPO!r})
import keras
from mnistlab.core.config import TrainConfig
from mnistlab.fast import seam
from mnistlab.models.registry import create_model
from mnistlab.training.train import compile_model

seam.PRIVATE_NAMES["all"] += (("keras.src.models.functional", "Functional._gone"),)
model = create_model("cnn", "float32")
step = compile_model(model, TrainConfig(), steps_per_epoch=1)
assert step.startswith("plain (no keras.src.models.functional.Functional._gone"), step
assert all(type(layer).__module__.startswith("keras") for layer in model.layers)
assert type(model.optimizer).__module__.startswith("keras")
print("ok")
"""


def test_a_missing_private_name_falls_back_to_plain_keras_with_one_line():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MISSING_CHECK],
        env={**__import__("os").environ, "KERAS_BACKEND": BACKENDS[-1]},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("mnistlab:")]
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith("training with plain Keras"), lines[0]
    assert "lacks keras.src.models.functional.Functional._gone" in lines[0]


def saved_classes(path) -> set:
    """(module, class name, registered name) of every object a .keras file's config.json names."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found = set()

    def walk(item):
        if isinstance(item, dict):
            if "class_name" in item and "module" in item:
                found.add((item["module"], item["class_name"], item.get("registered_name")))
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(config)
    return found


def assert_stock(path, allowed_custom=()) -> None:
    for module, class_name, registered in saved_classes(path):
        if class_name in allowed_custom:
            assert registered == f"mnistlab>{class_name}", (path, class_name, registered)
            continue
        assert module.startswith("keras"), (path, module, class_name)
        assert registered in (None, class_name), (path, module, class_name, registered)


# Every registered network compiled for training and sped up, then saved under seam.stock (as a
# run saves its checkpoint) into one folder per backend.
SAVE_ALL = f"""
import os, sys
sys.path.insert(0, {REPO!r})
import keras
from mnistlab.core.config import TrainConfig
from mnistlab.fast import seam
from mnistlab.models.registry import REGISTRY, create_model
from mnistlab.training.train import compile_model

folder = sys.argv[1]
for name in REGISTRY:
    model = create_model(name)
    config = TrainConfig.from_dict({{"model": name, "precision": "bfloat16_products"}})
    compile_model(model, config, steps_per_epoch=1)
    with seam.stock(model):
        model.save(os.path.join(folder, name + ".keras"))
    assert any(type(layer).__module__.startswith("mnistlab.fast") for layer in model.layers)
print("saved")
"""

LOAD_ALL = """
import os, sys
import keras
{mnistlab_import}
for name in sys.argv[1].split(","):
    model = keras.models.load_model(os.path.join({folder!r}, name + ".keras"))
    assert model.name == name and model.count_params() > 0
print("loaded")
"""


@pytest.fixture(scope="module")
def saved_networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    backend = BACKENDS[-1]
    code = SAVE_ALL.replace("sys.argv[1]", repr(str(folder)))
    assert fresh_python(code, KERAS_BACKEND=backend) == "saved"
    return folder, backend


def test_saved_files_hold_stock_keras_classes(saved_networks):
    folder, _ = saved_networks
    for name in REGISTRY:
        assert_stock(folder / f"{name}.keras", allowed_custom=CUSTOM_LAYERS.values())


def test_keras_and_mnistlab_load_every_saved_network_in_a_fresh_process(saved_networks):
    folder, backend = saved_networks
    code = LOAD_ALL.format(mnistlab_import="import mnistlab", folder=str(folder))
    code = code.replace("sys.argv[1]", repr(",".join(REGISTRY)))
    env = {"KERAS_BACKEND": backend, "PYTHONPATH": f"{REPO}/src"}
    assert fresh_python(code, **env) == "loaded"


def test_keras_alone_loads_every_network_without_a_layer_of_mnistlab(saved_networks):
    folder, backend = saved_networks
    stock_only = [name for name in REGISTRY if name not in CUSTOM_LAYERS]
    code = LOAD_ALL.format(mnistlab_import="", folder=str(folder))
    code = code.replace("sys.argv[1]", repr(",".join(stock_only)))
    assert fresh_python(code, KERAS_BACKEND=backend) == "loaded"


def test_a_run_saves_stock_keras_classes(tmp_path):
    """A run through mnistlab.train on the fast path: checkpoint.keras and model.keras."""
    import mnistlab
    from tests.conftest import synthetic_digits

    digits = synthetic_digits(40)
    run = mnistlab.train(
        "cnn", data=(digits, digits), out=str(tmp_path / "run"), epochs=1, batch_size=20,
        val_size=0, verbose=0, plain="false",
    )  # fmt: skip
    for file in ("checkpoint.keras", "model.keras"):
        assert_stock(tmp_path / "run" / file)
    assert all(type(layer).__module__.startswith("keras") for layer in run.model.layers)
