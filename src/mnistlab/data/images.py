"""Opening a user's image (path, bytes, file, PIL image or array), refusing oversized ones unread."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # pixels (width x height); larger images are refused unread

MAX_IMAGE_BYTES = 50 * 1024 * 1024  # bytes of an in-memory or uploaded image


class ImageError(ValueError):
    """An image that cannot be read or holds no digit; the message names the image and why."""


def load_image(source, max_pixels: int | None = None, *, name: str | None = None) -> Image.Image:
    """Reads an image, upright (EXIF orientation applied), refusing oversized ones unread.

    Args:
        source: a path (str or os.PathLike), bytes, a binary file object, a PIL image, or a
            (height, width) or (height, width, channels) numpy array.
        max_pixels: the largest width x height accepted; None means MAX_IMAGE_PIXELS.
        name: what to call the image in error messages (default: the path, or "the image").

    Returns:
        A loaded PIL image in its own mode (L, RGB, RGBA, ...), upright.

    Raises:
        ImageError: the file is missing or empty, is not an image, is too large or truncated.

    Example:
        >>> load_image(b"not an image")
        Traceback (most recent call last):
        mnistlab.data.images.ImageError: the image is not an image that Pillow can read ...
    """
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    label = name or _describe(source)
    if isinstance(source, Image.Image):
        image = source
        _check_pixels(image.size, max_pixels, label)
    elif isinstance(source, np.ndarray):
        image = _from_array(source, label)
        _check_pixels(image.size, max_pixels, label)
    else:
        stream = _open_stream(source, label)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(stream)  # reads the header only
                _check_pixels(image.size, max_pixels, label)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                f"{label} is too large to decode safely (Pillow's decompression-bomb guard); "
                f"the limit is {max_pixels:,} pixels. Resize it and try again."
            ) from None
        except UnidentifiedImageError:
            raise ImageError(
                f"{label} is not an image that Pillow can read (PNG, JPEG, BMP, GIF, TIFF, "
                "WebP, ...). Check the file, or export it again as PNG."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            if isinstance(error, ImageError):
                raise
            raise ImageError(f"{label} could not be decoded ({error}); is it truncated?") from None
    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):  # malformed EXIF: as stored
        return image


# ---------------------------------------------------------------- loading


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the uploaded image"
    return "the image"


def _check_pixels(size: tuple[int, int], max_pixels: int, label: str) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}. Resize it (a digit needs far fewer pixels) and try again."
        )
    if width == 0 or height == 0:
        raise ImageError(f"{label} has no pixels ({width}x{height}).")


def _open_stream(source, label: str):
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ImageError(f"Image file {label} not found. Check the path.")
        if os.path.isdir(path):
            raise ImageError(f"{label} is a folder, not an image file.")
        if os.path.getsize(path) == 0:
            raise ImageError(f"Image file {label} is empty (0 bytes).")
        try:
            with open(path, "rb") as handle:
                return io.BytesIO(handle.read())
        except OSError as error:
            raise ImageError(f"Cannot read image file {label}: {error.strerror}.") from None
    if hasattr(source, "read"):
        source = source.read(MAX_IMAGE_BYTES + 1)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError(f"{label} is empty (0 bytes).")
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{label} is larger than the limit of {MAX_IMAGE_BYTES:,} bytes; "
                "send a smaller image."
            )
        return io.BytesIO(data)
    raise ImageError(
        f"Cannot read an image from a {type(source).__name__}; give a path, bytes, a file "
        "object, a PIL image or a numpy array."
    )


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, 0] if array.shape[2] == 1 else array
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(
            f"{label} must be (height, width) or (height, width, 3|4), got {array.shape}."
        )
    if array.dtype != np.uint8:
        high = 1.0 if array.size and np.nanmax(array) <= 1.0 else 255.0  # 0..1 floats
        array = np.clip(np.nan_to_num(array.astype(np.float64)) * (255.0 / high), 0, 255)
        array = np.round(array).astype(np.uint8)
    return Image.fromarray(array)
