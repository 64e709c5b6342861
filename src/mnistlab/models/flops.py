"""Counting a network's arithmetic analytically, to turn images per second into GFLOP/s.

Only the matrix-multiply layers are counted (Dense and the convolutions): they are where the
time goes, and they are what a matrix-multiply benchmark measures. Activations, pooling,
batch normalization, dropout and additions are elementwise and left out.

One multiply-add is 2 floating-point operations. Training one image costs the forward pass,
the weight gradients (as many multiply-adds again) and the input gradients (as many again),
except that a layer with no trainable layer before it (the first convolution) needs no input
gradient, so training is a little under 3x the forward pass.

Example:
    >>> from mnistlab.models.registry import create_model        # doctest: +SKIP
    >>> forward_macs(create_model("cnn"))                # doctest: +SKIP
    1051904
"""

from __future__ import annotations

import math

CONVOLUTIONS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "DepthwiseConv1D")
COUNTED = ("Dense",) + CONVOLUTIONS


def layer_macs(layer) -> int:
    """Multiply-adds of one layer's forward pass for one image (0 for elementwise layers).

    Args:
        layer: a built keras layer (its input and output shapes must be known).

    Returns:
        int: multiply-adds per image. Dense: positions x inputs x units. Convolution:
        output positions x output channels x kernel elements x (input channels / groups);
        depthwise: output positions x output channels x kernel elements.
    """
    kind = type(layer).__name__
    if kind not in COUNTED:
        return 0
    input_shape = tuple(layer.input.shape)[1:]  # without the batch axis
    output_shape = tuple(layer.output.shape)[1:]
    if kind == "Dense":
        positions = math.prod(input_shape[:-1])  # Dense on (..., features) acts per position
        return positions * input_shape[-1] * layer.units
    kernel_elements = math.prod(layer.kernel_size)
    output_elements = math.prod(output_shape)  # positions x output channels
    if kind.startswith("Depthwise"):
        return output_elements * kernel_elements
    groups = getattr(layer, "groups", 1)
    return output_elements * kernel_elements * (input_shape[-1] // groups)


def _flat_layers(model):
    """Layers in graph order, with nested models opened up."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _flat_layers(layer)
        else:
            yield layer


def forward_macs(model) -> int:
    """Multiply-adds of the model's forward pass for one image.

    Example:
        >>> forward_macs(create_model("mlp"))   # 784*784 + 784*10   # doctest: +SKIP
        622496
    """
    return sum(layer_macs(layer) for layer in _flat_layers(model))


def training_macs(model) -> int:
    """Multiply-adds of one training step for one image: forward, weight and input gradients.

    A layer needs the gradient with respect to its input only when some trainable layer
    feeds it; the first convolution reads the image, so its input gradient is never computed.
    """
    depends_on_weights = set()  # ids of tensors that some trainable weight influences
    total = 0
    for layer in _flat_layers(model):
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        needs_input_gradient = any(id(tensor) in depends_on_weights for tensor in inputs)
        macs = layer_macs(layer)
        total += macs * (3 if needs_input_gradient else 2)
        if needs_input_gradient or layer.trainable_weights:
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
            depends_on_weights.update(id(tensor) for tensor in outputs)
    return total


def training_flops(model) -> int:
    """Floating-point operations to train on one image (2 per multiply-add)."""
    return 2 * training_macs(model)


def forward_flops(model) -> int:
    """Floating-point operations to predict one image (2 per multiply-add)."""
    return 2 * forward_macs(model)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The float32 matrix-multiply GFLOP/s numpy reaches here: the practical limit.

    Args:
        size: side of the square matrices (2048: large enough to run at the BLAS's best).
        repeats: timed multiplications; the fastest counts.

    Returns:
        float: 2 * size**3 / best seconds / 1e9.
    """
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    left = rng.standard_normal((size, size), dtype=np.float32)
    right = rng.standard_normal((size, size), dtype=np.float32)
    left @ right  # warm-up: threads start, pages fault in
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9
