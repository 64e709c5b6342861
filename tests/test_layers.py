"""mnistlab's own layers: MaxPooling2D pools as Keras's does (by hand and against Keras's layer,
gradients included, on JAX and PyTorch where it computes otherwise); WeightedAverage is tested
with the ensembles that use it (test_ensemble.py)."""

import numpy as np
import pytest

from tests.conftest import REPO, fresh_python


def pool_by_hand(images, rows, columns):
    """Max over non-overlapping windows, loop by loop; leftover rows and columns dropped."""
    count, height, width, channels = images.shape
    out = np.empty((count, height // rows, width // columns, channels), images.dtype)
    for i in range(height // rows):
        for j in range(width // columns):
            window = images[:, i * rows : (i + 1) * rows, j * columns : (j + 1) * columns, :]
            out[:, i, j, :] = window.max(axis=(1, 2))
    return out


@pytest.mark.parametrize(
    "shape, pool", [((2, 8, 6, 3), (2, 2)), ((1, 7, 5, 2), (2, 2)), ((1, 9, 6, 1), (3, 2))]
)
def test_pool_by_reshape_is_max_pooling_by_hand(shape, pool):
    from mnistlab.layers import pool_by_reshape

    images = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(pool_by_reshape(images, pool)), pool_by_hand(images, *pool)
    )


def test_the_layer_is_keras_s_on_tensorflow():
    import keras

    from mnistlab.layers import MaxPooling2D

    images = np.random.default_rng(1).normal(size=(2, 7, 7, 4)).astype("float32")
    for layer_args in (
        {"pool_size": 2},
        {"pool_size": 2, "strides": 1},
        {"pool_size": 3, "padding": "same"},
    ):
        ours, theirs = MaxPooling2D(**layer_args), keras.layers.MaxPooling2D(**layer_args)
        np.testing.assert_array_equal(np.asarray(ours(images)), np.asarray(theirs(images)))
    assert type(MaxPooling2D(2)).__name__ == "MaxPooling2D"  # what export.py and names go by


JAX_CHECK = """
import jax, keras, numpy as np
from mnistlab.layers import MaxPooling2D
rng = np.random.default_rng(2)
x = rng.normal(size=(3, 11, 10, 4)).astype("float32")  # no two equal values: no ties
w = rng.normal(size=(3, 5, 5, 4)).astype("float32")
ours, theirs = MaxPooling2D(2), keras.layers.MaxPooling2D(2)
loss = lambda layer: (lambda v: (layer(v) * w).sum())
assert np.array_equal(np.asarray(ours(x)), np.asarray(theirs(x)))
assert np.array_equal(np.asarray(jax.grad(loss(ours))(x)), np.asarray(jax.grad(loss(theirs))(x)))
graph, keras_graph = (str(jax.make_jaxpr(jax.grad(loss(layer)))(x)) for layer in (ours, theirs))
assert "reduce_window" in keras_graph and "reduce_window" not in graph, graph
overlapping = MaxPooling2D(3, strides=2)  # windows overlap: Keras's own pooling
assert np.array_equal(np.asarray(overlapping(x)), np.asarray(keras.layers.MaxPooling2D(3, 2)(x)))
print("same")
"""


def test_on_jax_it_pools_by_reshape_with_keras_s_values_and_gradients():
    pytest.importorskip("jax")
    assert fresh_python(JAX_CHECK, KERAS_BACKEND="jax") == "same"


TORCH_CHECK = f"""
import sys
sys.path.insert(0, {REPO!r})
import keras, numpy as np, torch
from mnistlab.layers import MaxPooling2D
from tests.test_layers import pool_by_hand
rng = np.random.default_rng(3)
x = rng.normal(size=(3, 11, 10, 4)).astype("float32")  # no two equal values: no ties
for args in ({{"pool_size": 2}}, {{"pool_size": 3, "strides": 2}}, {{"pool_size": 2, "padding": "same"}}):
    ours, theirs = MaxPooling2D(**args), keras.layers.MaxPooling2D(**args)
    results = []
    for layer in (ours, theirs):
        inputs = torch.tensor(x, requires_grad=True)
        y = layer(inputs)
        (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()
        results.append((y.detach().numpy(), inputs.grad.numpy(), y.is_contiguous()))
    (mine, my_grad, my_layout), (keras_s, keras_grad, keras_layout) = results
    assert np.array_equal(mine, keras_s) and np.array_equal(my_grad, keras_grad), args
    # valid pooling: ours keeps (N, H, W, C) memory, Keras's hands on a transposed view
    assert (my_layout, keras_layout) == (args.get("padding") != "same", False), args
assert np.array_equal(np.asarray(MaxPooling2D(2)(torch.tensor(x))), pool_by_hand(x, 2, 2))
print("same")
"""


def test_on_torch_it_pools_a_view_with_keras_s_values_and_gradients():
    pytest.importorskip("torch")
    assert fresh_python(TORCH_CHECK, KERAS_BACKEND="torch") == "same"
