"""FusedAdam: Adam's update in one kernel, checked against a hand-written Adam and Keras's own,
on the backend the suite runs and, in a fresh interpreter, on PyTorch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab.fast.optimizers import FusedAdam
from mnistlab.models.schedules import OneCycle
from tests.conftest import REPO, fresh_python

TF = keras.backend.backend() == "tensorflow"


def hand_adam(weights, gradients, rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam as Kingma and Ba write it, with Keras's epsilon, in float64."""
    weights = np.array(weights, dtype=np.float64)
    m = np.zeros_like(weights)
    v = np.zeros_like(weights)
    for step, gradient in enumerate(gradients, start=1):
        m = beta_1 * m + (1 - beta_1) * gradient
        v = beta_2 * v + (1 - beta_2) * gradient**2
        alpha = rate * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        weights = weights - alpha * m / (np.sqrt(v) + epsilon)
    return weights


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls of TensorFlow's fused Adam kernel (none on other backends)."""
    calls = []
    if TF:
        import tensorflow as tf

        kernel = tf.raw_ops.ResourceApplyAdam

        def counted(**kwargs):
            calls.append(kwargs["var"])
            return kernel(**kwargs)

        monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counted)
    return calls


def test_fused_adam_matches_adam_by_hand(kernel_calls):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    gradients = [rng.normal(size=(4, 3)).astype("float32") for _ in range(5)]
    variable = keras.Variable(start)
    optimizer = FusedAdam(learning_rate=0.01)
    for gradient in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(variable),
        hand_adam(start, gradients, 0.01),
        rtol=1e-5,
        atol=1e-6,
    )
    # the weights moved (up to 5 steps of about the rate each): the comparison is not vacuous
    assert np.abs(keras.ops.convert_to_numpy(variable) - start).max() > 0.02
    assert len(kernel_calls) == (5 if TF else 0)


def _mlp(seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_fused_adam_trains_as_keras_adam_does(kernel_calls, steps_per_execution):
    """The same network, data and one-cycle schedule: the same weights after 8 steps of fit."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, size=64), 3)
    trained = []
    for optimizer in (keras.optimizers.Adam, FusedAdam):
        model = _mlp(seed=3)
        model.compile(
            optimizer=optimizer(OneCycle(0.01, total_steps=8, warmup_steps=2)),
            loss="categorical_crossentropy",
            steps_per_execution=steps_per_execution,
        )
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    untrained = _mlp(seed=3).get_weights()
    for keras_weights, fused_weights, start in zip(*trained, untrained, strict=True):
        np.testing.assert_allclose(fused_weights, keras_weights, rtol=1e-5, atol=1e-6)
        assert not np.allclose(fused_weights, start)
    if TF:  # four weight arrays, each updated by the kernel (traced once a compiled function)
        assert len(kernel_calls) >= 4


def test_fused_adam_amsgrad_is_keras_adam():
    rng = np.random.default_rng(2)
    start = rng.normal(size=(3,)).astype("float32")
    gradients = [rng.normal(size=(3,)).astype("float32") for _ in range(4)]
    results = []
    for optimizer in (keras.optimizers.Adam(0.01, amsgrad=True), FusedAdam(0.01, amsgrad=True)):
        variable = keras.Variable(start)
        for gradient in gradients:
            optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
        results.append(keras.ops.convert_to_numpy(variable))
    np.testing.assert_array_equal(results[1], results[0])


def test_fused_adam_survives_save_and_load(tmp_path):
    from mnistlab.models.saved import load_model

    model = _mlp(seed=4)
    model.compile(optimizer=FusedAdam(0.003), loss="categorical_crossentropy")
    x = np.ones((16, 6), dtype="float32")
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "checkpoint.keras")
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.optimizer, FusedAdam)
    assert int(loaded.optimizer.iterations) == 2
    assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(0.003)
    for saved, read in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(read), keras.ops.convert_to_numpy(saved)
        )


def test_the_seam_fuses_adam_where_fused_adam_is_true_and_plain_is_false():
    from mnistlab.core.config import TrainConfig
    from mnistlab.models.registry import create_model
    from mnistlab.training.train import build_optimizer, compile_model

    assert type(build_optimizer(TrainConfig(), steps_per_epoch=10)) is keras.optimizers.Adam
    for values, fused in [({}, True), ({"fused_adam": "false"}, False), ({"plain": "true"}, False)]:
        model = create_model("mlp", "float32")
        compile_model(model, TrainConfig.from_dict(values), steps_per_epoch=10)
        assert (type(model.optimizer) is FusedAdam) is fused, values
    with pytest.raises(ValueError, match="fused_adam must be true or false"):
        TrainConfig.from_dict({"fused_adam": "maybe"})


def test_runs_saved_before_fused_adam_resume_with_keras_adam():
    from mnistlab.core.config import saved_config

    # an older run's config.json has no fused_adam key: it trained with Keras's Adam
    assert saved_config({"model": "cnn"})["fused_adam"] == "false"
    assert saved_config({"model": "cnn", "fused_adam": "true"})["fused_adam"] == "true"


TORCH_CHECK = f"""
import sys
sys.path.insert(0, {REPO!r})
import keras, numpy as np, torch
from mnistlab.fast.optimizers import FusedAdam
from mnistlab.models.schedules import OneCycle
from tests.test_optimizers import _mlp, hand_adam
calls = []
kernel = torch._fused_adam_
def counted(weights, *args, **kwargs):
    calls.append(len(weights))
    return kernel(weights, *args, **kwargs)
torch._fused_adam_ = counted
rng = np.random.default_rng(0)
starts = [rng.normal(size=shape).astype("float32") for shape in ((4, 3), (5,))]
gradients = [[rng.normal(size=s.shape).astype("float32") for s in starts] for _ in range(5)]
def five_steps_match_adam_by_hand():
    variables = [keras.Variable(s) for s in starts]
    optimizer = FusedAdam(learning_rate=0.01)
    for step in gradients:
        optimizer.apply([torch.tensor(g) for g in step], variables)
    for variable, start, k in zip(variables, starts, range(2)):
        by_hand = hand_adam(start, [step[k] for step in gradients], 0.01)
        np.testing.assert_allclose(variable.numpy(), by_hand, rtol=1e-5, atol=1e-6)
        assert np.abs(variable.numpy() - start).max() > 0.02
five_steps_match_adam_by_hand()
assert calls == [2] * 5, calls  # both variables in one call a step
x = rng.normal(size=(64, 6)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 3, size=64), 3)
trained = []  # Keras's Adam is its torch._foreach one here, mnistlab's the fused kernel
for kind in (keras.optimizers.Adam, FusedAdam):
    model = _mlp(seed=3)
    model.compile(optimizer=kind(OneCycle(0.01, total_steps=8, warmup_steps=2)),
                  loss="categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    trained.append(model.get_weights())
for theirs, ours, start in zip(*trained, _mlp(seed=3).get_weights()):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours, start)
assert calls == [2] * 5 + [4] * 8, calls  # one call a step, all four weight arrays
import mnistlab.fast.optimizers
mnistlab.fast.optimizers._all_on_cpu = lambda variables: False  # as weights on a GPU: Keras's foreach
five_steps_match_adam_by_hand()
assert len(calls) == 5 + 8, len(calls)  # no more fused calls
print("same")
"""


@pytest.mark.slow  # another backend in a fresh interpreter: ~10-30 s under load
def test_on_torch_one_fused_kernel_updates_as_keras_adam_does():
    pytest.importorskip("torch")
    assert fresh_python(TORCH_CHECK, KERAS_BACKEND="torch") == "same"
