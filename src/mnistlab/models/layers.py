"""Layers that mnistlab's networks keep in their saved files: moment deskewing (best_deskew's
input) and the weighted average that makes an ensemble one model.
"""

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
class Deskew(keras.layers.Layer):
    """Straightens slanted digits: shears each image along its rows so that the ink's column and
    row no longer covary (the classic moment deskewing of MNIST, which Ciresan et al.'s
    multi-column networks and LeCun's comparisons used as a preprocessing step).

    For each image, with ink p(r, c): the centre of mass (cr, cc), the skew
    ``s = cov(c, r) / var(r)``, and the output ``out(r, c) = in(r, c + s * (r - cr))``, linearly
    interpolated along the row (pixels taken from outside the image are 0). An upright digit
    (s = 0) passes unchanged; a digit leaning right comes out upright, at the same height and
    the same mean column. It has no weights and acts alike in training and inference, so a model
    that starts with it deskews whatever it is given: augmented batches, test images, a user's
    photo. Computed in float32 with matrix products only, on every backend.

    Args:
        max_skew: the largest |s| applied (columns per row), so that a blot or a one-row stroke
            cannot be sheared off the image.

    Input and output: (batch, rows, columns, 1) images.

    Example:
        >>> import numpy as np
        >>> image = np.zeros((1, 5, 5, 1), "float32")
        >>> for row in range(5):
        ...     image[0, row, 4 - row, 0] = 1.0  # a stroke leaning right
        >>> np.asarray(Deskew()(image))[0, :, :, 0].argmax(axis=1).tolist()
        [2, 2, 2, 2, 2]
    """

    def __init__(self, max_skew: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not max_skew > 0:
            raise ValueError(f"max_skew must be positive, got {max_skew}.")
        self.max_skew = float(max_skew)

    def call(self, images):
        from keras import ops

        rows, columns = images.shape[1], images.shape[2]
        ink = ops.cast(images[..., 0], "float32")  # (batch, rows, columns)
        row_at = ops.arange(rows, dtype="float32")[None, :, None]  # (1, rows, 1)
        column_at = ops.arange(columns, dtype="float32")[None, None, :]  # (1, 1, columns)
        mass = ops.sum(ink, axis=(1, 2)) + 1e-6  # (batch,); a blank image stays blank
        centre_row = ops.sum(ink * row_at, axis=(1, 2)) / mass
        centre_column = ops.sum(ink * column_at, axis=(1, 2)) / mass
        row_offset = row_at - centre_row[:, None, None]  # (batch, rows, 1)
        column_offset = column_at - centre_column[:, None, None]  # (batch, 1, columns)
        covariance = ops.sum(ink * row_offset * column_offset, axis=(1, 2)) / mass
        row_variance = ops.sum(ink * row_offset * row_offset, axis=(1, 2)) / mass
        skew = ops.clip(covariance / (row_variance + 1e-6), -self.max_skew, self.max_skew)
        shift = skew[:, None, None] * row_offset  # (batch, rows, 1): source column - column
        # weights[b, r, c, v]: how much source column v gives output column c in row r, a
        # triangle of width one pixel centred on c + shift (linear interpolation)
        output_column = ops.arange(columns, dtype="float32")[:, None]  # (columns, 1)
        source_column = ops.arange(columns, dtype="float32")[None, :]  # (1, columns)
        distance = source_column - output_column - shift[..., None]  # (batch, rows, cols, cols)
        weights = ops.relu(1.0 - ops.abs(distance))
        straightened = ops.matmul(weights, ink[..., None])  # (batch, rows, columns, 1)
        return ops.cast(straightened, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_skew": self.max_skew}
