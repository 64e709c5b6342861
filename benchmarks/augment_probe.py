"""What on-the-fly augmentation costs an epoch: numpy generator against the tf.data pipeline.

One process, the `speedrun` CNN (small, so input costs show), batch 128, one epoch each of:
plain arrays; a Python generator of the same batches without any warp (the hand-off alone);
the numpy affine warp in that generator (mnistlab's path where TensorFlow is missing); the
tf.data pipelines that "affine" and "elastic" use. Then the warp alone per batch, numpy and
TensorFlow (as a compiled tf.function, the way tf.data runs it), affine and elastic.
Order interleaved over REPEATS rounds; medians reported.

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/augment_probe.py [--repeats 3] [--tiny]

Writes benchmarks/results/augment_probe.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--tiny", action="store_true", help="512 images, one round: for CI")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    import mnistlab.training.speedrun  # noqa: F401  (registers the network)
    from mnistlab.core.config import TrainConfig
    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.registry import create_model, to_input
    from mnistlab.training.augment import (
        graph_field_warp,
        graph_warp,
        random_warp,
        smooth_field,
        warp_dataset,
    )

    (x_train, y_train), _ = load_mnist()
    count = 512 if args.tiny else len(x_train)
    repeats = 1 if args.tiny else args.repeats
    x = to_input(x_train[:count])
    y = keras.utils.to_categorical(y_train[:count], 10)
    config = TrainConfig(batch_size=128, augment="affine", seed=1)
    elastic_config = TrainConfig(batch_size=128, augment="elastic", seed=1)
    steps = -(-count // config.batch_size)

    def generator(warp: bool):
        epoch = 0
        while True:
            order = np.random.default_rng([1, epoch]).permutation(count)
            for step in range(steps):
                rows = order[step * 128 : (step + 1) * 128]
                images = x[rows]
                if warp:
                    images = random_warp(images, np.random.default_rng([1, epoch, step]))
                yield images, y[rows]
            epoch += 1

    sources = {
        "numpy arrays, no augmentation": lambda: ((x, y), dict(batch_size=128)),
        "Python generator, no warp": lambda: ((generator(False),), dict(steps_per_epoch=steps)),
        "Python generator + numpy warp": lambda: ((generator(True),), dict(steps_per_epoch=steps)),
        "tf.data pipeline + graph warp (affine)": lambda: (
            (warp_dataset(config, x, y),),
            dict(steps_per_epoch=steps),
        ),
        "tf.data pipeline + graph field warp (elastic)": lambda: (
            (warp_dataset(elastic_config, x, y),),
            dict(steps_per_epoch=steps),
        ),
    }
    seconds = {name: [] for name in sources}
    for _ in range(repeats):
        for name, make in sources.items():
            model = create_model("speedrun")
            # a divisor of the epoch's steps, so no call runs into the next epoch
            divisor = max(d for d in range(1, 21) if steps % d == 0)
            model.compile("adam", "categorical_crossentropy", steps_per_execution=divisor)
            inputs, options = make()
            started = time.perf_counter()
            model.fit(*inputs, epochs=1, verbose=0, **options)
            seconds[name].append(time.perf_counter() - started)
            print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)

    batch = x[:128]
    rng = np.random.default_rng(0)
    angles, scales = rng.uniform(-10, 10, 128), rng.uniform(0.9, 1.1, 128)
    shifts = rng.uniform(-2.5, 2.5, (128, 2))
    noise = rng.uniform(-1, 1, (128, 2, 28, 28))
    tensors = [tf.constant(v, tf.float32) for v in (batch, angles, scales, shifts, noise)]
    graph_affine = tf.function(lambda i, a, s, d, n: graph_warp(i, a, s, d))
    graph_elastic = tf.function(
        lambda i, a, s, d, n: graph_field_warp(i, a, s, d, smooth_field(n, 28, 28))
    )
    warp_ms = {}
    for name, warp in {
        "numpy, affine (random_warp)": lambda: random_warp(batch, rng),
        "numpy, elastic (random_warp)": lambda: random_warp(batch, rng, elastic=True),
        "TensorFlow, affine (graph_warp)": lambda: graph_affine(*tensors),
        "TensorFlow, elastic (smooth_field + graph_field_warp)": lambda: graph_elastic(*tensors),
    }.items():
        warp()
        started = time.perf_counter()
        for _ in range(50):
            warp()
        warp_ms[name] = (time.perf_counter() - started) / 50 * 1000

    sys.path.insert(0, HERE)
    from speed import write_table

    from mnistlab.core.runs import machine_description

    base = statistics.median(seconds["numpy arrays, no augmentation"])
    lines = [
        "# Augmentation: what it costs an epoch",
        "",
        f"Machine: {machine_description()}. Command: `python "
        f"benchmarks/augment_probe.py{' --tiny' if args.tiny else ''}`. Network: `speedrun`, "
        f"batch 128, {count} images an epoch, median of {repeats} interleaved rounds.",
        "",
        "| input | epoch s (median) | runs | x arrays |",
        "| --- | ---: | --- | ---: |",
    ]
    for name, values in seconds.items():
        runs = ", ".join(f"{value:.1f}" for value in values)
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.1f} | {runs} | {median / base:.2f} |")
    lines += ["", "| warp of one batch of 128 | ms |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.1f} |" for name, value in warp_ms.items()]
    write_table(args.out, "augment_probe.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
