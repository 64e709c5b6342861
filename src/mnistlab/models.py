"""The model registry: every network is a small builder function registered by name.

The CLI (``mnistlab models``, ``mnistlab train NAME``), the tests and the results tables all
iterate REGISTRY, so adding a model is one builder function and one ``@register`` line.
Every builder takes 28x28x1 float inputs scaled to [0, 1] (channels-last) and returns a
compiled-free ``keras.Model`` ending in a 10-way softmax.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

INPUT_SHAPE = (28, 28, 1)  # height, width, channels
NUM_CLASSES = 10  # digits 0-9
MEASURED_FILE = os.path.join(os.path.dirname(__file__), "measured.json")  # written by benchmarks


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    description: str
    tutorial_error: float | None = None  # percent test error the tutorial reports, if any
    recipe: dict | None = None  # training defaults that differ from config.TrainConfig's
    # TensorFlow's oneDNN kernels for this network (config.ONEDNN_ENV): True turns them on, False
    # off, where they measured slower (the MLP). Applied where a process trains this network
    # alone (the command line; backend.use_backend); the user's own setting of the variable wins
    onednn: bool = True


REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str,
    description: str,
    tutorial_error: float | None = None,
    *,
    onednn: bool = True,
    **recipe,
):
    """Decorator that adds a builder to REGISTRY under ``name``."""

    def wrap(builder: Callable) -> Callable:
        REGISTRY[name] = ModelSpec(
            name, builder, description, tutorial_error, recipe or None, onednn
        )
        return builder

    return wrap


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"Unknown model '{name}'. Available: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def create_model(name: str, precision: str = "float32"):
    """Builds a fresh, untrained model by registry name.

    Args:
        name: a key of REGISTRY, e.g. "cnn".
        precision: "float32", or "mixed_bfloat16": every layer computes in bfloat16 and keeps
            float32 weights, except the output layer, which computes in float32 so that the
            probabilities and the loss keep their precision.

    Returns:
        A keras.Model mapping (batch, 28, 28, 1) float32 in [0, 1] to (batch, 10) float32
        probabilities.

    Example:
        >>> model = create_model("mlp")
        >>> model.count_params()
        623290
    """
    from mnistlab.config import PRECISIONS

    spec = get_spec(name)
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'. Available: {', '.join(PRECISIONS)}.")
    from mnistlab.backend import keras as keras_module

    keras = keras_module()  # makes sure the backend is chosen before the builder imports keras
    if precision == "float32":
        return spec.builder()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = spec.builder()
    finally:
        keras.config.set_dtype_policy(previous)
    output_layer = model.layers[-1]

    def float32_output(layer):
        config = layer.get_config()
        if layer is output_layer:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=float32_output)


def measured_errors() -> dict:
    """Our measured test errors per model, as benchmarks/reproduce_tutorial.py recorded them."""
    try:
        with open(MEASURED_FILE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


# --- The tutorial's four networks -------------------------------------------------------


@register(
    "mlp",
    "baseline multi-layer perceptron: one hidden layer of 784 units",
    1.74,
    onednn=False,  # two matrix products: oneDNN slower (results/probe_onednn_mlp.md)
)
def mlp():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Flatten()(inputs)  # (784,)
    x = layers.Dense(784, activation="relu", kernel_initializer="normal")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer="normal")(x)
    return keras.Model(inputs, outputs, name="mlp")


@register("cnn", "simple CNN: one 5x5 convolution, max pooling, one dense layer", 1.10)
def cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(32, 5, activation="relu")(inputs)  # (24, 24, 32)
    x = layers.MaxPooling2D(2)(x)  # (12, 12, 32)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (4608,)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


@register("larger_cnn", "larger CNN: two convolution/pooling stages, two dense layers", 0.89)
def larger_cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(30, 5, activation="relu")(inputs)  # (24, 24, 30)
    x = layers.MaxPooling2D(2)(x)  # (12, 12, 30)
    x = layers.Conv2D(15, 3, activation="relu")(x)  # (10, 10, 15)
    x = layers.MaxPooling2D(2)(x)  # (5, 5, 15)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (375,)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(50, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="larger_cnn")


@register(
    "branch_cnn", "two-path block (1x1 linear + 5x5 relu) added element-wise, then a CNN head"
)
def branch_cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    left = layers.Conv2D(16, 1, padding="same", name="branch_left")(inputs)  # (28, 28, 16)
    right = layers.Conv2D(16, 5, padding="same", activation="relu", name="branch_right")(inputs)
    x = layers.Add(name="branch_add")([left, right])  # (28, 28, 16)
    x = layers.MaxPooling2D(2)(x)  # (14, 14, 16)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (3136,)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="branch_cnn")


# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the registered models")
    parser.add_argument("--json", action="store_true", help="print the registry as JSON")
    parser.set_defaults(func=_models_command)


def count_parameters(name: str) -> int:
    return create_model(name).count_params()


def _models_command(args) -> int:
    measured = measured_errors()
    rows = []
    for spec in REGISTRY.values():
        ours = measured.get(spec.name, {})
        rows.append(
            {
                "name": spec.name,
                "parameters": count_parameters(spec.name),
                "tutorial_error": spec.tutorial_error,
                "our_error": ours.get("error_mean"),
                "our_error_std": ours.get("error_std"),
                "runs": ours.get("runs"),
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<12} {'parameters':>10} {'tutorial':>9} {'ours':>14}  description")
    for row in rows:
        tutorial = f"{row['tutorial_error']:.2f}%" if row["tutorial_error"] is not None else "-"
        ours = (
            f"{row['our_error']:.2f}±{row['our_error_std']:.2f}%"
            if row["our_error"] is not None
            else "not measured"
        )
        print(
            f"{row['name']:<12} {row['parameters']:>10,} {tutorial:>9} {ours:>14}  {row['description']}"
        )
    return 0


def to_input(images):
    """Scales uint8 digit images to the models' input.

    Args:
        images: (N, 28, 28) or (N, 28, 28, 1) array, uint8 in [0, 255] (light ink on black).

    Returns:
        (N, 28, 28, 1) float32 array in [0, 1].
    """
    import numpy as np

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != INPUT_SHAPE:
        raise ValueError(
            f"Expected images of shape (N, 28, 28) or (N, 28, 28, 1), got {images.shape}."
        )
    return images.astype("float32") / 255.0


# --- Going further ----------------------------------------------------------------------
# Beyond the tutorial: batch normalisation, strided convolutions instead of pooling, heavy
# dropout, trained with affine augmentation, label smoothing and a one-cycle schedule, after
# Chris Deotte's Kaggle recipe ("How to choose CNN architecture MNIST"). `deotte` is his
# network (15M multiply-adds per image); `best` shrinks the map with strided 3x3 convs early
# (6.5M), to fit a shared 2-core CPU. It holds out 1,000 images, not 5,000. 20 epochs (60-70 s
# each on an AVX2 EPYC, 23 minutes) reached 0.41% test error over 3 seeds (results/best.md);
# 40 epochs (16-18 s each on an AVX-512 EPYC, 11 minutes) reached 0.36%, with validation error
# 0.30% against 0.37% for the same seeds and folds, which decided the change (best-e40.md).


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, padding: str = "valid"):
    """Convolution + ReLU, then batch normalisation (the order Deotte's recipe uses)."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")(x)
    return layers.BatchNormalization()(x)


@register(
    "best",
    "modern CNN sized for a 2-core CPU: conv-BN blocks, strided 3x3 convs, dropout",
    epochs=40,  # 11 minutes on a 2-core AVX-512 EPYC (benchmarks/results/best-e40.md)
    batch_size=128,
    learning_rate=0.003,
    schedule="onecycle",
    augment="affine",
    label_smoothing=0.1,
    val_size=1000,  # more to learn from; the epoch count is fixed, so nothing is chosen on it
)
def best():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = _conv_bn(inputs, 32, 3)  # (26, 26, 32)
    x = _conv_bn(x, 32, 3, strides=2, padding="same")  # (13, 13, 32)
    x = layers.Dropout(0.25)(x)
    x = _conv_bn(x, 64, 3)  # (11, 11, 64)
    x = _conv_bn(x, 64, 3, strides=2, padding="same")  # (6, 6, 64)
    x = layers.Dropout(0.25)(x)
    x = _conv_bn(x, 128, 3)  # (4, 4, 128)
    x = layers.Flatten()(x)  # (2048,)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="best")


@register(
    "deotte",
    "Deotte's Kaggle CNN: conv-BN blocks, strided 5x5 convs instead of pooling, dropout 0.4",
    epochs=45,
    batch_size=128,
    learning_rate=0.003,
    schedule="onecycle",
    augment="affine",
    label_smoothing=0.1,
)
def deotte():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = _conv_bn(inputs, 32, 3)  # (26, 26, 32)
    x = _conv_bn(x, 32, 3)  # (24, 24, 32)
    x = _conv_bn(x, 32, 5, strides=2, padding="same")  # (12, 12, 32)
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, 64, 3)  # (10, 10, 64)
    x = _conv_bn(x, 64, 3)  # (8, 8, 64)
    x = _conv_bn(x, 64, 5, strides=2, padding="same")  # (4, 4, 64)
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, 128, 4)  # (1, 1, 128)
    x = layers.Flatten()(x)  # (128,)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="deotte")


# The speedrun network lives beside its recipe and command; importing it registers it here.
import mnistlab.speedrun  # noqa: E402,F401
