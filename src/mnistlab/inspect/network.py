"""Pictures of what a network learned: first-layer filters, feature maps, filter maximisation."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from mnistlab.core.backend import keras
from mnistlab.inspect.pictures import CURVES_INCHES, DPI, TITLE_POINTS, Picture, _save, image_grid
from mnistlab.models.registry import to_input

MAX_PANELS = 64  # feature maps or filters drawn at most (the first ones)
MAX_STEPS = 10_000  # gradient-ascent steps accepted at most
MAXIMIZE_STEPS = 60  # gradient-ascent steps: enough for clear stripes and edges in a trained cnn
MAXIMIZE_START = (0.5, 0.1)  # gray level, uniform noise span of the ascent's start image
CONV_MODELS_HINT = "a CNN such as cnn, larger_cnn or branch_cnn"


# --- inside a network --------------------------------------------------------------------


def conv_layers(model) -> list:
    """The model's 2-D convolution layers, in order."""
    return [layer for layer in model.layers if _is_conv(layer)]


def _is_conv(layer) -> bool:
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and len(kernel.shape) == 4


def inspected(model):
    """The network whose layers the pictures show, and what to call it in titles.

    An ensemble (models averaged in one, see ``mnistlab.ensemble``) has no layers of its own
    worth drawing; its first member is shown instead, and the name says so.

    Returns:
        (keras.Model, name).
    """
    members = [layer for layer in model.layers if hasattr(layer, "layers")]  # nested models
    if not members or conv_layers(model):
        return model, model.name
    return members[0], f"{model.name} member '{members[0].name}' (1 of {len(members)})"


def first_convolution(model):
    """The convolution applied to the input; of parallel ones, the one with the largest kernel.

    Returns:
        (layer, note): note says which was picked when there was a choice, else "".
    """
    convs = conv_layers(model)
    if not convs:
        raise ValueError(
            f"Model '{model.name}' has no convolution layers, so it has no filters to show "
            f"(it is dense only). Use {CONV_MODELS_HINT}."
        )
    inputs = {id(tensor) for tensor in model.inputs}
    firsts = [layer for layer in convs if id(layer.input) in inputs] or convs[:1]
    chosen = max(firsts, key=lambda layer: math.prod(layer.kernel.shape[:2]))
    others = [layer for layer in firsts if layer is not chosen]
    note = ""
    if others:
        sizes = ", ".join(f"'{o.name}' is {_kernel_size(o)}" for o in others)
        note = f"the largest of {len(firsts)} parallel first convolutions; {sizes}"
    return chosen, note


def _kernel_size(layer) -> str:
    height, width = layer.kernel.shape[:2]
    return f"{height}x{width}"


def plot_filters(model, path: str = "filters.png") -> Picture:
    """The first convolution's kernels as small gray images (mid-gray = 0, white = positive).

    Args:
        model: a keras.Model with at least one Conv2D layer.

    Returns:
        Picture with one panel per kernel (at most MAX_PANELS).

    Raises:
        ValueError: a model without convolutions (e.g. mlp).
    """
    import numpy as np

    model, name = inspected(model)
    layer, note = first_convolution(model)
    kernel = np.asarray(layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel)
    kernel = kernel.mean(axis=2)  # (height, width, filters): averaged over input channels
    count = min(kernel.shape[-1], MAX_PANELS)
    title = (
        f"{name}: {kernel.shape[-1]} kernels {_kernel_size(layer)} of '{layer.name}' "
        "(mid-gray 0, white positive)"
    )
    if note:
        title += f"\n({note})"
    images = [kernel[:, :, index] for index in range(count)]
    return image_grid(images, [str(i) for i in range(count)], title, path, scale="symmetric")


def find_layer(model, layer=None):
    """A layer by name or index (an int, or a string of digits); None: the first convolution.

    Raises:
        ValueError: no such layer; the message lists the model's layers.
    """
    if layer is None:
        return first_convolution(model)[0]
    if isinstance(layer, str) and layer.lstrip("-").isdigit():
        layer = int(layer)
    names = [candidate.name for candidate in model.layers]
    if isinstance(layer, int) and -len(names) <= layer < len(names):
        return model.layers[layer]
    if layer in names:
        return model.get_layer(layer)
    listing = ", ".join(f"{index} {name}" for index, name in enumerate(names))
    raise ValueError(f"Model '{model.name}' has no layer '{layer}'. Its layers: {listing}.")


def layer_outputs(model, layer, images):
    """A layer's outputs for (N, 28, 28) uint8 images: (N, ...) float32."""
    import numpy as np

    probe = keras().Model(model.inputs, layer.output)
    return np.asarray(probe.predict(to_input(images), verbose=0))


def plot_responses(model, image, layer=None, path: str = "responses.png") -> Picture:
    """The feature maps of one layer for one input image, after the input itself.

    Args:
        model: a keras.Model; image: (28, 28) uint8 (see predict.load_input);
        layer: name or index (None: the first convolution).

    Returns:
        Picture: 1 + channels panels for a layer with feature maps (at most MAX_PANELS maps),
        2 for a flat layer (the input, then a bar per unit).
    """
    import numpy as np

    model, name = inspected(model)
    layer = find_layer(model, layer)
    output = layer_outputs(model, layer, np.asarray(image)[None])[0]
    if output.ndim == 1:
        return _plot_vector(image, output, f"{name}: layer '{layer.name}'", path)
    if output.ndim != 3:
        raise ValueError(f"Layer '{layer.name}' gives {output.shape} outputs; cannot draw them.")
    count = min(output.shape[-1], MAX_PANELS)
    shown = f"the first {count} of " if count < output.shape[-1] else ""
    title = (
        f"{name}: {shown}{output.shape[-1]} feature maps of layer '{layer.name}' "
        f"({output.shape[0]}x{output.shape[1]}, one shared gray scale)"
    )
    scaled = np.asarray(image, np.float32) / 255.0 * max(float(output.max()), 1e-6)
    maps = [scaled] + [output[:, :, index] for index in range(count)]
    titles = ["input"] + [str(index) for index in range(count)]
    return image_grid(maps, titles, title, path, scale="shared")


def _plot_vector(image, values, title: str, path: str) -> Picture:
    from matplotlib.figure import Figure

    width, height = CURVES_INCHES
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.suptitle(f"{title}: {len(values)} units", fontsize=TITLE_POINTS)
    left = figure.add_axes((0.02, 0.12, 0.2, 0.72))
    left.imshow(image, cmap="gray", vmin=0, vmax=255)
    left.set_title("input", fontsize=9)
    left.set_xticks([])
    left.set_yticks([])
    right = figure.add_axes((0.3, 0.12, 0.67, 0.72))
    right.bar(range(len(values)), values, width=0.8 if len(values) <= 64 else 1.0, color="tab:blue")
    right.set_xlabel("unit")
    right.set_ylabel("activation")
    if len(values) <= 10:
        right.set_xticks(range(len(values)))
    return _save(figure, path, 1, 2)


# --- filter maximisation -----------------------------------------------------------------


@dataclass
class Maximized:
    """Inputs that maximise filters' mean responses, found by gradient ascent."""

    images: object  # (filters, 28, 28) float32 in [0, 1]: the results
    start: object  # (filters, 28, 28) float32: the gray noisy images the ascent began from
    start_scores: object  # (filters,) mean response of each filter to its start image
    scores: object  # (filters,) mean response of each filter to its result
    layer: str
    filters: list
    model_name: str = ""  # the network's name, for titles


def maximize_filters(
    model,
    layer=None,
    steps: int = MAXIMIZE_STEPS,
    step_size: float = 0.02,
    seed: int = 0,
    count=None,
) -> Maximized:
    """For each filter of a layer, the input that maximises its mean response.

    Gradient ascent (the tutorial's recipe): start from gray (0.5) plus uniform noise of span
    0.1, then repeat ``x += step_size * g / (rms(g) + 1e-5)`` (the gradient g of the filter's
    mean response, L2-normalised per pixel) and clip x to the inputs' range [0, 1]. All filters
    ascend together in one batch. Gradients come from the backend's own autodiff
    (tf.GradientTape, jax.grad, torch autograd).

    A filter whose ReLU gives no response at all to an image has no gradient there (the
    tutorial skips such filters; in a trained MNIST net most first-layer filters are silent on
    gray). While it is silent, it climbs its mean pre-activation instead, until it responds.

    Args:
        model: a keras.Model; layer: name or index of a layer with feature maps (None: the
            first convolution); steps: ascent steps; step_size: change per step in input units
            (1 = black to white) per pixel, root-mean-square; seed: seeds the start noise;
            count: the first ``count`` filters (default all, at most MAX_PANELS).

    Returns:
        Maximized (images, start, start_scores, scores, layer, filters).
    """
    import numpy as np

    if not 0 <= steps <= MAX_STEPS or step_size <= 0:
        raise ValueError(
            f"Expected 0 <= steps <= {MAX_STEPS} and step_size > 0, got {steps}, {step_size}."
        )
    model, name = inspected(model)
    layer = find_layer(model, layer)
    if len(layer.output.shape) != 4:
        raise ValueError(
            f"Layer '{layer.name}' has no filters (its output is {tuple(layer.output.shape)}); "
            f"choose a convolution: {', '.join(c.name for c in conv_layers(model)) or 'none'}."
        )
    channels = layer.output.shape[-1]
    filters = list(range(min(channels, count or MAX_PANELS)))
    probe = keras().Model(model.inputs, layer.output)
    gray, span = MAXIMIZE_START
    rng = np.random.default_rng(seed)
    start = (gray + span * (rng.random((len(filters), 28, 28, 1)) - 0.5)).astype("float32")
    images = start.copy()
    with _without_activation(layer) as activation:
        selection = np.eye(channels, dtype="float32")[filters]
        gradient = _gradient_function(probe, selection, activation)
        start_scores, _ = gradient(start)
        for _ in range(steps):
            _, grad = gradient(images)
            rms = np.sqrt(np.mean(np.square(grad), axis=(1, 2, 3), keepdims=True))
            images = np.clip(images + step_size * grad / (rms + 1e-5), 0.0, 1.0)
            images = images.astype("float32")
        scores, _ = gradient(images)
    return Maximized(images[..., 0], start[..., 0], start_scores, scores, layer.name, filters, name)


@contextlib.contextmanager
def _without_activation(layer):
    """Makes the layer linear for a while; yields its activation function (or None)."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        yield None
        return

    layer.activation = keras().activations.linear
    try:
        yield activation
    finally:
        layer.activation = activation


def _gradient_function(probe, selection, activation):
    """x (F, 28, 28, 1) -> (scores (F,), gradient (F, 28, 28, 1)).

    score f = mean of map f for image x_f, after ``activation`` (the probe itself stops before
    it); the gradient is of score f, or of the mean pre-activation where score f is 0.
    """
    import numpy as np

    ops = keras().ops
    backend = keras().backend.backend()

    def scores_of(x):
        before = probe(x, training=False)  # (F, height, width, channels), before activation
        after = before if activation is None else activation(before)
        mask = ops.convert_to_tensor(selection)[:, None, None, :]
        lift = ops.mean(ops.sum(before * mask, axis=-1), axis=(1, 2))  # (F,)
        scores = ops.mean(ops.sum(after * mask, axis=-1), axis=(1, 2))  # (F,)
        return scores, ops.where(scores > 0, scores, lift)

    if backend == "tensorflow":
        import tensorflow as tf

        def gradient(x):
            x = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                scores, objective = scores_of(x)
                total = tf.reduce_sum(objective)
            return scores.numpy(), tape.gradient(total, x).numpy()

    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        def total(x):
            scores, objective = scores_of(x)
            return jnp.sum(objective), scores

        grad_fn = jax.value_and_grad(total, has_aux=True)

        def gradient(x):
            (_, scores), grad = grad_fn(jnp.asarray(x))
            return np.asarray(scores), np.asarray(grad)

    elif backend == "torch":
        import torch

        def gradient(x):
            x = torch.tensor(x, requires_grad=True)
            scores, objective = scores_of(x)
            objective.sum().backward()
            return scores.detach().cpu().numpy(), x.grad.detach().cpu().numpy()

    else:
        raise ValueError(
            f"Filter maximisation needs gradients, implemented for tensorflow, jax and torch, "
            f"not '{backend}'. Run it with --backend tensorflow."
        )
    return gradient


def plot_maximized(result: Maximized, path: str = "maximize.png") -> Picture:
    """The images of ``maximize_filters``, as the network sees them (black 0, white 1)."""
    titles = [
        f"{f}: silent" if score <= 0 else f"{f}: {score:.2f}"
        for f, score in zip(result.filters, result.scores, strict=True)
    ]
    title = (
        f"{result.model_name}: inputs that excite each filter of '{result.layer}' most\n"
        "(filter: its mean response to the image; silent: it never responded)"
    )
    return image_grid(list(result.images), titles, title, path, scale=(0.0, 1.0))
