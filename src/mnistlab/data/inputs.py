"""The images a command names: a file, or ``test:INDEX`` for an image of the MNIST test set."""

from __future__ import annotations

import functools
import os

from mnistlab.data.mnist import load_mnist
from mnistlab.data.preprocess import to_mnist

TEST_PREFIX = "test:"  # "test:INDEX" names an image of the MNIST test set


def load_input(source, preprocess: bool = True, data=None):
    """One image as the network's (28, 28) uint8 input.

    Args:
        source: a path, bytes, file object, PIL image or array (anything ``to_mnist`` takes),
            or the string "test:INDEX" for image INDEX of the MNIST test set (an existing file
            of that name wins).
        preprocess: fit a photo or drawing as MNIST was made; False takes a 28x28 image as it is.
        data: where MNIST is, for "test:INDEX": None ($MNISTLAB_DATA or the caches), a path,
            or ((x_train, y_train), (x_test, y_test)) arrays.

    Returns:
        (28, 28) uint8 array, light digit (255) on black (0).

    Raises:
        ValueError (preprocess.ImageError for images): unreadable, blank, too large, or a
        test index out of range.
    """

    if isinstance(source, str) and source.startswith(TEST_PREFIX) and not os.path.exists(source):
        return _test_image(source, data)
    return to_mnist(source, preprocess=preprocess)


def _test_image(source: str, data):
    text = source[len(TEST_PREFIX) :]
    if not text.isdigit():
        raise ValueError(f"'{source}' should be test:INDEX with INDEX a number, e.g. test:0.")
    x_test = data[1][0] if isinstance(data, (tuple, list)) else _test_images(data)
    index = int(text)
    if index >= len(x_test):
        raise ValueError(
            f"'{source}': the test set has {len(x_test)} images (indices 0-{len(x_test) - 1})."
        )
    return x_test[index]


@functools.lru_cache(maxsize=2)
def _test_images(data):
    """The MNIST test images, loaded once per process and place."""

    _, (x_test, _) = load_mnist(data)
    return x_test


def describe(source) -> str:
    """A short name for an image in messages and results: its path, else its kind."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"
