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
whose time goes to convolutions, showed no difference beyond noise (adam_probe-cnn.md).

PyTorch has such a kernel too, ``torch._fused_adam_`` (what ``torch.optim.Adam(fused=True)``
runs), which updates every weight of one device and dtype in one call. Its formula puts epsilon
after the bias correction, ``w -= lr / (1 - beta_1 ** t) * m / (sqrt(v) / sqrt(1 - beta_2 ** t)
+ eps)``, which is Keras's exactly when ``eps = epsilon / sqrt(1 - beta_2 ** t)``, so that is the
epsilon it gets, step by step. Keras 3 gives a subclass of its Adam on PyTorch the generic update,
one variable at a time, not its own ``torch._foreach`` one; the fused kernel replaces both. It is
used for weights on the CPU; on a GPU (where reading the step count would wait for the device),
FusedAdam runs Keras's ``torch._foreach`` Adam. On JAX, and for what the kernels do not cover
(amsgrad, sparse gradients), it is Keras's Adam unchanged.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mnistlab.fast")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam, taking the same arguments, whose update is one fused kernel on
    TensorFlow (ResourceApplyAdam) and Keras's own elsewhere.

    Example:
        >>> model.compile(optimizer=FusedAdam(0.001), loss="categorical_crossentropy")  # doctest: +SKIP
        >>> isinstance(FusedAdam(0.001), keras.optimizers.Adam)
        True
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() != "torch" or self.amsgrad:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import torch

        with torch.no_grad():
            if _all_on_cpu(trainable_variables):
                _torch_fused_adam(self, grads, trainable_variables, learning_rate)
            else:
                from keras.src.backend.torch.optimizers.torch_adam import Adam

                Adam._parallel_update_step(self, grads, trainable_variables, learning_rate)

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


def _all_on_cpu(variables) -> bool:
    """Whether every variable's torch tensor is in CPU memory (where FusedAdam fuses)."""
    return all(variable.value.device.type == "cpu" for variable in variables)


def _torch_fused_adam(optimizer, grads, variables, learning_rate):
    """One Adam step of every variable (CPU torch tensors) by torch._fused_adam_, one call per
    dtype, with Keras's epsilon (see the module's docstring)."""
    import torch

    step = int(optimizer.iterations.value) + 1  # the step this update makes, counted from 1
    bias_correction_2 = 1.0 - float(optimizer.beta_2) ** step
    eps = float(optimizer.epsilon) / bias_correction_2**0.5
    rate = float(learning_rate.value if hasattr(learning_rate, "value") else learning_rate)
    groups = {}
    for gradient, variable in zip(grads, variables, strict=True):
        index = optimizer._get_variable_index(variable)
        weight = variable.value
        group = groups.setdefault(weight.dtype, ([], [], [], []))
        group[0].append(weight)
        group[1].append(gradient.to(weight.dtype))
        group[2].append(optimizer._momentums[index].value)
        group[3].append(optimizer._velocities[index].value)
    for weights, gradients, momentums, velocities in groups.values():
        steps = [torch.tensor(float(step), dtype=torch.float32)] * len(weights)
        torch._fused_adam_(
            weights,
            gradients,
            momentums,
            velocities,
            [],
            steps,
            lr=rate,
            beta1=float(optimizer.beta_1),
            beta2=float(optimizer.beta_2),
            weight_decay=0.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )
