"""mnistlab: deep learning on handwritten digits (MNIST) with Keras 3.

The Python API mirrors the command line. Importing mnistlab does not import Keras, so the
backend can still be chosen (``backend=`` or $KERAS_BACKEND) up to the first call that
builds or loads a model.

Example:
    >>> import mnistlab
    >>> (x_train, y_train), (x_test, y_test) = mnistlab.load_mnist()      # doctest: +SKIP
    >>> run = mnistlab.train("cnn", epochs=1, out="runs/cnn")              # doctest: +SKIP
    >>> mnistlab.evaluate("runs/cnn")["error"]                             # doctest: +SKIP
"""

__version__ = "0.1.0"

# The functions are bound after their modules load, so ``mnistlab.train`` is the function
# (the module stays reachable as ``sys.modules["mnistlab.train"]`` and by ``from ... import``).
from mnistlab.data import load_mnist
from mnistlab.evaluate import evaluate, load_model
from mnistlab.models import REGISTRY, create_model
from mnistlab.predict import predict
from mnistlab.train import train

__all__ = ["REGISTRY", "create_model", "evaluate", "load_mnist", "load_model", "predict", "train"]
