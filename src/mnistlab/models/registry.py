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

from mnistlab.core.backend import keras as keras_module
from mnistlab.core.backend import resolve_precision

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
    # the backends on which "auto" trains it in bfloat16_products (fast.layers.BFloat16ProductDense,
    # BFloat16ProductConv2D, swapped in at training time), where that was measured faster at the same test error
    bfloat16_products: tuple[str, ...] = ()
    # the backend the command line trains it on where the user names none (backend.use_backend):
    # the one that ran its main job fastest (benchmarks/main_job.py), if installed; None:
    # config.DEFAULT_BACKEND
    backend: str | None = None
    # trainable and other weights of the built network (model.count_params()), kept here so
    # that listing the registry builds nothing and loads no Keras; test_models checks each
    parameters: int | None = None


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
    parameters: int | None = None,
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
            parameters,
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
            PyTorch), which builds the float32 network: training (fast.seam.speed_up) swaps its
            Dense and Conv2D layers for bfloat16-product ones; or "auto", which is one of
            these, as ``backend.resolve_precision`` decides for this network and machine.

    Returns:
        A keras.Model mapping (batch, 28, 28, 1) float32 in [0, 1] to (batch, 10) float32
        probabilities.

    Example:
        >>> model = create_model("mlp")
        >>> model.count_params()
        623290
    """

    spec = get_spec(name)
    precision = resolve_precision(precision, spec)
    keras = keras_module()  # makes sure the backend is chosen before the builder imports keras
    if precision in ("float32", "bfloat16_products"):  # the products: fast.seam, in training
        return spec.builder()
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
        return model
    copy = _clone_in_float32(model, lambda layer_name: True)
    copy.set_weights(model.get_weights())
    return copy


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


def count_parameters(name: str) -> int:
    """The network's parameter count: the registry's (``ModelSpec.parameters``), without
    building it; a network registered without one is built to count them."""
    spec = get_spec(name)
    return spec.parameters if spec.parameters is not None else create_model(name).count_params()


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
