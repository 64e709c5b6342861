"""Pictures of the data and of what a network learned: samples, filters, feature maps,
filter maximisation, training curves, confusion matrix and mistakes.

Every function saves a PNG and returns a ``Picture`` (path, number of panels, grid shape,
the matplotlib figure). Matplotlib is imported inside the functions and used without pyplot,
so nothing needs a display; ``--show`` opens the saved picture only where a display exists.

Example:
    >>> from mnistlab import inspect
    >>> model = mnistlab.load_model("runs/cnn")                        # doctest: +SKIP
    >>> inspect.plot_filters(model, "filters.png").panels            # doctest: +SKIP
    32
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mnistlab.core import runs
from mnistlab.models.calibration import apply_temperature
from mnistlab.models.saved import predict_probabilities

PANEL_INCHES = 1.3  # inches per grid cell (image plus its small title)

TITLE_INCHES = 0.7  # inches above the grid for the figure's title
MIN_GRID_INCHES = 5.2  # narrowest grid picture (4 panels' width), so that titles fit
TITLE_POINTS = 11  # font size of figure titles; smaller where a long title must fit
DPI = 100  # pixels per inch of every saved PNG
CURVES_INCHES = (11.0, 4.2)  # width, height of the training-curves figure
CONFUSION_INCHES = (7.5, 7.0)  # width, height of the confusion-matrix figure
RELIABILITY_INCHES = (11.0, 5.2)  # width, height of the reliability diagram (two panels)


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
    title_lines = max((panel.count("\n") + 1 for panel in titles), default=1)
    figure.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.01,
        top=1 - TITLE_INCHES * DPI / height,
        hspace=0.35 * title_lines,  # room for panels' titles of two lines
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


# --- training and evaluation -------------------------------------------------------------


def plot_curves(run: str, path: str = "curves.png") -> Picture:
    """Loss and accuracy per epoch, training and validation, from a run's history.csv."""
    from matplotlib.figure import Figure

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
    images, labels, predicted, order, path="misclassified.png", probabilities=None, count=None
) -> Picture:
    """The misclassified images with the true digit, the answer and the second choice.

    Args:
        images: (N, 28, 28) uint8; labels, predicted: (N,) ints.
        order: indices of all the mistakes, most confident first (``measure()["misclassified"]``).
        path: the PNG to write.
        probabilities: optional (len(order), 10) probabilities, one row per index in ``order``:
            each panel then reads "true → answer (its probability)" over "2nd: digit (its
            probability)", so a reader can judge how near the network came.
        count: at most this many panels (default: every mistake).

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
    titles = [
        _mistake_title(int(labels[index]), int(predicted[index]), probabilities, position)
        for position, index in enumerate(shown)
    ]
    first = f"The {len(shown)} most confident" if len(shown) < len(order) else f"All {len(shown)}"
    title = f"{first} of {len(order)} mistakes: true digit → answer (its probability)"
    if probabilities is not None:
        title += ", and the second choice"
    return image_grid([images[index] for index in shown], titles, title, path, scale=(0, 255))


def _mistake_title(label: int, answer: int, probabilities, position: int) -> str:
    """ "7 → 1 (62%)" and, with probabilities, a second line "2nd: 7 (30%)"."""
    if probabilities is None:
        return f"{label} → {answer}"
    row = probabilities[position]
    second = sorted(range(len(row)), key=lambda digit: -row[digit])[1]
    return (
        f"{label} → {answer} ({100 * row[answer]:.0f}%)\n2nd: {second} ({100 * row[second]:.0f}%)"
    )


def plot_reliability(calibration: dict, path: str = "reliability.png") -> Picture:
    """Reliability diagram: accuracy against confidence per bin, before and after calibration.

    Args:
        calibration: ``evaluate()["calibration"]``: "reliability_before", "reliability_after"
            (``models.calibration.reliability`` tables), "ece_before", "ece_after",
            "temperature".

    A calibrated model's bars sit on the diagonal; bars below it are overconfident bins, above
    it underconfident ones. The bar labels count the images in each bin.
    """
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=RELIABILITY_INCHES, dpi=DPI)
    panels = (
        ("before", "T = 1", calibration["reliability_before"], calibration["ece_before"]),
        (
            "after",
            f"T = {calibration['temperature']:.3f}",
            calibration["reliability_after"],
            calibration["ece_after"],
        ),
    )
    for index, (when, temperature, table, ece) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        edges = np.asarray(table["edges"])
        width = edges[1] - edges[0]
        filled = [i for i, n in enumerate(table["counts"]) if n]
        accuracy = [table["accuracy"][i] for i in filled]
        axes.bar(edges[filled], accuracy, width=width, align="edge", color="#4c72b0", alpha=0.8)
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for i in filled:
            axes.text(
                edges[i] + width / 2, 0.02, str(table["counts"][i]), ha="center", fontsize=6,
                rotation=90, color="white",
            )  # fmt: skip
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("confidence (top probability)")
        axes.set_ylabel("accuracy")
        axes.set_title(f"{when} calibration ({temperature}): ECE {100 * ece:.2f}%")
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.11, top=0.92, wspace=0.22)
    return _save(figure, path, 1, 2)


MISTAKES_SHOWN = 200  # evaluate --plots draws every mistake up to this many, worst first


def evaluation_plots(
    model, x_test, y_test, metrics: dict, folder: str, tta: bool = False, count=MISTAKES_SHOWN
) -> list[Picture]:
    """confusion.png and misclassified.png in ``folder`` for ``evaluate.measure``'s metrics,
    and reliability.png where the metrics carry evaluate's "calibration".

    ``tta``: the metrics were measured with test-time augmentation; the mistakes' confidences
    are then read the same way. ``count``: at most this many mistakes drawn, the most
    confident first (a trained network's are all drawn: the shipped model makes about 30).
    """
    import numpy as np

    order = metrics["misclassified"]
    predicted = np.asarray(metrics["predicted"])
    wrong = None
    if order:
        wrong = predict_probabilities(model, x_test[order], tta)
        if metrics.get("calibration"):  # the probabilities a user reads: calibrated
            wrong = apply_temperature(wrong, metrics["calibration"]["temperature"])
    pictures = []
    if metrics.get("calibration"):
        path = os.path.join(folder, "reliability.png")
        pictures.append(plot_reliability(metrics["calibration"], path))
    return pictures + [
        plot_confusion(metrics["confusion"], os.path.join(folder, "confusion.png")),
        plot_misclassified(
            x_test,
            y_test,
            predicted,
            order,
            os.path.join(folder, "misclassified.png"),
            probabilities=wrong,
            count=count,
        ),
    ]
