"""The accuracy recipes: ``best``, ``best5``, ``best_deskew`` and ``deotte``, conv-BN networks trained
with augmentation, label smoothing and a one-cycle schedule.
"""

from __future__ import annotations

from mnistlab.models.registry import INPUT_SHAPE, NUM_CLASSES, register

# --- Going further ----------------------------------------------------------------------
# Beyond the tutorial: batch normalisation, strided convolutions instead of pooling, heavy
# dropout, trained with affine augmentation, label smoothing and a one-cycle schedule, after
# Chris Deotte's Kaggle recipe ("How to choose CNN architecture MNIST"). `deotte` is his
# network (15M multiply-adds per image); `best` shrinks the map with strided 3x3 convs early
# (6.5M), to fit a shared 2-core CPU. It holds out 1,000 images, not 5,000. 20 epochs (60-70 s
# each on an AVX2 EPYC, 23 minutes) reached 0.41% test error over 3 seeds (results/best.md);
# 40 epochs (16-18 s each on an AVX-512 EPYC, 11 minutes) reached 0.36%, with validation error
# 0.30% against 0.37% for the same seeds and folds, which decided the change (best-e40.md).


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, padding: str = "valid"):
    """Convolution + ReLU, then batch normalisation (the order Deotte's recipe uses)."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")(x)
    return layers.BatchNormalization()(x)


# The recipe `best` and `best5` share: 40 epochs (11 minutes for `best` on a 2-core AVX-512
# EPYC, benchmarks/results/best-e40.md) and 1,000 held-out images, for more to learn from (the
# epoch count is fixed, so nothing is chosen on them).
STRIDED_RECIPE = dict(
    epochs=40,
    batch_size=128,
    learning_rate=0.003,
    schedule="onecycle",
    augment="affine",
    label_smoothing=0.1,
    val_size=1000,
)


def _strided_cnn(name: str, kernel: int, deskew: bool = False):
    """`best`'s layout with ``kernel`` x ``kernel`` kernels in its first four convolutions.

    Two valid convolutions, each followed by a strided 'same' one that halves the map, then a
    3x3 convolution to 128 channels and the classifier. Map sizes for kernel 3 (`best`):
    26, 13, 11, 6, 4 (2,048 features); for kernel 5 (`best5`): 24, 12, 8, 4, 2 (512 features).
    With ``deskew``, a Deskew layer straightens each image before the first convolution.
    """
    import keras
    from keras import layers

    from mnistlab.models.layers import Deskew

    inputs = keras.Input(INPUT_SHAPE)
    x = Deskew()(inputs) if deskew else inputs
    x = _conv_bn(x, 32, kernel)
    x = _conv_bn(x, 32, kernel, strides=2, padding="same")
    x = layers.Dropout(0.25)(x)
    x = _conv_bn(x, 64, kernel)
    x = _conv_bn(x, 64, kernel, strides=2, padding="same")
    x = layers.Dropout(0.25)(x)
    x = _conv_bn(x, 128, 3)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


@register(
    "best",
    "modern CNN sized for a 2-core CPU: conv-BN blocks, strided 3x3 convs, dropout",
    parameters=160_618,
    **STRIDED_RECIPE,
)
def best():
    return _strided_cnn("best", 3)


# `best5` is `best` with 5x5 kernels in its first four convolutions: the same depth, strides
# and recipe, a wider receptive field at each layer (9.4M multiply-adds an image). It is there
# for ensembles: An et al. (2020) reach their best MNIST ensembles by mixing networks that differ
# only in kernel size (3, 5, 7), whose mistakes differ more than those of seeds of one design.


@register(
    "best5",
    "best with 5x5 kernels: the same recipe, another receptive field, for mixed ensembles",
    parameters=260_458,
    **STRIDED_RECIPE,
)
def best5():
    return _strided_cnn("best5", 5)


# `best_deskew` is `best` fed deskewed digits: a Deskew layer (layers.py) shears each image
# upright by its moments, in training (after the augmentation) and at inference alike. Also
# there for ensembles: Ciresan et al.'s multi-column networks (0.23%) drew their columns'
# differences from differently preprocessed inputs rather than from seeds alone.


@register(
    "best_deskew",
    "best on deskewed digits (each image sheared upright by its moments), for mixed ensembles",
    parameters=160_618,
    **STRIDED_RECIPE,
)
def best_deskew():
    return _strided_cnn("best_deskew", 3, deskew=True)


@register(
    "deotte",
    "Deotte's Kaggle CNN: conv-BN blocks, strided 5x5 convs instead of pooling, dropout 0.4",
    parameters=327_242,
    epochs=45,
    batch_size=128,
    learning_rate=0.003,
    schedule="onecycle",
    augment="affine",
    label_smoothing=0.1,
)
def deotte():
    import keras
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE)
    x = _conv_bn(inputs, 32, 3)  # (26, 26, 32)
    x = _conv_bn(x, 32, 3)  # (24, 24, 32)
    x = _conv_bn(x, 32, 5, strides=2, padding="same")  # (12, 12, 32)
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, 64, 3)  # (10, 10, 64)
    x = _conv_bn(x, 64, 3)  # (8, 8, 64)
    x = _conv_bn(x, 64, 5, strides=2, padding="same")  # (4, 4, 64)
    x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, 128, 4)  # (1, 1, 128)
    x = layers.Flatten()(x)  # (128,)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="deotte")
