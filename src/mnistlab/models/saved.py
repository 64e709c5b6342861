"""Evaluation: load a trained model from a run folder or file, and measure it on the test set.

The probes named below (tta.py) were one-off scripts, deleted once they had
answered their question; docs/accuracy.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

import os

from mnistlab.core import runs
from mnistlab.core.backend import keras
from mnistlab.models.registry import REGISTRY, to_input

PRETRAINED_DIR = os.path.join(os.path.dirname(__file__), "pretrained")

PRETRAINED_MODEL = os.path.join(
    PRETRAINED_DIR, "model.keras"
)  # shipped; see README "Shipped model"
PREDICT_BATCH = 1000  # images per predict call when measuring


def resolve_model_path(spec: str | None) -> str:
    """Turns what a user typed into the .keras file to load.

    Args:
        spec: a run folder, a .keras file, or None / "pretrained" for the shipped model.
    """

    if spec in (None, "pretrained", "default"):
        if not os.path.exists(PRETRAINED_MODEL):
            raise ValueError(
                "No shipped model is installed with this copy of mnistlab; pass --model RUN."
            )
        return PRETRAINED_MODEL
    if os.path.isdir(spec):
        runs.check_complete(spec)
        return os.path.join(spec, runs.MODEL_FILE)
    if os.path.isfile(spec):
        if not spec.endswith(".keras"):
            raise ValueError(f"'{spec}' is not a .keras model file or a run folder.")
        return spec
    if spec in REGISTRY:
        raise ValueError(
            f"'{spec}' is a model architecture, not a trained model. Train it first "
            f"(mnistlab train {spec} --out runs/{spec}) and pass the run folder runs/{spec}."
        )
    raise FileNotFoundError(f"No run folder or model file '{spec}'.")


# What older runs saved mnistlab's fast layers and Adam as (fast/layers.py, fast/optimizers.py,
# when they were saved into files): those files now load into Keras's own classes, which new
# runs save, and training swaps the fast ones back in (fast/seam.py).
OLD_NAMES = {
    "mnistlab>MaxPooling2D": "layers.MaxPooling2D",
    "mnistlab>Dropout": "layers.Dropout",
    "mnistlab>BFloat16ProductDense": "layers.Dense",
    "mnistlab>BFloat16ProductConv2D": "layers.Conv2D",
    "mnistlab>FusedAdam": "optimizers.Adam",
}


def register_saved_classes() -> None:
    """Registers with Keras every class a saved mnistlab model may name: the models' own layers
    (Deskew, WeightedAverage) and schedules (OneCycle), and OLD_NAMES. Imports Keras: call it
    once the backend is chosen (``import mnistlab`` calls it where Keras is already imported).

    Example:
        >>> import keras, mnistlab  # registers them: keras.models.load_model loads any run's file
    """
    import keras

    import mnistlab.models.layers  # noqa: F401  (registered as they are defined)
    import mnistlab.models.schedules  # noqa: F401

    custom_objects = keras.saving.get_custom_objects()  # Keras's own registry, by name
    for old_name, stock_name in OLD_NAMES.items():
        module_name, class_name = stock_name.split(".")
        custom_objects[old_name] = getattr(getattr(keras, module_name), class_name)


def load_model(spec: str | None = None, compile: bool = True):
    """Loads a trained model.

    Args:
        spec: a run folder, a .keras file, or None for the model shipped with mnistlab.
        compile: False loads the network alone, without its optimizer's state (for models
            only asked for predictions, e.g. ensemble members).

    Returns:
        keras.Model mapping (N, 28, 28, 1) float32 in [0, 1] to (N, 10) probabilities.

    Example:
        >>> model = mnistlab.load_model("runs/cnn")   # doctest: +SKIP
    """

    path = resolve_model_path(spec)
    keras_module = keras()  # the backend is chosen before register_saved_classes loads Keras
    register_saved_classes()
    try:
        return keras_module.saving.load_model(path, compile=compile)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot load model '{path}': {error}") from None


# Test-time augmentation: the image and its four one-pixel shifts, probabilities averaged.
# Chosen among shifts, rotations (6 degrees) and zooms (5%) on held-out validation images only:
# 9 mistakes against 11 without, over the slices of the 3 `best` networks of the recipe. On the
# test set it then changed nothing for one network (0.41% either way) and cost their ensemble
# 2 mistakes (tta.py, benchmarks/results/tta.md), so it stays off by default.
TTA_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (down, right) pixels


def shift_images(images, down: int, right: int):
    """Images moved by whole pixels; what moves in from outside the frame is 0 (no ink).

    Args:
        images: (N, H, W) or (N, H, W, C) array.
        down, right: pixels; negative moves up or left.

    Example:
        >>> import numpy as np
        >>> shift_images(np.arange(4).reshape(1, 2, 2), 1, 0)[0].tolist()
        [[0, 0], [0, 1]]
    """
    import numpy as np

    images = np.asarray(images)
    moved = np.zeros_like(images)
    height, width = images.shape[1:3]
    rows = slice(max(down, 0), height + min(down, 0))
    columns = slice(max(right, 0), width + min(right, 0))
    source_rows = slice(max(-down, 0), height + min(-down, 0))
    source_columns = slice(max(-right, 0), width + min(-right, 0))
    moved[:, rows, columns] = images[:, source_rows, source_columns]
    return moved


def predict_probabilities(model, images, tta: bool = False):
    """(N, 28, 28) uint8 images -> (N, 10) float32 probabilities.

    Args:
        tta: average the probabilities of each image and its four one-pixel shifts
            (TTA_SHIFTS): five predictions per image instead of one.
    """
    import numpy as np

    def predicted(inputs):
        return np.asarray(model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0))

    inputs = to_input(images)
    if not tta:
        return predicted(inputs)
    views = [predicted(shift_images(inputs, down, right)) for down, right in TTA_SHIFTS]
    return np.mean(views, axis=0).astype("float32")


def measure(model, images, labels, tta: bool = False) -> dict:
    """Error rate, per-digit accuracy and confusion matrix of a model on labelled images.

    Args:
        images: (N, 28, 28) uint8; labels: (N,) ints 0-9.
        tta: predict with test-time augmentation (see ``predict_probabilities``).

    Returns:
        dict: "error" (percent), "accuracy" (fraction), "per_digit_accuracy" (10 fractions),
        "confusion" (10x10 counts, rows true, columns predicted), "misclassified" (indices
        of wrong answers, most confident mistakes first), "predicted" (N predictions).
    """
    return score(predict_probabilities(model, images, tta), labels, tta)


def score(probabilities, labels, tta: bool = False) -> dict:
    """``measure``'s dict from (N, 10) probabilities already predicted."""
    import numpy as np

    labels = np.asarray(labels).astype(int)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")]
    totals = confusion.sum(axis=1)
    per_digit = np.divide(np.diag(confusion), totals, out=np.zeros(10), where=totals > 0)
    return {
        "error": 100.0 * len(wrong) / len(labels),
        "accuracy": 1.0 - len(wrong) / len(labels),
        "per_digit_accuracy": per_digit.round(6).tolist(),
        "confusion": confusion.tolist(),
        "misclassified": wrong.tolist(),
        "predicted": predicted.tolist(),
        "test_images": len(labels),
        "tta": bool(tta),
    }
