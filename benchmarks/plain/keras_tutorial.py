"""The peer: the tutorial's networks as a plain Keras 3 script (``model.fit`` on numpy arrays).

This is the code people run today (the machinelearningmastery tutorial, ported to Keras 3):
Sequential models, ``compile(loss="categorical_crossentropy", optimizer="adam")`` with
Keras's default compile settings, ``fit`` on float32 numpy arrays with batch 200 and the
test images as validation data. Nothing here is tuned. The only additions are measurement:
a callback that times each epoch and a JSON line at the end.

``--precision mixed_bfloat16`` is the script one setting away, the line Keras's mixed-precision
guide gives, ``keras.mixed_precision.set_global_policy("mixed_bfloat16")``, before the model is
built; nothing else changes (benchmarks/speed.py sets it against mnistlab's bfloat16 default).

Usage:
    KERAS_BACKEND=jax python benchmarks/plain/keras_tutorial.py --model cnn --epochs 3
"""

from __future__ import annotations

import sys
import time

import peer

MODELS = ("mlp", "cnn", "larger_cnn", "branch_cnn")
PRECISIONS = ("float32", "mixed_bfloat16")  # Keras dtype policies


def build(name: str):
    """The tutorial's networks, written the way the tutorial writes them."""
    import keras
    from keras import layers

    if name == "mlp":
        return keras.Sequential(
            [
                keras.Input((784,)),
                layers.Dense(784, kernel_initializer="normal", activation="relu"),
                layers.Dense(10, kernel_initializer="normal", activation="softmax"),
            ]
        )
    if name == "cnn":
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, (5, 5), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Dropout(0.2),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    if name == "larger_cnn":
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(30, (5, 5), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Conv2D(15, (3, 3), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Dropout(0.2),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(50, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    if name == "branch_cnn":  # the two-path block needs the functional API
        inputs = keras.Input((28, 28, 1))
        left = layers.Conv2D(16, (1, 1), padding="same")(inputs)
        right = layers.Conv2D(16, (5, 5), padding="same", activation="relu")(inputs)
        x = layers.Add()([left, right])
        x = layers.MaxPooling2D(pool_size=(2, 2))(x)
        x = layers.Dropout(0.2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        outputs = layers.Dense(10, activation="softmax")(x)
        return keras.Model(inputs, outputs)
    raise ValueError(f"Unknown model '{name}'. Available: {', '.join(MODELS)}.")


def main(argv=None) -> int:
    args = peer.parse_args(__doc__.splitlines()[0], MODELS, argv, precisions=PRECISIONS)
    # Loading is not timed; the tutorial calls keras.datasets.mnist.load_data(), which needs
    # the network, so the same arrays come from the local files here.
    from mnistlab.data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    import keras

    keras.utils.set_random_seed(7)
    shape = (-1, 784) if args.model == "mlp" else (-1, 28, 28, 1)
    x_train = x_train[: args.train_images].reshape(shape).astype("float32") / 255
    x_test = x_test[: args.val_images].reshape(shape).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train[: args.train_images], 10)
    y_test = keras.utils.to_categorical(y_test[: args.val_images], 10)

    keras.mixed_precision.set_global_policy(args.precision)
    model = build(args.model)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
        seconds: list = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimer()
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        callbacks=[timer],
    )
    extra = {}
    if keras.backend.backend() == "tensorflow":  # reported only; the script leaves TF's default
        from mnistlab.core.runs import tensorflow_onednn

        extra["onednn"] = tensorflow_onednn()
    val_accuracy = history.history["val_accuracy"][-1]
    peer.report(
        timer.seconds, started, val_accuracy, keras.backend.backend(),
        precision=args.precision, **extra,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
