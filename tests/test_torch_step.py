"""torch_step's lean training step against Keras's own step, on PyTorch (a fresh interpreter)."""

from __future__ import annotations

import keras
import pytest

from mnistlab.core.config import TrainConfig
from mnistlab.models.registry import create_model
from mnistlab.training.train import choose_train_step, compile_model
from tests.conftest import REPO, fresh_python, recorded_step_check

# One network with every layer type of torch_step.lean_layer_types, branches included, trained
# twice from the same weights and seeds: with Keras's step and with the lean one.
TORCH_CHECK = f"""
import sys, tempfile, os
sys.path.insert(0, {REPO!r})
import keras, numpy as np
from keras import layers
from mnistlab.fast import torch_step
from mnistlab.core.config import TrainConfig
from mnistlab.fast.layers import BFloat16ProductConv2D, BFloat16ProductDense, Dropout, MaxPooling2D
from mnistlab.models.layers import Deskew
from mnistlab.training.train import compile_model

def network():
    inputs = keras.Input((8, 8, 1))
    left = layers.Conv2D(4, 3, padding="same", activation="relu")(Deskew()(inputs))
    right = BFloat16ProductConv2D(4, 1, padding="same")(inputs)
    x = layers.BatchNormalization()(layers.Add()([left, right]))
    # a ReLU convolution that only a pooling reads: the lean step pools before bias and ReLU
    side = MaxPooling2D(2)(layers.Conv2D(4, 3, padding="same", activation="relu")(inputs))
    x = layers.Add()([MaxPooling2D(2)(x), side])  # (4, 4, 4)
    x = layers.Concatenate()([layers.MaxPooling2D(2)(x), layers.AveragePooling2D(2)(x)])
    pooled = Dropout(0.2)(layers.GlobalAveragePooling2D()(x))  # (8,)
    x = layers.Dropout(0.3)(layers.Reshape((32,))(layers.Flatten()(x)))
    x = BFloat16ProductDense(16)(layers.Concatenate()([x, pooled]))
    x = layers.Activation("tanh")(layers.ReLU()(x))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))

rng = np.random.default_rng(0)
x = rng.random((48, 8, 8, 1)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 3, size=48), 3)
calls = []
forward = torch_step.forward
def counted(*args, **kwargs):
    calls.append(1)
    return forward(*args, **kwargs)
torch_step.forward = counted
trained = {{}}
for lean in ("false", "true"):
    keras.utils.set_random_seed(5)  # the same weights and dropout seeds for both
    model = network()
    start = model.get_weights()
    config = TrainConfig.from_dict({{"lean_step": lean, "label_smoothing": 0.1,
                                    "schedule": "onecycle", "epochs": 2}})
    step = compile_model(model, config, steps_per_epoch=6)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                        validation_data=(x[:16], y[:16])).history
    trained[lean] = (step, model.get_weights(), history)
assert trained["false"][0] == "keras (lean_step false)" and trained["true"][0] == "lean"
assert len(calls) == 12 + 2 * 2, len(calls)  # every step of the lean run: 12 trained, 2 x 2 val
assert len(torch_step.pool_first_pairs(model)) == 2  # one convolution and its pooling
for theirs, ours, first in zip(trained["false"][1], trained["true"][1], start):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)  # weights and BN statistics
moved = [not np.allclose(w, s) for w, s in zip(trained["true"][1], start)]
assert all(moved), moved  # every weight, BatchNormalization's moving statistics too
for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
    np.testing.assert_allclose(trained["true"][2][key], trained["false"][2][key], rtol=1e-5)

refusals = {{}}
def refused(label, model, **compiled):
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(), **compiled)
    refusals[label] = torch_step.refusal(model)
    assert torch_step.install(model) is False
keras.utils.set_random_seed(5)
inputs = keras.Input((4,))
refused("norm", keras.Model(inputs, layers.LayerNormalization()(inputs)))
refused("reg", keras.Model(inputs, layers.Dense(3, kernel_regularizer="l2")(inputs)))
refused("bf16", keras.Model(inputs, layers.Dense(3, dtype="mixed_bfloat16")(inputs)))
refused("jit", keras.Model(inputs, layers.Dense(3)(inputs)), jit_compile=True)
refused("sequential", keras.Sequential([layers.Dense(3)]))
assert "LayerNormalization" in refusals["norm"], refusals
assert "regulariser" in refusals["reg"] and "mixed_bfloat16" in refusals["bf16"], refusals
assert "jit_compile" in refusals["jit"], refusals
assert refusals["sequential"] is not None, refusals

from mnistlab.models.registry import REGISTRY, create_model
import torch
for name in REGISTRY:  # every registered network trains with the lean step on PyTorch
    for precision in ("float32", "bfloat16_products"):
        model = create_model(name, precision)
        config = TrainConfig.from_dict({{"precision": precision}})
        assert compile_model(model, config, steps_per_epoch=1) == "lean", name
    # the lean forward pass, pooling first where it can, is Keras's to the bit
    images = rng.random((4, 28, 28, 1)).astype("float32")
    ours = torch_step.forward(model, torch.tensor(images), training=False).detach().numpy()
    assert np.array_equal(ours, model(images).detach().numpy()), name
pooled_first = {{name: len(torch_step.pool_first_pairs(create_model(name))) // 2
                for name in ("cnn", "larger_cnn", "branch_cnn")}}
assert pooled_first == {{"cnn": 1, "larger_cnn": 2, "branch_cnn": 0}}, pooled_first
{recorded_step_check("lean")}
print("same")
"""


@pytest.mark.slow  # another backend in a fresh interpreter: ~10-30 s under load
def test_the_lean_step_trains_as_keras_step_does_on_torch():
    pytest.importorskip("torch")
    assert fresh_python(TORCH_CHECK, KERAS_BACKEND="torch") == "same"


def test_other_backends_keep_keras_step():
    model = create_model("mlp")
    step = compile_model(model, TrainConfig(), steps_per_epoch=3)
    assert step == f"keras (the backend is {keras.backend.backend()}, not torch)"
    assert "train_step" not in vars(model)  # Keras's own method, not an instance's
    off = choose_train_step(model, TrainConfig.from_dict({"lean_step": "false"}))
    assert off == "keras (lean_step false)"
    with pytest.raises(ValueError, match="lean_step must be true or false"):
        TrainConfig.from_dict({"lean_step": "yes"})
