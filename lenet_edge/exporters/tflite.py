"""TFLite exporters (fp32, fp16, dynamic-range, full-integer int8) through TFLiteConverter.from_keras_model.

from_concrete_functions is avoided on purpose: on Keras 3 models it can emit a weightless graph (NaN out)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..console import silenced
from ..data import calibration_batches
from ..errors import ExportError
from ..layer_names import layer_of
from ..model import INPUT_NAME, OUTPUT_NAME, row_shifted_first_conv
from ..runtimes.litert import LiteRTRunner
from ..tensorflow_loader import import_tensorflow
from .tflite_metadata import METADATA_NAME, ClassifierMetadata, metadata_flatbuffer, with_metadata

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
COLORS = ("gray", "rgb")  # the input image: the trained model's one channel, or RGB turned gray in the graph
ABOUT_METADATA = "lenet_edge"  # the metadata entry holding what the file says about itself, as JSON
LABELS_FILE = "labels.txt"  # packed into every .tflite, as the metadata readers expect it


def app_model(model, color: str = "gray"):
    """The graph a .tflite is converted from: ``model`` with its output under the key ``probabilities`` (the
    signature's output key; otherwise the converter calls it output_0), and, for ``rgb``, a uint8-friendly RGB
    image input of batch 1 (what image-classifier frameworks feed) turned gray inside the graph by a fixed 1×1
    convolution that averages the channels: a gray digit given as R = G = B gets its own pixel values back."""
    if color not in COLORS:
        raise ExportError(f"unknown input color {color!r}; choose from {', '.join(COLORS)}")
    import keras

    if color == "gray":
        return keras.Model(model.inputs, {OUTPUT_NAME: model.outputs[0]}, name=model.name)
    image = keras.Input((*model.inputs[0].shape[1:3], 3), batch_size=1, name=INPUT_NAME)
    to_gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="to_gray")
    gray = to_gray(image)
    to_gray.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    return keras.Model(image, {OUTPUT_NAME: model(gray)}, name=model.name)


def make_converter(
    model,
    quantization: str,
    calibration: np.ndarray,
    color: str = "gray",
    row_split: bool = True,
    keep_float: tuple[str, ...] = (),
):
    """The configured converter for one quantization (the layer debugger reuses the int8 one). The int8 graph
    has its first convolution split into row shifts (model.row_shifted_first_conv): the same answers, fewer
    multiply-adds in XNNPACK's int8 kernels; not when ``keep_float`` (the layers the file leaves in float)
    names that convolution, nor with ``row_split=False`` (the graph as given, to compare)."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown TFLite quantization {quantization!r}")
    tf = import_tensorflow()
    split = quantization == "int8" and row_split
    graph = app_model(row_shifted_first_conv(model, keep=keep_float) if split else model, color)
    converter = tf.lite.TFLiteConverter.from_keras_model(graph)
    channels = graph.inputs[0].shape[-1]  # a gray calibration digit, repeated for an RGB input
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        # Calibrated on raw 0-255 float pixels: the uint8 input then comes out with scale 1, zero point 0,
        # so an app hands camera or canvas bytes over untouched.
        converter.representative_dataset = lambda: (
            [np.repeat(batch, channels, axis=-1)] for batch in calibration_batches(calibration)
        )
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
    color: str = "gray",
) -> None:
    converter = make_converter(model, quantization, calibration, color, keep_float=keep_float)
    with silenced((1, 2)), warnings.catch_warnings():  # the MLIR converter prints pages of diagnostics
        warnings.simplefilter("ignore")
        flatbuffer = converter.convert()
        if keep_float and quantization == "int8":
            flatbuffer = _keep_float(model, flatbuffer, calibration, keep_float)
    about = about or {}
    labels = tuple(about.get("labels", ",".join(map(str, range(10)))).split(","))
    entries = {
        ABOUT_METADATA: json.dumps(about, sort_keys=True).encode(),
        METADATA_NAME: metadata_flatbuffer(_classifier_metadata(about, color, quantization)),
    }
    labels_file = {LABELS_FILE: "".join(f"{label}\n" for label in labels).encode()}
    path.write_bytes(with_metadata(flatbuffer, entries, labels_file, io_names=(INPUT_NAME, OUTPUT_NAME)))
    if quantization == "int8":
        _check_raw_pixel_input(path)


def _classifier_metadata(about: dict[str, str], color: str, quantization: str) -> ClassifierMetadata:
    """The TFLite metadata of one file, from what the file says about itself."""
    shape = "[1, 28, 28, 3] RGB" if color == "rgb" else "[batch, 28, 28, 1] gray"
    dtype = "uint8" if quantization == "int8" else "float32"
    gray = " The graph averages R, G and B into gray." if color == "rgb" else ""
    return ClassifierMetadata(
        name="LeNet-5 MNIST digit classifier",
        description=(
            f"Classifies a 28x28 image of one handwritten digit, white on black, as 0-9. "
            f"{about.get('description', '')}. Made by {about.get('producer', 'lenet-edge')}."
        ),
        version=about.get("producer", "").rpartition(" ")[2] or "0",
        author=about.get("producer", "lenet-edge").partition(" ")[0],
        license=about.get("license", ""),
        input_name=INPUT_NAME,
        input_description=(
            f"{dtype} {shape} image, raw pixel values 0-255, white digit on black: no normalisation, it is "
            f"inside the graph (mean 0, std 1 below leave the pixels as they are).{gray}"
        ),
        color=color,
        output_name=OUTPUT_NAME,
        output_description="10 probabilities (softmax), one per digit in the order of the labels"
        + (": uint8, quantized (scale and zero point on the tensor)" if quantization == "int8" else ""),
        labels_file=LABELS_FILE,
    )


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
    converter = make_converter(model, "int8", calibration, keep_float=layers)
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
