"""Pictures of the data and of what a network learned: samples, filters, feature maps,
filter maximisation, training curves, confusion matrix and mistakes.

Every function saves a PNG and returns a ``Picture`` (path, number of panels, grid shape,
the matplotlib figure). Matplotlib is imported inside the functions and used without pyplot,
so nothing needs a display; ``--show`` opens the saved picture only where a display exists.

Example:
    >>> from mnistlab import visualize
    >>> model = mnistlab.load_model("runs/cnn")                        # doctest: +SKIP
    >>> visualize.plot_filters(model, "filters.png").panels            # doctest: +SKIP
    32
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

PANEL_INCHES = 1.3  # inches per grid cell (image plus its small title)
TITLE_INCHES = 0.7  # inches above the grid for the figure's title
MIN_GRID_INCHES = 5.2  # narrowest grid picture (4 panels' width), so that titles fit
TITLE_POINTS = 11  # font size of figure titles; smaller where a long title must fit
DPI = 100  # pixels per inch of every saved PNG
CURVES_INCHES = (11.0, 4.2)  # width, height of the training-curves figure
CONFUSION_INCHES = (7.5, 7.0)  # width, height of the confusion-matrix figure
MAX_PANELS = 64  # feature maps or filters drawn at most (the first ones)
MAX_STEPS = 10_000  # gradient-ascent steps accepted at most
MAXIMIZE_STEPS = 60  # gradient-ascent steps: enough for clear stripes and edges in a trained cnn
MAXIMIZE_START = (0.5, 0.1)  # gray level, uniform noise span of the ascent's start image
CONV_MODELS_HINT = "a CNN such as cnn, larger_cnn or branch_cnn"


@dataclass
class Picture:
    """A saved picture: where it is, and what it shows."""

    path: str
    panels: int  # image or plot panels (axes) drawn; empty grid cells are not drawn
    rows: int
    columns: int
    figure: object = None  # the matplotlib Figure, for further drawing or inline display


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """Rows and columns of a near-square grid that holds ``count`` panels.

    Example:
        >>> grid_shape(32), grid_shape(16), grid_shape(5, columns=2)
        ((6, 6), (4, 4), (3, 2))
    """
    if count < 1:
        return 1, 1
    columns = columns or math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def grid_pixels(rows: int, columns: int) -> tuple[int, int]:
    """Width and height in pixels of a saved grid picture (at least MIN_GRID_INCHES wide)."""
    width = max(columns * PANEL_INCHES, MIN_GRID_INCHES)
    return round(width * DPI), round((rows * PANEL_INCHES + TITLE_INCHES) * DPI)


def image_grid(images, titles, title: str, path: str, *, scale="each", columns=None) -> Picture:
    """Draws images as a titled grid of gray panels and saves it.

    Args:
        images: sequence of (H, W) arrays.
        titles: one short title per panel.
        title: the figure's title.
        path: the PNG to write.
        scale: "each" stretches every image to its own range; "shared" gives all panels one
            range (comparable brightness); "symmetric" one range centred on 0 (0 is mid-gray);
            a (low, high) tuple fixes the range.
        columns: grid columns (default: near square).

    Returns:
        Picture with panels = len(images).
    """
    import numpy as np
    from matplotlib.figure import Figure

    images = [np.asarray(image, dtype=np.float32) for image in images]
    rows, columns = grid_shape(len(images), columns)
    width, height = grid_pixels(rows, columns)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    longest = max(len(line) for line in title.splitlines())
    fitting = 0.95 * width / DPI * 72 / (0.6 * longest)  # points; a char is ~0.6 em wide
    figure.suptitle(
        title, fontsize=min(TITLE_POINTS, fitting), y=1 - 0.12 * TITLE_INCHES * DPI / height
    )
    figure.subplots_adjust(
        left=0.02, right=0.98, bottom=0.01, top=1 - TITLE_INCHES * DPI / height, hspace=0.35
    )
    low, high = _range(images, scale)
    for index, (image, panel_title) in enumerate(zip(images, titles, strict=True)):
        axes = figure.add_subplot(rows, columns, index + 1)
        if scale == "each":
            low, high = float(image.min()), float(image.max())
        axes.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1)
        axes.set_title(panel_title, fontsize=8, pad=2)
        axes.set_xticks([])
        axes.set_yticks([])
    return _save(figure, path, rows, columns)


def _range(images, scale):
    import numpy as np

    if isinstance(scale, tuple):
        return scale
    if not images or scale == "each":
        return 0.0, 1.0
    low = min(float(np.min(image)) for image in images)
    high = max(float(np.max(image)) for image in images)
    if scale == "symmetric":
        bound = max(abs(low), abs(high)) or 1.0
        return -bound, bound
    return low, high


def _save(figure, path: str, rows: int, columns: int) -> Picture:
    """Writes the PNG; the panel count is read off the figure (its drawn axes)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return Picture(path, len(figure.axes), rows, columns, figure)


# --- data --------------------------------------------------------------------------------


def plot_samples(images, labels, path: str = "samples.png", count: int = 16) -> Picture:
    """The first ``count`` images with their labels (the tutorial's first script shows 4).

    Args:
        images: (N, 28, 28) uint8; labels: (N,) ints.
    """
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}.")
    count = min(count, len(images))
    titles = [f"label {int(label)}" for label in labels[:count]]
    title = f"The first {count} training images and their labels"
    return image_grid(images[:count], titles, title, path, scale=(0, 255))


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

    from mnistlab.backend import keras
    from mnistlab.models import to_input

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

    from mnistlab.backend import keras

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
    from mnistlab.backend import keras

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

    from mnistlab.backend import keras

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


# --- training and evaluation -------------------------------------------------------------


def plot_curves(run: str, path: str = "curves.png") -> Picture:
    """Loss and accuracy per epoch, training and validation, from a run's history.csv."""
    from matplotlib.figure import Figure

    from mnistlab import runs

    history = runs.read_history(run)
    if not history:
        raise ValueError(
            f"'{run}' has no training history ({runs.HISTORY_FILE}); is it a run folder "
            "with at least one finished epoch?"
        )
    config_path = os.path.join(run, runs.CONFIG_FILE)
    model_name = (
        runs.read_json(config_path).get("model", "?") if os.path.exists(config_path) else "?"
    )
    epochs = [int(row["epoch"]) for row in history]
    figure = Figure(figsize=CURVES_INCHES, dpi=DPI)
    figure.suptitle(
        f"{model_name} run '{os.path.basename(os.path.normpath(run))}': {len(epochs)} epochs",
        fontsize=TITLE_POINTS,
    )
    panels = (("loss", "loss (cross-entropy)", 1.0), ("accuracy", "accuracy (%)", 100.0))
    for index, (key, label, factor) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        for prefix, name in (("", "training"), ("val_", "validation")):
            column = prefix + key
            if history[0].get(column) not in (None, ""):
                values = [float(row[column]) * factor for row in history]
                axes.plot(epochs, values, marker="o", markersize=3, label=name)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.86, wspace=0.25)
    return _save(figure, path, 1, 2)


def plot_confusion(confusion, path: str = "confusion.png", title: str | None = None) -> Picture:
    """A 10x10 confusion matrix: rows true digit, columns predicted, counts in the cells.

    Right answers (the diagonal) are green, mistakes red, each on its own scale of
    log(1 + count), so that a handful of mistakes shows as clearly as a thousand right answers.
    """
    import numpy as np
    from matplotlib.figure import Figure

    confusion = np.asarray(confusion, dtype=int)
    total, right = int(confusion.sum()), int(np.trace(confusion))
    figure = Figure(figsize=CONFUSION_INCHES, dpi=DPI)
    axes = figure.add_subplot(1, 1, 1)
    shade = np.log1p(confusion)
    diagonal = np.eye(10, dtype=bool)
    right_top = max(float(shade[diagonal].max()), 1.0)
    wrong_top = max(float(shade[~diagonal].max()), 1.0)  # the worst confusion is darkest red
    axes.imshow(np.ma.masked_where(~diagonal, shade), cmap="Greens", vmin=0, vmax=right_top)
    axes.imshow(
        np.ma.masked_where(diagonal | (confusion == 0), shade),
        cmap="Reds",
        vmin=0,
        vmax=wrong_top,
    )
    for (row, column), count in np.ndenumerate(confusion):
        if count or row == column:  # zeros left blank, except on the diagonal
            dark = shade[row, column] > 0.6 * (right_top if row == column else wrong_top)
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    error = 100.0 * (total - right) / max(total, 1)
    axes.set_title(title or f"Confusion matrix: {right:,} of {total:,} right (error {error:.2f}%)")
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.08, top=0.93)
    return _save(figure, path, 1, 1)


def plot_misclassified(
    images, labels, predicted, order, path="misclassified.png", confidences=None, count=36
) -> Picture:
    """The misclassified images with true and predicted digit, in the given order.

    Args:
        images: (N, 28, 28) uint8; labels, predicted: (N,) ints.
        order: indices of all the mistakes, most confident first (``measure()["misclassified"]``).
        path: the PNG to write.
        confidences: optional probability of the predicted digit, one per index in ``order``.
        count: at most this many panels.

    Returns:
        Picture with min(count, len(order)) panels.
    """
    from matplotlib.figure import Figure

    shown = list(order)[:count]
    if not shown:
        width, height = grid_pixels(1, 4)
        figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        figure.text(0.5, 0.5, "No misclassified images.", ha="center", va="center", fontsize=14)
        return _save(figure, path, 1, 1)
    titles = []
    for position, index in enumerate(shown):
        title = f"{int(labels[index])} → {int(predicted[index])}"
        if confidences is not None:
            title += f" ({100 * confidences[position]:.0f}%)"
        titles.append(title)
    first = f"The {len(shown)} most confident" if len(shown) < len(order) else f"All {len(shown)}"
    title = f"{first} of {len(order)} mistakes: true digit → predicted (its probability)"
    return image_grid([images[index] for index in shown], titles, title, path, scale=(0, 255))


def evaluation_plots(
    model, x_test, y_test, metrics: dict, folder: str, tta: bool = False
) -> list[Picture]:
    """confusion.png and misclassified.png in ``folder`` for ``evaluate.measure``'s metrics.

    ``tta``: the metrics were measured with test-time augmentation; the mistakes' confidences
    are then read the same way.
    """
    import numpy as np

    from mnistlab.evaluate import predict_probabilities

    order = metrics["misclassified"]
    predicted = np.asarray(metrics["predicted"])
    confidences = None
    if order:
        wrong = predict_probabilities(model, x_test[order], tta)
        confidences = wrong[np.arange(len(order)), predicted[order]]
    return [
        plot_confusion(metrics["confusion"], os.path.join(folder, "confusion.png")),
        plot_misclassified(
            x_test,
            y_test,
            predicted,
            order,
            os.path.join(folder, "misclassified.png"),
            confidences=confidences,
        ),
    ]


# --- CLI ---------------------------------------------------------------------------------


def has_display() -> bool:
    """Whether a window can be opened (macOS, Windows, or an X11/Wayland display)."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def show(path: str) -> None:
    """Opens a saved PNG in a window, where a display exists."""
    if not has_display():
        print(f"No display here; open {path} to see the picture.")
        return
    import matplotlib.pyplot as pyplot

    pyplot.figure(figsize=(10, 8)).figimage(pyplot.imread(path))
    pyplot.show()


def add_cli(subparsers) -> None:
    from mnistlab.cli import add_backend_argument

    def picture_parser(name: str, help_text: str, default_out: str, model: str | None):
        parser = subparsers.add_parser(name, help=help_text)
        if model:
            parser.add_argument("model", metavar=model, help="run folder or .keras file")
        parser.add_argument("--out", default=default_out, help=f"PNG to write ({default_out})")
        parser.add_argument("--show", action="store_true", help="also open it, if a display exists")
        if model:
            add_backend_argument(parser)
        return parser

    parser = picture_parser("samples", "picture of the first training images", "samples.png", None)
    parser.add_argument("--count", type=int, default=16, help="images to show (16)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA)")
    parser.set_defaults(func=_samples_command)

    parser = picture_parser(
        "filters", "picture of the first convolution's kernels", "filters.png", "RUN_OR_MODEL"
    )
    parser.set_defaults(func=_filters_command)

    parser = picture_parser(
        "responses", "feature maps of a layer for one image", "responses.png", "RUN_OR_MODEL"
    )
    parser.add_argument("image", metavar="IMAGE", help="image file, or test:INDEX (MNIST test)")
    parser.add_argument("--layer", help="layer name or index (default: the first convolution)")
    parser.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="feed a 28x28 image as it is",
    )
    parser.add_argument("--data", help="MNIST folder or mnist.npz, for test:INDEX")
    parser.set_defaults(func=_responses_command)

    parser = picture_parser(
        "maximize",
        "inputs that excite each filter of a layer most",
        "maximize.png",
        "RUN_OR_MODEL",
    )
    parser.add_argument("--layer", help="convolution layer name or index (default: the first)")
    parser.add_argument(
        "--steps", type=int, default=MAXIMIZE_STEPS, help=f"ascent steps ({MAXIMIZE_STEPS})"
    )
    parser.add_argument(
        "--step-size",
        type=float,
        default=0.02,
        help="change per step, input units (0-1) per pixel, root-mean-square (0.02)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the start noise (0)")
    parser.set_defaults(func=_maximize_command)

    parser = picture_parser("curves", "loss and accuracy per epoch of a run", "curves.png", None)
    parser.add_argument("run", metavar="RUN", help="run folder (reads its history.csv)")
    parser.set_defaults(func=_curves_command)


def _finish(picture: Picture, args) -> int:
    print(f"Saved {picture.path} ({picture.panels} panels)")
    if args.show:
        show(picture.path)
    return 0


def _samples_command(args) -> int:
    from mnistlab.data import load_mnist

    (x_train, y_train), _ = load_mnist(args.data)
    return _finish(plot_samples(x_train, y_train, args.out, args.count), args)


def _filters_command(args) -> int:
    from mnistlab.evaluate import load_model

    return _finish(plot_filters(load_model(args.model), args.out), args)


def _responses_command(args) -> int:
    from mnistlab.evaluate import load_model
    from mnistlab.predict import load_input

    image = load_input(args.image, args.preprocess, args.data)
    model = load_model(args.model)
    return _finish(plot_responses(model, image, args.layer, args.out), args)


def _maximize_command(args) -> int:
    from mnistlab.evaluate import load_model

    model = load_model(args.model)
    result = maximize_filters(model, args.layer, args.steps, args.step_size, args.seed)
    gained = sum(result.scores > result.start_scores)
    print(
        f"Layer '{result.layer}': {gained} of {len(result.filters)} filters respond more "
        f"after {args.steps} steps (mean response {result.start_scores.mean():.3f} -> "
        f"{result.scores.mean():.3f})."
    )
    return _finish(plot_maximized(result, args.out), args)


def _curves_command(args) -> int:
    return _finish(plot_curves(args.run, args.out), args)
