"""Quantization error by layer: where the int8 models lose precision, and which layers to keep in float.

- TFLite int8: the TFLite QuantizationDebugger on a re-conversion with the bundle's settings (same model,
  calibration and kept-float layers): RMSE/scale, max |error| and mean squared error of every quantized op.
- ONNX int8: onnxruntime.quantization.qdq_loss_debug: SNR (dB) of every quantized tensor, of its own
  quantization step and accumulated through the model against the float ONNX."""

from __future__ import annotations

import csv
import importlib.util
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .console import log, silenced
from .data import Mnist, calibration_batches, calibration_images
from .errors import one_line
from .exporters.tflite import float_layer_nodes, make_converter
from .files import atomic_output, is_regular_file
from .formats import float_twin
from .layer_names import INPUT_OP, layer_of, onnx_tensor_layers
from .manifest import Manifest
from .model import INPUT_NAME, deployment_graph
from .runtimes import open_runner
from .tensorflow_loader import import_tensorflow

SUSPECT_RMSE_OVER_SCALE = 0.7  # uniform rounding noise alone is 1/sqrt(12) = 0.29 of a quantization step
SUSPECT_SNR_DB = 25.0  # 8-bit rounding of a well-ranged tensor stays near 40 dB
DEBUG_IMAGES = 1000  # test images the debuggers run (one image at a time in the TFLite debugger)
TFLITE_COLUMNS = (
    "layer",
    "op",
    "tensor",
    "elements",
    "scale",
    "rmse_over_scale",
    "max_abs_error",
    "mean_squared_error",
)
ONNX_COLUMNS = ("layer", "op", "tensor", "snr_qdq_db", "snr_xmodel_db")


def tflite_layer_errors(
    model, calibration: np.ndarray, images: np.ndarray, keep_float: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], bytes]:
    """Per-op statistics of the int8 TFLite conversion of ``model``; also returns the model it measured."""
    tf = import_tensorflow()
    model = deployment_graph(model)  # the graph the shipped int8 file was converted from
    converter = make_converter(model, "int8", calibration, keep_float=tuple(keep_float))
    options = None
    if keep_float:
        with silenced((1, 2)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nodes = float_layer_nodes(converter.convert(), tuple(keep_float))
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    dataset = images.reshape(-1, 28, 28, 1)
    with silenced((1, 2)), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the debugger runs the deprecated tf.lite.Interpreter
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: ([batch] for batch in calibration_batches(dataset)),
            debug_options=options,
        )
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
        measured = debugger.get_nondebug_quantized_model()
    rows: list[dict[str, Any]] = []
    for stat in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(stat["scale"])
        mse = float(stat["mean_squared_error"])
        rows.append(
            {
                "layer": layer_of(stat["tensor_name"], stat["op_name"]),
                "op": stat["op_name"],
                "tensor": stat["tensor_name"],
                "elements": int(float(stat["num_elements"])),
                "scale": scale,
                "rmse_over_scale": float(np.sqrt(mse) / scale) if scale else 0.0,
                "max_abs_error": float(stat["max_abs_error"]),
                "mean_squared_error": mse,
            }
        )
    for row in rows:
        row["suspect"] = row["rmse_over_scale"] > SUSPECT_RMSE_OVER_SCALE
    return rows, measured


def onnx_layer_errors(fp32_path: Path, int8_path: Path, images: np.ndarray) -> list[dict]:
    """SNR of every quantized tensor of the QDQ model: its own Q/DQ step and accumulated against float. Rows come
    in graph order (input to output), each labelled by its Keras layer and the op that makes the tensor."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qdq

    feeds = images.reshape(-1, 28, 28, 1).astype(np.float32)
    batches = lambda: [{INPUT_NAME: feeds[i : i + 100]} for i in range(0, len(feeds), 100)]  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="lenet-edge-layers-") as tmp:
        float_aug, qdq_aug = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        qdq.modify_model_output_intermediate_tensors(str(fp32_path), str(float_aug))
        qdq.modify_model_output_intermediate_tensors(str(int8_path), str(qdq_aug))
        float_acts = qdq.collect_activations(str(float_aug), batches())
        qdq_acts = qdq.collect_activations(str(qdq_aug), batches())
    matching = qdq.create_activation_matching(qdq_acts, float_acts)
    # tensors renamed by the pre-processing have no float twin: compare only those present in both models
    errors = qdq.compute_activation_error({k: v for k, v in matching.items() if "float" in v})
    # the float model's tensors (those compared) name the layers; the int8 model's nodes, the ops that ran
    layers = onnx_tensor_layers(onnx.load(str(fp32_path)).graph)
    ran = {out: node.op_type for node in onnx.load(str(int8_path)).graph.node for out in node.output}
    order = {tensor: index for index, tensor in enumerate(layers)}
    rows: list[dict[str, Any]] = []
    for tensor, err in errors.items():
        layer, op = layers.get(tensor, (layer_of(tensor), ""))
        rows.append(
            {
                "layer": layer,
                "op": op if op == INPUT_OP else ran.get(tensor, op),
                "tensor": tensor,
                "snr_qdq_db": float(err["qdq_err"]),
                "snr_xmodel_db": float(err["xmodel_err"]),
            }
        )
    for row in rows:
        row["suspect"] = row["snr_qdq_db"] < SUSPECT_SNR_DB
    return sorted(rows, key=lambda row: order.get(row["tensor"], len(order)))


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "suspect"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _tflite_report(bundle: Path, manifest: Manifest, fmt: str, mnist: Mnist, images: np.ndarray) -> dict:
    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": "needs TensorFlow: pip install 'lenet-edge[train]'"}
    import keras

    log(f"layer errors: {fmt} (QuantizationDebugger on {len(images)} test images)")
    artifact, keras_model = manifest.artifact(fmt), manifest.artifact("keras")
    if artifact is None or keras_model is None:
        return {"skipped": "needs the bundle's Keras model"}
    model = keras.saving.load_model(bundle / keras_model.file, compile=False)
    count = (artifact.remedy or {}).get("calibration_images", manifest.calibration["images"])  # a remedy's own
    calibration = calibration_images(mnist, count, manifest.calibration["seed"])
    rows, measured = tflite_layer_errors(model, calibration, images, tuple(artifact.keep_float))
    with tempfile.NamedTemporaryFile(suffix=".tflite") as handle:
        handle.write(measured)
        handle.flush()
        remeasured = open_runner("litert", handle.name).predict(images).argmax(1)
    shipped = open_runner("litert", bundle / artifact.file).predict(images).argmax(1)
    return {
        "tool": "TFLite QuantizationDebugger",
        "images": len(images),
        "metric": "rmse_over_scale",
        "threshold": SUSPECT_RMSE_OVER_SCALE,
        "suspect_if": f"RMSE/scale > {SUSPECT_RMSE_OVER_SCALE}",
        "keep_float": list(artifact.keep_float),
        "agreement_with_bundle_file": float(np.mean(remeasured == shipped)),
        "rows": rows,
    }


def _onnx_report(bundle: Path, manifest: Manifest, fmt: str, mnist: Mnist, images: np.ndarray) -> dict:
    if importlib.util.find_spec("onnx") is None:
        return {"skipped": "needs the onnx package: pip install 'lenet-edge[train]'"}
    artifact = manifest.artifact(fmt)
    twin = float_twin(artifact.spec) if artifact else None
    float_model = manifest.artifact(twin.name) if twin else None
    if artifact is None or float_model is None or not is_regular_file(bundle / float_model.file):
        return {"skipped": "needs the float ONNX model of the bundle"}
    log(f"layer errors: {fmt} (qdq_loss_debug on {len(images)} test images)")
    return {
        "tool": "onnxruntime qdq_loss_debug",
        "images": len(images),
        "metric": "snr_qdq_db",
        "threshold": SUSPECT_SNR_DB,
        "suspect_if": f"SNR of its own Q/DQ step < {SUSPECT_SNR_DB:.0f} dB",
        "keep_float": list(artifact.keep_float),
        "rows": onnx_layer_errors(bundle / float_model.file, bundle / artifact.file, images),
    }


# how each exporter family's quantized files are measured, and the columns of their CSV
MEASURES = {"tflite": (_tflite_report, TFLITE_COLUMNS), "onnx": (_onnx_report, ONNX_COLUMNS)}


def layer_report(bundle: Path, manifest: Manifest, mnist: Mnist) -> dict:
    """Measure every quantized artifact of the bundle layer by layer (a variant with another input only once,
    as the model it is a variant of); write CSVs; return report data (the CLI draws each one's chart)."""
    images = mnist.x_test[:DEBUG_IMAGES]
    report: dict[str, dict] = {}
    for artifact in manifest.artifacts:
        if not artifact.spec.gates.quantized or artifact.spec.variant_of:
            continue
        measure, columns = MEASURES[artifact.spec.family]
        if not is_regular_file(bundle / artifact.file):
            report[artifact.format] = {"skipped": f"{artifact.file} is missing or not a regular file"}
            continue
        try:
            data = measure(bundle, manifest, artifact.format, mnist, images)
        except Exception as exc:  # a missing or broken file: verify's own row says what is wrong with it
            data = {"skipped": f"could not be measured ({one_line(exc)[:200]})"}
        report[artifact.format] = data
        if "rows" in data:
            _write_csv(bundle / f"layers_{artifact.format}.csv", data["rows"], columns)
    return report
