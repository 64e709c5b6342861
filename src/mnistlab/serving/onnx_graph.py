"""Export a trained model to ONNX, for ONNX Runtime: a small converter from Keras layers.

Why our own converter: Keras 3's ``model.export(format="onnx")`` needs tf2onnx on the
TensorFlow backend (whose protobuf pin conflicts with TensorFlow 2.21's) or torch.onnx on
the torch backend (a second backend in a subprocess, slow to start, and its graph changes
with the torch version). The networks here are a few plain layers, each of which is one or
two ONNX operators, so a table of converters written with ``onnx.helper`` is short, exact,
exports in milliseconds, and fails with a clear message on a layer it does not know.

The graph keeps Keras's interface: input ``images`` (N, 28, 28, 1) float32 in [0, 1], output
``probabilities`` (N, 10). Inside, convolutions and pooling run channels-first, as ONNX
defines them; a Transpose is inserted only where a layer needs the other layout (Flatten reads
channels-last, so its output order is Keras's and the Dense weights are used as they are).

Example:
    >>> from mnistlab.serving.export import export_onnx
    >>> export_onnx("runs/cnn", "cnn.onnx")   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

OPSET = 17  # ONNX operator set; ONNX Runtime >= 1.13 runs it

IR_VERSION = 8  # ONNX file format version matching OPSET (readable by older runtimes too)
INPUT_NAME = "images"  # (N, 28, 28, 1) float32 in [0, 1]
OUTPUT_NAME = "probabilities"  # (N, 10) float32
FIRST_LAYER_NAME = "first_layer"  # optional output: the first Conv2D/Dense layer's activations


FIRST_LAYER_KINDS = ("Conv2D", "Dense")  # layers whose responses the page can show
_NCHW_FROM_NHWC = [0, 3, 1, 2]

_NHWC_FROM_NCHW = [0, 2, 3, 1]


class _Graph:
    """ONNX nodes and weights being built, and the layout of every 4D tensor made so far."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.channels_first = {}  # tensor name -> True if it is (N, C, H, W), False if NHWC
        self.counter = 0
        self.transposed = {}  # (tensor, to channels_first) -> name of the transposed copy

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def weight(self, hint: str, value) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def add(self, op: str, inputs: list[str], hint: str, **attributes) -> str:
        from onnx import helper

        output = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def layout(self, tensor: str, channels_first: bool) -> str:
        """The tensor in the layout asked for, transposing (once) if needed."""
        if tensor not in self.channels_first or self.channels_first[tensor] == channels_first:
            return tensor
        key = (tensor, channels_first)
        if key not in self.transposed:
            perm = _NCHW_FROM_NHWC if channels_first else _NHWC_FROM_NCHW
            out = self.add("Transpose", [tensor], "transpose", perm=perm)
            self.channels_first[out] = channels_first
            self.transposed[key] = out
        return self.transposed[key]


def _activation(graph: _Graph, tensor: str, activation, hint: str) -> str:
    """Applies a Keras activation (function or name) elementwise, keeping the layout."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    layout = graph.channels_first.get(tensor)
    if name in ("linear", None, ""):
        return tensor
    if name == "softmax":
        tensor = graph.layout(tensor, channels_first=False)  # Keras: softmax over the last axis
        return graph.add("Softmax", [tensor], hint + "_softmax", axis=-1)
    if name in ("relu", "sigmoid", "tanh", "elu"):
        op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu"}[name]
        out = graph.add(op, [tensor], f"{hint}_{name}")
    elif name in ("silu", "swish"):
        gate = graph.add("Sigmoid", [tensor], hint + "_gate")
        out = graph.add("Mul", [tensor, gate], hint + "_silu")
    else:
        raise ValueError(
            f"Cannot export activation '{name}' to ONNX. Supported: linear, relu, softmax, "
            "sigmoid, tanh, elu, silu. Add it to mnistlab/export.py (_activation)."
        )
    if layout is not None:
        graph.channels_first[out] = layout
    return out


def _pads(layer, kernel, strides, dilations=(1, 1)) -> dict:
    """ONNX padding attributes for a Keras 'valid' or 'same' window over a known input size.

    'same' pads explicitly as TensorFlow does (the extra pixel at the end), because ONNX
    Runtime refuses auto_pad=SAME_UPPER together with dilation.
    """
    if layer.padding == "valid":
        return {}
    if layer.padding != "same":
        raise ValueError(f"Layer '{layer.name}': cannot export padding '{layer.padding}' to ONNX.")
    sizes = tuple(layer.input.shape[1:3])  # (height, width) in pixels
    if None in sizes:
        return {"auto_pad": "SAME_UPPER"}
    begins, ends = [], []
    for size, k, stride, dilation in zip(sizes, kernel, strides, dilations, strict=True):
        reach = (k - 1) * dilation + 1  # pixels the dilated window spans
        total = max((-(-size // stride) - 1) * stride + reach - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return {"pads": begins + ends}


def _check_channels_last(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"Layer '{layer.name}' uses data_format='{layer.data_format}'; the ONNX export "
            "supports channels_last models only (Keras's default)."
        )


def _conv2d(graph, layer, inputs):
    _check_channels_last(layer)
    kernel, *bias = [np.asarray(w, np.float32) for w in layer.get_weights()]
    x = graph.layout(inputs[0], channels_first=True)
    weights = [graph.weight(layer.name + "_kernel", kernel.transpose(3, 2, 0, 1))]  # OIHW
    if bias:
        weights.append(graph.weight(layer.name + "_bias", bias[0]))
    out = graph.add(
        "Conv",
        [x, *weights],
        layer.name,
        kernel_shape=list(kernel.shape[:2]),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        group=int(getattr(layer, "groups", 1)),
        **_pads(layer, kernel.shape[:2], layer.strides, layer.dilation_rate),
    )
    graph.channels_first[out] = True
    return _activation(graph, out, layer.activation, layer.name)


def _dense(graph, layer, inputs):
    kernel, *bias = [np.asarray(w, np.float32) for w in layer.get_weights()]
    x = graph.layout(inputs[0], channels_first=False)  # Dense acts on the last (channel) axis
    if len(layer.input.shape) == 2:
        weights = [graph.weight(layer.name + "_kernel", kernel)]
        if bias:
            weights.append(graph.weight(layer.name + "_bias", bias[0]))
        out = graph.add("Gemm", [x, *weights], layer.name)
    else:
        out = graph.add("MatMul", [x, graph.weight(layer.name + "_kernel", kernel)], layer.name)
        if bias:
            out = graph.add("Add", [out, graph.weight(layer.name + "_bias", bias[0])], layer.name)
        if len(layer.input.shape) == 4:
            graph.channels_first[out] = False
    return _activation(graph, out, layer.activation, layer.name)


def _pool(op: str):
    def convert(graph, layer, inputs):
        _check_channels_last(layer)
        x = graph.layout(inputs[0], channels_first=True)
        out = graph.add(
            op,
            [x],
            layer.name,
            kernel_shape=list(layer.pool_size),
            strides=list(layer.strides),
            **_pads(layer, layer.pool_size, layer.strides),
        )
        graph.channels_first[out] = True
        return out

    return convert


def _global_pool(op: str):
    def convert(graph, layer, inputs):
        _check_channels_last(layer)
        x = graph.layout(inputs[0], channels_first=True)
        out = graph.add(op, [x], layer.name)  # (N, C, 1, 1)
        if getattr(layer, "keepdims", False):
            graph.channels_first[out] = True
            return out
        return graph.add("Flatten", [out], layer.name + "_flat", axis=1)

    return convert


def _flatten(graph, layer, inputs):
    x = graph.layout(inputs[0], channels_first=False)  # Keras flattens (H, W, C) row-major
    return graph.add("Flatten", [x], layer.name, axis=1)


def _identity(graph, layer, inputs):  # Dropout, noise: nothing at inference
    return inputs[0]


def _batch_norm(graph, layer, inputs):
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    rank = len(layer.input.shape)
    if axis not in (-1, rank - 1):
        raise ValueError(
            f"Layer '{layer.name}': only BatchNormalization over the last axis exports to ONNX."
        )
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float32) for w in layer.weights}
    channels = weights["moving_mean"].shape[0]
    scale = weights.get("gamma", np.ones(channels, np.float32))
    offset = weights.get("beta", np.zeros(channels, np.float32))
    # y = (x - mean) / sqrt(var + eps) * gamma + beta, folded into one multiply-add
    factor = scale / np.sqrt(weights["moving_variance"] + np.float32(layer.epsilon))
    shift = offset - weights["moving_mean"] * factor
    if rank == 4:
        x = graph.layout(inputs[0], channels_first=True)
        factor, shift = factor.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    else:
        x = inputs[0]
    out = graph.add("Mul", [x, graph.weight(layer.name + "_factor", factor)], layer.name)
    out = graph.add("Add", [out, graph.weight(layer.name + "_shift", shift)], layer.name)
    if rank == 4:
        graph.channels_first[out] = True
    return out


def _merge(op: str, variadic: bool = True):
    """Elementwise merge layers (Add, Average, ...): inputs brought to one layout first."""

    def convert(graph, layer, inputs):
        layout = graph.channels_first.get(inputs[0])
        tensors = [graph.layout(t, layout) if layout is not None else t for t in inputs]
        if variadic:  # ONNX Sum, Mean, Max, Min take any number of inputs
            out = graph.add(op, tensors, layer.name)
        else:
            out = tensors[0]
            for other in tensors[1:]:
                out = graph.add(op, [out, other], layer.name)
        if layout is not None:
            graph.channels_first[out] = layout
        return out

    return convert


def _weighted_average(graph, layer, inputs):
    """mnistlab.models.layers.WeightedAverage (weighted ensembles): each input times its weight, summed."""
    layout = graph.channels_first.get(inputs[0])
    scaled = []
    for tensor, weight in zip(inputs, layer.member_weights, strict=True):
        tensor = graph.layout(tensor, layout) if layout is not None else tensor
        factor = graph.weight(layer.name + "_weight", np.float32(weight))
        scaled.append(graph.add("Mul", [tensor, factor], layer.name))
    out = graph.add("Sum", scaled, layer.name)
    if layout is not None:
        graph.channels_first[out] = layout
    return out


def _concatenate(graph, layer, inputs):
    layout = graph.channels_first.get(inputs[0])
    rank = len(layer.output.shape)
    axis = layer.axis % rank
    if layout:  # channels-first copy: NHWC axis 3 is axis 1, axes 1 and 2 move up one
        axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    tensors = [graph.layout(t, layout) if layout is not None else t for t in inputs]
    out = graph.add("Concat", tensors, layer.name, axis=axis)
    if layout is not None:
        graph.channels_first[out] = layout
    return out


def _activation_layer(graph, layer, inputs):
    return _activation(graph, inputs[0], layer.activation, layer.name)


def _relu_layer(graph, layer, inputs):
    if layer.max_value is not None or layer.negative_slope or layer.threshold:
        raise ValueError(
            f"Layer '{layer.name}': only a plain ReLU (no max_value, slope or threshold) exports."
        )
    return _activation(graph, inputs[0], "relu", layer.name)


def _softmax_layer(graph, layer, inputs):
    if layer.axis not in (-1, len(layer.input.shape) - 1):
        raise ValueError(f"Layer '{layer.name}': only a softmax over the last axis exports.")
    return _activation(graph, inputs[0], "softmax", layer.name)


def _rescaling(graph, layer, inputs):
    x = inputs[0]
    scale, offset = (np.asarray(v, np.float32) for v in (layer.scale, layer.offset))
    if x in graph.channels_first and (scale.size > 1 or offset.size > 1):
        x = graph.layout(x, channels_first=False)  # per-channel values broadcast on NHWC
    out = graph.add("Mul", [x, graph.weight(layer.name + "_scale", scale)], layer.name)
    out = graph.add("Add", [out, graph.weight(layer.name + "_offset", offset)], layer.name)
    if x in graph.channels_first:
        graph.channels_first[out] = graph.channels_first[x]
    return out


def _deskew(graph, layer, inputs):
    """mnistlab.models.layers.Deskew: the layer's own arithmetic, step by step, in ONNX operators."""
    x = graph.layout(inputs[0], channels_first=False)  # (N, rows, columns, 1)
    rows, columns = (int(size) for size in layer.input.shape[1:3])
    name = layer.name

    def const(hint, value):
        return graph.weight(f"{name}_{hint}", np.asarray(value, np.float32))

    def op(kind, *operands, **attributes):
        return graph.add(kind, list(operands), name, **attributes)

    axes = graph.weight(f"{name}_axes", np.asarray([1, 2], np.int64))

    def mean_over_image(tensor, mass):  # (N, rows, columns) -> (N, 1, 1)
        return op("Div", op("ReduceSum", tensor, axes, keepdims=1), mass)

    shape = graph.weight(f"{name}_shape", np.asarray([-1, rows, columns], np.int64))
    ink = op("Reshape", x, shape)  # (N, rows, columns)
    row_at = const("rows", np.arange(rows).reshape(1, rows, 1))
    column_at = const("columns", np.arange(columns).reshape(1, 1, columns))
    mass = op("Add", op("ReduceSum", ink, axes, keepdims=1), const("tiny", 1e-6))
    row_offset = op("Sub", row_at, mean_over_image(op("Mul", ink, row_at), mass))
    column_offset = op("Sub", column_at, mean_over_image(op("Mul", ink, column_at), mass))
    covariance = mean_over_image(op("Mul", op("Mul", ink, row_offset), column_offset), mass)
    variance = mean_over_image(op("Mul", op("Mul", ink, row_offset), row_offset), mass)
    skew = op("Div", covariance, op("Add", variance, const("tiny", 1e-6)))
    skew = op("Clip", skew, const("low", -layer.max_skew), const("high", layer.max_skew))
    shift = op(
        "Unsqueeze",
        op("Mul", skew, row_offset),
        graph.weight(f"{name}_last", np.asarray([3], np.int64)),
    )
    spread = const("spread", np.arange(columns)[None, :] - np.arange(columns)[:, None])
    weights = op("Relu", op("Sub", const("one", 1.0), op("Abs", op("Sub", spread, shift))))
    out = op("MatMul", weights, x)  # (N, rows, columns, columns) @ (N, rows, columns, 1)
    graph.channels_first[out] = False
    return out


CONVERTERS = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "Flatten": _flatten,
    "Dropout": _identity,
    "SpatialDropout2D": _identity,
    "GaussianNoise": _identity,
    "GaussianDropout": _identity,
    "BatchNormalization": _batch_norm,
    "Add": _merge("Sum"),
    "Average": _merge("Mean"),
    "WeightedAverage": _weighted_average,
    "Maximum": _merge("Max"),
    "Minimum": _merge("Min"),
    "Multiply": _merge("Mul", variadic=False),
    "Subtract": _merge("Sub", variadic=False),
    "Concatenate": _concatenate,
    "Activation": _activation_layer,
    "ReLU": _relu_layer,
    "Softmax": _softmax_layer,
    "Rescaling": _rescaling,
    "Deskew": _deskew,
}


def _graph_nodes(model):
    """The model's layer calls in execution order: (layer, input tensors, output tensor)."""
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                "This Sequential model has no input shape, so its graph is unknown; build it "
                "with keras.Input(shape=(28, 28, 1)) as its first layer."
            )
        model = functional
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            if len(node.output_tensors) != 1:
                raise ValueError(f"Layer '{node.operation.name}' has several outputs; unsupported.")
            yield node.operation, node.input_tensors, node.output_tensors[0]


def find_first_layer(model):
    """The first Conv2D or Dense layer a model applies, looking inside nested models.

    Returns:
        (layer, the model whose graph holds it), or None if there is no such layer.
    """
    import keras

    for layer in model.layers:
        if type(layer).__name__ in FIRST_LAYER_KINDS:
            return layer, model
        if isinstance(layer, keras.Model):
            found = find_first_layer(layer)
            if found is not None:
                return found
    return None


def _convert_model(graph: _Graph, model, input_name: str, first: dict) -> str:
    """Adds a model's layers to the graph, fed by input_name; returns its output's name.

    Nested models (e.g. the members of an ensemble) are converted in place, recursively.
    When first["layer"] is converted, its output's name is stored as first["tensor"].
    """
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; only models with one input and one output can be exported to ONNX."
        )
    tensors = {id(model.inputs[0]): input_name}
    for layer, inputs, output in _graph_nodes(model):
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        names = [tensors[id(tensor)] for tensor in inputs]
        if isinstance(layer, keras.Model):
            out = _convert_model(graph, layer, names[0], first)
        elif kind in CONVERTERS:
            out = CONVERTERS[kind](graph, layer, names)
        else:
            raise ValueError(
                f"Cannot export layer '{layer.name}' of type {kind} to ONNX. Supported: "
                f"{', '.join(sorted(CONVERTERS))}, and nested models of them. Add a converter "
                "to mnistlab/export.py."
            )
        tensors[id(output)] = out
        if layer is first.get("layer"):
            first["tensor"], first["shape"] = out, tuple(output.shape[1:])
    return tensors[id(model.outputs[0])]


def keras_to_onnx(model, first_layer: bool = False):
    """Converts a Keras image classifier into an ONNX model.

    Args:
        model: a keras.Model built from the layers in CONVERTERS (nested models included,
            e.g. an ensemble), with one input (N, 28, 28, 1) and one output (N, classes).
        first_layer: also output FIRST_LAYER_NAME, the activations of the first Conv2D or
            Dense layer (find_first_layer; channels-last, as Keras gives them).

    Returns:
        onnx.ModelProto with input INPUT_NAME and output OUTPUT_NAME (then FIRST_LAYER_NAME).

    Raises:
        ValueError: a layer or option the converter does not know; the message names it.

    Example:
        >>> proto = keras_to_onnx(mnistlab.load_model("runs/cnn"))   # doctest: +SKIP
    """
    from onnx import TensorProto, checker, helper

    graph = _Graph()
    if len(model.inputs[0].shape) == 4:
        graph.channels_first[INPUT_NAME] = False
    found = find_first_layer(model) if first_layer else None
    first = {"layer": found[0] if found else None}
    output = _convert_model(graph, model, INPUT_NAME, first)
    first_layer_tensor = (first["tensor"], first["shape"]) if "tensor" in first else None
    result = graph.layout(output, channels_first=False)
    outputs = [(result, OUTPUT_NAME, tuple(model.outputs[0].shape[1:]))]
    if first_layer_tensor is not None:
        tensor, shape = first_layer_tensor
        outputs.append((graph.layout(tensor, channels_first=False), FIRST_LAYER_NAME, shape))
    output_infos = []
    for tensor, name, shape in outputs:
        graph.nodes.append(helper.make_node("Identity", [tensor], [name], name=name))
        output_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape]))
    input_shape = ["N", *model.inputs[0].shape[1:]]
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes,
            model.name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, input_shape)],
            output_infos,
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="mnistlab",
        doc_string=f"{model.name}: images (N, 28, 28, 1) float32 in [0, 1] -> probabilities",
    )
    helper.set_model_props(proto, {"model_name": model.name})
    checker.check_model(proto)
    return proto
