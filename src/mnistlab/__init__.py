"""mnistlab: deep learning on handwritten digits (MNIST) with Keras 3.

The Python API mirrors the command line. Importing mnistlab does not import Keras, so the
backend can still be chosen (``backend=`` or $KERAS_BACKEND) up to the first call that
builds or loads a model. Where Keras is imported first, ``import mnistlab`` registers the
classes mnistlab's saved models name (Deskew, WeightedAverage, OneCycle), so that
``keras.models.load_model`` loads them; ``mnistlab.load_model`` does in either order.

Example:
    >>> import mnistlab
    >>> (x_train, y_train), (x_test, y_test) = mnistlab.load_mnist()      # doctest: +SKIP
    >>> run = mnistlab.train("cnn", epochs=1, out="runs/cnn")              # doctest: +SKIP
    >>> mnistlab.evaluate("runs/cnn")["error"]                             # doctest: +SKIP
"""

import sys

from mnistlab.core.version import __version__
from mnistlab.data.mnist import load_mnist
from mnistlab.inspect.evaluate import evaluate
from mnistlab.models.registry import REGISTRY, create_model
from mnistlab.models.saved import load_model
from mnistlab.serving.predict import predict
from mnistlab.training.train import train

if "keras" in sys.modules:  # its backend is chosen: register what saved models name, so that
    from mnistlab.models.saved import register_saved_classes  # keras.models.load_model loads

    register_saved_classes()  # any run's model.keras (without Keras, mnistlab.load_model does)

__all__ = [
    "REGISTRY",
    "__version__",
    "create_model",
    "evaluate",
    "export_onnx",
    "load_mnist",
    "load_model",
    "predict",
    "serve",
    "train",
]


def __getattr__(name: str):
    """serve and export_onnx, imported on first use (the server's libraries load only then)."""
    if name == "serve":
        from mnistlab.serving.serve import serve

        return serve
    if name == "export_onnx":
        from mnistlab.serving.export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")
