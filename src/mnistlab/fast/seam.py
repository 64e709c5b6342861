"""The one seam between stock Keras and mnistlab's fast paths.

A network is built of Keras's own layers and compiled with Keras's own Adam. ``speed_up`` then
makes its step faster, in place: each stock Dropout and MaxPooling2D becomes mnistlab's
(fast/layers.py), each Dense and Conv2D a bfloat16-product one where the precision is
bfloat16_products, Keras's Adam the fused one (fast/optimizers.py), and the training step
PyTorch's lean one (torch_step.py) or JAX's scanned ones (jax_step.py). ``stock`` turns the
layers and the optimizer back into Keras's classes for as long as a model is saved, so every
file a run writes holds stock Keras classes, and plain Keras loads it.

The fast classes are subclasses of Keras's that add no variables, no config and no state, only
another ``call`` (or update), so the swap is a change of each object's class: the weights, the
optimizer's moments and the compiled model stay as they are, and a swap back loses nothing.

Where a private Keras name that the fast paths use is missing (another Keras version), the
model trains with plain Keras, after one warning line; ``--plain`` (or MNISTLAB_PLAIN=1) asks
for that path outright. tests/test_fast.py checks that both paths train every registered
network to the same losses and weights.
"""

from __future__ import annotations

import functools
import importlib
import sys
from contextlib import contextmanager

# the attribute on a swapped layer or optimizer that holds the Keras class it was built as
STOCK_CLASS = "_mnistlab_stock_class"

# The private names the fast paths reach, per backend, as (module, attribute path); each is
# checked once, before anything is swapped in (written against Keras 3.15.1 and torch 2.13).
PRIVATE_NAMES = {
    "all": (
        ("keras.src.trainers.data_adapters.data_adapter_utils", "unpack_x_y_sample_weight"),
        ("keras.optimizers", "Adam._get_variable_index"),
    ),
    "tensorflow": (
        ("keras.src.backend.tensorflow.random", "_cast_seed"),
        ("keras.src.random.seed_generator", "draw_seed"),
    ),
    "torch": (
        ("keras.src.backend.torch.random", "torch_seed_generator"),
        ("keras.src.backend.torch.optimizers.torch_adam", "Adam._parallel_update_step"),
        ("keras.src.models.functional", "Functional._run_through_graph"),
        ("keras.src.models.functional", "Functional._standardize_inputs"),
        ("keras.optimizers", "Adam._backend_update_step"),
        ("torch", "_fused_adam_"),
    ),
    "jax": (
        ("keras", "Model._symbolic_build"),
        ("keras", "Model._flatten_layers"),
    ),
}
# the private attributes a compiled model and its layers have (set in __init__ or compile)
PRIVATE_MODEL_ATTRIBUTES = ("_loss_tracker", "_compile_metrics", "_compile_loss")
PRIVATE_LAYER_ATTRIBUTES = ("_call_has_training_arg", "_inbound_nodes", "_outbound_nodes")


def speed_up(model, config) -> str:
    """Swaps mnistlab's fast layers, Adam and training step into a compiled model, in place.

    Args:
        model: a compiled functional keras.Model of Keras's own layers (a registered network).
        config: the run's TrainConfig: precision bfloat16_products swaps in the bfloat16
            products, fused_adam and lean_step switch the fused Adam and the lean or scanned
            step. Call it only where config.plain is "false".

    Returns:
        The training step it got, as a run's meta.json records it: "lean" (PyTorch), "scan"
        (JAX), or "keras" with the reason in brackets; "plain (...)" where a private Keras
        name is missing, after one warning line on stderr.

    Example:
        >>> model.compile(optimizer="adam", loss="categorical_crossentropy")  # doctest: +SKIP
        >>> speed_up(model, TrainConfig())  # on PyTorch  # doctest: +SKIP
        'lean'
    """
    import keras

    missing = missing_private_name(model)
    if missing is not None:
        print(
            f"mnistlab: Keras {keras.__version__} lacks {missing}; training with plain Keras",
            file=sys.stderr,
            flush=True,
        )
        return f"plain (no {missing})"
    _swap_in(model, fast_classes(config))
    optimizer = getattr(model, "optimizer", None)
    if config.fused_adam == "true" and isinstance(optimizer, keras.optimizers.Adam):
        from mnistlab.fast.optimizers import FusedAdam

        _swap_object(optimizer, FusedAdam)
    return choose_train_step(model, config)


def fast_classes(config) -> dict:
    """{Keras's layer class: mnistlab's} that ``speed_up`` swaps in for this config."""
    import keras

    from mnistlab.fast import layers

    classes = {
        keras.layers.Dropout: layers.Dropout,
        keras.layers.MaxPooling2D: layers.MaxPooling2D,
    }
    if config.precision == "bfloat16_products":
        classes[keras.layers.Dense] = layers.BFloat16ProductDense
        classes[keras.layers.Conv2D] = layers.BFloat16ProductConv2D
    return classes


def choose_train_step(model, config) -> str:
    """Gives a compiled model mnistlab's own training step where ``lean_step`` is true and it
    computes what Keras's does: on PyTorch, torch_step's lean step (plain float32 layers:
    torch_step.refusal); on JAX, jax_step's scanned steps over data on the device (dense
    networks trained on arrays: jax_step.refusal).

    Returns:
        "lean" (PyTorch), "scan" (JAX), or "keras" with the reason in brackets.
    """
    import keras

    from mnistlab.fast import jax_step, torch_step

    if config.lean_step != "true":
        return "keras (lean_step false)"
    if keras.backend.backend() == "jax":
        if config.augment != "none":
            return "keras (the augmented batches come from a pipeline)"
        step, name = jax_step, "scan"
    else:
        step, name = torch_step, "lean"  # on TensorFlow, its refusal says why not
    reason = step.refusal(model)
    if reason is not None:
        return f"keras ({reason})"
    step.install(model)
    return name


@contextmanager
def stock(model):
    """Within the block, the model's layers and optimizer are Keras's own classes (to save it);
    after it, the fast ones again.

    Example:
        >>> with stock(model):  # doctest: +SKIP
        ...     model.save("model.keras")
    """
    swapped = [item for item in _swappable(model) if hasattr(item, STOCK_CLASS)]
    fast = [type(item) for item in swapped]
    for item in swapped:
        object.__setattr__(item, "__class__", getattr(item, STOCK_CLASS))
    try:
        yield model
    finally:
        for item, fast_class in zip(swapped, fast, strict=True):
            object.__setattr__(item, "__class__", fast_class)


def to_stock(model):
    """The model with its layers and optimizer Keras's own classes again, for good (in place).

    Returns:
        The same model object.
    """
    for item in _swappable(model):
        if hasattr(item, STOCK_CLASS):
            object.__setattr__(item, "__class__", getattr(item, STOCK_CLASS))
            object.__delattr__(item, STOCK_CLASS)
    return model


@functools.cache
def _missing_module_name(backend: str) -> str | None:
    for module_name, path in PRIVATE_NAMES["all"] + PRIVATE_NAMES.get(backend, ()):
        try:
            found = importlib.import_module(module_name)
        except ImportError:
            return module_name
        for part in path.split("."):
            if not hasattr(found, part):
                return f"{module_name}.{path}"
            found = getattr(found, part)
    return None


def missing_private_name(model) -> str | None:
    """The first private Keras (or torch) name the fast paths use that this installation or
    this compiled model lacks, spelled out, or None when all are there."""
    import keras

    missing = _missing_module_name(keras.backend.backend())
    if missing is not None:
        return missing
    for name in PRIVATE_MODEL_ATTRIBUTES:
        if not hasattr(model, name):
            return f"Model.{name}"
    for layer in model.layers:
        for name in PRIVATE_LAYER_ATTRIBUTES:
            if not hasattr(layer, name):
                return f"Layer.{name}"
    return None


def _swappable(model) -> list:
    optimizer = getattr(model, "optimizer", None)
    return [*model.layers, *([optimizer] if optimizer is not None else [])]


def _swap_in(model, classes: dict) -> None:
    for layer in model.layers:
        fast_class = classes.get(type(layer))
        if fast_class is not None:
            _swap_object(layer, fast_class)


def _swap_object(item, fast_class) -> None:
    """Makes ``item`` (a Keras layer or optimizer) an instance of ``fast_class``, one of
    mnistlab's subclasses of its class, remembering the class it had."""
    if type(item) is fast_class:
        return
    # set past Keras's and torch's attribute tracking
    object.__setattr__(item, STOCK_CLASS, type(item))
    object.__setattr__(item, "__class__", fast_class)
