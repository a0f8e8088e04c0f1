"""The quantization error report layer by layer, and selective quantization (--keep-float)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import onnx
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import manifest_json
from onnx import TensorProto, helper

from lenet_edge.cli import main
from lenet_edge.layer_names import layer_of, onnx_tensor_layers
from lenet_edge.plots import layer_labels
from lenet_edge.quantization_error import ONNX_COLUMNS, _write_csv, onnx_layer_errors

LENET_ORDER = ["image", "C1", "S2", "C3", "S4", "C5", "flatten", "F6", "probabilities"]  # the input, then its layers


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
    assert not any(mark in row["layer"] for row in ort["rows"] for mark in "/:")  # layer names, not tensor names
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


def test_layer_of_names_the_flatten_reshape():
    assert layer_of("lenet5_classic_1/Reshape") == layer_of("lenet5_classic_1/Reshape:0") == "flatten"
    assert layer_of("lenet5_classic_1/C3_1/BiasAdd;lenet5_classic_1/C3_1/convolution") == "C3"
    assert layer_of("Conv__3:0") == "Conv__3:0"  # nothing in the name: left as it is


def test_onnx_tensor_layers_follow_the_graph_from_its_input():
    """tf2onnx's names, as in a LeNet-5 export: a layout reshape of the input named after C1's convolution, a
    conv named by counter only (its layer is its weights'), the flatten reshape, all in graph order."""
    m = "lenet5_classic_1"
    nodes = [
        helper.make_node("Reshape", ["image", "new_shape__0"], [f"{m}/C1_1/convolution__1:0"], f"{m}/C1_1/conv__2"),
        helper.make_node("Conv", [f"{m}/C1_1/convolution__1:0", f"{m}/C1_1/convolution/W:0"], ["Conv__3:0"], "Conv__4"),
        helper.make_node("Tanh", ["Conv__3:0"], [f"{m}/C1_1/Tanh:0"], f"{m}/C1_1/Tanh"),
        helper.make_node("Reshape", [f"{m}/C1_1/Tanh:0", "shape__7"], [f"{m}/Reshape:0"], f"{m}/Reshape"),
        helper.make_node("MatMul", [f"{m}/Reshape:0", f"{m}/F6_1/W:0"], [f"{m}/F6_1/MatMul:0"], f"{m}/F6_1/MatMul"),
        helper.make_node("Softmax", [f"{m}/F6_1/MatMul:0"], ["probabilities"], f"{m}/probabilities_1/Softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "lenet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [
            helper.make_tensor(name, TensorProto.FLOAT, [1], [0.5])
            for name in ("new_shape__0", f"{m}/C1_1/convolution/W:0", "shape__7", f"{m}/F6_1/W:0")
        ],
    )
    assert list(onnx_tensor_layers(graph).items()) == [
        ("image", ("image", "input")),
        (f"{m}/C1_1/convolution__1:0", ("image", "input")),  # the input laid out for C1, not C1
        ("Conv__3:0", ("C1", "Conv")),
        (f"{m}/C1_1/Tanh:0", ("C1", "Tanh")),
        (f"{m}/Reshape:0", ("flatten", "Reshape")),
        (f"{m}/F6_1/MatMul:0", ("F6", "MatMul")),
        ("probabilities", ("probabilities", "Softmax")),
    ]


@pytest.fixture(scope="module")
def lenet_onnx(untrained_lenet, mnist, tmp_path_factory):
    """LeNet-5 (untrained) exported as the bundle writer does, ONNX float and int8 (QDQ, 50 calibration images)."""
    import keras

    from lenet_edge.exporters import onnx as onnx_exporter
    from lenet_edge.model import deployment_graph

    model = deployment_graph(keras.saving.load_model(untrained_lenet, compile=False))
    folder = tmp_path_factory.mktemp("lenet-onnx")
    calibration = mnist.x_train[:50]
    onnx_exporter.export(model, folder / "fp32.onnx", calibration)
    onnx_exporter.export(model, folder / "int8.onnx", calibration, "int8")
    return folder / "fp32.onnx", folder / "int8.onnx"


def test_onnx_layer_rows_name_each_layer_in_graph_order(lenet_onnx, mnist, tmp_path):
    """What layers_onnx-int8.png/.csv show: Keras layer names (no raw tensor name), input to output, each
    bar's label once, the raw tensor kept in its own column."""
    rows = onnx_layer_errors(*lenet_onnx, mnist.x_test[:100])
    layers = [row["layer"] for row in rows]
    assert {"image", "C1", "S2", "C3", "S4", "C5", "F6", "probabilities"} <= set(layers)
    bases = [layer if layer in LENET_ORDER else layer.split("_")[0] for layer in layers]  # 'C1_rows' is C1's
    assert set(bases) <= set(LENET_ORDER), layers
    positions = [LENET_ORDER.index(base) for base in bases]
    assert positions == sorted(positions), layers  # graph order, not sorted by error
    assert rows[0]["layer"] == "image" and rows[0]["op"] == "input" and rows[0]["snr_qdq_db"] > 100  # exact
    labels = layer_labels(rows)
    assert len(set(labels)) == len(labels) and not any("#" in label for label in labels), labels
    assert all(row["op"] and "Quantize" not in row["op"] for row in rows), labels  # the op computing it, not a Q/DQ
    _write_csv(tmp_path / "layers.csv", rows, ONNX_COLUMNS)
    with open(tmp_path / "layers.csv") as handle:
        written = list(csv.DictReader(handle))
    assert [row["layer"] for row in written] == layers and all(row["tensor"] for row in written)
    assert np.isfinite([row["snr_xmodel_db"] for row in rows]).all()
