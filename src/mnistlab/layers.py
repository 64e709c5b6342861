"""Layers mnistlab saves inside its models (registered so that load_model finds them)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mnistlab")
class WeightedAverage(keras.layers.Layer):
    """The weighted mean of its inputs, with fixed weights that add up to 1.

    Args:
        member_weights: one positive number per input; they are divided by their sum.

    Example:
        >>> import numpy as np
        >>> layer = WeightedAverage([1, 3])
        >>> np.asarray(layer([np.ones((1, 2)), np.zeros((1, 2))])).tolist()
        [[0.25, 0.25]]
    """

    def __init__(self, member_weights, **kwargs):
        super().__init__(**kwargs)
        self.member_weights = normalize_weights(member_weights)

    def call(self, inputs):
        total = inputs[0] * self.member_weights[0]
        # strict: as many inputs as weights, else a ValueError
        for tensor, weight in zip(inputs[1:], self.member_weights[1:], strict=True):
            total = total + tensor * weight
        return total

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "member_weights": self.member_weights}


def normalize_weights(weights) -> list[float]:
    """Weights divided by their sum; refuses ones that are not all positive and finite.

    Example:
        >>> normalize_weights([1, 1, 2])
        [0.25, 0.25, 0.5]
    """
    import math

    values = [float(weight) for weight in weights]
    if not values or not all(math.isfinite(value) and value > 0 for value in values):
        raise ValueError(f"Member weights must be positive numbers, got {list(weights)}.")
    total = sum(values)
    return [value / total for value in values]


@keras.saving.register_keras_serializable(package="mnistlab")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """Keras's MaxPooling2D, computed on JAX as a max over a reshape when windows do not overlap,
    and on PyTorch on a view, without Keras's copies.

    The same function, and the same gradient but where a window holds two equal maxima. On JAX,
    Keras pools with ``lax.reduce_window``, whose gradient XLA's CPU backend runs as a slow
    select-and-scatter; a max over the (rows/2, 2, columns/2, 2) reshape differentiates into a
    cheap comparison instead. Measured on 2 CPU cores (``benchmarks/ab_probe.py --compare pool
    --backend jax``), a training step of cnn, larger_cnn and branch_cnn was 1.29x-1.52x as fast
    with it, and 1.23x-2.04x with XLA's YNNPACK dots on (backend.py). On TensorFlow and
    PyTorch the reshape made cnn's step slower (0.51x, 0.79x: ``--compare reshape``), so on
    TensorFlow this is Keras's layer unchanged. On PyTorch, where Keras (3.15) pools a contiguous
    channels-first copy of each (N, H, W, C) input and hands on a transposed view of the result,
    "valid" pooling runs ``torch.nn.functional.max_pool2d`` on a channels-first view of the
    input itself, so no copy is made and the output is ordinary (N, H, W, C) memory:
    ``--compare pool --backend torch`` measures it. The class name stays MaxPooling2D, so layer
    names, the ONNX export and the FLOP count see Keras's layer.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> np.asarray(MaxPooling2D(2)(x))[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """

    def call(self, inputs):
        way = self._way(inputs)
        if way == "reshape":
            return pool_by_reshape(inputs, self.pool_size)
        if way == "view":
            import torch

            outputs = torch.nn.functional.max_pool2d(
                inputs.permute(0, 3, 1, 2), tuple(self.pool_size), tuple(self.strides)
            )
            return outputs.permute(0, 2, 3, 1)
        return super().call(inputs)

    def _way(self, inputs) -> str | None:
        """How this input is pooled: "reshape" (JAX, windows that do not overlap, a known
        shape), "view" (PyTorch, a real tensor) or None, Keras's way. Both of ours need "valid"
        windows over (N, H, W, C) input."""
        if not (
            self.data_format == "channels_last"
            and self.padding == "valid"
            and len(inputs.shape) == 4
        ):
            return None
        backend = keras.backend.backend()
        if backend == "jax":
            fixed = all(size is not None for size in inputs.shape[1:])
            return "reshape" if fixed and tuple(self.strides) == tuple(self.pool_size) else None
        if backend == "torch":
            import torch

            real = isinstance(inputs, torch.Tensor) and inputs.device.type != "meta"
            return "view" if real else None
        return None


def pool_by_reshape(inputs, pool_size):
    """Max pooling of (N, H, W, C) over non-overlapping (rows, columns) windows, "valid"
    padding (the last rows and columns that fill no window are dropped), on any backend.

    Example:
        >>> import numpy as np
        >>> x = np.arange(25, dtype="float32").reshape(1, 5, 5, 1)
        >>> np.asarray(pool_by_reshape(x, (2, 2)))[0, :, :, 0].tolist()
        [[6.0, 8.0], [16.0, 18.0]]
    """
    from keras import ops

    (rows, columns), (height, width, channels) = pool_size, inputs.shape[1:]
    out_height, out_width = height // rows, width // columns
    if (out_height * rows, out_width * columns) != (height, width):
        inputs = inputs[:, : out_height * rows, : out_width * columns, :]
    windows = ops.reshape(inputs, (-1, out_height, rows, out_width, columns, channels))
    return ops.max(windows, axis=(2, 4))
