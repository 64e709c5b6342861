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

from mnistlab.serving.onnx_layers import CONVERTERS, OnnxGraph

OPSET = 17  # ONNX operator set; ONNX Runtime >= 1.13 runs it
IR_VERSION = 8  # ONNX file format version matching OPSET (readable by older runtimes too)

INPUT_NAME = "images"  # (N, 28, 28, 1) float32 in [0, 1]
OUTPUT_NAME = "probabilities"  # (N, 10) float32
FIRST_LAYER_NAME = "first_layer"  # optional output: the first Conv2D/Dense layer's activations

FIRST_LAYER_KINDS = ("Conv2D", "Dense")  # layers whose responses the page can show


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


def _convert_model(graph: OnnxGraph, model, input_name: str, first: dict) -> str:
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

    graph = OnnxGraph()
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
