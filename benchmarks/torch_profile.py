"""Where a training step's time goes on PyTorch: PyTorch's profiler over mnistlab's step.

Builds the network as ``mnistlab train`` does (its recipe, FAST_SETTINGS, the lean step),
trains one warm-up pass of ``fit`` over real MNIST images, then profiles a second pass and
lists the operators that took the most of the CPU's time, per training step. --keras-dropout
swaps mnistlab's Dropout for Keras's first, to see what Keras's mask costs.

Usage:
    python benchmarks/torch_profile.py --model cnn
    python benchmarks/torch_profile.py --model cnn --precision float32 --keras-dropout

Writes benchmarks/results/torch_profile-MODEL-PRECISION[-keras-dropout].md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", help="a registered network (default cnn)")
    parser.add_argument("--precision", default="auto", help="as mnistlab train's (default auto)")
    parser.add_argument("--images", type=int, default=6000, help="training images profiled")
    parser.add_argument("--rows", type=int, default=15, help="operators listed")
    parser.add_argument("--keras-dropout", action="store_true", help="Keras's Dropout layers")
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    from mnistlab.core.backend import use_backend

    use_backend("torch", args.model)
    import keras
    import numpy as np
    from ab_probe import keras_dropout
    from torch.profiler import ProfilerActivity, profile

    import mnistlab
    from mnistlab.core import runs
    from mnistlab.core.backend import resolve_precision
    from mnistlab.core.config import TrainConfig
    from mnistlab.models.registry import NUM_CLASSES, create_model, to_input
    from mnistlab.training.train import compile_model, resolve_config

    (x_train, y_train), _ = mnistlab.load_mnist(args.data)
    x = to_input(x_train[: args.images])
    y = keras.utils.to_categorical(y_train[: args.images], NUM_CLASSES)
    recipe = {**resolve_config(args.model).to_dict(), "augment": "none"}
    config = TrainConfig.from_dict({**recipe, "precision": args.precision})
    steps = int(np.ceil(args.images / config.batch_size))
    precision = resolve_precision(config.precision, args.model)  # what "auto" means here
    keras.utils.set_random_seed(config.seed)
    model = create_model(args.model, precision)
    if args.keras_dropout:
        model = keras_dropout(model)
    step = compile_model(model, config, steps)
    model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        started = time.perf_counter()
        model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)  # microseconds, all operators
    command = "python benchmarks/torch_profile.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    lines = [
        f"# Where a training step of `{args.model}` goes on PyTorch ({precision}"
        + (", Keras's Dropout" if args.keras_dropout else "")
        + ")",
        "",
        f"Command: `{command}`  ",
        f"Machine: {runs.machine_description()}  ",
        f"Written: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"One profiled pass of `fit` over {args.images} MNIST images, {steps} steps of "
        f"{config.batch_size}, step `{step}`, after a warm-up pass: {1000 * seconds / steps:.1f} "
        f"ms a step on the clock (the profiler's own cost included), of which the operators "
        f"took {total / 1000 / steps:.1f} ms of CPU time (self time, summed over threads' "
        "calls). The rest is Python: Keras's loop, the step's bookkeeping.",
        "",
        "| operator | ms a step | share of operators' time | calls a step |",
        "| --- | ---: | ---: | ---: |",
    ]
    for event in events[: args.rows]:
        name = event.key if len(event.key) <= 60 else event.key[:57] + "..."
        lines.append(
            f"| `{name}` | {event.self_cpu_time_total / 1000 / steps:.2f} | "
            f"{100 * event.self_cpu_time_total / total:.0f}% | {event.count / steps:.0f} |"
        )
    lines.append("")
    suffix = "-keras-dropout" if args.keras_dropout else ""
    name = os.path.join(args.out, f"torch_profile-{args.model}-{precision}{suffix}.md")
    os.makedirs(args.out, exist_ok=True)
    with runs.atomic_path(name) as temporary, open(temporary, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
