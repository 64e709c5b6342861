"""Fast prediction: one small interface over Keras and ONNX Runtime, for the server and CLI.

A Predictor takes (N, 28, 28) uint8 digit images (light ink on black, as
``preprocess.to_mnist`` returns them) and gives (N, 10) probabilities. ``load_predictor``
picks the runtime: ONNX Runtime when the model converts (``export.keras_to_onnx``) and agrees
with Keras on check images, else Keras. ONNX Runtime answers one 28x28 image in tens of
microseconds; a Keras call costs a millisecond or more of framework overhead
(benchmarks/inference.py measures both; results in benchmarks/results/inference.md).

Example:
    >>> from mnistlab.serving.inference import load_predictor
    >>> predictor = load_predictor("runs/cnn")          # doctest: +SKIP
    >>> predictor.predict(images).argmax(axis=1)        # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from mnistlab.core.backend import keras
from mnistlab.core.quiet import note
from mnistlab.core.runs import read_json
from mnistlab.models import calibration
from mnistlab.models.registry import to_input
from mnistlab.models.saved import PRETRAINED_MODEL, load_model, resolve_model_path
from mnistlab.serving.export import (
    ONNX_THREADS,
    PRETRAINED_ONNX,
    PRETRAINED_ONNX_RECORD,
    onnx_session,
    sha256_of,
    verify,
)
from mnistlab.serving.onnx_graph import (
    FIRST_LAYER_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    find_first_layer,
    keras_to_onnx,
)

RUNTIMES = ("auto", "onnx", "keras")  # auto: ONNX Runtime if the model exports and matches
SHIPPED = (None, "pretrained", "default")  # what names the shipped model (saved.resolve_model_path)
AUTO_CHECK_IMAGES = 200  # images compared with Keras before "auto" trusts the ONNX export


class Predictor:
    """What every runtime offers; see KerasPredictor and OnnxPredictor.

    Attributes:
        name: the model's name (e.g. "cnn"); runtime: "keras" or "onnx";
        source: where the model came from; first_layer_shape: the shape of one image's
        first-layer activations, e.g. (24, 24, 32), or None when not available.
    """

    name = "model"
    runtime = ""
    source = ""
    first_layer_shape: tuple | None = None
    threshold = 0.0  # doubt below this calibrated top probability (CalibratedPredictor)

    def predict(self, images) -> np.ndarray:
        """(N, 28, 28) uint8 images -> (N, 10) float32 probabilities."""
        return self.predict_with_first_layer(images)[0]

    def predict_with_first_layer(self, images):
        """(N, 28, 28) uint8 -> ((N, 10) probabilities, (N, *first_layer_shape) or None)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"model": self.name, "runtime": self.runtime, "source": self.source}


def _inputs(images) -> np.ndarray:

    return to_input(images)


class OnnxPredictor(Predictor):
    """Predicts with ONNX Runtime from an ONNX model (bytes or file) made by mnistlab.export."""

    runtime = "onnx"

    def __init__(
        self, model, name: str | None = None, source: str = "", threads: int = ONNX_THREADS
    ):

        self.session = onnx_session(model, threads)
        outputs = {output.name: output for output in self.session.get_outputs()}
        if OUTPUT_NAME not in outputs or INPUT_NAME not in [
            i.name for i in self.session.get_inputs()
        ]:
            raise ValueError(
                f"{source or 'The ONNX model'} has no '{INPUT_NAME}' input or '{OUTPUT_NAME}' "
                "output; export it with `mnistlab export`."
            )
        self._input = INPUT_NAME
        self._outputs = [OUTPUT_NAME]
        if FIRST_LAYER_NAME in outputs:
            self._outputs.append(FIRST_LAYER_NAME)
            self.first_layer_shape = tuple(outputs[FIRST_LAYER_NAME].shape[1:])
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.name = name or metadata.get("model_name") or "model"
        self.source = source

    def predict(self, images) -> np.ndarray:
        return self.session.run(self._outputs[:1], {self._input: _inputs(images)})[0]

    def predict_with_first_layer(self, images):
        results = self.session.run(self._outputs, {self._input: _inputs(images)})
        return results[0], (results[1] if len(results) > 1 else None)


class KerasPredictor(Predictor):
    """Predicts with the Keras model itself (any backend, any layer)."""

    runtime = "keras"

    def __init__(self, model, source: str = ""):

        self.model = model
        self.name = model.name
        self.source = source
        found = find_first_layer(model)
        self._both = self._first = None
        if found is not None:
            layer, owner = found
            if owner is model:  # one call gives both outputs
                self._both = keras().Model(model.inputs, [model.outputs[0], layer.output])
            else:  # inside a nested model (an ensemble member) that sees the image
                self._first = keras().Model(owner.inputs, layer.output)
            self.first_layer_shape = tuple(layer.output.shape[1:])

    def predict(self, images) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(_inputs(images)))

    def predict_with_first_layer(self, images):
        if self._both is not None:
            probabilities, first = self._both.predict_on_batch(_inputs(images))
            return np.asarray(probabilities), np.asarray(first)
        if self._first is not None:
            first = self._first.predict_on_batch(_inputs(images))
            return self.predict(images), np.asarray(first)
        return self.predict(images), None


NO_ONNXRUNTIME = "onnxruntime is not installed"


def shipped_onnx_predictor(threads: int = ONNX_THREADS):
    """The shipped model on ONNX Runtime from its committed model.onnx, which loads no Keras:
    numpy and onnxruntime only. Used only while onnx.json's SHA-256 of model.keras matches the
    model.keras installed, i.e. the check made when the ONNX file was built still holds
    (``export.build_pretrained_onnx``).

    Returns:
        (OnnxPredictor, None), or (None, why not) as one phrase.
    """
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None, NO_ONNXRUNTIME
    if not (os.path.isfile(PRETRAINED_ONNX) and os.path.isfile(PRETRAINED_ONNX_RECORD)):
        return None, "the shipped model has no ONNX file"
    try:
        record = read_json(PRETRAINED_ONNX_RECORD)
        fresh = record["keras_sha256"] == sha256_of(PRETRAINED_MODEL)
        fresh = fresh and record["onnx_sha256"] == sha256_of(PRETRAINED_ONNX)
    except (OSError, ValueError, KeyError, TypeError):
        fresh = False
    if not fresh:
        return None, (
            "the shipped model.onnx was not built from this model.keras (rebuild it: "
            "python benchmarks/startup.py --rebuild-onnx)"
        )
    predictor = OnnxPredictor(PRETRAINED_ONNX, source=PRETRAINED_ONNX, threads=threads)
    predictor.note = (
        f"shipped ONNX file, checked against Keras when built "
        f"(largest difference {record.get('max_difference', float('nan')):.1e})"
    )
    return predictor, None


def load_predictor(
    spec: str | None = None, runtime: str = "auto", threads: int = ONNX_THREADS
) -> Predictor:
    """Loads a trained model for fast prediction, with its calibration.json applied.

    The temperature stored beside the model (``models.calibration``) scales the probabilities
    in numpy after the network, on either runtime, so an exported ONNX file stays as it is.
    See ``load_runtime`` for the arguments.
    """
    predictor = load_runtime(spec, runtime, threads)
    path = spec if spec is not None and str(spec).endswith(".onnx") else predictor.source
    return CalibratedPredictor(predictor, calibration.read_calibration(path))


class CalibratedPredictor(Predictor):
    """A predictor whose probabilities are temperature-scaled; ``threshold`` marks doubt."""

    def __init__(self, inner: Predictor, fitted: dict):
        self.inner, self.calibration = inner, fitted
        self.temperature = float(fitted["temperature"])
        self.threshold = float(fitted["threshold"])
        self.name, self.runtime, self.source = inner.name, inner.runtime, inner.source
        self.first_layer_shape = inner.first_layer_shape
        self.note = getattr(inner, "note", "")

    def predict(self, images) -> np.ndarray:
        return calibration.apply_temperature(self.inner.predict(images), self.temperature)

    def predict_with_first_layer(self, images):
        probabilities, first = self.inner.predict_with_first_layer(images)
        return calibration.apply_temperature(probabilities, self.temperature), first

    def describe(self) -> dict:
        return self.inner.describe()


def load_runtime(
    spec: str | None = None, runtime: str = "auto", threads: int = ONNX_THREADS
) -> Predictor:
    """Loads a trained model for fast prediction, uncalibrated (``load_predictor`` calibrates).

    Args:
        spec: run folder, .keras file, .onnx file (from ``mnistlab export``), or None for
            the shipped model (on ONNX Runtime from its committed model.onnx, without loading
            Keras, unless runtime is "keras": ``shipped_onnx_predictor``).
        runtime: "onnx" (ONNX Runtime; an error if the model cannot be exported), "keras",
            or "auto": ONNX Runtime when onnxruntime is installed, the model exports, and it
            agrees with Keras on AUTO_CHECK_IMAGES check images; else Keras.
        threads: ONNX Runtime threads per call (1 suits single images and a busy server;
            more speeds up large batches).

    Returns:
        A Predictor; ``.runtime`` says which was chosen, ``.note`` why (for "auto").

    Example:
        >>> load_predictor("runs/cnn").runtime   # doctest: +SKIP
        'onnx'
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime '{runtime}'. Available: {', '.join(RUNTIMES)}.")
    if spec in SHIPPED and runtime != "keras":
        predictor, reason = shipped_onnx_predictor(threads)
        if predictor is not None:
            return predictor
        if runtime == "auto" and reason != NO_ONNXRUNTIME:
            note(f"{reason}; loading the shipped model on Keras instead (slower to start).")
    if spec is not None and str(spec).endswith(".onnx"):
        if runtime == "keras":
            raise ValueError(f"'{spec}' is an ONNX file; use --runtime onnx (or auto) for it.")
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"No ONNX file '{spec}'.")
        predictor = OnnxPredictor(spec, source=spec, threads=threads)
        predictor.note = "ONNX file"
        return predictor

    source = resolve_model_path(spec)
    model = load_model(spec)
    if runtime == "keras":
        predictor = KerasPredictor(model, source=source)
        predictor.note = "asked for"
        return predictor
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if runtime == "onnx":
            raise ValueError(
                "ONNX Runtime is not installed; pip install 'mnistlab[onnx]' or use "
                "--runtime keras."
            ) from None
        predictor = KerasPredictor(model, source=source)
        predictor.note = "onnxruntime is not installed"
        return predictor

    try:
        onnx_bytes = keras_to_onnx(model, first_layer=True).SerializeToString()
        if runtime == "auto":
            verify(model, onnx_bytes, check="synthetic", count=AUTO_CHECK_IMAGES)
    except ValueError as error:
        if runtime == "onnx":
            raise
        predictor = KerasPredictor(model, source=source)
        predictor.note = f"ONNX export not used: {error}"
        return predictor
    predictor = OnnxPredictor(onnx_bytes, name=model.name, source=source, threads=threads)
    predictor.note = "exported in memory" + (", checked against Keras" if runtime == "auto" else "")
    return predictor
