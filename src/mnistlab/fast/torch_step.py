"""A leaner training step on PyTorch: Keras's math, without Keras's per-call bookkeeping.

On PyTorch, Keras runs each training step eagerly, in Python, and a step pays for more than
its arithmetic. Every layer is reached through ``Layer.__call__`` (argument checks, dtype and
name scopes, masks, the training flag's call context, ``torch.nn.Module``'s hooks), and the
loss through the compiled-loss wrapper, which also walks every layer for regularisation
losses. For the tutorial's MLP, whose step is two matrix products, that bookkeeping is a large
share of the step on 2 CPU cores: the plain PyTorch loop trains it 1.6x as fast as the plain
Keras script on PyTorch (README, "The MLP in full epochs on the AVX-512 EPYC").

``install`` gives a compiled model a ``train_step`` and a ``test_step`` (the validation pass
and ``evaluate``) that compute the same things through the same code, minus that bookkeeping:
- the forward pass runs the model's own graph (``Functional._run_through_graph``), calling
  each layer's ``call`` with ``training=True`` where it takes it, as ``__call__`` would;
- the loss is the compiled loss object itself, called directly;
- the gradients, the optimizer's ``apply`` (schedules, averaging, the fused Adam of
  optimizers.py) and the metrics' ``update_state`` are Keras's own, and the step returns
  the metrics' results as Keras's step does, so callbacks and the progress bar see the same logs;
- a ReLU convolution read only by a max pooling has its sums pooled before its bias and ReLU
  (``pool_first_pairs``): the same outputs to the bit, a quarter of the elementwise work.

It applies only where skipping ``__call__`` changes nothing (``refusal`` says why not): the
model is a functional one, every layer's class is one of ``lean_layer_types()`` exactly (no
sublayers, whose training flag would come from the call context; no masks), computes in float32
(no autocast to skip), and no layer has a regulariser. Anything else, a step with sample weights, and
Keras's own ``jit_compile`` keep Keras's step. tests/test_torch_step.py checks the weights,
losses and metrics after several steps against Keras's own step, layer type by layer type.
Measured: ``ab_probe.py --compare step --backend torch --model MODEL``.

The probes named below (ab_probe.py) were one-off scripts, deleted once they had
answered their question; docs/speed.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

import types


def lean_layer_types() -> tuple:
    """The layer classes whose ``call`` is all that ``__call__`` adds up to in a float32 forward
    pass without masks: no sublayers, no state beyond their own variables."""
    import keras

    from mnistlab.fast.layers import BFloat16ProductConv2D, MaxPooling2D, plain_dense_layer_types
    from mnistlab.models.layers import Deskew  # the models' own layer whose call is as plain

    layers = keras.layers
    return plain_dense_layer_types() + (
        layers.Conv2D,
        BFloat16ProductConv2D,
        layers.MaxPooling2D,
        MaxPooling2D,
        layers.AveragePooling2D,
        layers.GlobalAveragePooling2D,
        layers.Add,
        layers.Concatenate,
        Deskew,
    )


def refusal(model) -> str | None:
    """Why the lean step would not compute what Keras's step computes for this compiled model,
    or None when it would.

    Example:
        >>> refusal(mnistlab.create_model("mlp"))  # on TensorFlow  # doctest: +SKIP
        'the backend is tensorflow, not torch'
    """
    import keras
    from keras.src.models.functional import Functional

    if keras.backend.backend() != "torch":
        return f"the backend is {keras.backend.backend()}, not torch"
    if not isinstance(model, Functional):
        return "not a functional Keras model"
    internals = ("_run_through_graph", "_standardize_inputs", "_loss_tracker", "_compile_metrics")
    missing = [name for name in internals if not hasattr(model, name)]
    if missing:  # the Keras internals the lean step runs through (written against Keras 3.15)
        return f"this Keras {keras.__version__} has no Model.{missing[0]}"
    if getattr(model, "jit_compile", False):
        return "jit_compile is on (Keras compiles its own step)"
    if not isinstance(getattr(model, "loss", None), keras.losses.Loss):
        return "the loss is not a keras.losses.Loss object"
    if getattr(model, "optimizer", None) is None:
        return "the model is not compiled"
    allowed = lean_layer_types()
    for layer in model.layers:
        if type(layer) not in allowed:
            return f"layer '{layer.name}' is a {type(layer).__name__}"
        if layer.dtype_policy.name != "float32":
            return f"layer '{layer.name}' computes in {layer.dtype_policy.name}"
        if any(
            getattr(layer, name, None) is not None
            for name in ("kernel_regularizer", "bias_regularizer", "activity_regularizer")
        ):
            return f"layer '{layer.name}' has a regulariser"
    return None


def install(model, pool_first: bool = True) -> bool:
    """Gives a compiled model the lean training step where ``refusal`` finds nothing against it.

    Call it after ``compile`` (or after loading a compiled model) and before ``fit``. The step
    stays through a later ``compile``, whose settings ``refusal`` then has not seen: install on
    a model compiled for the last time. ``pool_first=False`` keeps every layer's own order
    (``pool_first_pairs``), for measuring what pooling first gains.

    Returns:
        True if the model now trains with the lean step, False if it keeps Keras's.
    """
    if refusal(model) is not None:
        return False
    # set past Keras's and torch's attribute tracking, which would adopt the layers it holds
    object.__setattr__(model, POOL_FIRST, pool_first_pairs(model) if pool_first else {})
    model.train_step = types.MethodType(_lean_train_step, model)
    model.test_step = types.MethodType(_lean_test_step, model)
    model.make_train_function(force=True)
    model.make_test_function(force=True)
    return True


def forward(model, inputs, training: bool):
    """The model's output for ``inputs``, each layer reached through its ``call``; where
    ``install`` found ``pool_first_pairs``, each pools the convolution's sums before their bias
    and activation."""
    import keras

    pairs = getattr(model, POOL_FIRST, {})

    def operation_fn(layer):
        partner = pairs.get(id(layer))
        if partner is not None and isinstance(layer, keras.layers.Conv2D):
            return lambda inputs: layer.convolution_op(inputs, layer.kernel)  # sums alone
        if partner is not None:
            return lambda inputs: _bias_and_activation(partner, layer.call(inputs))

        def call(*args, **kwargs):
            if layer._call_has_training_arg:
                kwargs["training"] = training
            return layer.call(*args, **kwargs)

        return call

    outputs = model._run_through_graph(model._standardize_inputs(inputs), operation_fn)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def _lean_train_step(model, data):
    """Keras's torch ``train_step`` (keras/src/backend/torch/trainer.py), line for line, with
    the forward pass and the loss called directly."""
    import torch
    from keras.src.trainers.data_adapters import data_adapter_utils

    x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None or not isinstance(x, torch.Tensor):
        return type(model).train_step(model, data)
    y_pred = forward(model, x, training=True)
    trainable_weights = model.trainable_weights[:]
    for variable in trainable_weights:
        variable.value.grad = None  # what Module.zero_grad does, for the weights that learn
    loss = model.loss(y, y_pred)
    model._loss_tracker.update_state(loss, sample_weight=x.shape[0])
    loss = model.optimizer.scale_loss(loss)
    loss.backward()
    gradients = [variable.value.grad for variable in trainable_weights]
    with torch.no_grad():
        model.optimizer.apply(gradients, trainable_weights)
    if model._compile_metrics is not None:
        model._compile_metrics.update_state(y, y_pred)
    return model.get_metrics_result()


def _lean_test_step(model, data):
    """Keras's torch ``test_step`` with the forward pass and the loss called directly (Keras
    runs it under ``torch.no_grad``)."""
    import torch
    from keras.src.trainers.data_adapters import data_adapter_utils

    x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None or not isinstance(x, torch.Tensor):
        return type(model).test_step(model, data)
    y_pred = forward(model, x, training=False)
    model._loss_tracker.update_state(model.loss(y, y_pred), sample_weight=x.shape[0])
    if model._compile_metrics is not None:
        model._compile_metrics.update_state(y, y_pred)
    return model.get_metrics_result()


# the attribute on a model that holds its pool_first_pairs, set by install
POOL_FIRST = "_mnistlab_pool_first"


def pool_first_pairs(model) -> dict:
    """{id(layer): its partner} for each Conv2D (channels last) with a ReLU or no activation
    whose output goes only to a max pooling with "valid" windows, and that pooling.

    Such a pair computes max(relu(sums + bias)) over each window, which is exactly
    relu(max(sums) + bias): adding a channel's bias and rounding to float32 do not change which
    value is largest, nor does ReLU, so the forward pass is the same to the bit, and the
    gradient reaches the same window elements (but where two sums round to the same biased
    value). Pooling first, the bias and ReLU touch a quarter of the values (2x2 windows):
    cnn's and larger_cnn's first convolution (24x24 maps). Measured: ``python
    ab_probe.py --compare poolfirst --backend torch``.
    """
    import keras

    relu = keras.activations.relu
    linear = keras.activations.linear
    outputs = {id(tensor) for tensor in model.outputs}
    pairs = {}
    for layer in model.layers:
        if not (
            isinstance(layer, keras.layers.Conv2D)
            and layer.data_format == "channels_last"
            and layer.activation in (relu, linear)
            and len(layer._inbound_nodes) == 1
            and len(layer._outbound_nodes) == 1
            and id(layer.output) not in outputs
        ):
            continue
        pool = layer._outbound_nodes[0].operation
        if (
            isinstance(pool, keras.layers.MaxPooling2D)
            and pool.padding == "valid"
            and pool.data_format == "channels_last"
            and len(pool._inbound_nodes) == 1
        ):
            pairs[id(layer)], pairs[id(pool)] = pool, layer
    return pairs


def _bias_and_activation(conv, pooled):
    """What Conv2D.call adds after its convolution, applied to the pooled sums."""
    if conv.use_bias:
        pooled = pooled + conv.bias.value
    return conv.activation(pooled)
