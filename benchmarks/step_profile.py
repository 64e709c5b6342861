"""Where a training step of the tutorial CNN goes, op by op, and what equivalent rewrites save.

The speed table (benchmarks/speed.py) puts mnistlab's `cnn` at about the plain Keras script's
speed and at 10% of the matrix-multiply rate. This probe says why, and measures the levers that
keep the math the same:

1. Op by op (TensorFlow, in this process): each operation of one training step of `cnn`
   (batch 200, real MNIST images) timed alone as a compiled function, median of the rounds,
   with its multiply-adds counted by hand and its GFLOP/s. Their sum is set against a whole
   step as `model.fit` runs it (20 steps per compiled call, mnistlab's TensorFlow setting).
2. Rewrites (each measurement a fresh process, rounds interleaved, a warm-up epoch first):
   - `as written`: mnistlab's `cnn` (Conv2D with ReLU, then 2x2 max pooling);
   - `pool first`: convolution without bias, pooling, then bias and ReLU. The same function:
     a per-channel bias and ReLU are monotone, so they commute with a max. ReLU and the bias
     then touch a quarter of the values;
   - `patches`: the first convolution as a matrix product of its 5x5 windows (cut out with
     slices) and the kernel, the same sums in another order;
   - on PyTorch: `as written` with Keras's `jit_compile` off and on (torch.compile).
   All train alike: `model.fit` on numpy arrays, Adam, batch 200, 20 steps per compiled call
   on TensorFlow (mnistlab's setting), 1 on PyTorch. Each rewrite's largest difference in
   output from `as written` with the same weights is printed beside it.

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/step_profile.py [--rounds 3]
    python benchmarks/step_profile.py --tiny          # a few batches, for CI

Writes benchmarks/results/step_profile.md and step_profile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BATCH = 200
# (name, backend, jit_compile): the measurements of part 2.
VARIANTS = [
    ("as written", "tensorflow", False),
    ("pool first", "tensorflow", False),
    ("patches", "tensorflow", False),
    ("as written", "torch", False),
    ("as written", "torch", True),
]


# --- part 2: one rewrite, in its own process ----------------------------------------------


def build(variant: str):
    """mnistlab's `cnn`, or the same function with one rewrite."""
    import keras
    from keras import layers, ops

    from mnistlab.models.registry import create_model

    if variant == "as written":
        return create_model("cnn")

    class PatchConv2D(layers.Conv2D):
        """A valid, stride-1 convolution as (windows cut out with slices) @ (kernel matrix)."""

        def convolution_op(self, inputs, kernel):
            kh, kw, cin, cout = kernel.shape
            rows, cols = inputs.shape[1] - kh + 1, inputs.shape[2] - kw + 1
            x = ops.concatenate([inputs[:, i : i + rows] for i in range(kh)], axis=-1)
            x = ops.concatenate([x[:, :, j : j + cols] for j in range(kw)], axis=-1)
            # x's last axis runs over (j, i, channel): order the kernel's rows the same way.
            matrix = ops.reshape(ops.transpose(kernel, (1, 0, 2, 3)), (kh * kw * cin, cout))
            return ops.matmul(x, matrix)

    class ConvPoolReLU(layers.Layer):
        """Convolution, 2x2 max pooling, then bias and ReLU."""

        def __init__(self, filters, size, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(filters, size, use_bias=False)
            self.filters, self.size = filters, size

        def get_config(self):
            return {**super().get_config(), "filters": self.filters, "size": self.size}

        def build(self, shape):
            self.conv.build(shape)
            self.bias = self.add_weight(shape=(self.filters,), initializer="zeros")

        def call(self, x):
            x = ops.max_pool(self.conv(x), 2, 2)
            return ops.relu(x + self.bias)

    inputs = keras.Input((28, 28, 1))
    if variant == "pool first":
        x = ConvPoolReLU(32, 5)(inputs)
    else:
        x = PatchConv2D(32, 5, activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def copy_weights(source, target) -> None:
    """Gives target (a rewrite) the weights of source (`cnn` as written), matched by shape."""
    kernel, bias, *rest = source.get_weights()
    shapes = [tuple(w.shape) for w in target.get_weights()]
    head = [kernel, bias] if shapes[0] == kernel.shape else [bias, kernel]
    target.set_weights(head + rest)


def worker(args) -> dict:
    """Trains one variant for a warm-up epoch and a timed one; prints a JSON line."""
    import keras
    import numpy as np

    from mnistlab.data.mnist import load_mnist

    keras.utils.set_random_seed(1)
    (x_train, y_train), (x_test, _) = load_mnist()
    x = (x_train[: args.train_images, ..., None] / 255.0).astype("float32")
    y = y_train[: args.train_images]
    model = build(args.variant)
    difference = 0.0
    if args.variant != "as written":
        reference = build("as written")
        weights = reference.get_weights()  # a bias that is not zero, so that its place counts
        weights[1] = np.random.default_rng(0).normal(size=weights[1].shape).astype("float32")
        reference.set_weights(weights)
        copy_weights(reference, model)
        probe = (x_test[:64, ..., None] / 255.0).astype("float32")
        got, want = model.predict(probe, verbose=0), reference.predict(probe, verbose=0)
        difference = float(np.abs(got - want).max())
    steps = 20 if keras.backend.backend() == "tensorflow" else 1
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        jit_compile=args.jit,
        steps_per_execution=steps,
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"images_per_second": len(x) / seconds, "warm_up_s": warm, "difference": difference}


def measure(variant: str, backend: str, jit: bool, args) -> dict:
    command = [sys.executable, __file__, "--worker", "--variant", variant]
    command += ["--train-images", str(args.train_images)] + (["--jit"] if jit else [])
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{variant}/{backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- part 1: the step op by op, in this process -------------------------------------------


def op_table(rounds: int, calls: int) -> tuple[list[dict], float]:
    """Times each op of one `cnn` training step alone; returns rows and a whole step's ms."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf

    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.registry import create_model

    (x_train, y_train), _ = load_mnist()
    rng = np.random.default_rng(0)
    b = BATCH
    x = tf.constant((x_train[:b, ..., None] / 255.0).astype("float32"))

    def normal(*shape):
        return tf.constant(rng.standard_normal(shape).astype("float32"))

    kernel, grad24, grad12 = normal(5, 5, 1, 32), normal(b, 24, 24, 32), normal(b, 12, 12, 32)
    conv = tf.nn.conv2d(x, kernel, 1, "VALID")
    relu = tf.nn.relu(conv)
    pooled = tf.nn.max_pool2d(relu, 2, 2, "VALID")
    flat, w1, grad_h = tf.reshape(pooled, (b, -1)), normal(4608, 128), normal(b, 128)
    conv_macs, dense_macs = b * 24 * 24 * 25 * 32, b * 4608 * 128
    ops = [  # (operation, multiply-adds, function)
        ("convolution, forward", conv_macs, lambda: tf.nn.conv2d(x, kernel, 1, "VALID")),
        ("convolution, kernel gradient", conv_macs, lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[5, 5, 1, 32], out_backprop=grad24, strides=[1, 1, 1, 1],
            padding="VALID")),
        ("bias add (24x24x32)", 0, lambda: tf.nn.bias_add(conv, tf.zeros(32))),
        ("bias gradient", 0, lambda: tf.raw_ops.BiasAddGrad(out_backprop=grad24)),
        ("ReLU (24x24x32)", 0, lambda: tf.nn.relu(conv)),
        ("ReLU gradient", 0, lambda: tf.raw_ops.ReluGrad(gradients=grad24, features=conv)),
        ("max pooling", 0, lambda: tf.nn.max_pool2d(relu, 2, 2, "VALID")),
        ("max pooling gradient", 0, lambda: tf.raw_ops.MaxPoolGrad(
            orig_input=relu, orig_output=pooled, grad=grad12, ksize=[1, 2, 2, 1],
            strides=[1, 2, 2, 1], padding="VALID")),
        ("dropout (12x12x32)", 0, lambda: tf.nn.experimental.stateless_dropout(
            pooled, 0.2, seed=[1, 2])),
        ("dense 4608->128, forward", dense_macs, lambda: tf.matmul(flat, w1)),
        ("dense, weight gradient", dense_macs, lambda: tf.matmul(flat, grad_h, transpose_a=True)),
        ("dense, input gradient", dense_macs, lambda: tf.matmul(grad_h, w1, transpose_b=True)),
    ]  # fmt: skip
    compiled = [tf.function(fn) for _, _, fn in ops]
    for fn in compiled:
        fn(), fn()
    times = [[] for _ in ops]
    for _ in range(rounds):  # interleaved: round r of every op before round r+1 of any
        for index, fn in enumerate(compiled):
            start = time.perf_counter()
            for _ in range(calls):
                result = fn()
            result.numpy()
            times[index].append((time.perf_counter() - start) / calls * 1000)
    rows = []
    for (name, macs, _), measured in zip(ops, times, strict=True):
        ms = statistics.median(measured)
        rows.append({"op": name, "ms": ms, "gflops": 2 * macs / ms / 1e6 if macs else None})

    model = create_model("cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=20)
    images = b * calls * 2
    xs = (x_train[:images, ..., None] / 255.0).astype("float32")
    model.fit(xs, y_train[:images], batch_size=b, epochs=1, verbose=0)
    steps = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.fit(xs, y_train[:images], batch_size=b, epochs=1, verbose=0)
        steps.append((time.perf_counter() - start) / (images // b) * 1000)
    return rows, statistics.median(steps)


# --- the whole probe ----------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--train-images", type=int, default=6000, help="images per epoch")
    parser.add_argument("--tiny", action="store_true", help="a few batches, for CI")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(REPO, "src"))
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.tiny:
        args.rounds, args.train_images = 1, 400

    import importlib.util

    variants = [v for v in VARIANTS if v[1] != "torch" or importlib.util.find_spec("torch")]
    if args.tiny:  # TensorFlow's only: each process takes seconds to start
        variants = [v for v in variants if v[1] == "tensorflow"]
    started = time.time()
    results = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            results[variant].append(measure(*variant, args))
            print(variant, results[variant][-1], flush=True)

    os.environ["KERAS_BACKEND"] = "tensorflow"
    rows, step_ms = op_table(args.rounds, 2 if args.tiny else 20)

    from speed import write_table

    from mnistlab.core.runs import machine_description
    from mnistlab.models.flops import matmul_gflops

    matmul = matmul_gflops(512 if args.tiny else 2048)
    total = sum(row["ms"] for row in rows)
    lines = [
        "# Where a training step of `cnn` goes",
        "",
        f"Machine: {machine_description()}; numpy's float32 matrix multiply: "
        f"{matmul:.1f} GFLOP/s in this run. Command: `python benchmarks/step_profile.py"
        f"{' --tiny' if args.tiny else f' --rounds {args.rounds}'}` "
        f"({(time.time() - started) / 60:.1f} min).",
        "",
        f"## Op by op (TensorFlow, batch {BATCH}, each op alone, median of {args.rounds})",
        "",
        "| operation | ms | GFLOP/s | share of the sum |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {row['op']} | {row['ms']:.2f} | "
            f"{'' if row['gflops'] is None else format(row['gflops'], '.1f')} | "
            f"{100 * row['ms'] / total:.0f}% |"
            for row in rows
        ],
        f"| **sum of the above** | **{total:.1f}** | | |",
        f"| a whole step in `model.fit` (adds the loss, the small layers, Adam, the data) | "
        f"{step_ms:.1f} | | |",
        "",
        f"## Rewrites that keep the math ({args.rounds} rounds, interleaved, a fresh process "
        f"each, a warm-up epoch then {args.train_images} images timed)",
        "",
        "| variant | backend | jit_compile | images/s | [min-max] | x as written | "
        "max output difference | warm-up s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = {}
    for (variant, backend, jit), measured in results.items():
        rates = [m["images_per_second"] for m in measured]
        rate = statistics.median(rates)
        base.setdefault(backend, rate)
        lines.append(
            f"| {variant} | {backend} | {jit} | {rate:.0f} | {min(rates):.0f}-{max(rates):.0f} | "
            f"{rate / base[backend]:.2f} | {max(m['difference'] for m in measured):.1e} | "
            f"{statistics.median(m['warm_up_s'] for m in measured):.1f} |"
        )
    write_table(args.out, "step_profile.md", lines)
    with open(os.path.join(args.out, "step_profile.json"), "w") as handle:
        json.dump(
            {
                "ops": rows,
                "step_ms": step_ms,
                "matmul_gflops": matmul,
                "variants": [
                    {"variant": v, "backend": b, "jit_compile": j, "runs": m}
                    for (v, b, j), m in results.items()
                ],
            },
            handle,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
