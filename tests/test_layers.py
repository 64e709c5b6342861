"""mnistlab's own layers: MaxPooling2D pools as Keras's does (by hand and against Keras's layer,
gradients included, on JAX and PyTorch where it computes otherwise); Deskew against a loop by
hand, on every backend, and for what it must keep and change; WeightedAverage is tested with the
ensembles that use it (test_ensemble.py)."""

import numpy as np
import pytest

from tests.conftest import REPO, check_passed, fresh_python, fresh_python_checks


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
    from mnistlab.fast.layers import pool_by_reshape

    images = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(pool_by_reshape(images, pool)), pool_by_hand(images, *pool)
    )


def test_the_layer_is_keras_s_on_tensorflow():
    import keras

    from mnistlab.fast.layers import MaxPooling2D

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
from mnistlab.fast.layers import MaxPooling2D
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


def test_on_jax_it_pools_by_reshape_with_keras_s_values_and_gradients(fresh_backend_checks):
    assert fresh_backend_checks("jax", "pooling") == "same"


TORCH_CHECK = f"""
import sys
sys.path.insert(0, {REPO!r})
import keras, numpy as np, torch
from mnistlab.fast.layers import MaxPooling2D
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


def test_on_torch_it_pools_a_view_with_keras_s_values_and_gradients(fresh_backend_checks):
    assert fresh_backend_checks("torch", "pooling") == "same"


def deskew_by_hand(images, max_skew=1.0):
    """Moment deskewing, pixel by pixel: each row moved along by skew x (row - centre row),
    read between two source pixels by linear interpolation, 0 outside the image."""
    out = np.zeros_like(images)
    for n, image in enumerate(images[..., 0].astype("float64")):
        rows, columns = image.shape
        mass = image.sum() + 1e-6
        r_mean = sum(r * image[r, c] for r in range(rows) for c in range(columns)) / mass
        c_mean = sum(c * image[r, c] for r in range(rows) for c in range(columns)) / mass
        cov = var = 0.0
        for r in range(rows):
            for c in range(columns):
                cov += (r - r_mean) * (c - c_mean) * image[r, c] / mass
                var += (r - r_mean) ** 2 * image[r, c] / mass
        skew = min(max(cov / (var + 1e-6), -max_skew), max_skew)
        for r in range(rows):
            for c in range(columns):
                source = c + skew * (r - r_mean)
                left = int(np.floor(source))
                for v, weight in ((left, 1 - (source - left)), (left + 1, source - left)):
                    if 0 <= v < columns:
                        out[n, r, c, 0] += weight * image[r, v]
    return out


def slanted_stroke(size=28, lean=0.5):
    """A 2-pixel-wide stroke leaning right by ``lean`` columns a row, rows 4 to size - 5."""
    image = np.zeros((1, size, size, 1), "float32")
    for row in range(4, size - 4):
        column = size / 2 - lean * (row - size / 2)
        image[0, row, int(round(column)) : int(round(column)) + 2, 0] = 1.0
    return image


def deskew_cases():
    from tests.conftest import synthetic_digits

    rng = np.random.default_rng(2)
    speckle = (rng.random((3, 28, 28, 1)) * (rng.random((3, 28, 28, 1)) > 0.85)).astype("float32")
    digits = synthetic_digits(4, seed=3)[0][..., None].astype("float32") / 255
    return np.concatenate([speckle, digits, slanted_stroke(), slanted_stroke(lean=-2.0)])


def test_deskew_is_the_loop_by_hand():
    from mnistlab.models.layers import Deskew

    images = deskew_cases()
    expected = deskew_by_hand(images)
    np.testing.assert_allclose(np.asarray(Deskew()(images)), expected, atol=2e-5)
    # the stroke leaning 2 columns a row is sheared by max_skew only: clipped as by hand
    np.testing.assert_allclose(
        np.asarray(Deskew(max_skew=0.25)(images)), deskew_by_hand(images, 0.25), atol=2e-5
    )


def test_deskew_straightens_a_slanted_stroke_and_keeps_its_ink():
    from mnistlab.models.layers import Deskew

    stroke = slanted_stroke()
    upright = np.asarray(Deskew()(stroke))[0, :, :, 0]
    inked = upright.sum(axis=1) > 0
    centres = (upright * np.arange(28)).sum(axis=1)[inked] / upright.sum(axis=1)[inked]
    before = (stroke[0, :, :, 0] * np.arange(28)).sum(axis=1)[inked] / 2
    # it leaned 9 columns; upright now, but for the half-pixel steps of its rounded columns
    assert np.ptp(before) == 9 and np.ptp(centres) < 1.5
    np.testing.assert_allclose(upright.sum(axis=1), stroke[0, :, :, 0].sum(axis=1), atol=1e-5)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 28, 28, 1), "float32"),  # blank: nothing to shear, no division by zero
        np.pad(np.ones((1, 20, 2, 1), "float32"), ((0, 0), (4, 4), (13, 13), (0, 0))),  # a "1"
        np.pad(np.ones((1, 1, 20, 1), "float32"), ((0, 0), (14, 13), (4, 4), (0, 0))),  # a "-"
    ],
    ids=["blank", "upright", "one-row"],
)
def test_deskew_leaves_what_has_no_slant_unchanged(image):
    from mnistlab.models.layers import Deskew

    np.testing.assert_allclose(np.asarray(Deskew()(image)), image, atol=1e-5)


def test_deskew_survives_saving_and_refuses_a_bad_limit(tmp_path):
    import keras

    from mnistlab.models.layers import Deskew

    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, Deskew(max_skew=0.5)(inputs))
    model.save(tmp_path / "deskew.keras")
    loaded = keras.saving.load_model(tmp_path / "deskew.keras")
    images = deskew_cases()
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))
    assert loaded.layers[-1].max_skew == 0.5
    with pytest.raises(ValueError, match="max_skew"):
        Deskew(max_skew=0)


DESKEW_CHECK = f"""
import sys
sys.path.insert(0, {REPO!r})
import numpy as np
from keras import ops
from mnistlab.models.layers import Deskew
from tests.test_layers import deskew_by_hand, deskew_cases
images = deskew_cases()
out = ops.convert_to_numpy(Deskew()(images))
np.testing.assert_allclose(out, deskew_by_hand(images), atol=2e-5)
print("same")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_deskew_is_the_loop_by_hand_on_the_other_backends(backend, fresh_backend_checks):
    assert fresh_backend_checks(backend, "deskew") == "same"


# The quick checks on the other backends, one fresh interpreter a backend (each pays the
# backend's and Keras's start-up, several seconds under load, once)
BACKEND_CHECKS = {
    "jax": {"pooling": JAX_CHECK, "deskew": DESKEW_CHECK},
    "torch": {"pooling": TORCH_CHECK, "deskew": DESKEW_CHECK},
}


@pytest.fixture(scope="module")
def fresh_backend_checks():
    """check(backend, name): the last line BACKEND_CHECKS[backend][name] printed in the
    backend's fresh interpreter, started when a test first asks (skipped where the backend is
    not installed); a check that raised fails the test with its traceback."""
    results = {}

    def check(backend: str, name: str) -> str:
        pytest.importorskip(backend)
        if backend not in results:
            results[backend] = fresh_python_checks(BACKEND_CHECKS[backend], KERAS_BACKEND=backend)
        return check_passed(results[backend], name, f"a fresh {backend} interpreter")

    return check


# What both backends' checks of the bfloat16 products start from: a layer's input and weights
BFLOAT16_PRODUCTS_SETUP = f"""
import sys
sys.path.insert(0, {REPO!r})
import keras, ml_dtypes, numpy as np
from mnistlab.fast.layers import BFloat16ProductConv2D, BFloat16ProductDense
from mnistlab.models.registry import create_model

def bfloat16(a):  # rounded to bfloat16, then exact in float64
    return np.asarray(a).astype(ml_dtypes.bfloat16).astype("float64")

rng = np.random.default_rng(4)
x = rng.normal(size=(6, 40)).astype("float32")
kernel, bias = rng.normal(size=(40, 5)).astype("float32"), rng.normal(size=5).astype("float32")
"""

BFLOAT16_PRODUCTS_CHECK = (
    BFLOAT16_PRODUCTS_SETUP
    + """
import jax
ours, theirs = BFloat16ProductDense(5, activation="relu"), keras.layers.Dense(5, activation="relu")
for layer in (ours, theirs):
    layer.build((None, 40))
    layer.set_weights([kernel, bias])
z = bfloat16(x) @ bfloat16(kernel) + bias  # bfloat16 products, exact sums, a float32 bias
np.testing.assert_allclose(np.asarray(ours(x)), np.maximum(z, 0), rtol=1e-5, atol=1e-5)
assert np.abs(np.asarray(theirs(x)) - np.maximum(z, 0)).max() > 1e-3  # the rounding is real

# the gradients of sum(out * r): the output's gradient g rounded to bfloat16, then products of
# bfloat16 operands summed in float32: x.T @ g for the kernel, g @ kernel.T for the input
r = rng.normal(size=(6, 5)).astype("float32")
def loss(k, inputs):
    return (ours.stateless_call([k, bias], [], inputs)[0] * r).sum()
kernel_gradient, input_gradient = map(np.asarray, jax.grad(loss, argnums=(0, 1))(kernel, x))
g = bfloat16(r * (z > 0))
np.testing.assert_allclose(kernel_gradient, bfloat16(x).T @ g, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(input_gradient, g @ bfloat16(kernel).T, rtol=1e-5, atol=1e-6)
assert np.abs(kernel_gradient - x.T.astype("float64") @ (r * (z > 0))).max() > 1e-3
# inputs of more than two axes are multiplied along the last, as Keras's Dense does
batches = rng.normal(size=(2, 3, 40)).astype("float32")
np.testing.assert_allclose(
    np.asarray(ours(batches)), np.asarray(ours(batches.reshape(6, 40))).reshape(2, 3, 5)
)

# a network trained in this precision has these layers (seam.speed_up); the run saves Keras's,
# with the same weights (seam.to_stock)
from mnistlab.core.config import TrainConfig
from mnistlab.fast import seam
from mnistlab.training.train import compile_model
model = create_model("mlp", "bfloat16_products")
compile_model(model, TrainConfig.from_dict({"precision": "bfloat16_products"}), steps_per_epoch=1)
kinds = [type(layer).__name__ for layer in model.layers]
assert kinds == ["InputLayer", "Flatten", "BFloat16ProductDense", "BFloat16ProductDense"], kinds
images = rng.random((4, 28, 28, 1)).astype("float32")
weights, products = model.get_weights(), np.asarray(model(images))
saved = seam.to_stock(model)
assert [type(layer) for layer in saved.layers[2:]] == [keras.layers.Dense] * 2
for a, b in zip(saved.get_weights(), weights):
    assert np.array_equal(a, b)
np.testing.assert_allclose(np.asarray(saved(images)), products, atol=5e-3)
print("same")
"""
)


@pytest.mark.slow  # another backend in a fresh interpreter: ~10-30 s under load
def test_bfloat16_products_round_the_operands_and_sum_in_float32_on_jax():
    pytest.importorskip("jax")
    assert fresh_python(BFLOAT16_PRODUCTS_CHECK, KERAS_BACKEND="jax") == "same"


BFLOAT16_PRODUCTS_TORCH_CHECK = (
    BFLOAT16_PRODUCTS_SETUP
    + """
import torch
from mnistlab.fast import torch_step
layer = BFloat16ProductDense(5, activation="relu")
layer.build((None, 40))
layer.set_weights([kernel, bias])
# bfloat16 operands, their sum handed back in bfloat16, then a float32 bias
z = bfloat16(bfloat16(x) @ bfloat16(kernel)) + bias
out = layer(torch.tensor(x))
assert out.dtype == torch.float32, out.dtype
np.testing.assert_allclose(out.detach().numpy(), np.maximum(z, 0), rtol=2 ** -7, atol=1e-5)
exact = np.maximum(x.astype("float64") @ kernel + bias, 0)
assert np.abs(out.detach().numpy() - exact).max() > 1e-3  # the rounding is real

# the kernel's gradient of sum(out * r): bfloat16 operands, rounded to bfloat16
r = rng.normal(size=(6, 5)).astype("float32")
(out * torch.tensor(r)).sum().backward()
gradient = layer.kernel.value.grad.numpy()
by_hand = bfloat16(x).T @ bfloat16(r * (z > 0))
np.testing.assert_allclose(gradient, by_hand, rtol=2 ** -7, atol=1e-5)  # one bfloat16 step
assert np.array_equal(gradient, bfloat16(gradient))

# the convolution: each output the sum of bfloat16 products over its 3x3 window, handed back
# in bfloat16, then a float32 bias
images = rng.normal(size=(2, 6, 6, 3)).astype("float32")
kernel = rng.normal(size=(3, 3, 3, 4)).astype("float32")
bias = rng.normal(size=4).astype("float32")
conv = BFloat16ProductConv2D(4, 3, activation="relu")
conv.build((None, 6, 6, 3))
conv.set_weights([kernel, bias])
sums = np.zeros((2, 4, 4, 4))
for i in range(4):
    for j in range(4):
        window = bfloat16(images[:, i : i + 3, j : j + 3, :])
        sums[:, i, j, :] = np.einsum("nhwc,hwcd->nd", window, bfloat16(kernel))
z = bfloat16(sums) + bias
out = conv(torch.tensor(images)).detach().numpy()
np.testing.assert_allclose(out, np.maximum(z, 0), rtol=2 ** -7, atol=1e-5)
assert out.dtype == np.float32
reference = keras.layers.Conv2D(4, 3, activation="relu")
reference.build((None, 6, 6, 3))
reference.set_weights([kernel, bias])
assert np.abs(reference(images).detach().numpy() - out).max() > 1e-3  # the rounding is real

# the networks trained in this precision (seam.speed_up) train with the lean step; a run saves
# Keras's layers (seam.to_stock), with the same weights
from mnistlab.core.config import TrainConfig
from mnistlab.fast import seam
from mnistlab.training.train import compile_model
for name, kinds in [("mlp", ["BFloat16ProductDense"] * 2),
                    ("cnn", ["BFloat16ProductConv2D"] + ["BFloat16ProductDense"] * 2)]:
    model = create_model(name, "bfloat16_products")
    config = TrainConfig.from_dict({"precision": "bfloat16_products"})
    assert compile_model(model, config, steps_per_epoch=1) == "lean"
    assert [type(layer).__name__ for layer in model.layers if "Product" in type(layer).__name__] == kinds
    digits = rng.random((4, 28, 28, 1)).astype("float32")
    weights, products = model.get_weights(), model(digits).detach().numpy()
    saved = seam.to_stock(model)
    assert not any("Product" in type(layer).__name__ for layer in saved.layers)
    assert sum(type(layer) in (keras.layers.Dense, keras.layers.Conv2D) for layer in saved.layers) == len(kinds)
    for a, b in zip(saved.get_weights(), weights):
        assert np.array_equal(a, b)
    np.testing.assert_allclose(saved(digits).detach().numpy(), products, atol=5e-3)
print("same")
"""
)


# What both backends' dropout checks share: a million ones, and the statistics of the mask
DROPOUT_SETUP = f"""
import sys
sys.path.insert(0, {REPO!r})
import numpy as np
from mnistlab.fast.layers import Dropout

count = 1_000_000
rng = np.random.default_rng(0)

def check_mask(out, keep, pairs):
    \"\"\"out: the layer's output for ones (numpy); pairs: [(first, second)] of the kept flags'
    elements that one random draw decides, or that lie side by side.\"\"\"
    values = np.unique(out).tolist()
    assert len(values) == 2 and values[0] == 0, values
    assert abs(values[1] * keep - 1) < 1e-6, values  # the kept ones scaled by 1 / keep
    kept = out.ravel() > 0
    # the share kept, within 5 standard deviations of the binomial's
    assert abs(kept.mean() - keep) < 5 * (keep * (1 - keep) / count) ** 0.5, (keep, kept.mean())
    # each pair of elements is kept independently
    for first, second in pairs(kept):
        both = (first & second).mean()
        assert abs(both - keep**2) < 5 * (keep**2 * (1 - keep**2) / (count / 2)) ** 0.5, both
"""

DROPOUT_TORCH_CHECK = (
    DROPOUT_SETUP
    + """
import torch

for rate in (0.2, 0.5, 0.9):
    keep = 1 - rate
    x = torch.ones(count // 100, 100, requires_grad=True)
    out = Dropout(rate, seed=3)(x, training=True)
    # neighbours are the two halves of one 64-bit draw
    check_mask(out.detach().numpy(), keep, lambda kept: [(kept[0::2], kept[1::2])])
    # the gradient of sum(out * r) is r times the scaled mask
    r = torch.tensor(rng.normal(size=x.shape).astype("float32"))
    (out * r).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (r * out.detach()).numpy(), rtol=1e-6)

ones = torch.ones(64, 64)
first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
mask = first(ones, training=True)
assert torch.equal(mask, second(ones, training=True))  # the same seed, the same mask
assert not torch.equal(mask, first(ones, training=True))  # the next call, a new one
assert torch.equal(first(ones, training=False), ones)  # inference: the input itself
assert torch.equal(Dropout(0.0)(ones, training=True), ones)
print("same")
"""
)


@pytest.mark.slow  # a fresh interpreter drawing many dropout masks or products: ~5-10 s
def test_dropout_on_torch_keeps_each_element_independently_at_the_rate():
    pytest.importorskip("torch")
    assert fresh_python(DROPOUT_TORCH_CHECK, KERAS_BACKEND="torch") == "same"


DROPOUT_TENSORFLOW_CHECK = (
    DROPOUT_SETUP
    + """
import tensorflow as tf

def halves_and_neighbours(kept):  # one 32-bit word decides elements i and i + count / 2
    return [(kept[: count // 2], kept[count // 2 :]), (kept[0::2], kept[1::2])]

for rate in (0.2, 0.5, 0.9):
    keep = 1 - rate
    x = tf.ones((count // 100, 100))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = Dropout(rate, seed=3)(x, training=True)
        r = tf.constant(rng.normal(size=x.shape).astype("float32"))
        total = tf.reduce_sum(out * r)
    check_mask(out.numpy(), keep, halves_and_neighbours)
    # the gradient of sum(out * r) is r times the scaled mask
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), (r * out).numpy(), rtol=1e-6)

ones = tf.ones((7, 9))  # an odd count of elements: one half-word spare
first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
mask = first(ones, training=True)
assert mask.shape == ones.shape
assert np.array_equal(mask, second(ones, training=True))  # the same seed, the same mask
assert not np.array_equal(mask, first(ones, training=True))  # the next call, a new one
assert np.array_equal(first(ones, training=False), ones)  # inference: the input itself
assert np.array_equal(Dropout(0.0)(ones, training=True), ones)
mixed = Dropout(0.2, seed=1, dtype="mixed_bfloat16")  # as in a network in mixed precision
halves = mixed(tf.ones((4, 100), "bfloat16"), training=True)
assert halves.dtype == tf.bfloat16 and sorted(set(np.asarray(halves, "float32").ravel())) == [0, 1.25]
print("same")
"""
)


@pytest.mark.slow  # a fresh interpreter drawing many dropout masks or products: ~5-10 s
def test_dropout_on_tensorflow_keeps_each_element_independently_at_the_rate():
    assert fresh_python(DROPOUT_TENSORFLOW_CHECK, KERAS_BACKEND="tensorflow") == "same"


@pytest.mark.slow  # another backend in a fresh interpreter: ~10-30 s under load
def test_bfloat16_products_round_the_operands_and_the_sum_on_torch():
    pytest.importorskip("torch")
    assert fresh_python(BFLOAT16_PRODUCTS_TORCH_CHECK, KERAS_BACKEND="torch") == "same"
