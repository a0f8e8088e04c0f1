"""The bundle: every export loads in its own runtime and answers real digits fed raw, the manifest tells the
truth about every file and tensor, and a failed or interrupted export costs nothing. On tiny_bundle (the real
bundle writer on a model that was never trained), except what a real training run records (trained_bundle)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import manifest_json

from lenet_edge import bundle_writer, exporters
from lenet_edge.cli import main
from lenet_edge.formats import FORMATS
from lenet_edge.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DIGITS = 50


def _entries(bundle: Path) -> dict[str, dict]:
    return {entry["format"]: entry for entry in manifest_json(bundle)["artifacts"]}


def _litert_probabilities(path: Path, digits: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """The file run as an app runs it: raw pixels (R = G = B for an RGB model), the whole batch in one call, or
    one digit per call for a model of batch 1."""
    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    batch, channels = inp["shape_signature"][0], inp["shape_signature"][-1]
    pixels = np.repeat(digits.reshape(-1, 28, 28, 1), channels, axis=-1).astype(inp["dtype"])
    if batch == -1:
        interpreter.resize_tensor_input(inp["index"], [len(digits), 28, 28, channels])
    interpreter.allocate_tensors()
    scores_of = []
    for chunk in [pixels] if batch == -1 else np.split(pixels, len(pixels)):
        interpreter.set_tensor(inp["index"], chunk)
        interpreter.invoke()
        scores_of.append(interpreter.get_tensor(out["index"]).astype(np.float32))
    scores = np.concatenate(scores_of)
    scale, zero_point = out["quantization"]
    if scale:
        scores = (scores - zero_point) * scale
    return scores, inp, out


def test_bundle_holds_everything(tiny_bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {f.file for f in FORMATS} <= names
    assert {"lenet5.keras", "labels.txt", "manifest.json", "README.md", "training.json", "training_curves.png"} <= names
    assert (tiny_bundle / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_bundle / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert (tiny_bundle / "README.md").read_text() == (REPO / "export" / "README.md").read_text()
    assert not [p for p in tiny_bundle.parent.iterdir() if p.name.startswith(".export.")]  # no staging left


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.runtime == "litert"], ids=lambda f: f.name)
def test_tflite_answers_raw_digits(tiny_bundle, mnist, fmt):
    probs, inp, _ = _litert_probabilities(tiny_bundle / fmt.file, mnist.x_test[:DIGITS])
    assert probs.shape == (DIGITS, 10) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.03)
    assert np.mean(probs.argmax(1) == mnist.y_test[:DIGITS]) > 0.8
    expected_input = np.uint8 if fmt.precision == "int8" else np.float32
    assert inp["dtype"] == expected_input


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.runtime == "onnxruntime"], ids=lambda f: f.name)
def test_onnx_answers_raw_digits_with_stable_names(tiny_bundle, mnist, fmt):
    session = ort.InferenceSession(str(tiny_bundle / fmt.file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    assert session.get_inputs()[0].shape == ["batch", 28, 28, 1]
    raw = mnist.x_test[:DIGITS].reshape(-1, 28, 28, 1).astype(np.float32)
    (probs,) = session.run(["probabilities"], {"image": raw})
    assert probs.shape == (DIGITS, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.03)
    assert np.mean(probs.argmax(1) == mnist.y_test[:DIGITS]) > 0.8


def test_int8_tflite_takes_raw_bytes(tiny_bundle):
    entry = _entries(tiny_bundle)["tflite-int8"]
    assert entry["input"] | {"name": None} == {
        "name": None, "dtype": "uint8", "shape": [-1, 28, 28, 1], "scale": 1.0, "zero_point": 0
    }  # fmt: skip
    assert entry["output"]["dtype"] == "uint8" and entry["output"]["scale"] > 0


def test_manifest_agrees_with_files_and_runtimes(tiny_bundle):
    manifest = manifest_json(tiny_bundle)
    entries = _entries(tiny_bundle)
    assert set(entries) == {"keras", *(f.name for f in FORMATS)} and manifest["failed"] == []
    for entry in entries.values():
        blob = (tiny_bundle / entry["file"]).read_bytes()
        assert entry["bytes"] == len(blob)
        assert entry["sha256"] == hashlib.sha256(blob).hexdigest()
    for fmt in FORMATS:
        entry = entries[fmt.name]
        if fmt.runtime == "litert":
            interpreter = Interpreter(model_path=str(tiny_bundle / fmt.file))
            for spec, detail in ((entry["input"], interpreter.get_input_details()[0]),
                                 (entry["output"], interpreter.get_output_details()[0])):  # fmt: skip
                assert spec["name"] == detail["name"]
                assert spec["dtype"] == np.dtype(detail["dtype"]).name
                assert spec["shape"] == detail["shape_signature"].tolist()
                scale, zero_point = detail["quantization"]
                assert (spec["scale"], spec["zero_point"]) == ((scale, zero_point) if scale else (None, None))
        else:
            session = ort.InferenceSession(str(tiny_bundle / fmt.file), providers=["CPUExecutionProvider"])
            assert entry["input"]["name"] == session.get_inputs()[0].name
            assert entry["output"]["name"] == session.get_outputs()[0].name
            assert entry["input"]["dtype"] == "float32" and entry["input"]["shape"] == [-1, 28, 28, 1]
    record = json.loads((tiny_bundle / "training.json").read_text())
    assert manifest["model"] == record["model"]  # the facts the writer was given, stated once at the top
    assert manifest["seed"] == record["config"]["seed"] == manifest["calibration"]["seed"]
    assert manifest["deterministic"] is True and "history" not in manifest["training"]
    assert manifest["keras_test_accuracy"] == pytest.approx(record["test_accuracy"], abs=1e-6)
    assert len(manifest["dataset"]["file_sha256"]) == 4
    assert {"tensorflow", "onnxruntime", "ai-edge-litert", "tf2onnx"} <= set(manifest["tools"])


def test_run_manifest_records_the_training(trained_bundle):
    """What `lenet-edge run` tells about the model it trained: LeNet-5's published size, the seed, the epochs, and
    the default recipe's accuracy."""
    manifest = manifest_json(trained_bundle)
    assert manifest["model"]["params"] == 61_706 and manifest["model"]["macs"] == 416_520
    assert manifest["seed"] == 7 and manifest["deterministic"] is True
    assert manifest["training"]["config"]["epochs"] == TrainConfig().epochs
    assert manifest["training"]["config"]["batch_norm"] is True  # folded: the model is the plain LeNet-5 above
    assert 0.99 <= manifest["keras_test_accuracy"] <= 1.0
    assert len(manifest["dataset"]["file_sha256"]) == 4
    assert {"tensorflow", "onnxruntime", "ai-edge-litert", "tf2onnx"} <= set(manifest["tools"])
    record = json.loads((trained_bundle / "training.json").read_text())
    assert len(record["history"]["val_accuracy"]) == TrainConfig().epochs


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_failing_format_is_reported_and_spares_the_others(tiny_bundle, mnist_dir, tmp_path, monkeypatch):
    real_export = exporters.export_format

    def fp16_breaks(fmt, *args):
        if fmt.name == "tflite-fp16":
            raise RuntimeError("converter exploded")
        return real_export(fmt, *args)

    monkeypatch.setattr(bundle_writer, "export_format", fp16_breaks)
    out = tmp_path / "partial"
    args = ["export", str(tiny_bundle / "lenet5.keras"), "--out", str(out), "--data", str(mnist_dir), "--no-bench"]
    assert main([*args, "--formats", "tflite-fp32,tflite-fp16,onnx-fp32"]) == 1
    manifest = manifest_json(out)
    assert [f["format"] for f in manifest["failed"]] == ["tflite-fp16"]
    assert "converter exploded" in manifest["failed"][0]["reason"]
    assert set(_entries(out)) == {"keras", "tflite-fp32", "onnx-fp32"}
    assert not (out / "lenet5_fp16.tflite").exists()


def test_an_interrupted_export_leaves_the_old_bundle(tiny_bundle, mnist_dir, tmp_path, monkeypatch):
    out = tmp_path / "export"
    shutil.copytree(tiny_bundle, out)
    before = _snapshot(out)
    real_export = exporters.export_format

    def interrupted(fmt, *args):
        if fmt.name == "onnx-fp32":
            raise KeyboardInterrupt
        return real_export(fmt, *args)

    monkeypatch.setattr(bundle_writer, "export_format", interrupted)
    args = ["export", str(out / "lenet5.keras"), "--out", str(out), "--data", str(mnist_dir), "--calibration", "50"]
    assert main(args) == 130
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging folder left behind


def test_refuses_to_replace_a_folder_that_is_not_a_bundle(tiny_bundle, mnist_dir, tmp_path, capsys):
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"not a model")
    args = ["export", str(tiny_bundle / "lenet5.keras"), "--out", str(precious), "--data", str(mnist_dir)]
    assert main(args) == 2
    assert "is not a lenet-edge bundle" in capsys.readouterr().err
    assert (precious / "holiday.jpg").read_bytes() == b"not a model"


@pytest.mark.parametrize("model", ["missing.keras", "README.md"])
def test_export_of_a_non_model_is_a_usage_error(tmp_path, capsys, model):
    path = tmp_path / model
    if model == "README.md":
        path.write_text("hello")
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet-edge: error:") and err.count("\n") == 1


def test_every_file_says_what_it_is_in_its_own_metadata(tiny_bundle):
    """An exported file that travels without its manifest still names its labels, input contract, producer,
    seed and source model; the ONNX graphs are named and declare only the opset domains they use."""
    import onnx
    from ai_edge_litert import schema_py_generated as schema

    manifest = manifest_json(tiny_bundle)
    source = next(entry["sha256"] for entry in manifest["artifacts"] if entry["format"] == "keras")
    for fmt in FORMATS:
        path = tiny_bundle / fmt.file
        if fmt.family == "onnx":
            proto = onnx.load(str(path))
            about = {entry.key: entry.value for entry in proto.metadata_props}
            assert proto.graph.name.endswith(fmt.precision)
            used = {node.domain for node in proto.graph.node} | {""}
            assert {opset.domain for opset in proto.opset_import} <= used, fmt.name
        else:
            model = schema.Model.GetRootAs(path.read_bytes(), 0)
            entries = {model.Metadata(i).Name(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
            about = json.loads(model.Buffers(entries[b"lenet_edge"]).DataAsNumpy().tobytes())
        assert about["format"] == fmt.name and about["precision"] == fmt.precision, fmt.name
        assert about["labels"] == "0,1,2,3,4,5,6,7,8,9" and "raw pixels 0-255" in about["input"]
        assert about["source_model_sha256"] == source and about["seed"] == str(manifest["seed"])
        assert about["producer"].startswith("lenet-edge ")


def test_bundle_files_and_folder_get_the_usual_permissions(tiny_bundle, tmp_path):
    """0644 files in a 0755 folder under the usual umask 022 (a device copy or a web server reads them as another
    user), and the user's umask honoured: 0640/0750 under 027."""
    import os
    import stat
    import subprocess
    import sys

    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(tiny_bundle.stat().st_mode) == 0o777 & ~umask
    for path in tiny_bundle.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
    script = (
        "import os, sys; os.umask(0o027); from pathlib import Path\n"
        "from lenet_edge.bundle_writer import publish, staged_folder\n"
        "from lenet_edge.files import write_json\n"
        "out = Path(sys.argv[1])\n"
        "with staged_folder(out) as staging:\n"
        "    write_json(staging / 'manifest.json', {})\n"
        "    publish(staging, out, failed=False)\n"
    )
    out = tmp_path / "bundle"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o640


def test_the_int8_onnx_reuses_the_float_conversion_of_the_same_model_byte_for_byte(mnist, tmp_path):
    """The int8 ONNX file is quantized from the float conversion: after the float export it takes that one's
    bytes instead of converting again, and the file is the one a fresh conversion gives; a changed weight
    converts afresh."""
    from conftest import tiny_model

    from lenet_edge.data import calibration_images
    from lenet_edge.exporters import onnx as onnx_exporter

    model, _ = tiny_model(mnist)
    calibration = calibration_images(mnist, 100, 0)
    onnx_exporter._LAST.clear()
    onnx_exporter.export(model, tmp_path / "fresh.onnx", calibration, "int8")
    onnx_exporter.export(model, tmp_path / "fp32.onnx", calibration, "none")
    assert len(onnx_exporter._LAST) == 1
    onnx_exporter.export(model, tmp_path / "reused.onnx", calibration, "int8")
    assert (tmp_path / "reused.onnx").read_bytes() == (tmp_path / "fresh.onnx").read_bytes()
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights([kernel, bias + 1.0])
    assert onnx_exporter._fingerprint(model) not in onnx_exporter._LAST
