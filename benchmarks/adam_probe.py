"""Fused Adam against Keras's Adam: the same network trained side by side in one process.

On a shared host, two fresh processes timed minutes apart can differ by 2x (the speed table's
[min-max] columns), which hides a 10-20% change. So this probe builds the network twice, with
the same weights, compiled as ``mnistlab train`` compiles it (its recipe, FAST_SETTINGS), once
with optimizers.FusedAdam and once with keras.optimizers.Adam, and times one pass of ``fit``
over the same real MNIST images for each in turn, alternating which goes first, many times.
Both meet the same noise, so their ratio holds even when the host's speed does not.

Usage (one network a process, since TensorFlow fixes its kernels when it loads):
    python benchmarks/adam_probe.py --model mlp
    python benchmarks/adam_probe.py --model cnn --reps 15

Writes benchmarks/results/adam_probe-MODEL.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", help="a registered network (default mlp)")
    parser.add_argument("--reps", type=int, default=25, help="timed passes per optimizer")
    parser.add_argument("--images", type=int, default=12000, help="training images per pass")
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    from mnistlab.backend import use_backend

    use_backend("tensorflow", args.model)  # the kernels `mnistlab train MODEL` runs
    import keras
    import numpy as np

    import mnistlab
    from mnistlab import runs
    from mnistlab.config import TrainConfig
    from mnistlab.models import NUM_CLASSES, create_model, to_input
    from mnistlab.runs import environment_versions, machine_description
    from mnistlab.train import compile_model, compile_settings, resolve_config

    (x_train, y_train), _ = mnistlab.load_mnist(args.data)
    x = to_input(x_train[: args.images])
    y = keras.utils.to_categorical(y_train[: args.images], NUM_CLASSES)
    recipe = resolve_config(args.model).to_dict()
    batch_size = recipe["batch_size"]
    steps = int(np.ceil(args.images / batch_size))
    models = {}
    for fused in ("true", "false"):
        config = TrainConfig.from_dict({**recipe, "augment": "none", "fused_adam": fused})
        keras.utils.set_random_seed(config.seed)  # the same initial weights for both
        model = create_model(args.model, config.precision)
        compile_model(model, config, steps)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: trace, threads
        models[type(model.optimizer).__name__] = model
    seconds = {name: [] for name in models}
    order = list(models)
    for _ in range(args.reps):
        for name in order:
            started = time.perf_counter()
            models[name].fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - started)
        order.reverse()  # neither always goes first
    per_step = {name: [1000 * s / steps for s in values] for name, values in seconds.items()}
    medians = {name: statistics.median(values) for name, values in per_step.items()}
    result = {
        "command": "python benchmarks/adam_probe.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "written": time.strftime("%Y-%m-%d %H:%M"),
        "model": args.model,
        "images_per_pass": args.images,
        "batch_size": batch_size,
        "compile": compile_settings(config, steps),  # the same for both optimizers
        "onednn": environment_versions().get("onednn"),
        "ms_per_step": per_step,
        "median_ms_per_step": medians,
        "speed_up": medians["Adam"] / medians["FusedAdam"],
    }
    os.makedirs(args.out, exist_ok=True)
    name = os.path.join(args.out, f"adam_probe-{args.model}")
    runs.write_json(name + ".json", result)
    quartiles = {n: statistics.quantiles(v, n=4) for n, v in per_step.items()}
    lines = [
        f"# Fused Adam against Keras's Adam: `{args.model}`",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Written: {result['written']}",
        "",
        f"One process, both networks compiled as `mnistlab train {args.model}` compiles them "
        f"({result['compile']}, batch {batch_size}, oneDNN {'on' if result['onednn'] else 'off'}), "
        f"{args.reps} alternating passes of `fit` over {args.images} MNIST training images each.",
        "",
        "| optimizer | ms a step, median | quartiles |",
        "| --- | ---: | ---: |",
        *(
            f"| {n} | {medians[n]:.2f} | {quartiles[n][0]:.2f}-{quartiles[n][2]:.2f} |"
            for n in ("FusedAdam", "Adam")
        ),
        "",
        f"**Fused Adam: {result['speed_up']:.2f}x** as fast a step as Keras's Adam.",
        "",
    ]
    with runs.atomic_path(name + ".md") as temporary, open(temporary, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
