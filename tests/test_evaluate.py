"""Test-time augmentation: exact whole-pixel shifts, and predictions averaged over the views."""

import numpy as np
import pytest

import mnistlab
from mnistlab.models.saved import TTA_SHIFTS, measure, predict_probabilities, shift_images
from mnistlab.training.augment import affine_warp

from .conftest import run_cli_in_process


def _by_hand(image, down, right):
    """One (H, W) image moved with zero padding, written independently of shift_images."""
    padded = np.pad(image, 2)
    height, width = image.shape
    return padded[2 - down : 2 - down + height, 2 - right : 2 - right + width]


@pytest.mark.parametrize("down, right", [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (2, -2)])
def test_shift_matches_the_reference_warp_and_a_hand_shift(down, right):
    images = np.random.default_rng(3).random((4, 28, 28)).astype(np.float32)
    moved = shift_images(images, down, right)
    np.testing.assert_allclose(moved, affine_warp(images, shifts=(down, right)), atol=1e-6)
    for image, result in zip(images, moved, strict=True):
        np.testing.assert_array_equal(result, _by_hand(image, down, right))
    # channels travel along: a (N, H, W, 1) batch moves the same way
    np.testing.assert_array_equal(shift_images(images[..., None], down, right)[..., 0], moved)


class _Linear:
    """A fake model: softmax of a fixed linear map, so every pixel's position matters."""

    def __init__(self):
        self.weights = np.random.default_rng(5).normal(size=(784, 10)).astype(np.float32)

    def predict(self, inputs, batch_size, verbose):
        logits = np.asarray(inputs).reshape(len(inputs), -1) @ self.weights
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def test_tta_averages_the_probabilities_of_the_five_views():
    model = _Linear()
    images = np.random.default_rng(7).integers(0, 256, (6, 28, 28)).astype(np.uint8)
    scaled = images.astype(np.float32) / 255
    views = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    assert sorted(TTA_SHIFTS) == sorted(views)
    expected = np.mean(
        [model.predict(np.stack([_by_hand(x, *view) for x in scaled]), 0, 0) for view in views],
        axis=0,
    )
    np.testing.assert_allclose(predict_probabilities(model, images, tta=True), expected, atol=1e-6)
    plain = predict_probabilities(model, images)
    np.testing.assert_allclose(plain, model.predict(scaled, 0, 0), atol=1e-6)
    assert not np.allclose(plain, expected)  # the views do change the answer of this model
    labels = expected.argmax(axis=1)
    assert measure(model, images, labels, tta=True)["error"] == 0.0


def test_evaluate_with_tta_on_a_trained_run(trained_run, tiny_data):
    _, (x_test, y_test) = tiny_data
    model = mnistlab.load_model(trained_run)
    scaled = x_test[..., None].astype(np.float32) / 255
    hand = np.mean(
        [
            model.predict(np.stack([_by_hand(x[..., 0], *view)[..., None] for x in scaled]), 0)
            for view in TTA_SHIFTS
        ],
        axis=0,
    )
    metrics = mnistlab.evaluate(trained_run, data=tiny_data, tta=True)
    assert metrics["tta"] is True
    np.testing.assert_array_equal(metrics["predicted"], hand.argmax(axis=1))
    assert metrics["error"] == pytest.approx(100 * np.mean(hand.argmax(axis=1) != y_test))
    results = mnistlab.predict(list(x_test[:5]), model=model, preprocess=False, tta=True)
    assert [result["digit"] for result in results] == hand.argmax(axis=1)[:5].tolist()


def test_evaluate_command_takes_tta(trained_run, tiny_npz):
    result = run_cli_in_process("evaluate", trained_run, "--data", tiny_npz, "--tta")
    assert result.returncode == 0, result.stderr
    assert "each averaged with its 4 one-pixel shifts" in result.stdout
