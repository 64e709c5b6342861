"""Reading and writing MNIST's IDX files (gzip-compressed or not)."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np


class DataError(ValueError):
    """A data set that cannot be found, read or trusted; the message says which file and why."""


# IDX type code -> numpy dtype (IDX stores numbers big-endian).
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file, gzip-compressed or not, and checks that its size fits its header.

    Args:
        path: an IDX file (e.g. ``train-images-idx3-ubyte.gz``); gzip is detected by content.

    Returns:
        The array in native byte order, writable, with the shape that the header gives
        (e.g. uint8 of shape (60000, 28, 28) for MNIST's training images).

    Raises:
        DataError: unreadable file, bad gzip, wrong magic number, or a size that disagrees
            with the header (a truncated file).

    Example:
        >>> write_idx("/tmp/labels-idx1-ubyte", np.arange(3, dtype=np.uint8))
        >>> read_idx("/tmp/labels-idx1-ubyte").tolist()
        [0, 1, 2]
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise DataError(f"Cannot read '{path}': {error.strerror}.") from None
    if raw[:2] == b"\x1f\x8b" or path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(
                f"'{path}' is not a valid gzip file ({error}); it is truncated or corrupt. "
                "Delete it and fetch it again."
            ) from None
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: str) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        magic = raw[:4].hex() or "empty"
        raise DataError(
            f"'{path}' is not an IDX file: magic number 0x{magic}, expected 0x0000TTDD "
            "(TT a type code such as 08 for uint8, DD the number of dimensions)."
        )
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim  # bytes: magic number, then one big-endian uint32 per dimension
    if len(raw) < header:
        raise DataError(f"'{path}' is truncated: it ends inside its {header}-byte header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"'{path}' is {problem}: its header says {'x'.join(map(str, dims))} values of "
            f"{dtype.name} ({expected} bytes), the file holds {len(raw)} bytes."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a copy: writable, native byte order


def _idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX file that holds ``array``."""
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim == 0:
        raise ValueError(
            f"IDX holds arrays of 1+ dimensions of {', '.join(str(d) for d in codes)}; "
            f"got {array.ndim} dimensions of {array.dtype}. Convert it first (e.g. astype)."
        )
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``.

    Args:
        path: the file to write (e.g. ``my-data/train-images-idx3-ubyte.gz``).
        array: 1+ dimensions of uint8, int8, int16, int32, float32 or float64.

    Example:
        >>> write_idx("/tmp/x-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
        >>> read_idx("/tmp/x-idx3-ubyte.gz").shape
        (2, 28, 28)
    """
    data = _idx_bytes(np.asarray(array))
    path = os.fspath(path)
    if path.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same array, same bytes
    with open(path, "wb") as handle:
        handle.write(data)
