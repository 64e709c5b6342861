"""Evaluating a trained model on the MNIST test set: error, per-digit accuracy, confusion matrix."""

from __future__ import annotations

from mnistlab.data.mnist import load_mnist
from mnistlab.models.saved import load_model, measure


def evaluate(spec: str | None = None, data=None, tta: bool = False) -> dict:
    """Measures a trained model on the MNIST test set.

    Args:
        spec: run folder, .keras file, or None for the shipped model.
        data: None, a path, or arrays as for ``mnistlab.train``.
        tta: average each test image's prediction with those of its four one-pixel shifts.

    Returns:
        The dict of ``measure`` (``["error"]`` is the test error in percent).

    Example:
        >>> mnistlab.evaluate("runs/cnn")["error"]   # doctest: +SKIP
        1.03
    """

    model = load_model(spec)
    if isinstance(data, (tuple, list)):
        _, (x_test, y_test) = data
    else:
        _, (x_test, y_test) = load_mnist(data)
    return measure(model, x_test, y_test, tta)


def format_report(metrics: dict) -> str:
    lines = [
        f"Classification error: {metrics['error']:.2f}% "
        f"({len(metrics['misclassified'])} of {metrics['test_images']} test images"
        + (", each averaged with its 4 one-pixel shifts)" if metrics.get("tta") else ")")
    ]
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
