"""Predicting your own digits: photos, scans or drawings in, digit and probabilities out.

Each image is turned into MNIST's 28x28 input by ``preprocess.to_mnist`` (or taken as it is
with ``preprocess=False``), then all good images go through the model in one batch. A bad
image (missing, not an image, blank, too large) never stops the others: its result carries an
``error`` message instead of a digit, and the command exits with status 2 at the end.

Example:
    >>> results = mnistlab.predict(["seven.jpg", "two.png"], model="runs/cnn")  # doctest: +SKIP
    >>> results[0]["digit"], round(max(results[0]["probabilities"]), 2)          # doctest: +SKIP
    (7, 0.98)
"""

from __future__ import annotations

import os

from mnistlab.core.quiet import note
from mnistlab.data.inputs import describe, load_input
from mnistlab.models import calibration
from mnistlab.models.saved import (
    TTA_SHIFTS,
    load_model,
    predict_probabilities,
    resolve_model_path,
    shift_images,
)

SHOW_INPUT_SCALE = 8  # screen pixels per input pixel in --show-input pictures (28 -> 224)


def predict(
    images, model=None, preprocess: bool = True, data=None, tta: bool = False
) -> list[dict]:
    """Classifies digit images, one result per image in the order given.

    Args:
        images: a list of images (paths, bytes, file objects, PIL images, (H, W[, C]) arrays,
            or "test:INDEX"), or one such image; a (N, 28, 28) uint8 array is N images.
        model: a run folder, a .keras file, a loaded keras.Model, or None for the model
            shipped with mnistlab (run on ONNX Runtime from its committed model.onnx where
            onnxruntime is installed, so that neither Keras nor TensorFlow loads).
        preprocess: True fits any photo or drawing as MNIST was made (``preprocess.to_mnist``);
            False feeds 28x28 images as they are (other sizes are refused).
        data: where MNIST is, for "test:INDEX" images.
        tta: average each image's probabilities with those of its four one-pixel shifts.

    Returns:
        list of dicts with keys "source" (str), "digit" (int 0-9, or None if the image could
        not be used), "probabilities" (10 floats summing to 1, calibrated by the model's
        calibration.json, or None), "doubt" (True when the top probability is below the
        model's doubt threshold: the answer is "not sure", and "message" says between which
        two digits, e.g. "not sure: 4 or 9"), "input" ((28, 28) uint8, what the network saw,
        or None) and "error" (None, or a message saying why the image was skipped).
        A loaded keras.Model has no calibration.json: T = 1 and never in doubt.

    Example:
        >>> mnistlab.predict("seven.png", model="runs/cnn")[0]["digit"]  # doctest: +SKIP
        7
    """
    import numpy as np

    sources = _as_list(images)
    if model is None or isinstance(model, (str, os.PathLike)):
        model_path = resolve_model_path(None if model is None else os.fspath(model))
    else:
        model_path = None  # an already loaded model
    results = []
    for source in sources:
        result = {"source": describe(source), "digit": None, "probabilities": None}
        result.update(doubt=None, message=None)
        try:
            result["input"], result["error"] = load_input(source, preprocess, data), None
        except (ValueError, OSError) as error:  # ImageError is a ValueError
            result["input"], result["error"] = None, str(error)
        results.append(result)
    good = [result for result in results if result["error"] is None]
    if not good:
        return results
    images = np.stack([r["input"] for r in good])
    predictor = _shipped_onnx() if model is None else None
    if predictor is not None:
        probabilities = _onnx_probabilities(predictor, images, tta)
    else:
        if model_path is not None:
            model = load_model(model_path)
        probabilities = predict_probabilities(model, images, tta)
    fitted = calibration.read_calibration(model_path)  # the shipped model's sits beside it
    probabilities = calibration.apply_temperature(probabilities, fitted["temperature"])
    for result, row in zip(good, probabilities, strict=True):
        result["digit"] = int(np.argmax(row))
        result["probabilities"] = [float(value) for value in row]
        result["doubt"] = bool(calibration.in_doubt(row, fitted["threshold"]))
        result["message"] = calibration.doubt_message(row) if result["doubt"] else None
    return results


def _shipped_onnx():
    """The shipped model's ONNX predictor, or None (after one line saying why) to use Keras."""
    from mnistlab.serving.inference import NO_ONNXRUNTIME, shipped_onnx_predictor

    predictor, reason = shipped_onnx_predictor()
    if reason == NO_ONNXRUNTIME:
        reason += " (pip install 'mnistlab[onnx]' starts predict in about a second)"
    if predictor is None:
        note(f"{reason}; predicting with the shipped model on Keras instead (slower to start).")
    return predictor


def _onnx_probabilities(predictor, images, tta: bool):
    """As ``saved.predict_probabilities``, on an ONNX predictor: (N, 28, 28) uint8 -> (N, 10)."""
    import numpy as np

    if not tta:
        return predictor.predict(images)
    views = [predictor.predict(shift_images(images, down, right)) for down, right in TTA_SHIFTS]
    return np.mean(views, axis=0).astype("float32")


def _as_list(images) -> list:
    import numpy as np

    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, np.ndarray) and (
        images.ndim == 4 or (images.ndim == 3 and images.shape[-1] not in (1, 3, 4))
    ):
        return list(images)  # (N, 28, 28) or (N, H, W, C): a batch
    return [images]


def save_input(image, path: str, scale: int = SHOW_INPUT_SCALE) -> str:
    """Saves a (28, 28) uint8 input as a PNG enlarged ``scale`` times (nearest neighbour).

    Returns:
        The path written.
    """
    from PIL import Image

    picture = Image.fromarray(image, "L")
    picture = picture.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    picture.save(path)
    return path


def input_picture_names(sources: list[str]) -> list[str]:
    """File names for --show-input: the image's own name as .png, made unique in the batch.

    Example:
        >>> input_picture_names(["a/seven.jpg", "b/seven.png", "test:3"])
        ['seven.png', 'seven-2.png', 'test-3.png']
    """
    names, used = [], set()
    for source in sources:
        stem = os.path.splitext(os.path.basename(source))[0].replace(":", "-") or "image"
        name, count = f"{stem}.png", 1
        while name in used:
            count += 1
            name = f"{stem}-{count}.png"
        used.add(name)
        names.append(name)
    return names


def percent(probability: float) -> str:
    """A probability for people, never rounded up to a certainty it is not.

    Example:
        >>> percent(0.99996), percent(0.875)
        ('>99.9%', '87.5%')
    """
    return ">99.9%" if probability > 0.999 else f"{100 * probability:.1f}%"


def format_result(result: dict) -> str:
    """Two lines for people: the answer with its probability, then all ten probabilities."""
    if result["error"] is not None:
        return f"{result['source']}: skipped"
    probabilities = result["probabilities"]
    digit = result["digit"]
    answer = result["message"] if result.get("doubt") else str(digit)
    lines = [f"{result['source']}: {answer}  ({percent(probabilities[digit])})"]
    lines.append("  " + "  ".join(f"{d}: {p:.3f}" for d, p in enumerate(probabilities)))
    if result.get("input_picture"):
        lines.append(f"  the network saw: {result['input_picture']}")
    return "\n".join(lines)
