"""jax_step's scanned steps over data on the device against Keras's own fit, on JAX (a fresh
interpreter)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, fresh_python, recorded_step_check

# One dense network with every layer type of jax_step.scan_layer_types, trained twice from the
# same weights and seeds, shuffled by fit: with Keras's batches and with the scanned steps. 50
# images in batches of 8, 4 steps a call: a call of 4 equal batches (one compiled loop), then
# one of 3 whose last is smaller (single steps).
JAX_CHECK = f"""
import sys, tempfile, os
sys.path.insert(0, {REPO!r})
import keras, numpy as np
from keras import layers
from mnistlab.fast import jax_step
from mnistlab.core.config import TrainConfig
from mnistlab.training.train import choose_train_step, compile_model

def network():
    inputs = keras.Input((6, 6, 1))
    x = layers.Reshape((12, 3))(layers.Flatten()(inputs))
    x = layers.Dense(16)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.BatchNormalization()(x))
    x = layers.Activation("tanh")(layers.ReLU()(x))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))

rng = np.random.default_rng(0)
x = rng.random((50, 6, 6, 1)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 3, size=50), 3)
calls = []
made = jax_step._train_function
def counted(*args):
    run = made(*args)
    def train_function(state, iterator):
        calls.append(1)
        return run(state, iterator)
    return train_function
jax_step._train_function = counted
trained = {{}}
for lean in ("false", "true"):
    keras.utils.set_random_seed(5)  # the same weights, dropout seeds and shuffles for both
    model = network()
    start = model.get_weights()
    config = TrainConfig.from_dict({{"lean_step": lean, "label_smoothing": 0.1,
                                    "schedule": "onecycle", "epochs": 2,
                                    "steps_per_execution": 4}})
    step = compile_model(model, config, steps_per_epoch=7)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                        validation_data=(x[:16], y[:16])).history
    trained[lean] = (step, model.get_weights(), history, model)
assert trained["false"][0] == "keras (lean_step false)" and trained["true"][0] == "scan"
assert len(calls) == 2 * 2, len(calls)  # every call of the scanned run: two an epoch
for theirs, ours in zip(trained["false"][1], trained["true"][1]):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)  # weights and BN statistics
moved = [not np.allclose(w, s) for w, s in zip(trained["true"][1], start)]
assert all(moved), moved  # every weight, BatchNormalization's moving statistics too
for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(trained["true"][2][key], trained["false"][2][key], rtol=1e-5)
# 48 images: 6 equal batches, a call of 4 and one of 2 (the loop of 4, run for 2)
for lean in ("false", "true"):
    keras.utils.set_random_seed(6)  # the same shuffle for both
    trained[lean][3].fit(x[:48], y[:48], batch_size=8, epochs=1, verbose=0)
assert len(calls) == 2 * 2 + 2, len(calls)
steps_run = [int(trained[lean][3].optimizer.iterations.numpy()) for lean in ("false", "true")]
assert steps_run == [2 * 7 + 6] * 2, steps_run  # the loop ran 2 steps, not its padding
for theirs, ours in zip(trained["false"][3].get_weights(), trained["true"][3].get_weights()):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)

# what the scan cannot stand in for goes to Keras's fit, and the next plain fit scans again
model.fit(x, y, sample_weight=np.ones(50), batch_size=8, epochs=1, verbose=0)
assert len(calls) == 6, len(calls)
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
assert len(calls) == 8, len(calls)

refusals = {{}}
def refused(label, model, **settings):
    config = TrainConfig.from_dict(settings)
    compile_model(model, config, steps_per_epoch=7)
    refusals[label] = jax_step.refusal(model)
    assert jax_step.install(model) is False
    assert "fit" not in vars(model)  # Keras's own method, not an instance's
inputs = keras.Input((6, 6, 1))
refused("conv", keras.Model(inputs, layers.Dense(3)(layers.Flatten()(layers.Conv2D(2, 3)(inputs)))))
refused("jit", network(), jit_compile="false")
refused("one", network(), steps_per_execution=1)
assert "Conv2D" in refusals["conv"] and "jit_compile" in refusals["jit"], refusals
assert "one step" in refusals["one"], refusals
model = network()
compile_model(model, TrainConfig.from_dict({{"lean_step": "false"}}), steps_per_epoch=7)
augmented = choose_train_step(model, TrainConfig.from_dict({{"augment": "affine"}}))
assert augmented == "keras (the augmented batches come from a pipeline)", augmented

from mnistlab.models.registry import create_model
for name in ("mlp", "cnn", "larger_cnn", "branch_cnn"):  # the dense one scans, the CNNs do not
    model = create_model(name, "float32")
    step = compile_model(model, TrainConfig(), steps_per_epoch=1)
    assert (step == "scan") == (name == "mlp"), (name, step)
{recorded_step_check("scan")}
print("same")
"""


@pytest.mark.slow  # another backend in a fresh interpreter: ~10-30 s under load
def test_the_scanned_steps_train_as_keras_fit_does_on_jax():
    pytest.importorskip("jax")
    assert fresh_python(JAX_CHECK, KERAS_BACKEND="jax") == "same"
