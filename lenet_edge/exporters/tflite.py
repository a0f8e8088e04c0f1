"""TFLite exporters (fp32, fp16, dynamic-range, full-integer int8) through TFLiteConverter.from_keras_model.

from_concrete_functions is avoided on purpose: on Keras 3 models it can emit a weightless graph (NaN out)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import flatbuffers
import numpy as np

from ..console import silenced
from ..data import calibration_batches
from ..errors import ExportError
from ..layer_names import layer_of
from ..runtimes.litert import LiteRTRunner
from ..tensorflow_loader import import_tensorflow

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
ABOUT_METADATA = "lenet_edge"  # the metadata entry holding what the file says about itself, as JSON


def with_metadata(flatbuffer: bytes, name: str, payload: bytes) -> bytes:
    """The model with one more metadata entry (a named buffer): the graph, its weights and every output stay
    as they are."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(flatbuffer) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def make_converter(model, quantization: str, calibration: np.ndarray):
    """The configured converter for one quantization (the layer debugger reuses the int8 one)."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown TFLite quantization {quantization!r}")
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        # Calibrated on raw 0-255 float pixels: the uint8 input then comes out with scale 1, zero point 0,
        # so an app hands camera or canvas bytes over untouched.
        converter.representative_dataset = lambda: ([batch] for batch in calibration_batches(calibration))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter


def export(
    model,
    path: Path,
    calibration: np.ndarray,
    quantization: str = "none",
    keep_float: tuple[str, ...] = (),
    about: dict[str, str] | None = None,
) -> None:
    converter = make_converter(model, quantization, calibration)
    with silenced((1, 2)), warnings.catch_warnings():  # the MLIR converter prints pages of diagnostics
        warnings.simplefilter("ignore")
        flatbuffer = converter.convert()
        if keep_float and quantization == "int8":
            flatbuffer = _keep_float(model, flatbuffer, calibration, keep_float)
    path.write_bytes(with_metadata(flatbuffer, ABOUT_METADATA, json.dumps(about or {}, sort_keys=True).encode()))
    if quantization == "int8":
        _check_raw_pixel_input(path)


def float_layer_nodes(full_int8: bytes, layers: tuple[str, ...]) -> list[str]:
    """Names of the int8 graph's tensors (its nodes, to the quantizer) that compute the Keras ``layers``."""
    from ai_edge_litert.interpreter import Interpreter

    names = {t["name"] for t in Interpreter(model_content=full_int8).get_tensor_details()}
    nodes = sorted(name for name in names if layer_of(name) in layers)
    if not nodes:
        raise ExportError(f"--keep-float {','.join(layers)}: no such layer in the TFLite graph")
    return nodes


def _keep_float(model, full_int8: bytes, calibration: np.ndarray, layers: tuple[str, ...]) -> bytes:
    """Quantize again with the ops of ``layers`` denylisted, so they stay float between (de)quantize ops.

    This is the converter's own quantizer (private API; the QuantizationDebugger's route ignores the uint8
    input type). The raw-pixel check after export catches any change in its behaviour."""
    from tensorflow.lite.python import convert

    tf = import_tensorflow()
    nodes = float_layer_nodes(full_int8, layers)
    converter = make_converter(model, "int8", calibration)
    converter._experimental_calibrate_only = True
    return convert.mlir_quantize(  # the same call as TFLiteConverter._quantize, plus the denylist
        converter.convert(), input_data_type=tf.uint8, output_data_type=tf.uint8, denylisted_nodes=nodes
    )


def _check_raw_pixel_input(path: Path) -> None:
    """The int8 model must take raw uint8 pixels: input scale 1, zero point 0."""
    spec = LiteRTRunner(path).input
    if spec.dtype != "uint8" or spec.scale != 1.0 or spec.zero_point != 0:
        raise ExportError(
            f"int8 input came out as {spec.dtype} scale {spec.scale} zero point {spec.zero_point}, "
            "not uint8 scale 1 zero point 0: raw pixels would not go straight in"
        )
