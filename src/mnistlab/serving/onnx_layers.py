"""Keras layers as ONNX operators: one converter a layer type (CONVERTERS), each writing its
nodes into a OnnxGraph, channels-last as Keras computes.
"""

from __future__ import annotations

import numpy as np

_NCHW_FROM_NHWC = [0, 3, 1, 2]
_NHWC_FROM_NCHW = [0, 2, 3, 1]


class OnnxGraph:
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


def _activation(graph: OnnxGraph, tensor: str, activation, hint: str) -> str:
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
