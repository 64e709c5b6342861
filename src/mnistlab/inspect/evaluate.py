"""Evaluating a trained model on the MNIST test set: error, per-digit accuracy, confusion matrix."""

from __future__ import annotations

from mnistlab.data.mnist import load_mnist
from mnistlab.models import calibration
from mnistlab.models.saved import load_model, predict_probabilities, resolve_model_path, score


def evaluate(spec: str | None = None, data=None, tta: bool = False) -> dict:
    """Measures a trained model on the MNIST test set.

    Args:
        spec: run folder, .keras file, or None for the shipped model.
        data: None, a path, or arrays as for ``mnistlab.train``.
        tta: average each test image's prediction with those of its four one-pixel shifts.

    Returns:
        The dict of ``measure`` (``["error"]`` is the test error in percent), plus
        "calibration": the model's calibration.json (temperature, threshold; T = 1 and no
        threshold without one), the test ECE (15 bins, fractions) before and after it, the
        reliability tables of both (``calibration.reliability``), and how many test digits
        are answered "not sure" ("refused") and how many errors are among them.

    Example:
        >>> mnistlab.evaluate("runs/cnn")["error"]   # doctest: +SKIP
        1.03
    """

    model = load_model(spec)
    if isinstance(data, (tuple, list)):
        _, (x_test, y_test) = data
    else:
        _, (x_test, y_test) = load_mnist(data)
    raw = predict_probabilities(model, x_test, tta)
    metrics = score(raw, y_test, tta)
    fitted = calibration.read_calibration(resolve_model_path(spec))
    calibrated = calibration.apply_temperature(raw, fitted["temperature"])
    refused = calibration.in_doubt(calibrated, fitted["threshold"])
    wrong = calibrated.argmax(axis=1) != y_test
    metrics["calibration"] = {
        **fitted,
        "ece_before": calibration.expected_calibration_error(raw, y_test),
        "ece_after": calibration.expected_calibration_error(calibrated, y_test),
        "refused": int(refused.sum()),
        "errors_refused": int((refused & wrong).sum()),
        "reliability_before": calibration.reliability(raw, y_test),
        "reliability_after": calibration.reliability(calibrated, y_test),
    }
    return metrics


def format_report(metrics: dict) -> str:
    lines = [
        f"Classification error: {metrics['error']:.2f}% "
        f"({len(metrics['misclassified'])} of {metrics['test_images']} test images"
        + (", each averaged with its 4 one-pixel shifts)" if metrics.get("tta") else ")")
    ]
    fit = metrics.get("calibration")
    if fit:
        source = f"fitted on {fit['fitted_on']}" if fit["fitted_on"] else "no calibration.json"
        lines.append(
            f"Calibration: T = {fit['temperature']:.4f} ({source}); expected calibration error "
            f"(15 bins) {100 * fit['ece_before']:.2f}% before, {100 * fit['ece_after']:.2f}% after"
        )
        lines.append(
            f"Not sure (top probability below {fit['threshold']:.4f}): {fit['refused']} of "
            f"{metrics['test_images']} test images, holding {fit['errors_refused']} of the "
            f"{len(metrics['misclassified'])} errors"
        )
    lines.append("Per-digit accuracy:")
    lines.append(
        "  "
        + "  ".join(f"{d}: {a * 100:.2f}%" for d, a in enumerate(metrics["per_digit_accuracy"]))
    )
    lines.append("Confusion matrix (rows: true digit, columns: predicted):")
    lines.append("      " + "".join(f"{d:>6}" for d in range(10)))
    for digit, row in enumerate(metrics["confusion"]):
        lines.append(f"  {digit:>3} " + "".join(f"{count:>6}" for count in row))
    return "\n".join(lines)
