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
        if len(inputs) != len(self.member_weights):
            raise ValueError(
                f"WeightedAverage has {len(self.member_weights)} weights for {len(inputs)} inputs."
            )
        total = inputs[0] * self.member_weights[0]
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
