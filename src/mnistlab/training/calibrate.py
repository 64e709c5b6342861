"""Fitting a model's calibration.json on the validation images its training held out.

``train`` calls ``calibrate_model`` at the end of a run with a held-out validation split, and
``ensemble`` for the averaged model; ``calibrate`` fits a finished run folder, or the shipped
model (``python -m mnistlab.training.calibrate``, which rewrites pretrained/calibration.json).
The math is in ``models.calibration``.

Example:
    >>> calibrate("runs/cnn")["temperature"]   # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import os

from mnistlab.core import runs
from mnistlab.models import calibration
from mnistlab.models.saved import PRETRAINED_DIR, load_model, predict_probabilities

# Which run the shipped model is, with its validation fold: written by benchmarks/ship.py
SHIPPED_RECORD = "shipped.json"
# The fold of a shipped model that predates shipped.json (`best` seed 8 of benchmarks/best.py
# --val-size 1000, member 1 of the ensemble recipe, whose member k holds out fold k).
PRETRAINED_VAL_SIZE = 1000  # images
PRETRAINED_VAL_FOLD = 1  # the 1,000 images before the last 1,000 of MNIST's training file


def calibrate_model(model, x_val, y_val, folder: str | None = None, note: str = "") -> dict:
    """Fits temperature and doubt threshold of ``model`` on validation images.

    Args:
        model: a keras.Model giving (N, 10) probabilities.
        x_val: (N, 28, 28) uint8 validation images; y_val: (N,) digits.
        folder: where to write calibration.json (None: not written).
        note: appended to "fitted_on" (e.g. which fold).

    Returns:
        The calibration dict (see ``calibration.fit_calibration``).
    """
    probabilities = predict_probabilities(model, x_val)
    fitted = calibration.fit_calibration(probabilities, y_val)
    if note:
        fitted["fitted_on"] += f" ({note})"
    if folder is not None:
        calibration.write_calibration(folder, fitted)
    return fitted


def calibrate(
    spec: str | None = None, data=None, val_size: int | None = None, val_fold: int | None = None
) -> dict:
    """Fits and writes calibration.json for a run folder, or for the shipped model (None).

    The validation images are rebuilt as the run's training held them out: its config.json's
    val_size and val_fold (the shipped model's: its shipped.json's, else PRETRAINED_VAL_SIZE
    and PRETRAINED_VAL_FOLD), unless given here.

    Returns:
        The calibration dict written.
    """
    if spec in (None, "pretrained", "default"):
        folder, settings = PRETRAINED_DIR, {"val_size": PRETRAINED_VAL_SIZE}
        settings["val_fold"] = PRETRAINED_VAL_FOLD
        record = os.path.join(PRETRAINED_DIR, SHIPPED_RECORD)
        if os.path.exists(record):
            chosen = runs.read_json(record)["chosen"]
            settings = {key: chosen[key] for key in ("val_size", "val_fold")}
    elif os.path.isdir(spec):
        folder = spec
        settings = runs.read_json(os.path.join(spec, runs.CONFIG_FILE))
    else:
        raise ValueError(f"'{spec}' is not a run folder; calibrate needs one (or none: shipped).")
    if val_size is not None:
        settings["val_size"] = val_size
    if val_fold is not None:
        settings["val_fold"] = val_fold
    if not int(settings.get("val_size", 0)):
        raise ValueError(
            f"{folder} was trained without held-out validation images (val_size 0), so there is "
            "nothing unseen to calibrate on; pass val_size only if those images were held out."
        )
    x_val, y_val, note = held_out_images(settings, data)
    return calibrate_model(load_model(spec, compile=False), x_val, y_val, folder, note)


def held_out_images(settings: dict, data=None):
    """(x_val, y_val, note): the validation images a run's config (val_size, val_fold,
    train_size) held out of MNIST's training images, and a note saying which."""
    from mnistlab.core.config import TrainConfig
    from mnistlab.training.train import prepare_data

    config = TrainConfig(
        val_size=int(settings.get("val_size", 0)),
        val_fold=int(settings.get("val_fold", 0)),
        train_size=int(settings.get("train_size", 0) or 0),
    )
    split = prepare_data(config, data)
    note = f"val_size {config.val_size}, val_fold {config.val_fold}"
    return split["x_val"], split["y_val"], note


if __name__ == "__main__":  # refits the shipped model's calibration.json
    import json

    print(json.dumps(calibrate(None), indent=2))
