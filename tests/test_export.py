"""ONNX export: the converted graph gives Keras's own answers (the reference), layer by layer."""

import numpy as np
import pytest

from tests.conftest import real_data_path, run_cli, synthetic_digits

pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4  # largest accepted probability difference, as the task and export.py say


def onnx_answers(model, images, first_layer=False):
    from mnistlab.models.registry import to_input
    from mnistlab.serving.export import onnx_session
    from mnistlab.serving.onnx_graph import INPUT_NAME, keras_to_onnx

    session = onnx_session(keras_to_onnx(model, first_layer=first_layer).SerializeToString())
    return session.run(None, {INPUT_NAME: to_input(images)})


def keras_answers(model, images):
    from mnistlab.models.registry import to_input

    return np.asarray(model(to_input(images), training=False))


def assert_matches(model, images):
    expected = keras_answers(model, images)
    actual = onnx_answers(model, images)[0]
    assert actual.shape == expected.shape
    assert np.array_equal(actual.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)


def test_trained_model_matches_keras_on_tiny_and_synthetic_images(trained_run, tiny_data):
    from mnistlab.models.saved import load_model
    from mnistlab.serving.export import check_images

    model = load_model(trained_run)
    _, (x_test, y_test) = tiny_data
    assert_matches(model, x_test)  # 300 tiny test digits, which this model knows
    assert (onnx_answers(model, x_test)[0].argmax(1) == y_test).mean() > 0.9
    assert_matches(model, check_images(300))  # strokes and noise it has never seen


def randomize(model, seed=0):
    """Random weights of a realistic scale, and batch-norm statistics far from (0, 1).

    Untrained networks give nearly uniform probabilities; scaled-up random weights give
    confident, varied answers, so argmax and every layer's arithmetic are really compared.
    """
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = [
                rng.uniform(0.5, 1.5, w.shape).astype("float32")
                if i in (0, 3)  # gamma, moving variance: positive
                else rng.normal(0, 0.5, w.shape).astype("float32")
                for i, w in enumerate(weights)
            ]
        else:
            fan_in = np.prod(weights[0].shape[:-1])
            weights = [
                rng.normal(0, 2.0 / np.sqrt(fan_in), w.shape).astype("float32") for w in weights
            ]
        layer.set_weights(weights)
    return model


def all_registered():
    from mnistlab.models.registry import REGISTRY

    return sorted(REGISTRY)


@pytest.mark.parametrize("name", all_registered())
def test_every_registered_model_exports_exactly(name):
    from mnistlab.models.registry import create_model
    from mnistlab.serving.export import check_images

    model = randomize(create_model(name))
    images = np.concatenate([check_images(150), synthetic_digits(150, seed=4)[0]])
    assert_matches(model, images)
    probabilities = keras_answers(model, images)
    assert len(set(probabilities.argmax(1).tolist())) > 1  # varied answers, not one class


def test_every_supported_layer_kind_in_one_model():
    """Rescaling, strided 'same' convolutions, batch norm, ReLU and swish, concatenation,
    average pooling with padding, Dense on feature maps, global pooling, Softmax layer."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)  # (14, 14, 8)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    y = layers.Conv2D(8, 3, padding="same", activation="swish", dilation_rate=2)(x)
    x = layers.Concatenate()([x, y])  # (14, 14, 16)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)  # (7, 7, 16)
    x = layers.Dense(6, activation="tanh")(x)  # on the channel axis
    a = layers.GlobalAveragePooling2D()(x)
    b = layers.GlobalMaxPooling2D()(x)
    x = layers.Add()([a, b])
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(10)(x)
    outputs = layers.Softmax()(x)
    model = randomize(keras.Model(inputs, outputs, name="zoo"), seed=1)
    from mnistlab.serving.export import check_images

    assert_matches(model, check_images(300))


def test_sequential_model_exports():
    import keras
    from keras import layers

    from mnistlab.serving.export import check_images

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    assert_matches(randomize(model, seed=2), check_images(200))


def test_ensemble_of_nested_models_exports_with_its_first_layer():
    from mnistlab.models.registry import create_model
    from mnistlab.serving.export import check_images
    from mnistlab.serving.inference import KerasPredictor, OnnxPredictor
    from mnistlab.serving.onnx_graph import keras_to_onnx
    from mnistlab.training.ensemble import average_models

    members = [
        randomize(create_model(name), seed) for seed, name in enumerate(["cnn", "larger_cnn"])
    ]
    ensemble = average_models(members)
    images = check_images(200)
    assert_matches(ensemble, images)
    expected = np.mean([keras_answers(member, images) for member in members], axis=0)
    np.testing.assert_allclose(onnx_answers(ensemble, images)[0], expected, atol=TOLERANCE)
    # the first layer shown for an ensemble: the first member's first convolution
    onnx_predictor = OnnxPredictor(keras_to_onnx(ensemble, first_layer=True).SerializeToString())
    keras_predictor = KerasPredictor(ensemble)
    assert onnx_predictor.first_layer_shape == keras_predictor.first_layer_shape == (24, 24, 32)
    np.testing.assert_allclose(
        onnx_predictor.predict_with_first_layer(images[:4])[1],
        keras_predictor.predict_with_first_layer(images[:4])[1],
        atol=1e-4,
    )


def test_weighted_ensemble_exports():
    from mnistlab.models.registry import create_model
    from mnistlab.serving.export import check_images
    from mnistlab.training.ensemble import average_models

    members = [randomize(create_model(name), seed) for seed, name in enumerate(["cnn", "mlp"])]
    ensemble = average_models(members, weights=[1, 4])
    images = check_images(200)
    expected = 0.2 * keras_answers(members[0], images) + 0.8 * keras_answers(members[1], images)
    np.testing.assert_allclose(onnx_answers(ensemble, images)[0], expected, atol=TOLERANCE)


def test_first_layer_output_is_keras_first_layer(trained_run):
    import keras

    from mnistlab.models.registry import to_input
    from mnistlab.models.saved import load_model

    model = load_model(trained_run)
    images = synthetic_digits(20, seed=6)[0]
    probabilities, first = onnx_answers(model, images, first_layer=True)
    conv = model.layers[1]
    expected = np.asarray(keras.Model(model.inputs, conv.output)(to_input(images)))
    assert first.shape == expected.shape == (20, 24, 24, 32)  # channels-last, as Keras gives it
    np.testing.assert_allclose(first, expected, atol=1e-4)
    np.testing.assert_allclose(probabilities, keras_answers(model, images), atol=TOLERANCE)


def test_unsupported_layer_is_named():
    import keras
    from keras import layers

    from mnistlab.serving.onnx_graph import keras_to_onnx

    inputs = keras.Input((28, 28, 1))
    x = layers.UpSampling2D(name="grow")(inputs)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    with pytest.raises(ValueError, match="layer 'grow' of type UpSampling2D"):
        keras_to_onnx(keras.Model(inputs, outputs))
    with pytest.raises(ValueError, match="activation 'hard_sigmoid'"):
        keras_to_onnx(
            keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="hard_sigmoid")])
        )


def test_disagreeing_export_is_refused(trained_run):
    from mnistlab.models.saved import load_model
    from mnistlab.serving.export import verify
    from mnistlab.serving.onnx_graph import keras_to_onnx

    model = load_model(trained_run)
    proto = keras_to_onnx(model)
    bias = next(t for t in proto.graph.initializer if t.dims == [10])  # the output layer's bias
    bias.raw_data = (
        (np.frombuffer(bias.raw_data, np.float32) + [5, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .astype(np.float32)
        .tobytes()
    )
    with pytest.raises(ValueError, match="disagrees with Keras"):
        verify(model, proto.SerializeToString(), check="synthetic")


def test_export_command_writes_a_checked_file(trained_run, tmp_path, capsys):
    """Checked on the MNIST test set when $MNISTLAB_DATA is set (CI), else on check images.

    The command runs in this process (mnistlab.commands.main.main), sparing a second TensorFlow start.
    """
    from mnistlab.commands.main import main
    from mnistlab.serving.export import check_images
    from mnistlab.serving.inference import load_predictor

    out = str(tmp_path / "cnn.onnx")
    assert main(["export", trained_run, "--format", "onnx", "--out", out]) == 0
    printed = capsys.readouterr().out
    if real_data_path():
        assert "MNIST test set: 10000/10000 predictions equal" in printed
    else:
        assert "synthetic check images: 500/500 predictions equal" in printed
    predictor = load_predictor(out)  # the file alone, no Keras
    assert predictor.name == "cnn" and predictor.runtime == "onnx"
    keras_predictor = load_predictor(trained_run, runtime="keras")
    images = check_images(100)
    np.testing.assert_allclose(
        predictor.predict(images), keras_predictor.predict(images), atol=TOLERANCE
    )


def test_export_command_errors_are_one_line():
    result = run_cli("export", "cnn")
    assert result.returncode == 2 and "architecture, not a trained model" in result.stderr
    result = run_cli("export", "--format", "tflite")
    assert result.returncode == 2 and "invalid choice" in result.stderr
