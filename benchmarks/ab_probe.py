"""One change to how a network trains, measured side by side in one process (an A/B probe).

On a shared host, two fresh processes timed minutes apart can differ by 2x (the speed table's
[min-max] columns), which hides a 10-20% change. So this probe builds the network twice, with
the same weights, compiled as ``mnistlab train`` compiles it (its recipe, FAST_SETTINGS), once
as mnistlab ships it and once with the change undone, and times one pass of ``fit`` over the
same real MNIST images for each in turn, alternating which goes first, many times. Both meet
the same noise, so their ratio holds even when the host's speed does not.

The changes (--compare):
    adam   optimizers.FusedAdam against keras.optimizers.Adam (TensorFlow and PyTorch, where
           ours updates every weight in one fused kernel; on JAX a null check)
    pool   layers.MaxPooling2D against keras.layers.MaxPooling2D (any backend: on JAX, ours
           pools by a reshape, on PyTorch a view without copies; on TensorFlow the two are the
           same layer, a null check)
    reshape  pooling by a reshape on every backend (what ours does on JAX only) against Keras's:
           why mnistlab pools so on JAX alone
    steps  the steps per compiled call mnistlab uses (train.FAST_SETTINGS: 20 on TensorFlow
           and JAX) against one (on PyTorch, which runs one, a null check)
    step   torch_step's lean training step against Keras's own (PyTorch; elsewhere both are
           Keras's, a null check)
    scan   jax_step's scanned steps over data on the device against Keras's batches (JAX),
           forced on whatever the network, CNNs too, which mnistlab trains with Keras's
    jit    the step compiled (jit_compile true: XLA on TensorFlow and JAX, torch.compile on
           PyTorch) against not compiled (jit_compile false), whatever mnistlab's default is
    products  precision bfloat16_products (layers.BFloat16ProductDense and, on PyTorch,
           BFloat16ProductConv2D: products of bfloat16 operands) against float32 (JAX, PyTorch)
    dropout  layers.Dropout against keras.layers.Dropout (PyTorch, where ours draws its mask
           from 32 random bits an element, and TensorFlow, from 16 bits an element in one
           compiled kernel; on JAX the two are the same layer, a null check)
    poolfirst  the lean step pooling a convolution's sums before its bias and ReLU
           (torch_step.pool_first_pairs) against in the layers' order (PyTorch only)

Usage (one network a process, since TensorFlow fixes its kernels when it loads):
    python benchmarks/ab_probe.py --compare adam --model mlp
    python benchmarks/ab_probe.py --compare pool --backend jax --model cnn --reps 9

Writes benchmarks/results/adam_probe-MODEL.json and .md (--compare adam on TensorFlow, the
names that benchmarks/adam_probe.py always wrote), or COMPARE_probe-BACKEND-MODEL.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

# --compare: (title, label of mnistlab's way, label of the way it is undone)
COMPARISONS = {
    "adam": ("Fused Adam against Keras's Adam", "FusedAdam", "Adam"),
    "pool": ("mnistlab's max pooling against Keras's", "mnistlab pooling", "Keras pooling"),
    "reshape": ("Max pooling by a reshape against Keras's", "reshape pooling", "Keras pooling"),
    "steps": ("mnistlab's steps per compiled call against one", "mnistlab's steps", "one step"),
    "jit": ("A compiled step (jit_compile) against an uncompiled one", "jit_compile", "no jit"),
    "step": ("mnistlab's lean training step against Keras's", "lean step", "Keras step"),
    "scan": ("Scanned steps over data on the device against Keras's batches", "scan", "Keras"),
    "dropout": ("mnistlab's dropout against Keras's", "mnistlab dropout", "Keras dropout"),
    "poolfirst": ("Pooling before the bias and ReLU against after", "pool first", "pool last"),
    "products": (
        "Products of bfloat16 operands against float32 ones",
        "bfloat16 products",
        "float32",
    ),
}
# the comparisons that differ only in the recipe: (mnistlab's changes, the undone way's)
RECIPE_CHANGES = {
    "adam": ({"fused_adam": "true"}, {"fused_adam": "false"}),
    "steps": ({}, {"steps_per_execution": 1}),
    "jit": ({"jit_compile": "true"}, {"jit_compile": "false"}),
    "step": ({"lean_step": "true"}, {"lean_step": "false"}),
    "scan": ({"lean_step": "false"}, {"lean_step": "false"}),  # then install forces the scan
    "poolfirst": ({}, {}),  # then the second's lean step is installed without it
    "products": ({"precision": "bfloat16_products"}, {"precision": "float32"}),
}


def keras_pooling(model, reshape: bool = False):
    """A copy of the model (its weights too) with every mnistlab MaxPooling2D made Keras's, or
    (reshape=True) made to pool by a reshape whatever the backend."""
    import keras

    from mnistlab.fast.layers import MaxPooling2D, pool_by_reshape

    class ReshapePooling(MaxPooling2D):
        def call(self, inputs):
            return pool_by_reshape(inputs, self.pool_size)

    pooling = ReshapePooling if reshape else keras.layers.MaxPooling2D

    def clone(layer):
        kind = pooling if isinstance(layer, MaxPooling2D) else type(layer)
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def keras_dropout(model):
    """A copy of the model (its weights too) with every mnistlab Dropout made Keras's."""
    import keras

    from mnistlab.fast.layers import Dropout

    def clone(layer):
        kind = keras.layers.Dropout if isinstance(layer, Dropout) else type(layer)
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def build_pair(compare: str, model_name: str, recipe: dict, steps: int) -> dict:
    """{label: compiled model} for mnistlab's way and the undone way, with the same weights
    (recipe: the TrainConfig dict they compile with, its augmentation off)."""
    import keras

    from mnistlab.core.config import TrainConfig
    from mnistlab.models.registry import create_model
    from mnistlab.training.train import compile_model

    _, ours, theirs = COMPARISONS[compare]
    models = {}
    if compare in RECIPE_CHANGES:
        for label, change in zip((ours, theirs), RECIPE_CHANGES[compare], strict=True):
            config = TrainConfig.from_dict({**recipe, **change})
            keras.utils.set_random_seed(config.seed)  # the same initial weights for both
            models[label] = create_model(model_name, config.precision)
            compile_model(models[label], config, steps)
        if compare == "products":  # its network is a clone, with weights of its own
            models[theirs].set_weights(models[ours].get_weights())
        if compare == "poolfirst":
            from mnistlab.fast import torch_step

            if not torch_step.install(models[theirs], pool_first=False):
                raise SystemExit(f"--compare poolfirst: {torch_step.refusal(models[theirs])}")
        if compare == "scan":
            from mnistlab.fast import jax_step

            if not jax_step.install(models[ours], check=False):
                raise SystemExit(f"--compare scan: {jax_step.refusal(models[ours])}")
        return models
    config = TrainConfig.from_dict(recipe)
    keras.utils.set_random_seed(config.seed)
    models[ours] = create_model(model_name, config.precision)
    if compare == "reshape":
        models[ours] = keras_pooling(models[ours], reshape=True)
    undo = keras_dropout if compare == "dropout" else keras_pooling
    models[theirs] = undo(models[ours])
    for model in models.values():
        compile_model(model, config, steps)
    return models


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="adam")
    parser.add_argument("--model", default="mlp", help="a registered network (default mlp)")
    parser.add_argument(
        "--backend", default="tensorflow", help="Keras backend (default tensorflow)"
    )
    parser.add_argument("--reps", type=int, default=25, help="timed passes per variant")
    parser.add_argument("--images", type=int, default=12000, help="training images per pass")
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    from mnistlab.core.backend import use_backend

    use_backend(args.backend, args.model)  # the kernels `mnistlab train MODEL` runs
    import keras
    import numpy as np

    import mnistlab
    from mnistlab.core import runs
    from mnistlab.core.runs import environment_versions, machine_description
    from mnistlab.models.registry import NUM_CLASSES, to_input
    from mnistlab.training.train import resolve_config

    (x_train, y_train), _ = mnistlab.load_mnist(args.data)
    x = to_input(x_train[: args.images])
    y = keras.utils.to_categorical(y_train[: args.images], NUM_CLASSES)
    # the probe times plain passes over arrays, whatever the recipe's augmentation
    recipe = {**resolve_config(args.model).to_dict(), "augment": "none"}
    batch_size = recipe["batch_size"]
    steps = int(np.ceil(args.images / batch_size))
    models = build_pair(args.compare, args.model, recipe, steps)
    for model in models.values():
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: trace, threads
    seconds = {label: [] for label in models}
    order = list(models)
    for _ in range(args.reps):
        for label in order:
            started = time.perf_counter()
            models[label].fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            seconds[label].append(time.perf_counter() - started)
        order.reverse()  # neither always goes first
    per_step = {label: [1000 * s / steps for s in values] for label, values in seconds.items()}
    medians = {label: statistics.median(values) for label, values in per_step.items()}
    title, ours, theirs = COMPARISONS[args.compare]
    result = {
        "command": "python benchmarks/ab_probe.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "written": time.strftime("%Y-%m-%d %H:%M"),
        "compare": args.compare,
        "model": args.model,
        "backend": keras.backend.backend(),
        "images_per_pass": args.images,
        "batch_size": batch_size,
        "compile": {
            label: {"jit_compile": m.jit_compile, "steps_per_execution": m.steps_per_execution}
            for label, m in models.items()
        },
        "onednn": environment_versions().get("onednn"),
        "ms_per_step": per_step,
        "median_ms_per_step": medians,
        "speed_up": medians[theirs] / medians[ours],
    }
    os.makedirs(args.out, exist_ok=True)
    if args.compare == "adam" and result["backend"] == "tensorflow":
        name = os.path.join(args.out, f"adam_probe-{args.model}")
    else:
        name = os.path.join(args.out, f"{args.compare}_probe-{result['backend']}-{args.model}")
    runs.write_json(name + ".json", result)
    quartiles = {label: statistics.quantiles(v, n=4) for label, v in per_step.items()}
    onednn = (
        f", oneDNN {'on' if result['onednn'] else 'off'}"
        if result["backend"] == "tensorflow"
        else ""
    )

    def settings(label: str) -> str:
        return ", ".join(f"{key} {value}" for key, value in result["compile"][label].items())

    compiled = settings(ours)
    if result["compile"][theirs] != result["compile"][ours]:
        compiled += f", {theirs}: {settings(theirs)}"
    lines = [
        f"# {title}: `{args.model}` on {result['backend']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Written: {result['written']}",
        "",
        f"One process, both networks compiled as `mnistlab train {args.model}` compiles them "
        f"({compiled}, batch {batch_size}{onednn}), "
        f"{args.reps} alternating passes of `fit` over {args.images} MNIST training images each.",
        "",
        "| variant | ms a step, median | quartiles |",
        "| --- | ---: | ---: |",
        *(
            f"| {label} | {medians[label]:.2f} | {quartiles[label][0]:.2f}-{quartiles[label][2]:.2f} |"
            for label in (ours, theirs)
        ),
        "",
        f"**{ours}: {result['speed_up']:.2f}x** as fast a step as {theirs}.",
        "",
    ]
    with runs.atomic_path(name + ".md") as temporary, open(temporary, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
