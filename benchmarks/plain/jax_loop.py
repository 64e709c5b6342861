"""The floor on JAX: the tutorial's MLP as a hand-written JAX loop, with no framework around it.

What a Keras row on JAX could gain at most by shedding Keras: the same math as ``mnistlab train
mlp`` (784 -> 784 ReLU -> 10 softmax, categorical cross-entropy, Keras's Adam with lr 0.001 and
epsilon 1e-7, batches of 200, kernels drawn from Keras's "normal" initializer, zero biases), the
whole data set on the device, 20 steps a compiled call as mnistlab runs them (``lax.scan``), and
nothing else: no callbacks, no metrics during training, no checkpoints. Each epoch shuffles with
numpy, then evaluates the test images. tests/test_speed.py checks three of its steps against
Keras's Adam on the same weights.

Usage:
    python benchmarks/plain/jax_loop.py --epochs 3
"""

from __future__ import annotations

import sys
import time

import peer

STEPS_PER_CALL = 20  # steps a compiled call (mnistlab's steps_per_execution on JAX)
LEARNING_RATE = 0.001  # Adam's step size
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras's Adam defaults


def initial_params(seed: int = 7):
    """[kernel (784, 784), bias (784,), kernel (784, 10), bias (10,)], float32, as Keras's
    RandomNormal(stddev=0.05) and zeros draw them (not the same numbers)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        rng.normal(0, 0.05, (784, 784)).astype("float32"),
        np.zeros(784, "float32"),
        rng.normal(0, 0.05, (784, 10)).astype("float32"),
        np.zeros(10, "float32"),
    ]


def logits(params, images):
    """images (N, 784) float32 in [0, 1] -> (N, 10) logits."""
    import jax

    hidden = jax.nn.relu(images @ params[0] + params[1])  # (N, 784)
    return hidden @ params[2] + params[3]


def loss(params, images, one_hot):
    """Categorical cross-entropy of the softmax, averaged over the batch."""
    import jax
    import jax.numpy as jnp

    return -jnp.mean(jnp.sum(one_hot * jax.nn.log_softmax(logits(params, images)), axis=-1))


def adam_step(state, batch):
    """One step of Keras's Adam: state (params, first moments, second moments, step count)."""
    import jax
    import jax.numpy as jnp

    params, first, second, step = state
    images, one_hot = batch
    gradients = jax.grad(loss)(params, images, one_hot)
    step = step + 1
    rate = LEARNING_RATE * jnp.sqrt(1 - BETA_2**step) / (1 - BETA_1**step)
    first = [m + (g - m) * (1 - BETA_1) for m, g in zip(first, gradients, strict=True)]
    second = [v + (g * g - v) * (1 - BETA_2) for v, g in zip(second, gradients, strict=True)]
    params = [
        p - rate * m / (jnp.sqrt(v) + EPSILON)
        for p, m, v in zip(params, first, second, strict=True)
    ]
    return (params, first, second, step), None


def train_calls():
    """(steps(state, images, one_hot, order), accuracy(params, images, labels)), compiled: one
    call runs a batch of the rows of ``order`` (steps, batch) per step, gathered on the device."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def steps(state, images, one_hot, order):
        def one(state, rows):
            return adam_step(state, (images[rows], one_hot[rows]))

        state, _ = jax.lax.scan(one, state, order)
        return state

    @jax.jit
    def accuracy(params, images, labels):
        return jnp.mean(jnp.argmax(logits(params, images), axis=-1) == labels)

    return steps, accuracy


def main(argv=None) -> int:
    args = peer.parse_args(__doc__.splitlines()[0], ("mlp",), argv)
    import jax.numpy as jnp
    import numpy as np

    from mnistlab.data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    count = min(args.train_images, len(x_train))
    images = jnp.asarray(x_train[:count].reshape(count, -1).astype("float32") / 255)
    one_hot = jnp.asarray(np.eye(10, dtype="float32")[y_train[:count]])
    test_images = jnp.asarray(x_test[: args.val_images].reshape(-1, 784).astype("float32") / 255)
    test_labels = jnp.asarray(y_test[: args.val_images])
    params = [jnp.asarray(p) for p in initial_params()]
    moments = [jnp.zeros_like(p) for p in params]
    state = (params, moments, list(moments), jnp.float32(0))
    steps, accuracy = train_calls()
    rng = np.random.default_rng(7)
    # whole batches only (60,000, 24,000 and 12,000 images divide by 200); the rest wait a turn
    batches = count // args.batch_size
    seconds = []
    started = time.perf_counter()
    for _ in range(args.epochs):
        epoch_started = time.perf_counter()
        order = rng.permutation(count)[: batches * args.batch_size].reshape(-1, args.batch_size)
        for start in range(0, batches, STEPS_PER_CALL):  # the last call may run fewer steps
            state = steps(
                state, images, one_hot, jnp.asarray(order[start : start + STEPS_PER_CALL])
            )
        correct = float(accuracy(state[0], test_images, test_labels))
        seconds.append(time.perf_counter() - epoch_started)
    peer.report(seconds, started, correct, "jax")
    return 0


if __name__ == "__main__":
    sys.exit(main())
