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
    # JAX: XLA hands its matrix products to YNNPACK (config.JAX_YNN_FLAG) for this network: True
    # where that measured faster (the CNNs), False where slower (the MLP's two large dots).
    # Applied where a process trains this network alone, as onednn is
    jax_ynn: bool = True
    # precision "auto" trains it in mixed bfloat16 where that pays (backend.resolve_precision):
    # only for networks whose test error was measured to hold in bfloat16
    bfloat16: bool = False
    # the backends on which "auto" trains it in bfloat16_products (layers.BFloat16ProductDense,
    # BFloat16ProductConv2D), where that was measured faster at the same test error
    bfloat16_products: tuple[str, ...] = ()
    # the backend the command line trains it on where the user names none (backend.use_backend):
    # the one that ran its main job fastest (benchmarks/main_job.py), if installed; None:
    # config.DEFAULT_BACKEND
    backend: str | None = None


REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str,
    description: str,
    tutorial_error: float | None = None,
    *,
    onednn: bool = True,
    jax_ynn: bool = True,
    bfloat16: bool = False,
    bfloat16_products: tuple[str, ...] = (),
    backend: str | None = None,
    **recipe,
):
    """Decorator that adds a builder to REGISTRY under ``name``."""

    def wrap(builder: Callable) -> Callable:
        REGISTRY[name] = ModelSpec(
            name,
            builder,
            description,
            tutorial_error,
            recipe or None,
            onednn,
            jax_ynn,
            bfloat16,
            bfloat16_products,
            backend,
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
            probabilities and the loss keep their precision; or "bfloat16_products" (JAX,
            PyTorch): float32, but every Dense layer a ``layers.BFloat16ProductDense`` and every
            Conv2D a ``layers.BFloat16ProductConv2D``; or "auto", which
            is one of these, as ``backend.resolve_precision`` decides for this network and
            machine.

    Returns:
        A keras.Model mapping (batch, 28, 28, 1) float32 in [0, 1] to (batch, 10) float32
        probabilities.

    Example:
        >>> model = create_model("mlp")
        >>> model.count_params()
        623290
    """
    from mnistlab.backend import keras as keras_module
    from mnistlab.backend import resolve_precision

    spec = get_spec(name)
    precision = resolve_precision(precision, name)
    keras = keras_module()  # makes sure the backend is chosen before the builder imports keras
    if precision == "float32":
        return spec.builder()
    if precision == "bfloat16_products":
        return _clone_products_as(spec.builder(), bfloat16=True)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = spec.builder()
    finally:
        keras.config.set_dtype_policy(previous)
    output_name = model.layers[-1].name
    return _clone_in_float32(model, lambda layer_name: layer_name == output_name)


def float32_copy(model):
    """The same network with the same weights, every layer computing in float32.

    A network trained in mixed bfloat16 keeps float32 weights, so this loses nothing; it is
    what a run saves, so that evaluation, export, visualisation and serving meet the plain
    float32 network whatever precision it trained in.

    Args:
        model: a keras.Model, e.g. one built by ``create_model(name, "mixed_bfloat16")``.

    Returns:
        A new keras.Model (the same object where every layer already computes in float32).
    """
    if all(layer.compute_dtype == "float32" for layer in model.layers):
        if not any(type(layer).__name__ in PRODUCT_CLASSES.values() for layer in model.layers):
            return model
        copy = _clone_products_as(model, bfloat16=False)  # back to Keras's Dense and Conv2D
    else:
        copy = _clone_in_float32(model, lambda layer_name: True)
    copy.set_weights(model.get_weights())
    return copy


# Keras's layer classes and the ones that compute their products in bfloat16
# (precision bfloat16_products), as a saved model's config names them
PRODUCT_CLASSES = {"Dense": "BFloat16ProductDense", "Conv2D": "BFloat16ProductConv2D"}


def _clone_products_as(model, bfloat16: bool):
    """A fresh copy of the functional model (new weights, the same layer names and settings)
    whose Dense and Conv2D layers are mnistlab's bfloat16-product ones (bfloat16=True) or
    Keras's own (False), whichever they were."""
    import keras

    import mnistlab.layers  # noqa: F401  (registers the product layers for from_config)

    config = model.get_config()
    for layer in config["layers"]:
        for keras_name, products_name in PRODUCT_CLASSES.items():
            if layer["class_name"] in (keras_name, products_name):
                if bfloat16:
                    naming = (products_name, "mnistlab.layers", f"mnistlab>{products_name}")
                else:
                    naming = (keras_name, "keras.layers", None)
                layer.update(zip(("class_name", "module", "registered_name"), naming, strict=True))
    return keras.Model.from_config(config)


def _clone_in_float32(model, chosen: Callable):
    """A fresh copy of the functional model (new weights, the same layer names) whose layers for
    which chosen(layer name) is true compute in float32; the others keep their dtype policy."""
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer" and chosen(layer["name"]):
            layer["config"]["dtype"] = "float32"
    return keras.Model.from_config(config)


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
    jax_ynn=False,  # JAX: YNNPACK dots slower (results/speed-mlp-60k-jax-ynn/speed.md)
    # 1.58x a step on JAX (with their own gradient, layers._bfloat16_products_jax), 1.32x on
    # PyTorch, at the same error (results/products_probe-*-mlp.md, reproduce-jax-mlp-*,
    # reproduce-torch-mlp-*)
    bfloat16_products=("jax", "torch"),
    # the command line's default where JAX is installed: its main job (10 epochs, start to
    # finish) ran fastest there, the CNNs' on TensorFlow (results/main-job/main_job.md)
    backend="jax",
)
def mlp():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Flatten()(inputs)  # (784,)
    x = layers.Dense(784, activation="relu", kernel_initializer="normal")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer="normal")(x)
    return keras.Model(inputs, outputs, name="mlp")


# bfloat16=True: the same seeds trained to the same test error within its spread in mixed
# bfloat16, 1.35x-2x as fast on an AVX-512 BF16 CPU (results/reproduce-bf16.md against
# reproduce-avx512.md); the MLP's error rose 0.12 points there, so it stays in float32.
# bfloat16_products=("torch",): on PyTorch the three CNNs trained to the same test error in
# bfloat16 products (results/reproduce-torch-cnns-bf16-products.md against float32 in
# reproduce-torch-cnns-f32.md), but only cnn's step was faster once the lean step pools first
# (1.12x and 1.18x in two probes; larger_cnn 1.01x and 0.89x; branch_cnn 0.93x before:
# products_probe-torch-*.md, docs/speed.md), so only cnn has it.


@register(
    "cnn",
    "simple CNN: one 5x5 convolution, max pooling, one dense layer",
    1.10,
    bfloat16=True,
    bfloat16_products=("torch",),
)
def cnn():
    import keras
    from keras import layers

    from mnistlab.layers import Dropout, MaxPooling2D

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(32, 5, activation="relu")(inputs)  # (24, 24, 32)
    x = MaxPooling2D(2)(x)  # (12, 12, 32)
    x = Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (4608,)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


@register(
    "larger_cnn",
    "larger CNN: two convolution/pooling stages, two dense layers",
    0.89,
    bfloat16=True,
)
def larger_cnn():
    import keras
    from keras import layers

    from mnistlab.layers import Dropout, MaxPooling2D

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(30, 5, activation="relu")(inputs)  # (24, 24, 30)
    x = MaxPooling2D(2)(x)  # (12, 12, 30)
    x = layers.Conv2D(15, 3, activation="relu")(x)  # (10, 10, 15)
    x = MaxPooling2D(2)(x)  # (5, 5, 15)
    x = Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (375,)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(50, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="larger_cnn")


@register(
    "branch_cnn",
    "two-path block (1x1 linear + 5x5 relu) added element-wise, then a CNN head",
    bfloat16=True,
)
def branch_cnn():
    import keras
    from keras import layers

    from mnistlab.layers import Dropout, MaxPooling2D

    inputs = keras.Input(INPUT_SHAPE)
    left = layers.Conv2D(16, 1, padding="same", name="branch_left")(inputs)  # (28, 28, 16)
    right = layers.Conv2D(16, 5, padding="same", activation="relu", name="branch_right")(inputs)
    x = layers.Add(name="branch_add")([left, right])  # (28, 28, 16)
    x = MaxPooling2D(2)(x)  # (14, 14, 16)
    x = Dropout(0.2)(x)
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
    from mnistlab.backend import default_backend

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
                # where `mnistlab train NAME` trains it if the user names no backend
                "backend": default_backend(spec.name),
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'model':<12} {'parameters':>10} {'tutorial':>9} {'ours':>14} {'backend':<10}  "
        "description"
    )
    for row in rows:
        tutorial = f"{row['tutorial_error']:.2f}%" if row["tutorial_error"] is not None else "-"
        ours = (
            f"{row['our_error']:.2f}±{row['our_error_std']:.2f}%"
            if row["our_error"] is not None
            else "not measured"
        )
        print(
            f"{row['name']:<12} {row['parameters']:>10,} {tutorial:>9} {ours:>14} "
            f"{row['backend']:<10}  {row['description']}"
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
    # Divided in place: one float32 copy, not two (the same values as astype(...) / 255.0).
    scaled = aligned_empty(images.shape, "float32")
    scaled[...] = images
    scaled /= np.float32(255.0)
    return scaled


ALIGNMENT = 64  # bytes: what XLA's CPU client needs to use a host array where it lies


def aligned_empty(shape, dtype):
    """np.empty whose data starts on a 64-byte boundary. JAX on the CPU then takes the array
    as it is, without a copy (jax_step keeps the training images on the device so)."""
    import numpy as np

    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start : start + size].view(dtype).reshape(shape)


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


# The recipe `best` and `best5` share: 40 epochs (11 minutes for `best` on a 2-core AVX-512
# EPYC, benchmarks/results/best-e40.md) and 1,000 held-out images, for more to learn from (the
# epoch count is fixed, so nothing is chosen on them).
STRIDED_RECIPE = dict(
    epochs=40,
    batch_size=128,
    learning_rate=0.003,
    schedule="onecycle",
    augment="affine",
    label_smoothing=0.1,
    val_size=1000,
)


def _strided_cnn(name: str, kernel: int, deskew: bool = False):
    """`best`'s layout with ``kernel`` x ``kernel`` kernels in its first four convolutions.

    Two valid convolutions, each followed by a strided 'same' one that halves the map, then a
    3x3 convolution to 128 channels and the classifier. Map sizes for kernel 3 (`best`):
    26, 13, 11, 6, 4 (2,048 features); for kernel 5 (`best5`): 24, 12, 8, 4, 2 (512 features).
    With ``deskew``, a Deskew layer straightens each image before the first convolution.
    """
    import keras
    from keras import layers

    from mnistlab.layers import Deskew, Dropout

    inputs = keras.Input(INPUT_SHAPE)
    x = Deskew()(inputs) if deskew else inputs
    x = _conv_bn(x, 32, kernel)
    x = _conv_bn(x, 32, kernel, strides=2, padding="same")
    x = Dropout(0.25)(x)
    x = _conv_bn(x, 64, kernel)
    x = _conv_bn(x, 64, kernel, strides=2, padding="same")
    x = Dropout(0.25)(x)
    x = _conv_bn(x, 128, 3)
    x = layers.Flatten()(x)
    x = Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


@register(
    "best",
    "modern CNN sized for a 2-core CPU: conv-BN blocks, strided 3x3 convs, dropout",
    **STRIDED_RECIPE,
)
def best():
    return _strided_cnn("best", 3)


# `best5` is `best` with 5x5 kernels in its first four convolutions: the same depth, strides
# and recipe, a wider receptive field at each layer (9.4M multiply-adds an image). It is there
# for ensembles: An et al. (2020) reach their best MNIST ensembles by mixing networks that differ
# only in kernel size (3, 5, 7), whose mistakes differ more than those of seeds of one design.


@register(
    "best5",
    "best with 5x5 kernels: the same recipe, another receptive field, for mixed ensembles",
    **STRIDED_RECIPE,
)
def best5():
    return _strided_cnn("best5", 5)


# `best_deskew` is `best` fed deskewed digits: a Deskew layer (layers.py) shears each image
# upright by its moments, in training (after the augmentation) and at inference alike. Also
# there for ensembles: Ciresan et al.'s multi-column networks (0.23%) drew their columns'
# differences from differently preprocessed inputs rather than from seeds alone.


@register(
    "best_deskew",
    "best on deskewed digits (each image sheared upright by its moments), for mixed ensembles",
    **STRIDED_RECIPE,
)
def best_deskew():
    return _strided_cnn("best_deskew", 3, deskew=True)


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

    from mnistlab.layers import Dropout

    inputs = keras.Input(INPUT_SHAPE)
    x = _conv_bn(inputs, 32, 3)  # (26, 26, 32)
    x = _conv_bn(x, 32, 3)  # (24, 24, 32)
    x = _conv_bn(x, 32, 5, strides=2, padding="same")  # (12, 12, 32)
    x = Dropout(0.4)(x)
    x = _conv_bn(x, 64, 3)  # (10, 10, 64)
    x = _conv_bn(x, 64, 3)  # (8, 8, 64)
    x = _conv_bn(x, 64, 5, strides=2, padding="same")  # (4, 4, 64)
    x = Dropout(0.4)(x)
    x = _conv_bn(x, 128, 4)  # (1, 1, 128)
    x = layers.Flatten()(x)  # (128,)
    x = Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="deotte")


# The speedrun network lives beside its recipe and command; importing it registers it here.
import mnistlab.speedrun  # noqa: E402,F401
