"""The lab's four networks: the baseline MLP, the simple CNN, the larger CNN and the branching CNN."""

from __future__ import annotations

from mnistlab.models.registry import INPUT_SHAPE, NUM_CLASSES, register

# --- The tutorial's four networks -------------------------------------------------------


@register(
    "mlp",
    "baseline multi-layer perceptron: one hidden layer of 784 units",
    1.74,
    parameters=623_290,
    onednn=False,  # two matrix products: oneDNN slower (results/probe_onednn_mlp.md)
    jax_ynn=False,  # JAX: YNNPACK dots slower (results/speed-mlp-60k-jax-ynn/speed.md)
    # 1.58x a step on JAX (with their own gradient, layers._bfloat16_products_jax), 1.32x on
    # PyTorch, at the same error (results/products_probe-*-mlp.md, reproduce-jax-mlp-*,
    # reproduce-torch-mlp-*)
    bfloat16_products=("jax", "torch"),
    # the command line's default where JAX is installed: its main job (10 epochs, start to
    # finish) ran fastest there, the CNNs' on TensorFlow (results/main-job/main_job.md)
    backend="jax",
)
def mlp():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Flatten()(inputs)  # (784,)
    x = layers.Dense(784, activation="relu", kernel_initializer="normal")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer="normal")(x)
    return keras.Model(inputs, outputs, name="mlp")


# bfloat16=True: the same seeds trained to the same test error within its spread in mixed
# bfloat16, 1.35x-2x as fast on an AVX-512 BF16 CPU (results/reproduce-bf16.md against
# reproduce-avx512.md); the MLP's error rose 0.12 points there, so it stays in float32.
# bfloat16_products=("torch",): on PyTorch the three CNNs trained to the same test error in
# bfloat16 products (results/reproduce-torch-cnns-bf16-products.md against float32 in
# reproduce-torch-cnns-f32.md), but only cnn's step was faster once the lean step pools first
# (1.12x and 1.18x in two probes; larger_cnn 1.01x and 0.89x; branch_cnn 0.93x before:
# products_probe-torch-*.md, docs/speed.md), so only cnn has it.


@register(
    "cnn",
    "simple CNN: one 5x5 convolution, max pooling, one dense layer",
    1.10,
    parameters=592_074,
    bfloat16=True,
    bfloat16_products=("torch",),
)
def cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(32, 5, activation="relu")(inputs)  # (24, 24, 32)
    x = layers.MaxPooling2D(2)(x)  # (12, 12, 32)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (4608,)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


@register(
    "larger_cnn",
    "larger CNN: two convolution/pooling stages, two dense layers",
    0.89,
    parameters=59_933,
    bfloat16=True,
)
def larger_cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = layers.Conv2D(30, 5, activation="relu")(inputs)  # (24, 24, 30)
    x = layers.MaxPooling2D(2)(x)  # (12, 12, 30)
    x = layers.Conv2D(15, 3, activation="relu")(x)  # (10, 10, 15)
    x = layers.MaxPooling2D(2)(x)  # (5, 5, 15)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (375,)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(50, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="larger_cnn")


@register(
    "branch_cnn",
    "two-path block (1x1 linear + 5x5 relu) added element-wise, then a CNN head",
    parameters=403_274,
    bfloat16=True,
)
def branch_cnn():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    left = layers.Conv2D(16, 1, padding="same", name="branch_left")(inputs)  # (28, 28, 16)
    right = layers.Conv2D(16, 5, padding="same", activation="relu", name="branch_right")(inputs)
    x = layers.Add(name="branch_add")([left, right])  # (28, 28, 16)
    x = layers.MaxPooling2D(2)(x)  # (14, 14, 16)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)  # (3136,)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="branch_cnn")
