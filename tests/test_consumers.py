"""The ONNX exports in the consumers people deploy with, not only in our own runner (`lenet-edge verify
--consumers`): OpenVINO (default settings and its bf16 inference precision), tract and the onnx.reference
evaluator must each read every file and answer the test digits as ONNX Runtime does. They are the `consumers`
extra (`make setup` installs it); under CI=true a missing one fails."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from conftest import manifest_json, require

from lenet_edge.cli import main
from lenet_edge.consumers import CONSUMERS, MIN_AGREEMENT, consumers_table
from lenet_edge.files import write_json
from lenet_edge.manifest import read_manifest

DIGITS = 2000


@pytest.fixture(scope="module")
def consumers_installed() -> None:
    for consumer in CONSUMERS:
        installed = importlib.util.find_spec(consumer.module) is not None
        require(installed, f"{consumer.module} is not installed: pip install '.[consumers]'")


def test_every_onnx_export_answers_alike_in_every_consumer(consumers_installed, tiny_bundle, mnist):
    table = consumers_table(tiny_bundle, read_manifest(tiny_bundle), mnist, images=DIGITS)
    onnx_formats = {a["format"] for a in manifest_json(tiny_bundle)["artifacts"] if a["runtime"] == "onnxruntime"}
    cells = {(row["format"], row["consumer"]): row for row in table["rows"]}
    assert set(cells) == {(fmt, consumer.name) for fmt in onnx_formats for consumer in CONSUMERS}
    assert table["images"] == DIGITS
    for (fmt, consumer), row in cells.items():
        assert row["status"] == "pass" and row["agreement"] >= MIN_AGREEMENT, (fmt, consumer, row)
        assert 0.5 < row["accuracy"] <= 1.0, (fmt, consumer, row)


def test_the_int8_onnx_is_uint8_per_channel_at_opset_19_with_a_float_softmax(tiny_bundle):
    """The scheme every consumer runs alike (tract scored 9.8% with a Q/DQ pair on the output, onnx.reference
    refused DequantizeLinear at opset 17, OpenVINO with AMX refused signed asymmetric activations)."""
    import onnx

    proto = onnx.load(str(tiny_bundle / "lenet5_int8.onnx"))
    assert [(opset.domain, opset.version) for opset in proto.opset_import] == [("", 19)]
    producer = {output: node for node in proto.graph.node for output in node.output}
    assert producer["probabilities"].op_type == "Softmax"  # no Q/DQ pair around the output
    zero_points = [t for t in proto.graph.initializer if t.name.endswith("zero_point")]
    assert {t.data_type for t in zero_points if list(t.dims) == []} == {onnx.TensorProto.UINT8}
    assert any(len(t.dims) == 1 and t.dims[0] > 1 for t in zero_points)  # per-channel weights
    assert not proto.graph.value_info  # a symbolic batch there keeps tract from fixing it


def test_verify_consumers_writes_the_table_into_the_report(consumers_installed, tiny_bundle, mnist_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = manifest_json(bundle)
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] in ("keras", "onnx-fp32")]
    write_json(bundle / "manifest.json", manifest)
    assert main(["verify", str(bundle), "--data", str(mnist_dir), "--consumers"]) == 0
    markdown = (bundle / "report.md").read_text()
    assert "## In other consumers" in markdown and "| onnx-fp32 | ✅ pass" in markdown
    report = json.loads((bundle / "report.json").read_text())["consumers"]
    assert report["images"] == 10_000
    assert {row["consumer"] for row in report["rows"]} == {consumer.name for consumer in CONSUMERS}


def test_consumers_is_a_local_verify_option(tiny_bundle, mnist_dir, capsys):
    args = ["verify", str(tiny_bundle), "--data", str(mnist_dir), "--target", "arm64-emu", "--consumers"]
    assert main(args) == 2
    assert "--consumers: for a local verify" in capsys.readouterr().err
