"""The quantization error report layer by layer, and selective quantization (--keep-float)."""

from __future__ import annotations

import csv
import json
import shutil

import onnx
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import manifest_json

from lenet_edge.cli import main


def test_layer_report_names_every_quantized_layer(trained_bundle, mnist_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    assert main(["verify", str(bundle), "--data", str(mnist_dir), "--layers"]) == 0
    layers = json.loads((bundle / "report.json").read_text())["layers"]
    tflite, ort = layers["tflite-int8"], layers["onnx-int8"]
    assert {"C1", "C3", "C5", "F6", "probabilities"} <= {row["layer"] for row in tflite["rows"]}
    assert all(row["rmse_over_scale"] > 0 for row in tflite["rows"] if row["op"] == "CONV_2D")
    assert tflite["agreement_with_bundle_file"] > 0.99  # the debugger measured the model the bundle ships
    assert {"C3", "C5", "F6"} <= {row["layer"] for row in ort["rows"]}
    assert all(row["snr_qdq_db"] > 10 for row in ort["rows"])  # exact tensors (the raw input) reach ~400 dB
    for fmt in ("tflite-int8", "onnx-int8"):
        with open(bundle / f"layers_{fmt}.csv") as handle:
            assert len(list(csv.DictReader(handle))) == len(layers[fmt]["rows"])
        assert (bundle / f"layers_{fmt}.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (bundle / "report.md").read_text()
    assert "## Quantization error by layer" in markdown and "Suspects:" in markdown


def _c1_weight_is_float(path) -> bool:
    """Whether the ONNX Conv computing C1 reads its weights straight from a float initializer."""
    graph = onnx.load(str(path)).graph
    (conv,) = [n for n in graph.node if n.op_type == "Conv" and "/C1_1/convolution/" in n.input[1]]
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return conv.input[1] in floats


def test_keep_float_leaves_named_layers_in_float(trained_bundle, mnist_dir, tmp_path):
    out = tmp_path / "selective"
    args = ["export", str(trained_bundle / "lenet5.keras"), "--out", str(out), "--data", str(mnist_dir)]
    assert main([*args, "--formats", "tflite-int8,onnx-fp32,onnx-int8", "--keep-float", "C1"]) == 0
    entries = {entry["format"]: entry for entry in manifest_json(out)["artifacts"]}
    tflite = entries["tflite-int8"]
    assert tflite["keep_float"] == ["C1"] and tflite["without_keep_float"]["bytes"] > 0
    assert (tflite["input"]["dtype"], tflite["input"]["scale"], tflite["input"]["zero_point"]) == ("uint8", 1.0, 0)
    interpreter = Interpreter(model_path=str(out / "lenet5_int8.tflite"))
    ops = interpreter._get_ops_details()
    first_conv = next(op for op in ops if op["op_name"] == "CONV_2D")
    tensors = interpreter.get_tensor_details()
    assert tensors[first_conv["inputs"][0]]["dtype"].__name__ == "float32"  # C1 computes in float
    assert ops[0]["op_name"] == "DEQUANTIZE"
    assert _c1_weight_is_float(out / "lenet5_int8.onnx") and not _c1_weight_is_float(
        trained_bundle / "lenet5_int8.onnx"
    )
    markdown = (out / "report.md").read_text()
    assert markdown.count("Kept in float: C1") == 2


@pytest.mark.parametrize("layer", ["C9", "S2"])
def test_keep_float_of_an_unknown_layer_is_a_usage_error(untrained_lenet, mnist_dir, tmp_path, capsys, layer):
    """Refused before any export, naming LeNet-5's layers with weights (training has nothing to do with it)."""
    args = ["export", str(untrained_lenet), "--out", str(tmp_path / "o"), "--data", str(mnist_dir)]
    assert main([*args, "--keep-float", layer]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet-edge: error: --keep-float") and "the model has C1, C3, C5, F6" in err
