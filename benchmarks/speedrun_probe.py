"""How the speedrun's settings were chosen: one epoch, seed 1, a few candidates side by side.

Each candidate trains the `speedrun` network for one epoch on all 60,000 training images
(Adam with mnistlab's one-cycle schedule, label smoothing 0.1, 20 steps per compiled call,
as `mnistlab train` compiles it), then measures the test set once. Candidates: three
(batch, peak learning rate) pairs, and the same network with batch normalisation after each
convolution (the first speedrun design) at the chosen pair. One seed: a probe, not a result
(benchmarks/speedrun.py measures the chosen settings over 5 seeds).

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/speedrun_probe.py [--tiny]

Writes benchmarks/results/speedrun_probe.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = [  # (label, batch size, peak learning rate, batch normalisation)
    ("batch 128, rate 0.003", 128, 0.003, False),
    ("batch 128, rate 0.006", 128, 0.006, False),
    ("batch 256, rate 0.008", 256, 0.008, False),
    ("batch 128, rate 0.006, batch normalisation", 128, 0.006, True),
]


def network(batch_norm: bool):
    import keras
    from keras import layers

    from mnistlab.speedrun import speedrun

    if not batch_norm:
        return speedrun()
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters in (24, 32):
        x = layers.Conv2D(filters, 5, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="1,000 images: for CI")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from mnistlab.data import load_mnist
    from mnistlab.models import to_input
    from mnistlab.schedules import WARMUP_FRACTION, OneCycle

    (x_train, y_train), (x_test, y_test) = load_mnist()
    count = 1000 if args.tiny else len(x_train)
    x, y = to_input(x_train[:count]), keras.utils.to_categorical(y_train[:count], 10)
    rows = []
    for label, batch, rate, batch_norm in CANDIDATES:
        keras.utils.set_random_seed(1)
        model = network(batch_norm)
        steps = -(-count // batch)
        model.compile(
            optimizer=keras.optimizers.Adam(OneCycle(rate, steps, WARMUP_FRACTION * steps)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            steps_per_execution=20,
        )
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        predicted = np.argmax(model.predict(to_input(x_test), batch_size=2000, verbose=0), 1)
        accuracy = 100 * float(np.mean(predicted == y_test))
        rows.append((label, seconds, accuracy))
        print(f"{label}: {seconds:.1f} s, {accuracy:.2f}%", flush=True)

    sys.path.insert(0, HERE)
    from speed import cpu_model, write_table

    lines = [
        "# Speedrun settings probe (one epoch, seed 1)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores. Command: `python "
        f"benchmarks/speedrun_probe.py{' --tiny' if args.tiny else ''}`; {count} training "
        "images. Seconds: the whole `fit` call, tracing included; one run each.",
        "",
        "| candidate | fit s | test accuracy % |",
        "| --- | ---: | ---: |",
        *[f"| {label} | {seconds:.1f} | {accuracy:.2f} |" for label, seconds, accuracy in rows],
    ]
    write_table(args.out, "speedrun_probe.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
