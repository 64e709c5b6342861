"""Every registered model builds, has the right shape and parameter count, and trains a step."""

import numpy as np
import pytest

from mnistlab.models.registry import REGISTRY, create_model, get_spec, to_input


def dense(inputs, units):
    return inputs * units + units


def conv(channels_in, channels_out, kernel):
    return kernel * kernel * channels_in * channels_out + channels_out


# Parameter counts worked out by hand from the layer shapes (the issue's figures).
HAND_COUNTED = {
    "mlp": dense(784, 784) + dense(784, 10),  # 623,290
    "cnn": conv(1, 32, 5) + dense(12 * 12 * 32, 128) + dense(128, 10),  # 592,074
    "larger_cnn": conv(1, 30, 5)
    + conv(30, 15, 3)
    + dense(5 * 5 * 15, 128)
    + dense(128, 50)
    + dense(50, 10),  # 59,933
    "branch_cnn": conv(1, 16, 1) + conv(1, 16, 5) + dense(14 * 14 * 16, 128) + dense(128, 10),
}


def test_hand_counts_match_the_issue():
    assert HAND_COUNTED == {
        "mlp": 623_290,
        "cnn": 592_074,
        "larger_cnn": 59_933,
        "branch_cnn": 403_274,
    }


@pytest.mark.parametrize("name", sorted(HAND_COUNTED))
def test_tutorial_parameter_counts(name):
    assert create_model(name).count_params() == HAND_COUNTED[name]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_the_registry_counts_each_networks_parameters_as_built(name):
    # `mnistlab models` lists these counts without building anything
    assert get_spec(name).parameters == create_model(name).count_params()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_model_builds_predicts_and_trains_one_step(name, tiny_data):
    import keras

    (x_train, y_train), _ = tiny_data
    model = create_model(name)
    probabilities = np.asarray(model(to_input(x_train[:4]), training=False))
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.compile("adam", "categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(to_input(x_train[:32]), keras.utils.to_categorical(y_train[:32], 10))
    after = model.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=False))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown model 'cnnn'\. Available: mlp, cnn"):
        get_spec("cnnn")


def test_to_input_scales_and_adds_channel():
    images = np.array([[[0, 255] * 14] * 28], dtype=np.uint8)
    scaled = to_input(images)
    assert scaled.shape == (1, 28, 28, 1) and scaled.dtype == np.float32
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    with pytest.raises(ValueError, match="shape"):
        to_input(np.zeros((2, 32, 32)))


def test_to_input_gives_every_pixel_value_over_255_and_leaves_its_argument_alone():
    values = np.resize(np.arange(256, dtype=np.uint8), (2, 28, 28))
    original = values.copy()
    floats = values.astype(np.float64)
    scaled = to_input(values)
    # the reference: each of the 256 values divided in float32, one at a time
    reference = np.array([np.float32(v) / np.float32(255) for v in range(256)], dtype=np.float32)
    np.testing.assert_array_equal(scaled[..., 0].ravel(), reference[values.ravel()])
    assert np.array_equal(to_input(floats), scaled)  # a float array scales the same way
    np.testing.assert_array_equal(values, original)  # neither input was scaled in place
    np.testing.assert_array_equal(floats, original.astype(np.float64))


@pytest.mark.parametrize("name", ["mlp", "cnn", "best"])
def test_mixed_bfloat16_computes_the_float32_network_in_bfloat16(name, tiny_data):
    """Same layers and weights as the float32 network; hidden layers compute in bfloat16 and
    keep float32 weights, the output layer computes in float32; Keras's global policy is left
    as it was."""
    import keras

    (x_train, _), _ = tiny_data
    mixed = create_model(name, "mixed_bfloat16")
    plain = create_model(name)
    assert keras.config.dtype_policy().name == "float32"
    assert [type(layer) for layer in mixed.layers] == [type(layer) for layer in plain.layers]
    assert all(weight.dtype == "float32" for weight in mixed.weights)
    hidden = [layer for layer in mixed.layers[1:-1] if layer.weights]
    assert hidden and all(layer.compute_dtype == "bfloat16" for layer in hidden)
    assert mixed.layers[-1].compute_dtype == "float32"
    plain.set_weights(mixed.get_weights())
    images = to_input(x_train[:16])
    probabilities = np.asarray(mixed(images, training=False))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # bfloat16 keeps 8 significant bits: the same network, within that rounding
    np.testing.assert_allclose(probabilities, plain(images, training=False), atol=0.03)


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="float32, mixed_bfloat16"):
        create_model("cnn", "float16")
