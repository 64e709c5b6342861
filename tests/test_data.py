"""mnistlab.data: IDX/npz reading, refusal of bad files, source precedence, real downloads
from a local HTTP server, and one test on the real MNIST when $MNISTLAB_DATA is set."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import mnist as data
from mnistlab.data.idx import DataError, read_idx, write_idx
from mnistlab.data.mnist import Mirror, find_source, load_mnist

REAL_DATA = os.environ.get("MNISTLAB_DATA")  # read before the fixture below clears it
NAMES = data.IDX_FILES  # role -> IDX file name


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $MNISTLAB_DATA, empty Keras and mnistlab caches, no proxy for 127.0.0.1."""
    monkeypatch.delenv("MNISTLAB_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("MNISTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def make_set(train=6, test=4, seed=0):
    """A tiny data set: role -> array, in MNIST's dtypes and shapes."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, test, dtype=np.uint8),
    }


def write_folder(folder, arrays, gz=True):
    os.makedirs(folder, exist_ok=True)
    for role, name in NAMES.items():
        write_idx(os.path.join(folder, name + (".gz" if gz else "")), arrays[role])
    return str(folder)


def write_npz(path, arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **arrays)
    return str(path)


def assert_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for role, got in zip(NAMES, (x_train, y_train, x_test, y_test), strict=False):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[role])


# --- IDX format --------------------------------------------------------------------------


def test_write_idx_bytes_match_the_format_by_hand(tmp_path):
    # magic 0x00000801 (uint8, 1 dimension), then the size 3 big-endian, then the values.
    write_idx(tmp_path / "labels-idx1-ubyte", np.array([7, 2, 1], dtype=np.uint8))
    assert (tmp_path / "labels-idx1-ubyte").read_bytes() == bytes.fromhex(
        "00000801 00000003 070201"
    )


def test_read_idx_of_a_hand_written_int16_file(tmp_path):
    path = tmp_path / "values-idx2-short"
    path.write_bytes(struct.pack(">BBBBII4h", 0, 0, 0x0B, 2, 2, 2, 1, -2, 300, -400))
    array = read_idx(path)
    assert array.dtype == np.int16 and array.dtype.isnative
    assert array.tolist() == [[1, -2], [300, -400]]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = read_idx(tmp_path / f"a-idx3{suffix}")
    assert back.dtype == np.dtype(dtype) and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "a-idx1", np.arange(3, dtype=np.int64))


# --- loading -----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_folder(tmp_path, gz):
    arrays = make_set()
    folder = write_folder(tmp_path / "idx", arrays, gz=gz)
    assert_loaded(load_mnist(folder, download=False), arrays)
    assert find_source(folder) == os.path.abspath(folder)


def test_load_keras_npz(tmp_path):
    arrays = make_set()
    path = write_npz(tmp_path / "mnist.npz", arrays)
    assert_loaded(load_mnist(path, download=False), arrays)


def test_folder_with_npz_only(tmp_path):
    arrays = make_set()
    write_npz(tmp_path / "d" / "mnist.npz", arrays)
    assert find_source(tmp_path / "d") == str(tmp_path / "d" / "mnist.npz")
    assert_loaded(load_mnist(tmp_path / "d"), arrays)


# --- refusal of bad files: each must name the file -----------------------------------------


def corrupt_magic(folder):
    path = os.path.join(folder, NAMES["x_train"])
    raw = bytearray(Path(path).read_bytes())
    raw[:4] = b"\x1f\x00\x08\x03"
    Path(path).write_bytes(raw)
    return path, "magic number"


def truncate(folder):
    path = os.path.join(folder, NAMES["x_test"])
    Path(path).write_bytes(Path(path).read_bytes()[:-100])
    return path, "truncated"


def extra_bytes(folder):
    path = os.path.join(folder, NAMES["y_test"])
    Path(path).write_bytes(Path(path).read_bytes() + b"\x00")
    return path, "longer than its header"


def wrong_dims(folder):
    path = os.path.join(folder, NAMES["x_train"])
    write_idx(path, np.zeros((6, 27, 28), np.uint8))
    return path, r"\(6, 27, 28\)"


def count_mismatch(folder):
    path = os.path.join(folder, NAMES["y_train"])
    write_idx(path, np.zeros(5, np.uint8))
    return path, "6 images .* 5 labels"


def label_out_of_range(folder):
    path = os.path.join(folder, NAMES["y_test"])
    write_idx(path, np.array([0, 1, 10, 3], np.uint8))
    return path, "label 10"


def labels_in_place_of_images(folder):
    path = os.path.join(folder, NAMES["x_test"])
    write_idx(path, np.zeros(4, np.uint8))
    return path, "expected test images"


def float_images(folder):
    path = os.path.join(folder, NAMES["x_test"])
    write_idx(path, np.zeros((4, 28, 28), np.float32))
    return path, "float32"


CORRUPTIONS = [
    corrupt_magic,
    truncate,
    extra_bytes,
    wrong_dims,
    count_mismatch,
    label_out_of_range,
    labels_in_place_of_images,
    float_images,
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_bad_idx_file_is_refused_by_name(tmp_path, corrupt):
    folder = write_folder(tmp_path / "idx", make_set(), gz=False)
    path, reason = corrupt(folder)
    with pytest.raises(DataError, match=reason) as error:
        load_mnist(folder, download=False)
    assert path in str(error.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_bad_gzip_is_refused_by_name(tmp_path, damage):
    folder = write_folder(tmp_path / "idx", make_set())
    path = os.path.join(folder, NAMES["x_train"] + ".gz")
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"not gzip at all")
    with pytest.raises(DataError, match="gzip") as error:
        load_mnist(folder, download=False)
    assert path in str(error.value)


def test_bad_npz_is_refused_by_name(tmp_path):
    arrays = make_set()
    missing = write_npz(
        tmp_path / "a" / "mnist.npz", {k: v for k, v in arrays.items() if k != "y_test"}
    )
    with pytest.raises(DataError, match="lacks key.*y_test") as error:
        load_mnist(missing, download=False)
    assert missing in str(error.value)
    truncated = write_npz(tmp_path / "b" / "mnist.npz", arrays)
    raw = Path(truncated).read_bytes()
    Path(truncated).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="npz") as error:
        load_mnist(truncated, download=False)
    assert truncated in str(error.value)


def test_verify_compares_with_the_original_md5(tmp_path):
    folder = write_folder(tmp_path / "idx", make_set())
    load_mnist(folder, download=False)  # structurally fine ...
    with pytest.raises(DataError, match="md5"):  # ... but not the real MNIST
        load_mnist(folder, download=False, verify=True)


# --- where the data comes from -------------------------------------------------------------


def test_precedence(tmp_path, monkeypatch):
    # Four different sets, told apart by their number of training images.
    explicit = write_folder(tmp_path / "explicit", make_set(train=3))
    env = write_folder(tmp_path / "env", make_set(train=4))
    keras_npz = write_npz(tmp_path / "keras" / "datasets" / "mnist.npz", make_set(train=5))
    own = write_folder(tmp_path / "home" / "mnist", make_set(train=6))
    monkeypatch.setenv("MNISTLAB_DATA", env)

    def train_count(path=None):
        return len(load_mnist(path, download=False)[0][0])

    assert train_count(explicit) == 3
    assert train_count() == 4 and find_source() == env
    monkeypatch.delenv("MNISTLAB_DATA")
    assert train_count() == 5 and find_source() == keras_npz
    os.remove(keras_npz)
    assert train_count() == 6 and find_source() == own


def test_wrong_explicit_path_or_variable_is_an_error_not_skipped(tmp_path, monkeypatch):
    write_folder(tmp_path / "home" / "mnist", make_set())  # would be found otherwise
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_mnist(tmp_path / "nowhere")
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "empty"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match=r"\$MNISTLAB_DATA=.*empty.*train-images-idx3-ubyte"):
        load_mnist()


def test_unknown_dataset():
    with pytest.raises(DataError, match="Unknown dataset 'mnistt'. Available: mnist, fashion"):
        load_mnist(dataset="mnistt")


def test_fashion_reads_its_own_cache_not_mnist_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", write_folder(tmp_path / "mnist", make_set(train=3)))
    fashion = make_set(train=5, seed=1)
    write_folder(tmp_path / "home" / "fashion_mnist", fashion)
    assert_loaded(load_mnist(dataset="fashion_mnist", download=False), fashion)


# --- downloads, from a server on 127.0.0.1 --------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class CutShortHandler(QuietHandler):
    """Announces 1000 bytes, sends 10, hangs up: a transfer broken halfway."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + bytes(8))
        self.close_connection = True


@pytest.fixture
def serve(tmp_path):
    """serve(handler) -> base URL of a server on 127.0.0.1 serving tmp_path/'www'."""
    servers = []
    os.makedirs(tmp_path / "www", exist_ok=True)

    def start(handler=QuietHandler):
        handler = partial(handler, directory=str(tmp_path / "www"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def publish(folder, arrays, algorithm):
    """Writes the four .gz files into folder; returns file name -> their hash."""
    write_folder(folder, arrays)
    return {
        name + ".gz": hashlib.new(algorithm, (Path(folder) / f"{name}.gz").read_bytes()).hexdigest()
        for name in NAMES.values()
    }


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def test_download_idx_mirror_verified_and_cached(tmp_path, serve):
    arrays = make_set()
    hashes = publish(tmp_path / "www", arrays, "md5")
    mirrors = [Mirror(serve(), "md5", hashes)]
    assert_loaded(load_mnist(mirrors=mirrors), arrays)
    cache = tmp_path / "home" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(hashes)  # the four files, no .part left
    assert find_source(download=False) == str(cache)


def test_download_npz_mirror_after_a_dead_one(tmp_path, serve):
    arrays = make_set()
    write_npz(tmp_path / "www" / "mnist.npz", arrays)
    digest = hashlib.sha256((tmp_path / "www" / "mnist.npz").read_bytes()).hexdigest()
    mirrors = [
        Mirror(closed_port_url(), "md5", {"train-images-idx3-ubyte.gz": "0" * 32}),
        Mirror(serve(), "sha256", {"mnist.npz": digest}),
    ]
    assert_loaded(load_mnist(mirrors=mirrors), arrays)
    assert os.listdir(tmp_path / "home" / "mnist") == ["mnist.npz"]


def test_download_with_wrong_hash_is_refused_and_not_kept(tmp_path, serve):
    hashes = publish(tmp_path / "www", make_set(), "sha256")
    name = "train-labels-idx1-ubyte.gz"
    hashes[name] = hashes[name][::-1]
    url = serve()
    with pytest.raises(DataError, match=f"{url}{name} failed: sha256 mismatch"):
        load_mnist(mirrors=[Mirror(url, "sha256", hashes)])
    cache = tmp_path / "home" / "mnist"
    kept = os.listdir(cache)  # files verified before the bad one stay; it and no .part do not
    assert name not in kept and not [f for f in kept if f.endswith(".part")]
    assert kept == ["train-images-idx3-ubyte.gz"]


def test_broken_transfer_leaves_no_partial_file(tmp_path, serve):
    url = serve(CutShortHandler)
    with pytest.raises(DataError, match="cut short: got 10 of 1000 bytes"):
        load_mnist(mirrors=[Mirror(url, "md5", {"train-images-idx3-ubyte.gz": "0" * 32})])
    assert not os.path.exists(tmp_path / "home" / "mnist")  # not even an empty folder


def test_nothing_found_names_every_place_tried(tmp_path):
    urls = [closed_port_url(), closed_port_url()]
    mirrors = [Mirror(url, "md5", {"mnist.npz": "0" * 32}) for url in urls]
    with pytest.raises(DataError) as error:
        load_mnist(mirrors=mirrors)
    message = str(error.value)
    for part in [
        "MNISTLAB_DATA",
        str(tmp_path / "keras" / "datasets" / "mnist.npz"),
        str(tmp_path / "home" / "mnist"),
        *(url + "mnist.npz" for url in urls),
        "refused",  # the reason: connection refused
    ]:
        assert part in message
    with pytest.raises(DataError, match=r"download \(off\)"):
        load_mnist(download=False)


# --- helpers --------------------------------------------------------------------------------


def test_split_validation_takes_the_last_examples():
    x, y = np.arange(10) * 10, np.arange(10)
    (x_train, _), (x_val, y_val) = data.split_validation(x, y, 3)
    assert x_train.tolist() == [0, 10, 20, 30, 40, 50, 60] and y_val.tolist() == [7, 8, 9]
    (x_train, _), (x_val, _) = data.split_validation(x, y, 0)
    assert len(x_train) == 10 and len(x_val) == 0
    for bad in (-1, 10):
        with pytest.raises(ValueError, match="val_size"):
            data.split_validation(x, y, bad)
    with pytest.raises(ValueError, match="must match"):
        data.split_validation(x, y[:5], 1)


# --- the real MNIST -------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA, reason="set MNISTLAB_DATA to the MNIST folder to run this test")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", REAL_DATA)
    (x_train, y_train), (x_test, y_test) = load_mnist(download=False, verify=True)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # README
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(y_train).tolist() == train_counts
    assert np.bincount(y_test).tolist() == test_counts
    assert y_test[:3].tolist() == [7, 2, 1]  # the first test digits everyone has seen
    assert find_source() == os.path.abspath(REAL_DATA)
