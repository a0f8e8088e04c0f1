"""ONNX exporters: float32 through tf2onnx (opset pinned), int8 through ONNX Runtime's quantize_static (QDQ).

Tensors get stable names, ``image`` in and ``probabilities`` out, with a symbolic ``batch`` dimension."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from ..console import silenced
from ..data import calibration_batches
from ..errors import ExportError
from ..layer_names import layer_of
from ..model import INPUT_NAME, OUTPUT_NAME
from ..tensorflow_loader import import_tensorflow

OPSET = 17  # tf2onnx 1.17 refuses 19+; 17 is what onnxruntime, onnxruntime-web and most phones' ORT take
INT8_OPSET = 19  # the int8 file's: the first whose DequantizeLinear the onnx.reference evaluator implements
BATCH_DIM = "batch"
CALIBRATION_BATCH = 50
_GENERATED = re.compile(r"__\d+")  # tf2onnx's counter-made names ('const_fold_opt__39', 'Conv__89')


def export(
    model,
    path: Path,
    calibration: np.ndarray,
    quantization: str = "none",
    keep_float: tuple[str, ...] = (),
    about: dict[str, str] | None = None,
) -> None:
    if quantization == "none":
        _convert(model, path)
    elif quantization == "int8":
        with tempfile.TemporaryDirectory(prefix="lenet-edge-onnx-") as tmp:
            fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
            _convert(model, fp32)  # the float file just written for the same model, where there is one
            _quantize_int8(fp32, prepared, path, calibration, keep_float)
    else:
        raise ExportError(f"unknown ONNX quantization {quantization!r}")
    _describe(path, f"{model.name}_{'fp32' if quantization == 'none' else quantization}", about or {})


def _describe(path: Path, name: str, about: dict[str, str]) -> None:
    """Name the graph, declare only the opset domains its nodes use, and record ``about`` in metadata_props
    (beside the quantizer's own entries). The graph itself is untouched."""
    import onnx

    proto = onnx.load(str(path))
    proto.graph.name = name
    used = {node.domain for node in proto.graph.node} | {""}  # the default domain stays: the opset version
    kept = [opset for opset in proto.opset_import if opset.domain in used or opset.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    entries = {entry.key: entry.value for entry in proto.metadata_props} | about
    del proto.metadata_props[:]
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


_LAST: dict[str, bytes] = {}  # the last float conversion: its model's fingerprint -> the file's bytes


def _fingerprint(model) -> str:
    """The model object, its name and the bytes of every weight: what the float conversion depends on."""
    digest = hashlib.sha256(f"{id(model)} {model.name}".encode())
    for weight in model.weights:
        digest.update(np.asarray(weight).tobytes())
    return digest.hexdigest()


def _convert(model, path: Path) -> None:
    """The float ONNX file of ``model`` (the same bytes every time: the int8 export reuses the last one's)."""
    key = _fingerprint(model)
    if key in _LAST:
        path.write_bytes(_LAST[key])
        return
    tf = import_tensorflow()
    import onnx
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    signature = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name=INPUT_NAME),)
    with silenced((1, 2)):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    _name_io(proto)
    _canonical_names(proto.graph)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    _LAST.clear()
    _LAST[key] = path.read_bytes()


def _name_io(proto) -> None:
    """Rename the graph's input and output to the stable names and mark the batch dimension symbolic."""
    graph = proto.graph
    renames = {graph.input[0].name: INPUT_NAME, graph.output[0].name: OUTPUT_NAME}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (graph.input[0], graph.output[0]):
        value.name = renames[value.name]
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM


def _canonical_names(graph) -> None:
    """Renumber tf2onnx's counter-made names in the order the graph first uses them, and sort the weights by
    name: its counters and constant folding number the same tensors differently from run to run, so without
    this two exports of the same model differ in bytes (the ONNX files were the bundle's only such files)."""
    names: dict[str, str] = {}

    def canonical(name: str) -> str:
        if not _GENERATED.search(name):
            return name
        if name not in names:
            names[name] = _GENERATED.sub(f"__{len(names)}", name)
        return names[name]

    for node in graph.node:
        node.input[:] = [canonical(n) for n in node.input]
        node.output[:] = [canonical(n) for n in node.output]
        node.name = canonical(node.name)
    for value in (*graph.initializer, *graph.value_info, *graph.input, *graph.output):
        value.name = canonical(value.name)
    weights = sorted(graph.initializer, key=lambda tensor: tensor.name)
    del graph.initializer[:]
    graph.initializer.extend(weights)


def nodes_of_layers(model_path: Path, layers: tuple[str, ...]) -> list[str]:
    """Names of the graph's nodes that compute the Keras ``layers``: by node name, output name or weight name
    (tf2onnx names some nodes only by counter, 'Conv__89', but their weights keep the layer's name)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    weights = {t.name for t in graph.initializer}
    return [
        n.name
        for n in graph.node
        if any(layer_of(name) in layers for name in (n.name, *n.output, *(i for i in n.input if i in weights)))
    ]


def _quantize_int8(
    fp32: Path, prepared: Path, out: Path, calibration: np.ndarray, keep_float: tuple[str, ...] = ()
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class RawPixelReader(CalibrationDataReader):
        def __init__(self):
            self.batches = calibration_batches(calibration, CALIBRATION_BATCH)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    import onnx

    upgraded = prepared.with_name("opset19.onnx")
    onnx.save(onnx.version_converter.convert_version(onnx.load(str(fp32)), INT8_OPSET), str(upgraded))
    quant_pre_process(str(upgraded), str(prepared))
    excluded = nodes_of_layers(prepared, keep_float) if keep_float else []
    if keep_float and not excluded:
        raise ExportError(f"--keep-float {','.join(keep_float)}: no such layer in the ONNX graph")
    softmax = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type == "Softmax"]
    # The scheme every consumer runs alike: uint8 activations (OpenVINO's int8 path, also under its bf16
    # hint), int8 weights per channel within 7 bits (reduce_range: no int16 saturation on x86 without VNNI,
    # so x86 and ARM64 agree), and the Softmax in float (a Q/DQ pair on the output broke tract).
    quantize_static(
        str(prepared),
        str(out),
        RawPixelReader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        nodes_to_exclude=[*excluded, *softmax],
    )
    quantized = onnx.load(str(out))
    quantized.graph.ClearField("value_info")  # its symbolic batch keeps tract from taking a fixed one
    onnx.save(quantized, str(out))
