"""Twenty training steps a compiled call on JAX, over training data kept on the device.

On JAX, Keras compiles one training step (``jax.jit``) and, with ``steps_per_execution`` 20,
calls it 20 times a round from Python. Each call takes a batch that Keras's array adapter
gathered from the numpy arrays on the host (the shuffle), and JAX copies it in. For the
tutorial's MLP, whose step is two matrix products, that host work sits on the critical path of
2 cores: fed from the device as below, Keras's own compiled step trains within 10%
of the hand-written JAX loop of benchmarks/plain/jax_loop.py, and faster than inside Keras's
``fit`` (README, "Scanned steps on JAX").

``install`` gives a compiled model a ``fit`` that, for numpy arrays, computes the same thing
another way:
- the images and labels go to the device once, and Keras's own ``fit`` shuffles and batches
  their row numbers instead (its array adapter draws the same permutations with numpy, so the
  batches hold the same images in the same order);
- each compiled call runs its twenty steps as one loop (``lax.fori_loop``) over Keras's own
  ``train_step``, each step gathering its batch on the device. The loop runs as many steps as
  the call has batches, so it compiles once, whatever that count (a ``lax.scan`` compiles again
  for each length, such as the epoch's shorter last call).
The rest is Keras's ``fit``: callbacks, validation, logs, early stopping, the progress bar.
The weights after training are Keras's, to float32 rounding (tests/test_jax_step.py).
Other inputs (an augmented pipeline, sample weights) go to Keras's ``fit`` unchanged.

It applies to dense networks only (``refusal``): XLA's CPU backend runs a convolution inside a
loop much slower than on its own, so a CNN is refused. Measured by
``ab_probe.py --compare scan --backend jax --model MODEL``; the probe forces the
scan on any network, to show where it pays and where it does not.

The probes named below (ab_probe.py) were one-off scripts, deleted once they had
answered their question; docs/speed.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

# what fit may be given besides x and y for the scan to stand in for Keras's batches
FIT_ARGUMENTS = {
    "batch_size", "epochs", "verbose", "callbacks", "validation_data", "shuffle",
    "initial_epoch", "validation_freq", "validation_batch_size", "steps_per_epoch",
}  # fmt: skip


def scan_layer_types() -> tuple:
    """The layer classes of dense networks, the ones a scanned step was measured to speed up:
    no convolutions or pooling."""
    from mnistlab.fast.layers import plain_dense_layer_types

    return plain_dense_layer_types()


def refusal(model) -> str | None:
    """Why the scanned steps do not apply to this compiled model, or None when they do.

    Example:
        >>> refusal(mnistlab.create_model("cnn"))  # on JAX, compiled  # doctest: +SKIP
        "layer 'conv2d' is a Conv2D: the scan pays for dense layers"
    """
    return _setting_refusal(model) or _layer_refusal(model)


def _setting_refusal(model) -> str | None:
    """What in the backend, Keras or the compile settings keeps Keras's own batches."""
    import keras

    if keras.backend.backend() != "jax":
        return f"the backend is {keras.backend.backend()}, not jax"
    if getattr(model, "optimizer", None) is None:
        return "the model is not compiled"
    if not hasattr(model, "_symbolic_build"):  # the Keras internal install relies on (3.15)
        return f"this Keras {keras.__version__} has no Model._symbolic_build"
    if not model.jit_compile:
        return "jit_compile is off"
    if model.steps_per_execution < 2:
        return "one step a compiled call"
    if keras.distribution.distribution() is not None:
        return "the batches are distributed over devices"
    return None


def install(model, check: bool = True) -> bool:
    """Gives a compiled model the scanned ``fit`` where ``refusal`` finds nothing against it.

    Call it after the last ``compile``, before ``fit``. ``check=False`` installs it whatever the
    layers are (the probe does, to measure a CNN); the other conditions still hold.

    Returns:
        True if the model now trains with scanned steps, False if it keeps Keras's.
    """
    if _setting_refusal(model) or (check and _layer_refusal(model)):
        return False
    steps = _compiled_steps(model)
    keras_fit = type(model).fit

    def fit(x=None, y=None, *args, **kwargs):
        if args or not _feedable(x, y, kwargs):
            model.train_function = None  # Keras makes its own
            return keras_fit(model, x, y, *args, **kwargs)
        import numpy as np

        _build_as_keras_does(model, x, y, kwargs.get("shuffle", True))
        model.train_function = _train_function(model, steps, _on_device(x), _on_device(y))
        try:
            return keras_fit(model, np.arange(len(x), dtype="int32"), None, **kwargs)
        finally:
            model.train_function = None  # lets the device's copy of the data go

    model.fit = fit
    return True


def _layer_refusal(model) -> str | None:
    """The first layer that is not one of ``scan_layer_types``, as a reason, or None."""
    allowed = scan_layer_types()
    for layer in model.layers:
        if type(layer) not in allowed:
            return (
                f"layer '{layer.name}' is a {type(layer).__name__}: the scan pays for dense layers"
            )
    return None


def _on_device(array):
    """The array on JAX's device. On the CPU, JAX uses a 64-byte aligned array where it lies
    (models.to_input makes them so), for as long as fit runs, which reads it as Keras's batches
    would; any other array it copies first."""
    import jax
    import numpy as np

    return jax.device_put(np.ascontiguousarray(array))


def _feedable(x, y, kwargs) -> bool:
    """Whether fit's batches can be rows of x and y gathered on the device."""
    import keras
    import numpy as np

    return (
        keras.distribution.distribution() is None  # one set after install, too
        and isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and len(x) == len(y) > 0
        and set(kwargs) <= FIT_ARGUMENTS
        and kwargs.get("steps_per_epoch") is None
        and kwargs.get("shuffle", True) in (True, False)
    )


def _build_as_keras_does(model, x, y, shuffle: bool) -> None:
    """What Keras's ``fit`` does first on an unbuilt model: build the loss and metrics from a
    batch's shapes. Keras takes that batch from its data iterator, which draws a permutation
    from numpy's generator when it shuffles; one is drawn here too, so the epochs that follow
    see the permutations that they would with Keras's batches."""
    import numpy as np

    unbuilt = (
        not all(layer.built for layer in model._flatten_layers())
        or (model._compile_metrics is not None and not model._compile_metrics.built)
        or (model._compile_loss is not None and not model._compile_loss.built)
    )
    if unbuilt:
        model._symbolic_build(data_batch=(x[:1], y[:1]))
        if shuffle:
            np.random.permutation(len(x))


def _compiled_steps(model):
    """(one, many): Keras's ``train_step`` compiled for one batch of rows, and for a stack of
    ``steps_per_execution`` of them, of which the first ``count`` run (one loop, compiled once
    whatever the count); both gather their batches from the device's copy of the data."""
    import jax
    import jax.numpy as jnp

    def one(state, images, labels, rows):
        return model.train_step(state, (images[rows], labels[rows]))

    def many(state, images, labels, stacked_rows, count):
        def step(index, carried):
            state, _ = carried
            rows = stacked_rows[index]
            logs, state = model.train_step(state, (images[rows], labels[rows]))
            return state, logs

        shapes = jax.eval_shape(one, state, images, labels, stacked_rows[0])[0]
        no_logs = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        state, logs = jax.lax.fori_loop(0, count, step, (state, no_logs))
        return logs, state  # the last step's logs, as Keras's own loop returns them

    return jax.jit(one, donate_argnums=0), jax.jit(many, donate_argnums=0)


def _train_function(model, steps, images, labels):
    """The ``train_function`` Keras's ``fit`` calls: up to ``steps_per_execution`` batches of
    row numbers from its iterator, run as one loop where they are all the same size."""
    import numpy as np
    from keras.src.trainers.data_adapters import data_adapter_utils

    one, many = steps

    def train_function(state, iterator):
        batches = []
        for _ in range(model.steps_per_execution):
            try:
                data = next(iterator)
            except StopIteration:
                break
            batches.append(np.asarray(data_adapter_utils.unpack_x_y_sample_weight(data)[0]))
        if not batches:
            raise StopIteration
        if len({len(rows) for rows in batches}) == 1:
            padding = [batches[-1]] * (model.steps_per_execution - len(batches))  # not run
            return many(state, images, labels, np.stack(batches + padding), len(batches))
        for rows in batches:  # the epoch's last, smaller batch among them
            logs, state = one(state, images, labels, rows)
        return logs, state

    return train_function
