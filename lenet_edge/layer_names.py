"""Which Keras layer a converted tensor or node comes from: the converters keep the layer names (C1, S2, F6…)
inside their own tensor names, and the reports, the per-op profiles and --keep-float read them back."""

from __future__ import annotations

import re
from typing import Any

_OP_LABELS = {"SOFTMAX": "probabilities", "QUANTIZE": "uint8/int8 I/O"}
_LAYER = re.compile(r"^(?:NumericVerify/)?[^/;]+/([^/;]+?)(?:_\d+)?/")
# deployment_graph turns Flatten into a model-level reshape: '<model>/Reshape' (TFLite), '<model>/Reshape:0' (ONNX)
_FLATTEN = re.compile(r"^[^/;]+/Reshape(?:_\d+)?(?::\d+)?$")
FLATTEN = "flatten"
INPUT_OP = "input"  # the op shown for a tensor that is the model's input, at most laid out anew
_LAYOUT_OPS = {"Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Flatten"}


def _keras_layer(name: str) -> str | None:
    """The Keras layer named inside a converter's tensor or node name, or None when it names none."""
    match = _LAYER.match(name)
    if match:
        return match[1]
    return FLATTEN if _FLATTEN.match(name) else None


def layer_of(tensor_name: str, op: str = "") -> str:
    """The Keras layer a converted tensor or node comes from ('lenet5_classic_1/C3_1/BiasAdd;…' -> 'C3').
    A name the converter gave no layer is labelled by its ``op`` where that says what it is (the TFLite
    output 'StatefulPartitionedCall_1:0' of SOFTMAX is 'probabilities'), else returned as it is ('Conv__89')."""
    return _keras_layer(tensor_name) or _OP_LABELS.get(op, tensor_name)


def onnx_tensor_layers(graph: Any) -> dict[str, tuple[str, str]]:
    """Every tensor an ONNX ``graph`` (a GraphProto) computes, in graph order (input to output): its Keras layer and
    the op that makes it. tf2onnx names some nodes by counter only ('Conv__3:0' out of node 'Conv__4'): their layer
    is that of their weights ('…/C1_1/convolution/ReadVariableOp:0'). The graph's input, and a layout op
    (Reshape, Transpose) of it, are the input: (its name, 'input')."""
    inputs = [value.name for value in graph.input]
    weights = {tensor.name for tensor in graph.initializer}
    found: dict[str, tuple[str, str]] = {name: (name, INPUT_OP) for name in inputs if name not in weights}
    for node in graph.node:
        data = [name for name in node.input if name and name not in weights]
        if node.op_type in _LAYOUT_OPS and data and found.get(data[0], ("", ""))[1] == INPUT_OP:
            found.update((out, (found[data[0]][0], INPUT_OP)) for out in node.output)
            continue
        names = (node.name, *(name for name in node.input if name in weights))
        owner = next((layer for layer in map(_keras_layer, names) if layer), None)
        for out in node.output:
            found[out] = (_keras_layer(out) or owner or layer_of(out), node.op_type)
    return found
