"""Uploads as the server takes them: PNG/JPEG only, their pixels counted before decoding,
large ones reduced as they decode and a few at a time, the memory handed back after.

Each limit here bounds what one request may cost: MAX_IMAGE_PIXELS is refused (413) from the
header alone; above LARGE_PIXELS an image decodes reduced (a JPEG at 1/2 to 1/8 scale, a PNG
strip by strip), DECODE_SLOTS at once.
"""

import contextlib
import functools
import io
import threading
import warnings

from mnistlab.data.images import ImageError
from mnistlab.data.preprocess import WORK_SIZE, to_mnist

MAX_IMAGE_PIXELS = 4096 * 4096  # width x height of an uploaded image, checked before decoding
LARGE_PIXELS = 1024 * 1024  # images with more pixels than this decode reduced, DECODE_SLOTS at once
DECODE_SLOTS = 2  # large decodes at once: each holds up to 4 bytes a pixel while it runs
STRIP_PIXELS = 1024 * 1024  # pixels of one strip of a large PNG reduced at a time
MMAP_THRESHOLD = 2 * 1024 * 1024  # bytes; larger allocations are returned to the system when freed
TRIM_THRESHOLD = 32 * 1024 * 1024  # bytes of free heap kept for the next request's arrays

IMAGE_TYPES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
OTHER_IMAGE_SIGNATURES = {  # recognised only to say clearly that they are not accepted
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
}


class RequestError(Exception):
    """A request we refuse: an HTTP status and a message for the person who sent it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------------ reading the image


def check_image_bytes(data: bytes) -> None:
    """Refuses what is not PNG or JPEG (415 for other images, 400 for non-images)."""
    if any(data.startswith(signature) for signature in IMAGE_TYPES.values()):
        return
    for signature, kind in OTHER_IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            raise RequestError(415, f"{kind} images are not accepted; send a PNG or JPEG.")
    raise RequestError(400, "The upload is not an image: send a PNG or JPEG of a digit.")


def _too_many_pixels(described: str) -> RequestError:
    return RequestError(
        413,
        f"The image is {described}; the limit is {MAX_IMAGE_PIXELS:,} pixels (e.g. 4096x4096). "
        "Resize it and try again (a digit needs only a few hundred pixels per side).",
    )


def open_image(data: bytes):
    """A PNG/JPEG's header, checked: a lazy PIL image whose pixels are not decoded yet.

    Raises:
        RequestError: 415/400 not PNG or JPEG, 400 unreadable header, 413 too many pixels.
    """
    from PIL import Image

    check_image_bytes(data)
    try:
        with warnings.catch_warnings():  # Pillow's DecompressionBombWarning: our 413 says it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:  # over twice Pillow's own limit: refused in open()
        raise _too_many_pixels(f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except Exception:
        raise RequestError(400, "The image could not be read: its header is corrupt.") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(f"{width}x{height} pixels")
    return image


_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)


def _decode(image):
    """The image's pixels; a large one reduced to at most WORK_SIZE pixels a side as it is read.

    A JPEG decodes at 1/2, 1/4 or 1/8 of its size (``Image.draft``); a PNG decodes whole, then
    is reduced strip by strip (``_shrink``), so no full-size copy is converted. At most
    DECODE_SLOTS large images decode at once: a request costs its decoded image (4 bytes a
    pixel at most) while it decodes, and a few megabytes after. The caller holds one of
    DECODE_SLOTS for a large image (``predict_image``).

    Returns:
        A loaded PIL image, its info (EXIF orientation) kept.
    """
    try:
        if image.width * image.height <= LARGE_PIXELS:
            image.load()
            return image
        if image.format == "JPEG":
            image.draft(None, (WORK_SIZE, WORK_SIZE))  # no smaller than this on either side
        image.load()
        return _shrink(image, WORK_SIZE)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise RequestError(
            400, f"The image could not be decoded ({error}); is it truncated or corrupt?"
        ) from None


REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")  # modes Image.reduce takes


def _shrink(image, longest: int):
    """A box-filtered copy whose longer side is at most ``longest`` (an integer factor), made
    STRIP_PIXELS at a time: a strip is converted (RGBA is premultiplied to reduce) and reduced,
    never the whole image at once."""
    from PIL import Image

    width, height = image.size
    factor = -(-max(width, height) // longest)  # ceiling
    if factor <= 1:
        return image
    mode = image.mode
    if mode not in REDUCIBLE_MODES:  # palette, 1-bit, 16-bit, CMYK: what _grayscale reads
        alpha = "transparency" in image.info or mode.endswith("A")
        mode = "I" if mode.startswith("I;16") else "RGBA" if alpha else "RGB"
        mode = "L" if image.mode == "1" else mode
    reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, STRIP_PIXELS // (width * factor))  # a multiple of factor: no seams
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        if strip.mode != mode:
            strip = strip.convert(mode)
        reduced.paste(strip.reduce(factor), (0, top // factor))
    reduced.info = {
        k: v for k, v in image.info.items() if k != "transparency" or mode == image.mode
    }
    return reduced


def fit_upload(image, preprocess: bool = True):
    """An opened upload (``open_image``), decoded and fitted like MNIST: (28, 28) uint8.

    A large image holds one of DECODE_SLOTS while it decodes and is fitted (tens of MB each),
    so that many at once wait their turn instead of adding up; its memory is handed back after.

    Raises:
        RequestError: 400 undecodable, 422 no digit found.
    """
    large = image.width * image.height > LARGE_PIXELS
    with _decode_slots if large else contextlib.nullcontext():
        image = _decode(image)
        try:  # to_mnist of the decoded image: EXIF orientation, grayscale, fit (as for a file)
            return to_mnist(image, preprocess=preprocess, name="the uploaded image")
        except ImageError as error:
            raise RequestError(422, str(error)) from None
        finally:
            if large:
                del image
                _trim_heaps()  # its strips and fits, freed in this thread's arena, go back


def _trim_heaps() -> None:
    """glibc only: hands the free memory of every malloc arena back to the system. A large
    upload is fitted in a worker thread, whose arena keeps what it freed (above 100 MB after
    16 concurrent 4096x4096 PNGs); this costs about a millisecond, and runs for large
    uploads only."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc():
    """glibc, loaded at its first use (not at import: every command imports this module),
    or None under another C library."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc's; absent elsewhere)
        return libc
    except (OSError, AttributeError):  # not glibc: its own allocator's behaviour
        return None


def return_freed_memory() -> None:
    """glibc only: large blocks (a decoded upload) come from mmap and go back to the system
    when freed. By default glibc raises that threshold after the first such free, and later
    uploads stay in the heap, held after they are answered.

    Smaller blocks (a drawing's arrays, up to a few hundred KB each) come from the heap, and
    its free top is kept up to TRIM_THRESHOLD: mapping, faulting in and returning each one
    anew doubled the time to fit a 300x300 drawing (12 ms against 6 ms)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD, fixed from now on
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
