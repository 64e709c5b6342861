"""mnistlab's fast layers, swapped in for Keras's own at training time (fast/seam.py).

Each is a subclass of the Keras layer of its name that adds no variables or config, only another
``call``; runs save Keras's classes, never these (registered all the same, as
"mnistlab.fast>NAME", so a file saved from a training model by hand still loads).

The probes named below (ab_probe.py, dot_forms.py) were one-off scripts, deleted once they had
answered their question; docs/speed.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

import functools

import keras


@keras.saving.register_keras_serializable(package="mnistlab.fast")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """Keras's MaxPooling2D, computed on JAX as a max over a reshape when windows do not overlap,
    and on PyTorch on a view, without Keras's copies.

    The same function, and the same gradient but where a window holds two equal maxima. On JAX,
    Keras pools with ``lax.reduce_window``, whose gradient XLA's CPU backend runs as a slow
    select-and-scatter; a max over the (rows/2, 2, columns/2, 2) reshape differentiates into a
    cheap comparison instead. Measured on 2 CPU cores (``ab_probe.py --compare pool
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


@keras.saving.register_keras_serializable(package="mnistlab.fast")
class Dropout(keras.layers.Dropout):
    """Keras's Dropout, whose mask on PyTorch and TensorFlow is drawn from fewer random bits.

    On PyTorch, Keras (3.15) draws the mask with ``torch.bernoulli``, which on the CPU draws a
    double from its Mersenne Twister per element, one thread: for cnn's (200, 12, 12, 32)
    activations about 7 ms, a quarter of a training step on 2 cores (PyTorch's profiler; the
    step's gain: ``ab_probe.py --compare dropout --backend torch``). Here the same
    Twister, seeded the same way from the layer's seed generator, fills 64-bit integers, and
    each half is one 32-bit draw: an element is kept when its draw falls below
    round(keep * 2**32), so with probability ``1 - rate`` to within 2**-33, and the input is
    multiplied by a mask of 0 and 1 / (1 - rate), as PyTorch's own dropout does (Keras divides the
    kept elements, which can differ in the last bit). The same seed gives the same masks. On
    TensorFlow the mask comes from 16 random bits an element and one compiled kernel
    (``tensorflow_dropout``). On JAX, with ``noise_shape``, and wherever the input is no real
    tensor, it is Keras's layer unchanged. The class name stays Dropout, so the ONNX export and
    the FLOP count see Keras's layer.

    Example:
        >>> import numpy as np
        >>> layer = Dropout(0.5, seed=1)
        >>> sorted(set(np.asarray(layer(np.ones((1, 1000)), training=True)).ravel().tolist()))
        [0.0, 2.0]
    """

    def call(self, inputs, training=False):
        masked = training and 0 < self.rate < 1 and self.noise_shape is None
        if masked and keras.backend.backend() == "torch":
            import torch

            if isinstance(inputs, torch.Tensor) and inputs.device.type != "meta":
                return torch_dropout(inputs, self.rate, self.seed_generator)
        if masked and keras.backend.backend() == "tensorflow":
            return tensorflow_dropout(inputs, self.rate, self.seed_generator)
        return super().call(inputs, training=training)


def torch_dropout(inputs, rate: float, seed_generator):
    """``inputs`` with each element zeroed with probability ``rate`` (to within 2**-33) and the
    rest divided by ``1 - rate``; the mask from 32 random bits an element (Dropout's docstring).
    """
    import torch
    from keras.src.backend.torch.random import torch_seed_generator

    keep = 1.0 - rate
    count = inputs.numel()
    words = torch.empty((count + 1) // 2, dtype=torch.int64, device=inputs.device)
    words.random_(-(2**63), None, generator=torch_seed_generator(seed_generator))
    draws = words.view(torch.int32)[:count].view(inputs.shape)  # uniform over all int32
    mask = draws < round(keep * 2**32) - 2**31
    # PyTorch's own dropout's formula: the input times a mask of 0 and 1 / keep (in one pass
    # forward and one back, where Keras's torch.where and division take two)
    return inputs * mask.to(inputs.dtype).div_(keep)


def tensorflow_dropout(inputs, rate: float, seed_generator):
    """``inputs`` with each element zeroed with probability ``rate`` (to within 2**-17) and the
    rest multiplied by ``1 / (1 - rate)``, the mask from 16 random bits an element.

    Keras's dropout on TensorFlow (``stateless_dropout``) draws a float per element and then
    compares, selects and scales in separate kernels, each a pass over the activations (for
    cnn, 200 x 12 x 12 x 32 of them a step). Here TensorFlow's stateless Philox, seeded from
    the layer's seed generator as Keras seeds it, draws one 32-bit word for two elements (the
    first half of the elements take the low 16 bits, the second half the high ones), and one
    compiled kernel (XLA) turns the words into the scale, 1 / keep where a draw falls below
    round(keep * 2**16), else 0; the input is multiplied by it, and so is the gradient. The
    same seed gives the same masks. Measured:
    ``ab_probe.py --compare dropout --backend tensorflow --model cnn``.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow.random import _cast_seed
    from keras.src.random.seed_generator import draw_seed

    count = tf.size(inputs)
    words = tf.random.stateless_uniform(
        [(count + 1) // 2],
        seed=_cast_seed(draw_seed(seed_generator)),
        minval=None,
        maxval=None,
        dtype=tf.uint32,
    )
    scale = _tensorflow_dropout_scale(1.0 - rate, inputs.dtype.name)(words)
    return inputs * tf.reshape(scale[:count], tf.shape(inputs))


@functools.cache
def _tensorflow_dropout_scale(keep: float, dtype: str):
    """The compiled kernel of tensorflow_dropout: 2n 16-bit draws from n words, each made the
    scale of one element, 1 / keep (in ``dtype``, as Keras's dropout rounds it) or 0."""
    import tensorflow as tf

    threshold = round(keep * 2**16)

    @tf.function(jit_compile=True)
    def scale(words):
        low = tf.bitwise.bitwise_and(words, tf.constant(0xFFFF, tf.uint32))
        high = tf.bitwise.right_shift(words, tf.constant(16, tf.uint32))
        kept = tf.concat([low, high], 0) < tf.constant(threshold, tf.uint32)
        return tf.where(kept, tf.constant(1.0 / keep, dtype), tf.constant(0.0, dtype))

    return scale


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


@keras.saving.register_keras_serializable(package="mnistlab.fast")
class BFloat16ProductDense(keras.layers.Dense):
    """Keras's Dense computing in float32, except that on JAX and PyTorch its matrix product
    multiplies bfloat16 copies of the inputs and the kernel: precision "bfloat16_products", for
    CPUs with bfloat16 instructions (AVX-512 BF16; measured by ``ab_probe.py
    --compare products``, docs/speed.md). JAX sums the products in float32 and hands the sum
    back in float32; PyTorch's CPU kernels sum in float32 and hand the sum back in bfloat16,
    one more rounding, cast back to float32 at once. The bias, the activation, the weights and
    the optimizer stay float32. The gradient's products multiply bfloat16 operands too, the
    output's gradient rounded to bfloat16 as mixed precision does: on JAX summed and handed
    back in float32 (``_bfloat16_products_jax``), on PyTorch (autodiff) handed back in
    bfloat16; the update is applied to the float32 kernel. Only
    training uses it: a run saves its network with Keras's Dense (models.float32_copy). On
    TensorFlow it is Keras's Dense.

    Example:
        >>> import numpy as np
        >>> layer = BFloat16ProductDense(1, kernel_initializer="ones", use_bias=False)
        >>> x = np.full((1, 2), 1.00390625, "float32")  # 1 + 2**-8: 1.0 in bfloat16
        >>> np.asarray(layer(x)).tolist()  # on JAX; Keras's Dense gives [[2.0078125]]
        [[2.0]]
    """

    def call(self, inputs, training=None):
        backend = keras.backend.backend()
        if backend not in ("jax", "torch"):
            return super().call(inputs, training=training)
        from keras import ops

        x = self._products_jax(inputs) if backend == "jax" else self._products_torch(inputs)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def _products_jax(self, inputs):
        rows = inputs.reshape(-1, inputs.shape[-1])  # a Dense multiplies along the last axis
        x = _bfloat16_products_jax()(rows, self.kernel.value)
        return x.reshape(*inputs.shape[:-1], x.shape[-1])

    def _products_torch(self, inputs):
        import torch

        # no float32 output for bfloat16 operands on the CPU in torch 2.13 (torch.mm's
        # out_dtype is GPU-only): the sum comes back in bfloat16, as under torch.autocast
        x = torch.matmul(inputs.to(torch.bfloat16), self.kernel.value.to(torch.bfloat16))
        return x.to(torch.float32)


@functools.cache
def _bfloat16_products_jax():
    """``products(x, kernel)``: x @ kernel for 2-D float32 arrays on JAX, from bfloat16 copies of
    both, summed and handed back in float32, with a gradient of its own.

    XLA's CPU backend multiplies bfloat16 operands fast (on AVX-512 BF16, well above its
    float32 rate) only when it meets the plain form, a row-major left operand whose rows meet
    a row-major right operand's columns, with neither a cast folded in nor a transposed
    operand read in place. Autodiff's own gradient reads the saved operands transposed, and
    multiplies the float32 output gradient by bfloat16 operands, which puts it on slower
    kernels: for the MLP's first layer, the kernel's gradient took about twice as long as the
    forward product (``dot_forms.py``). So the gradient here rounds the
    output gradient g to bfloat16 as mixed precision does, and writes each transposed operand
    out row by row before its product (``written_out_transpose``): the input's gradient is
    g @ kernel.T and the kernel's x.T @ g, both bfloat16 operands summed in float32 (the
    kernel's gradient is not rounded again). Measured: ``ab_probe.py
    --compare products --backend jax --model mlp``.
    """
    import jax
    import jax.numpy as jnp

    def bfloat16(a):
        # the barrier keeps XLA from folding the cast into the product that reads it
        return jax.lax.optimization_barrier(a.astype(jnp.bfloat16))

    def forward(x, kernel):
        xb, kb = bfloat16(x), bfloat16(kernel)
        return jnp.matmul(xb, kb, preferred_element_type=jnp.float32), (xb, kb)

    def backward(saved, g):
        xb, kb = saved
        gb = bfloat16(g)
        dx = jnp.matmul(gb, written_out_transpose(kb), preferred_element_type=jnp.float32)
        dk = jnp.matmul(written_out_transpose(xb), gb, preferred_element_type=jnp.float32)
        return dx, dk

    products = jax.custom_vjp(lambda x, kernel: forward(x, kernel)[0])
    products.defvjp(forward, backward)
    return products


def written_out_transpose(a):
    """The transpose of the 2-D JAX array ``a``, written out row by row: XLA's layout pass reads
    a plain transpose in place, even behind an optimisation barrier, but not one flattened
    behind it."""
    import jax

    t = a.T
    return jax.lax.optimization_barrier(t.reshape(-1)).reshape(t.shape)


@keras.saving.register_keras_serializable(package="mnistlab.fast")
class BFloat16ProductConv2D(keras.layers.Conv2D):
    """Keras's Conv2D computing in float32, except that on PyTorch its convolution multiplies
    bfloat16 copies of the inputs and the kernel: precision "bfloat16_products" for the
    convolutions, as BFloat16ProductDense is for the matrix products. PyTorch's CPU kernels
    (oneDNN's, on AVX-512 BF16) sum the products in float32 and hand the sum back in bfloat16,
    which is cast back to float32 at once; the bias, the activation, the weights and the
    optimizer stay float32, and the gradients' convolutions multiply bfloat16 operands too.
    Only training uses it: a run saves its network with Keras's Conv2D (models.float32_copy).
    On other backends it is Keras's Conv2D.

    Example:
        >>> import numpy as np
        >>> layer = BFloat16ProductConv2D(1, 1, kernel_initializer="ones", use_bias=False)
        >>> x = np.full((1, 1, 1, 1), 1.00390625, "float32")  # 1 + 2**-8: 1.0 in bfloat16
        >>> np.asarray(layer(x).detach()).ravel().tolist()  # on PyTorch  # doctest: +SKIP
        [1.0]
    """

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "torch":
            return super().convolution_op(inputs, kernel)
        from keras import ops

        products = super().convolution_op(
            ops.cast(inputs, "bfloat16"), ops.cast(kernel, "bfloat16")
        )
        return ops.cast(products, "float32")


def plain_dense_layer_types() -> tuple:
    """The layer classes of dense networks whose ``call`` is all that ``__call__`` adds up to
    (no sublayers, no state beyond their own variables): what the fast steps on JAX
    (jax_step) and PyTorch (torch_step) can run by calling ``call`` alone."""
    layers = keras.layers
    return (
        layers.InputLayer,
        layers.Flatten,
        layers.Reshape,
        layers.Dense,
        BFloat16ProductDense,
        layers.Dropout,
        Dropout,
        layers.Activation,
        layers.ReLU,
        layers.BatchNormalization,
    )
