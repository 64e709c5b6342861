"""How the speedrun's settings were chosen: a few candidates side by side, seeds 1 and 2.

Each candidate trains for one pass over its first N training images (Adam with mnistlab's
one-cycle schedule, label smoothing 0.1, batch 128, 20 steps per compiled call, as
`mnistlab train` compiles it), then measures the test set once. Candidates: the first
speedrun network (no batch normalisation, the settings it shipped with), and the current one
with batch normalisation at Keras's default momentum (0.99) and at 0.9, on 60,000, 40,000 and
30,000 images. Two seeds: a probe, not a result (benchmarks/speedrun.py measures the chosen
settings over 5 seeds).

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
SEEDS = (1, 2)
BATCH = 128
CANDIDATES = [  # (label, batch normalisation momentum or None, peak learning rate, images)
    ("first network: no normalisation, rate 0.006", None, 0.006, 60000),
    ("normalisation, momentum 0.99 (Keras's), rate 0.01", 0.99, 0.01, 40000),
    ("normalisation, momentum 0.9, rate 0.01", 0.9, 0.01, 60000),
    ("normalisation, momentum 0.9, rate 0.01 (chosen)", 0.9, 0.01, 40000),
    ("normalisation, momentum 0.9, rate 0.01", 0.9, 0.01, 30000),
]


def network(momentum: float | None):
    """The speedrun network; momentum None: the first design, ReLU convolutions, no normalisation."""
    import keras
    from keras import layers

    from mnistlab.speedrun import speedrun

    if momentum is not None:
        return speedrun(momentum)
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters in (24, 32):
        x = layers.Conv2D(filters, 5, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="1,000 images, seed 1: for CI")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from mnistlab.data import load_mnist
    from mnistlab.models import to_input
    from mnistlab.schedules import WARMUP_FRACTION, OneCycle

    (x_train, y_train), (x_test, y_test) = load_mnist()
    rows = []
    for label, momentum, rate, images in CANDIDATES:
        count = min(images, 1000 if args.tiny else len(x_train))
        x, y = to_input(x_train[:count]), keras.utils.to_categorical(y_train[:count], 10)
        seconds, accuracy = [], []
        for seed in SEEDS[:1] if args.tiny else SEEDS:
            keras.utils.set_random_seed(seed)
            model = network(momentum)
            steps = -(-count // BATCH)
            model.compile(
                optimizer=keras.optimizers.Adam(OneCycle(rate, steps, WARMUP_FRACTION * steps)),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                steps_per_execution=20,
            )
            started = time.perf_counter()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
            seconds.append(time.perf_counter() - started)
            predicted = np.argmax(model.predict(to_input(x_test), batch_size=2000, verbose=0), 1)
            accuracy.append(100 * float(np.mean(predicted == y_test)))
        rows.append((label, count, seconds, accuracy))
        print(f"{label}, {count} images: {seconds} s, {accuracy}%", flush=True)

    sys.path.insert(0, HERE)
    from speed import cpu_model, write_table

    lines = [
        "# Speedrun settings probe (one pass, seeds 1 and 2)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores. Command: `python "
        f"benchmarks/speedrun_probe.py{' --tiny' if args.tiny else ''}`; batch {BATCH}. "
        "Seconds: the whole `fit` call, tracing included (the speedrun's own clock is in "
        "speedrun.md).",
        "",
        "| candidate | images | fit s (seed 1, 2) | test accuracy % (seed 1, 2) | mean % |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {label} | {count} | {', '.join(f'{s:.1f}' for s in seconds)} | "
            f"{', '.join(f'{a:.2f}' for a in accuracy)} | {sum(accuracy) / len(accuracy):.2f} |"
            for label, count, seconds, accuracy in rows
        ],
    ]
    write_table(args.out, "speedrun_probe.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
