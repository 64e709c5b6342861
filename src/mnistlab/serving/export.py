"""``mnistlab export``: a run's model as an ONNX file, checked against Keras on real digits."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from mnistlab.core import runs
from mnistlab.models import calibration
from mnistlab.models.registry import to_input
from mnistlab.models.saved import PRETRAINED_DIR, PRETRAINED_MODEL, load_model, resolve_model_path
from mnistlab.serving.onnx_graph import INPUT_NAME, OUTPUT_NAME, keras_to_onnx

CHECK_TOLERANCE = 1e-4  # largest accepted |ONNX - Keras| probability difference
FORMATS = ("onnx",)
ONNX_THREADS = 1  # threads per ONNX Runtime call: these models are too small to split well
# the shipped model as ONNX, which predict and serve run without loading Keras, and the record
# of its check against model.keras (build_pretrained_onnx writes both)
PRETRAINED_ONNX = os.path.join(PRETRAINED_DIR, "model.onnx")
PRETRAINED_ONNX_RECORD = os.path.join(PRETRAINED_DIR, "onnx.json")


def onnx_session(model, threads: int = ONNX_THREADS):
    """An ONNX Runtime CPU session for model bytes or an .onnx path, tuned for small models.

    Args:
        model: serialized ONNX bytes or a file path.
        threads: intra-op threads (1: no thread hand-offs, which cost more than they save
            on a network this small; run several requests in parallel instead).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        label = model if isinstance(model, str) else "the ONNX model"
        raise ValueError(f"ONNX Runtime cannot load {label}: {error}") from None


def compare(model, session, images) -> dict:
    """Compares a Keras model with its ONNX Runtime session on the same images.

    Args:
        model: the keras.Model; session: an onnxruntime.InferenceSession of its export.
        images: (N, 28, 28) uint8.

    Returns:
        dict: "images" (N), "argmax_agree" (count of equal predictions), "max_difference"
        (largest |probability difference|).
    """

    inputs = to_input(images)
    expected = np.concatenate(
        [
            np.asarray(model(inputs[i : i + 1000], training=False))
            for i in range(0, len(inputs), 1000)
        ]
    )
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
    return {
        "images": len(images),
        "argmax_agree": int((expected.argmax(1) == actual.argmax(1)).sum()),
        "max_difference": float(np.abs(expected - actual).max()),
    }


def check_images(count: int = 500, seed: int = 0) -> np.ndarray:
    """(count, 28, 28) uint8 check images: random strokes on noise, and pure noise.

    Used to compare exports when MNIST is not at hand; half are random rectangles and lines
    (digit-like ink), half uniform noise (every weight and bias contributes).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28)).astype(np.uint8)
    for image in images[: count // 2]:
        image[:] = rng.integers(0, 30, size=(28, 28))
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(2, 20, size=2)
            height, width = rng.integers(2, 14, size=2)
            image[top : top + height, left : left + width] = 255
    return images


def export_onnx(spec: str | None, out: str, check: str | None = "auto") -> dict:
    """Writes a trained model as an ONNX file and checks it against Keras.

    Args:
        spec: run folder, .keras file, or None for the shipped model.
        out: the .onnx file to write (atomically).
        check: "auto" compares on the MNIST test set if it is found locally, else on
            check_images(); "synthetic" always uses check_images(); None skips the check.

    Returns:
        dict with "path", "bytes", "calibration" (the calibration.json written beside the
        file, where the model has one), and when checked "images", "argmax_agree",
        "max_difference", "check_data".

    Raises:
        ValueError: an unsupported layer, or an export that disagrees with Keras (argmax
            differs or a probability is off by more than CHECK_TOLERANCE).
    """

    model = load_model(spec)
    proto = keras_to_onnx(model)
    data = proto.SerializeToString()
    report = {"path": out, "bytes": len(data)}
    if check is not None:
        report.update(verify(model, data, check))
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    with runs.atomic_path(out) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
    # the temperature and doubt threshold travel beside the file; ONNX Runtime users apply
    # them in numpy after the network (inference.load_predictor does)
    fitted = calibration.read_calibration(resolve_model_path(spec))
    if fitted["fitted_on"] is not None:
        report["calibration"] = calibration.write_calibration(folder, fitted)
    return report


def verify(model, onnx_bytes: bytes, check: str = "auto", count: int = 500) -> dict:
    """Runs ONNX bytes on ONNX Runtime and compares them with the Keras model.

    Args:
        model: the keras.Model; onnx_bytes: its serialized export.
        check: "auto" (MNIST test set if found locally, else synthetic) or "synthetic".
        count: how many synthetic check images (check_images) to use.

    Returns:
        The dict of ``compare`` plus "check_data" (which images were used).

    Raises:
        ValueError: an argmax differs, or a probability differs by more than CHECK_TOLERANCE.
    """

    images, source = None, "synthetic check images"
    if check == "auto":
        from mnistlab.data.idx import DataError
        from mnistlab.data.mnist import load_mnist

        try:
            _, (images, _) = load_mnist(download=False)
            source = "MNIST test set"
        except DataError:
            images = None
    if images is None:
        images = check_images(count)
    result = compare(model, onnx_session(onnx_bytes), images)
    result["check_data"] = source
    if result["argmax_agree"] != result["images"] or result["max_difference"] > CHECK_TOLERANCE:
        raise ValueError(
            f"The ONNX export disagrees with Keras on the {source}: "
            f"{result['images'] - result['argmax_agree']} of {result['images']} predictions "
            f"differ, largest probability difference {result['max_difference']:.2e} (tolerance "
            f"{CHECK_TOLERANCE:g}). Please report this with the model's layers."
        )
    return result


def sha256_of(path: str) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_pretrained_onnx(check: str = "auto") -> dict:
    """Exports the shipped model.keras as model.onnx beside it, with its first layer's output
    (for the page's responses), checked against Keras once, here; writes the check to
    onnx.json with the SHA-256 of both files. Rerun it whenever model.keras changes:
    ``python benchmarks/startup.py --rebuild-onnx``.

    Args:
        check: "auto" (the MNIST test set where it is found, else synthetic images) or
            "synthetic" (see ``verify``).

    Returns:
        The record written to onnx.json.

    Raises:
        ValueError: the export disagrees with Keras (nothing is written then).
    """
    import onnxruntime

    from mnistlab.serving.onnx_graph import OPSET

    model = load_model(None, compile=False)
    data = keras_to_onnx(model, first_layer=True).SerializeToString()
    check_result = verify(model, data, check)
    with runs.atomic_path(PRETRAINED_ONNX) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
    record = {
        "keras_file": os.path.basename(PRETRAINED_MODEL),
        "keras_sha256": sha256_of(PRETRAINED_MODEL),
        "onnx_file": os.path.basename(PRETRAINED_ONNX),
        "onnx_sha256": sha256_of(PRETRAINED_ONNX),
        "opset": OPSET,
        "onnxruntime": onnxruntime.__version__,
        **check_result,
    }
    runs.write_json(PRETRAINED_ONNX_RECORD, record)
    for path in (PRETRAINED_ONNX, PRETRAINED_ONNX_RECORD):  # package files: readable by all
        os.chmod(path, 0o644)
    return record
