"""Adam with its update fused into one kernel on the TensorFlow backend.

Keras's Adam updates each weight with about a dozen separate element-wise operations (a
subtraction, a product and an addition for the first moment, four for the second, five for
the weight), each a pass over the whole array with a temporary of its own. TensorFlow has the
same update as one kernel, ``ResourceApplyAdam``, that reads the gradient and the two moments
once and writes the moments and the weight in place. The math is Keras's, term for term::

    alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    w -= alpha * m / (sqrt(v) + epsilon)

only computed in one pass, so the results agree to float32 rounding (tests/test_optimizers.py
checks them against a hand-written Adam and against Keras's own). It pays where the weights are
many and the arithmetic per weight is little: on a 2-core AVX2 EPYC the MLP (615,000 weights,
two matrix products) trained 1.16x as fast an epoch (benchmarks/results/speed-mlp-fused/, 5
rounds) and 1.08x as fast a step side by side in one process (adam_probe-mlp.md); the CNNs,
whose time goes to convolutions, showed no difference beyond noise (adam_probe-cnn.md). On the
JAX and PyTorch backends, and for what the kernel does not cover (amsgrad, sparse gradients), it
is Keras's Adam unchanged.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mnistlab")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam, taking the same arguments, whose update is one fused kernel on
    TensorFlow (ResourceApplyAdam) and Keras's own elsewhere.

    Example:
        >>> model.compile(optimizer=FusedAdam(0.001), loss="categorical_crossentropy")  # doctest: +SKIP
        >>> isinstance(FusedAdam(0.001), keras.optimizers.Adam)
        True
    """

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
