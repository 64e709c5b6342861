"""Calibrated probabilities and honest doubt: temperature scaling, ECE, and a doubt threshold.

A network trained with label smoothing (the shipped ``best``) is underconfident: a clear digit
reads 87.5%. Temperature scaling (Guo et al., 2017) divides the logits by one number T fitted
on held-out validation images (T < 1 sharpens); the ranking of the ten digits, and so the
error, never changes. Our networks end in a softmax, so we work from log-probabilities: log p
is the logits up to a constant per image, and ``softmax(log p / T)`` is exact temperature
scaling.

Doubt: an answer whose calibrated top probability is below a threshold, chosen on the same
validation images, is reported as "not sure: 4 or 9" rather than as a digit.

A run folder (and the shipped model's folder, and an exported .onnx file's) holds
``calibration.json``::

    {"temperature": 0.62, "threshold": 0.9, "fitted_on": "validation, 1000 images",
     "val_ece_before": 0.071, "val_ece_after": 0.004, ...}

Numpy only: no Keras here, so serving, training and inspection all use it.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.8, 0.2], [0.6, 0.4]])
    >>> [round(float(v), 3) for v in apply_temperature(p, 0.5)[:, 0]]   # sharper, same argmax
    [0.941, 0.692]
"""

from __future__ import annotations

import math
import os

import numpy as np

from mnistlab.core import runs

CALIBRATION_FILE = "calibration.json"  # in a run folder, beside model.keras or model.onnx
ECE_BINS = 15  # equal-width confidence bins for the expected calibration error (Guo et al.)
TEMPERATURE_RANGE = (0.05, 20.0)  # bounds of the search; T < 1 sharpens, T > 1 softens
SEARCH_STEPS = 80  # golden-section steps on log T: the bracket shrinks 0.618^80, far below 1e-9
MAX_REFUSED = 0.01  # fraction of validation digits the doubt threshold may refuse (1%)
PROBABILITY_FLOOR = 1e-30  # float32 softmax can round a probability to 0; log needs > 0


def _log_probabilities(probabilities) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """Probabilities as the network would give them with its logits divided by ``temperature``.

    Args:
        probabilities: (N, K) or (K,) softmax outputs.
        temperature: > 0; 1 changes nothing, < 1 sharpens, > 1 softens.

    Returns:
        float32 array of the same shape; each row sums to 1 and keeps its argmax.

    Example:
        >>> [round(float(v), 4) for v in apply_temperature([0.5, 0.25, 0.25], 0.5)]  # p^2, renormalised
        [0.6667, 0.1667, 0.1667]
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    probabilities = np.asarray(probabilities)
    if temperature == 1.0:
        return probabilities.astype(np.float32)
    return _softmax(_log_probabilities(probabilities) / temperature).astype(np.float32)


def negative_log_likelihood(probabilities, labels, temperature: float = 1.0) -> float:
    """Mean -log p(true label) after temperature scaling (nats per image)."""
    scaled = _log_probabilities(probabilities) / temperature
    log_normaliser = np.log(np.exp(scaled - scaled.max(axis=1, keepdims=True)).sum(axis=1))
    log_normaliser += scaled.max(axis=1)
    labels = np.asarray(labels).astype(int)
    return float(np.mean(log_normaliser - scaled[np.arange(len(labels)), labels]))


def fit_temperature(probabilities, labels, bounds=TEMPERATURE_RANGE) -> float:
    """The temperature that minimises the validation NLL, by golden-section search on log T.

    The NLL is convex in 1/T (a log-sum-exp minus a linear term), hence unimodal in log T, so a
    bracketing search finds its minimum; a minimum at a bound returns that bound.

    Args:
        probabilities: (N, 10) softmax outputs on held-out images.
        labels: (N,) true digits.
        bounds: (lowest, highest) temperature searched.

    Returns:
        T > 0 (float).

    Example:
        >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
        >>> round(fit_temperature(p, [0, 0, 0, 0]), 3)   # 3 of 4 right: p = 0.75 is optimal
        2.0
    """
    labels = np.asarray(labels).astype(int)
    if len(labels) == 0 or len(labels) != len(probabilities):
        raise ValueError(
            f"fit_temperature needs as many labels as images and at least one; got "
            f"{len(labels)} labels for {len(probabilities)} images."
        )
    ratio = (math.sqrt(5) - 1) / 2
    low, high = math.log(bounds[0]), math.log(bounds[1])
    left, right = high - ratio * (high - low), low + ratio * (high - low)

    def loss(log_temperature):
        return negative_log_likelihood(probabilities, labels, math.exp(log_temperature))

    loss_left, loss_right = loss(left), loss(right)
    for _ in range(SEARCH_STEPS):
        if loss_left <= loss_right:
            high, right, loss_right = right, left, loss_left
            left = high - ratio * (high - low)
            loss_left = loss(left)
        else:
            low, left, loss_left = left, right, loss_right
            right = low + ratio * (high - low)
            loss_right = loss(right)
    return math.exp((low + high) / 2)


def reliability(probabilities, labels, bins: int = ECE_BINS) -> dict:
    """Per-bin counts, mean confidence and accuracy, bins of equal width over (0, 1].

    Bin b holds the images whose top probability lies in (b/bins, (b+1)/bins].

    Returns:
        dict of "counts" (bins ints), "confidence" and "accuracy" (bins floats, None where
        a bin is empty), "edges" (bins + 1 floats).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    confidence_sums = np.bincount(which, weights=confidence, minlength=bins)
    correct_sums = np.bincount(which, weights=correct, minlength=bins)

    def means(sums):
        return [float(s / n) if n else None for s, n in zip(sums, counts, strict=True)]

    return {
        "counts": counts.tolist(),
        "confidence": means(confidence_sums),
        "accuracy": means(correct_sums),
        "edges": np.linspace(0, 1, bins + 1).round(6).tolist(),
    }


def expected_calibration_error(probabilities, labels, bins: int = ECE_BINS) -> float:
    """ECE: the image-weighted mean gap between accuracy and confidence over the bins.

    Args:
        probabilities: (N, K) probabilities; labels: (N,) true classes.
        bins: equal-width confidence bins (15, as Guo et al.).

    Returns:
        A fraction in [0, 1] (0.005 is 0.5%).

    Example:
        >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
        >>> round(expected_calibration_error(p, [0, 1, 1, 1], bins=10), 4)
        0.375
    """
    table = reliability(probabilities, labels, bins)
    total = sum(table["counts"])
    return float(
        sum(
            n * abs(accuracy - confidence)
            for n, accuracy, confidence in zip(
                table["counts"], table["accuracy"], table["confidence"], strict=True
            )
            if n
        )
        / total
    )


def doubt_threshold(probabilities, max_refused: float = MAX_REFUSED) -> float:
    """The largest threshold that refuses at most ``max_refused`` of the given (validation) images.

    An image is in doubt when its top probability is below the threshold. The largest threshold
    within the budget flags as many of the validation errors (which have low top probabilities)
    as that budget allows; how many it flags is recorded beside it (``fit_calibration``).

    Args:
        probabilities: (N, 10) calibrated probabilities of validation digits.
        max_refused: fraction of them that may be refused (0.01 = 1%).

    Returns:
        A threshold in [0, 1].

    Example:
        >>> p = np.array([[0.5, 0.5], [0.7, 0.3], [0.9, 0.1], [0.99, 0.01]])
        >>> doubt_threshold(p, max_refused=0.25)   # refuses the 0.5 only
        0.7
    """
    top = np.sort(np.asarray(probabilities, dtype=np.float64).max(axis=1))
    refusable = int(math.floor(max_refused * len(top) + 1e-9))
    return float(top[min(refusable, len(top) - 1)])


def in_doubt(probabilities, threshold: float) -> np.ndarray:
    """(N,) bools: the top probability is below the threshold."""
    return np.asarray(probabilities).max(axis=-1) < threshold


def fit_calibration(probabilities, labels, max_refused: float = MAX_REFUSED) -> dict:
    """Temperature and doubt threshold fitted on validation images, with the evidence.

    Args:
        probabilities: (N, 10) uncalibrated probabilities of held-out validation images.
        labels: (N,) their digits.

    Returns:
        The dict written as calibration.json: temperature, threshold, fitted_on, the
        validation ECE and NLL before and after, and how many digits and errors are refused.
    """
    labels = np.asarray(labels).astype(int)
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    threshold = doubt_threshold(calibrated, max_refused)
    refused = in_doubt(calibrated, threshold)
    wrong = calibrated.argmax(axis=1) != labels
    return {
        "temperature": round(temperature, 6),
        "threshold": round(threshold, 6),
        "fitted_on": f"validation, {len(labels)} images",
        "max_refused": max_refused,
        "val_ece_before": round(expected_calibration_error(probabilities, labels), 6),
        "val_ece_after": round(expected_calibration_error(calibrated, labels), 6),
        "val_nll_before": round(negative_log_likelihood(probabilities, labels), 6),
        "val_nll_after": round(negative_log_likelihood(probabilities, labels, temperature), 6),
        "val_refused": int(refused.sum()),
        "val_errors": int(wrong.sum()),
        "val_errors_refused": int((refused & wrong).sum()),
    }


NO_CALIBRATION = {"temperature": 1.0, "threshold": 0.0, "fitted_on": None}  # never in doubt


def write_calibration(folder: str, calibration: dict) -> str:
    """Writes calibration.json in ``folder`` (atomically); returns its path."""
    path = os.path.join(folder, CALIBRATION_FILE)
    runs.write_json(path, calibration)
    return path


def read_calibration(model_path: str | None) -> dict:
    """The calibration stored beside a model file (its folder's calibration.json).

    Args:
        model_path: a model.keras or .onnx file, or a run folder.

    Returns:
        Its calibration dict, or NO_CALIBRATION (T = 1, never in doubt) where there is none.
    """
    if model_path is None:
        return dict(NO_CALIBRATION)
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
    path = os.path.join(folder, CALIBRATION_FILE)
    if not os.path.isfile(path):
        return dict(NO_CALIBRATION)
    calibration = runs.read_json(path)
    if not calibration.get("temperature", 0) > 0:
        raise ValueError(f"{path} has no positive 'temperature'; refit it or delete it.")
    return calibration


def doubt_message(probabilities) -> str:
    """'not sure: 4 or 9': the two most probable digits, most probable first."""
    first, second = np.argsort(-np.asarray(probabilities), kind="stable")[:2]
    return f"not sure: {int(first)} or {int(second)}"
