"""MNIST (and any data set in its IDX format) as numpy arrays, from a file, a cache or a mirror.

``load_mnist()`` returns exactly what ``keras.datasets.mnist.load_data()`` returns. It takes the
first source it finds, in this order:

1. ``path``: a folder holding the four IDX files (``.gz`` or uncompressed), or a Keras
   ``mnist.npz`` file (keys x_train, y_train, x_test, y_test);
2. ``$MNISTLAB_DATA`` (config.DATA_ENV), a folder or file as above (for dataset "mnist" only);
3. the Keras cache (``$KERAS_HOME`` or ``~/.keras``, e.g. ``datasets/mnist.npz``), then
   mnistlab's own cache (``config.cache_dir()/<dataset>/``);
4. a download from the public mirrors in DATASETS, each file checked against the hash its
   mirror publishes and written atomically into mnistlab's own cache.

Every file is checked before use (magic number, sizes, dims, image/label counts, label range);
a bad file is refused with a DataError that names it. ``verify=True`` also compares the content
with the known md5 of the original files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field

import numpy as np

from mnistlab.core import config
from mnistlab.data.idx import DataError, _idx_bytes, read_idx

DOWNLOAD_TIMEOUT = 30  # seconds a mirror may stay silent before we try the next one


@dataclass(frozen=True)
class Mirror:
    """One place to download a data set from, with the hashes its publisher gives."""

    base_url: str  # file names are appended to it, so it ends with "/"
    algorithm: str  # "md5" or "sha256", as published
    files: dict[str, str]  # file name -> published hex digest; "*.npz" = one Keras npz file


@dataclass(frozen=True)
class Dataset:
    """A data set in MNIST's format: where it is cached, where it is mirrored."""

    name: str
    keras_cache: str  # under $KERAS_HOME: an npz file or a folder of IDX files
    npz_name: str  # an npz file of this name in a folder is used when its IDX files are not
    mirrors: tuple[Mirror, ...]
    content_md5: dict[str, str] = field(default_factory=dict)  # role -> md5 of uncompressed IDX
    image_shape: tuple[int, int] = (28, 28)  # pixels (rows, columns)
    num_classes: int = 10  # labels are 0 .. num_classes - 1


# Role -> IDX file name (a ".gz" may follow); the same four names for every data set here.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# Hashes as published by torchvision (torchvision/datasets/mnist.py, MNIST and FashionMNIST)
# and by Keras (its datasets modules, mnist and fashion_mnist); the content md5s of MNIST
# are those of the original uncompressed files.
DATASETS = {
    "mnist": Dataset(
        name="mnist",
        keras_cache=os.path.join("datasets", "mnist.npz"),
        npz_name="mnist.npz",
        mirrors=(
            Mirror(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "md5",
                {
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
            ),
            Mirror(
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                "sha256",
                {"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"},
            ),
        ),
        content_md5={
            "x_train": "6bbc9ace898e44ae57da46a324031adb",
            "y_train": "a25bea736e30d166cdddb491f175f624",
            "x_test": "2646ac647ad5339dbf082846283269ea",
            "y_test": "27ae3e4e09519cfbb04c329615203637",
        },
    ),
    "fashion_mnist": Dataset(
        name="fashion_mnist",
        keras_cache=os.path.join("datasets", "fashion-mnist"),
        npz_name="fashion_mnist.npz",
        mirrors=(
            Mirror(
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                "sha256",
                {
                    "train-images-idx3-ubyte.gz": (
                        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
                    ),
                    "train-labels-idx1-ubyte.gz": (
                        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
                    ),
                    "t10k-images-idx3-ubyte.gz": (
                        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
                    ),
                    "t10k-labels-idx1-ubyte.gz": (
                        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
                    ),
                },
            ),
            Mirror(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "md5",
                {
                    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
                },
            ),
        ),
    ),
}


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"Unknown dataset '{name}'. Available: {', '.join(DATASETS)}.")
    return DATASETS[name]


def _keras_home() -> str:
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _own_cache(info: Dataset) -> str:
    return os.path.join(config.cache_dir(), info.name)


def _idx_paths(folder: str) -> dict[str, str]:
    """Role -> IDX file present in ``folder`` (uncompressed preferred: faster to read)."""
    found = {}
    for role, name in IDX_FILES.items():
        for candidate in (name, name + ".gz"):
            if os.path.isfile(os.path.join(folder, candidate)):
                found[role] = os.path.join(folder, candidate)
                break
    return found


def _source_in(location: str, info: Dataset) -> tuple[str | None, str]:
    """The data set at ``location`` (an npz file, or a folder of IDX files or npz), or why not."""
    if os.path.isfile(location):
        if location.endswith(".npz"):
            return location, ""
        return None, "is a file but not an .npz file (for IDX files give their folder)"
    if not os.path.isdir(location):
        return None, "does not exist"
    found = _idx_paths(location)
    if len(found) == len(IDX_FILES):
        return location, ""
    if os.path.isfile(os.path.join(location, info.npz_name)):
        return os.path.join(location, info.npz_name), ""
    missing = [IDX_FILES[role] + "[.gz]" for role in IDX_FILES if role not in found]
    return None, f"has neither {info.npz_name} nor {', '.join(missing)}"


def find_source(
    path: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download: bool = True,
    mirrors: list[Mirror] | tuple[Mirror, ...] | None = None,
) -> str:
    """The file or folder that ``load_mnist`` reads, downloading the data set if needed.

    Args:
        path: an explicit folder of IDX files or an npz file; it wins over everything else.
        dataset: a name in DATASETS ("mnist" or "fashion_mnist").
        download: fetch from the mirrors into mnistlab's cache when nothing local is found.
        mirrors: mirrors to try instead of DATASETS[dataset].mirrors (e.g. a local server).

    Returns:
        An absolute path: a folder holding the four IDX files, or an npz file. Record it with
        a run so that anyone can see where its data came from.

    Raises:
        DataError: the explicit path or $MNISTLAB_DATA is wrong, or nothing is found and no
            mirror could be downloaded; the message lists every place tried.
    """
    info = _dataset(dataset)
    explicit = [("path", os.fspath(path))] if path is not None else []
    env_value = os.environ.get(config.DATA_ENV) if info.name == "mnist" else None
    if env_value:
        explicit.append((f"${config.DATA_ENV}", env_value))
    for label, location in explicit:  # named by the user: wrong is an error, never skipped
        source, reason = _source_in(location, info)
        if source is None:
            raise DataError(
                f"{label}='{location}' {reason}. Point it to a folder holding "
                f"{', '.join(n + '.gz' for n in IDX_FILES.values())} (or uncompressed), "
                "or to a Keras npz file."
            )
        return os.path.abspath(source)

    tried = [f"${config.DATA_ENV} (unset)" if info.name == "mnist" else None]
    for label, location in (
        ("Keras cache", os.path.join(_keras_home(), info.keras_cache)),
        ("mnistlab cache", _own_cache(info)),
    ):
        source, reason = _source_in(location, info)
        if source is not None:
            return os.path.abspath(source)
        tried.append(f"{label} {location} ({reason})")

    if download:
        failures = _download(info, _own_cache(info), mirrors or info.mirrors)
        if not failures:
            source, reason = _source_in(_own_cache(info), info)
            if source is not None:
                return os.path.abspath(source)
            failures = [f"{_own_cache(info)} {reason} after download"]
        tried.append("downloads: " + "; ".join(failures))
    else:
        tried.append("download (off)")
    raise DataError(
        f"No {info.name} data found. Tried: {'; '.join(t for t in tried if t)}. Fix: pass "
        f"path=, or set {config.DATA_ENV} to a folder holding the four IDX files "
        f"({', '.join(n + '.gz' for n in IDX_FILES.values())}) or to a Keras npz file, "
        "or run once with network access to fill the cache."
    )


def _download(info: Dataset, folder: str, mirrors) -> list[str]:
    """Fetches every file of the first mirror that works into ``folder``; returns the failures."""
    failures = []
    for mirror in mirrors:
        url = mirror.base_url
        try:
            os.makedirs(folder, exist_ok=True)
            for name, digest in mirror.files.items():
                url = mirror.base_url + name
                target = os.path.join(folder, name)
                if os.path.isfile(target) and _file_hash(target, mirror.algorithm) == digest:
                    continue  # fetched earlier from this mirror (an interrupted download)
                _fetch(url, target, mirror.algorithm, digest)
            return []
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url} failed: {getattr(error, 'reason', None) or error}")
    try:
        os.rmdir(folder)  # leave no empty cache folder behind; one holding files stays
    except OSError:
        pass
    return failures


def _file_hash(path: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _fetch(url: str, target: str, algorithm: str, digest: str) -> None:
    """Downloads ``url`` to ``target`` if its hash is ``digest``; else leaves no file at all."""
    print(f"Downloading {url}", file=sys.stderr)
    folder, name = os.path.split(target)
    # Same folder as the target, so that os.replace is an atomic rename: readers see the whole
    # verified file or none.
    descriptor, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            hasher = hashlib.new(algorithm, usedforsecurity=False)
            size = 0  # bytes received
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                announced = response.headers.get("Content-Length")
                while chunk := response.read(1 << 20):
                    hasher.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
        if announced is not None and size != int(announced):
            raise ValueError(f"transfer cut short: got {size} of {announced} bytes; refused")
        if hasher.hexdigest() != digest:
            raise ValueError(
                f"{algorithm} mismatch: expected {digest}, got {hasher.hexdigest()}; refused"
            )
        os.chmod(partial, 0o644)  # mkstemp makes it private; a cache file is readable by all
        os.replace(partial, target)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise


def _read_npz(path: str) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in IDX_FILES if key not in archive.files]
            if missing:
                raise DataError(
                    f"'{path}' lacks key(s) {', '.join(missing)}; it holds "
                    f"{', '.join(archive.files) or 'nothing'}. Expected a Keras mnist.npz with "
                    f"{', '.join(IDX_FILES)}."
                )
            return {key: archive[key] for key in IDX_FILES}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(
            f"'{path}' is not a readable npz file ({error}); it is truncated or corrupt. "
            "Delete it and fetch it again."
        ) from None


def _check(arrays: dict[str, np.ndarray], files: dict[str, str], info: Dataset) -> None:
    """Refuses arrays that are not a data set in MNIST's form; messages name the file."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        image_file, label_file = files[f"x_{split}"], files[f"y_{split}"]
        expected_shape = "(N, " + ", ".join(map(str, info.image_shape)) + ")"
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != info.image_shape:
            raise DataError(
                f"'{image_file}' holds {images.dtype} of shape {images.shape}; expected "
                f"{split} images, uint8 of shape {expected_shape}. Is it the right file?"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DataError(
                f"'{label_file}' holds {labels.dtype} of shape {labels.shape}; expected "
                f"{split} labels, uint8 of shape (N,). Is it the right file?"
            )
        if len(images) != len(labels):
            raise DataError(
                f"'{image_file}' holds {len(images)} images but '{label_file}' holds "
                f"{len(labels)} labels; they must match. One of them is the wrong file."
            )
        if len(labels) and labels.max() >= info.num_classes:
            raise DataError(
                f"'{label_file}' holds label {labels.max()}; {info.name} labels are "
                f"0 to {info.num_classes - 1}. Is it the right file?"
            )


def _verify(arrays: dict[str, np.ndarray], files: dict[str, str], info: Dataset) -> None:
    if not info.content_md5:
        raise DataError(f"verify=True: no known content hashes for {info.name}; use verify=False.")
    for role, expected in info.content_md5.items():
        got = hashlib.md5(_idx_bytes(arrays[role]), usedforsecurity=False).hexdigest()
        if got != expected:
            raise DataError(
                f"'{files[role]}' ({role}) differs from the original {info.name}: md5 of its "
                f"content is {got}, expected {expected}. Delete it and fetch it again."
            )


def load_mnist(
    path: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download: bool = True,
    verify: bool = False,
    mirrors: list[Mirror] | tuple[Mirror, ...] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads MNIST (or another data set in its format) as keras.datasets.mnist.load_data() does.

    Args:
        path: folder of IDX files or Keras npz file; None = $MNISTLAB_DATA, caches, download.
        dataset: a name in DATASETS ("mnist" or "fashion_mnist").
        download: allow fetching from the mirrors when nothing local is found.
        verify: also compare the content with the original files' md5 (about 0.1 s for MNIST).
        mirrors: mirrors to try instead of DATASETS[dataset].mirrors.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays; for MNIST of shapes
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,); pixels 0-255, labels 0-9.

    Raises:
        DataError (a ValueError): nothing found, or a file that is truncated, corrupt or not
            what its name says; the message names the file.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()
        >>> x_train.shape, y_test[:3].tolist()
        ((60000, 28, 28), [7, 2, 1])
    """
    info = _dataset(dataset)
    source = find_source(path, dataset=dataset, download=download, mirrors=mirrors)
    if os.path.isfile(source):
        arrays = _read_npz(source)
        files = {role: f"{source}:{role}" for role in IDX_FILES}
    else:
        files = _idx_paths(source)
        arrays = {role: read_idx(file) for role, file in files.items()}
    _check(arrays, files, info)
    if verify:
        _verify(arrays, files, info)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def split_validation(
    x: np.ndarray, y: np.ndarray, val_size: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Holds out the LAST ``val_size`` examples for validation (deterministic, no shuffling).

    MNIST's training file is not sorted by label, so its last 5000 images are a fair
    validation set; the same split every run, whatever the seed.

    Args:
        x: examples, shape (N, ...).
        y: labels, shape (N,) or (N, classes).
        val_size: 0 <= val_size < N examples to hold out.

    Returns:
        ``(x_train, y_train), (x_val, y_val)``: views of the inputs, N - val_size and val_size
        long.

    Example:
        >>> (x_tr, y_tr), (x_val, y_val) = split_validation(np.arange(5), np.arange(5), 2)
        >>> x_tr.tolist(), x_val.tolist()
        ([0, 1, 2], [3, 4])
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}; they must match.")
    if not 0 <= val_size < len(x):
        raise ValueError(
            f"val_size={val_size} must be 0 or more and less than the {len(x)} examples; "
            "lower it (0 = no validation split)."
        )
    cut = len(x) - val_size
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
