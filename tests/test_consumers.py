"""Every export in the consumers people deploy with, not only in our own runner (`lenet-edge verify --consumers`):
TFLite Micro, MediaPipe's ImageClassifier, OpenVINO (default settings and its bf16 inference precision), tract,
the onnx.reference evaluator and the page's in-browser runtimes must each read every file they take and answer the
test digits as the file's own runtime does; the files they do not take are refused for the reason the table
gives. They are the `consumers` extra (`make setup` installs it); under CI=true a missing one fails."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import manifest_json, require, slow_fixture

from lenet_edge.cli import main
from lenet_edge.consumers import CONSUMERS, MIN_AGREEMENT, consumers_table
from lenet_edge.files import write_json
from lenet_edge.formats import BY_NAME
from lenet_edge.manifest import read_manifest
from lenet_edge.runtimes import open_runner

DIGITS = 1000
NATIVE = [consumer for consumer in CONSUMERS if consumer.browser is None]
IN_BROWSER = [consumer for consumer in CONSUMERS if consumer.browser is not None]
# what a consumer does not take, by design: (consumer, format)
INHERENT = {("TFLite Micro", "tflite-fp16"), ("TFLite Micro", "tflite-dynamic")} | {
    ("MediaPipe", fmt) for fmt in ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8")
}


@pytest.fixture(scope="module")
def consumers_installed() -> None:
    for consumer in NATIVE:
        reason = consumer.missing()
        require(reason is None, f"{consumer.name}: {reason} (pip install '.[consumers]')")


@slow_fixture(scope="module")
def chromium_ready() -> None:
    for consumer in IN_BROWSER:
        reason = consumer.missing()
        require(reason is None, f"{consumer.name}: {reason}")


def _cells(table: dict) -> dict[tuple[str, str], dict]:
    return {(row["consumer"], row["format"]): row for row in table["rows"]}


def test_every_export_answers_alike_in_every_consumer_that_takes_it(consumers_installed, tiny_bundle, mnist):
    table = consumers_table(tiny_bundle, read_manifest(tiny_bundle), mnist, images=DIGITS, consumers=NATIVE)
    exports = [a["format"] for a in manifest_json(tiny_bundle)["artifacts"] if a["format"] != "keras"]
    cells = _cells(table)
    expected = {(c.name, fmt) for fmt in exports for c in NATIVE if c.family == BY_NAME[fmt].family}
    assert set(cells) == expected and table["images"] == DIGITS
    for (consumer, fmt), row in cells.items():
        if (consumer, fmt) in INHERENT:  # refused, with the reason the file's kind gives and the consumer's words
            assert row["status"] == "inherent" and "(it says: " in row["reason"], row
            continue
        assert row["status"] == "pass" and row["agreement"] >= MIN_AGREEMENT, (consumer, fmt, row)
        assert 0.5 < row["accuracy"] <= 1.0, (consumer, fmt, row)


def test_mediapipe_classifies_rgb_images_exactly_as_litert(consumers_installed, tiny_bundle, mnist):
    """The MediaPipe-ready file: MediaPipe's ImageClassifier, fed RGB images, reads the labels and the
    normalisation from the file's own metadata and scores as the file does in LiteRT, to the last bit."""
    from lenet_edge.consumers import _mediapipe

    path = tiny_bundle / BY_NAME["tflite-rgb-int8"].file
    digits = mnist.x_test[:500]
    scores = _mediapipe(path, digits)
    np.testing.assert_array_equal(scores, open_runner("litert", path).predict(digits))
    gray = open_runner("litert", tiny_bundle / BY_NAME["tflite-int8"].file).predict(digits)
    assert np.mean(scores.argmax(1) == gray.argmax(1)) >= 0.99  # the same model as the gray int8 file


def test_mediapipe_reads_the_trained_model_at_99_percent(consumers_installed, trained_bundle, mnist):
    """What an app gets: the trained model's MediaPipe-ready file, every test digit as an RGB image through
    MediaPipe's ImageClassifier, read by label."""
    table = consumers_table(
        trained_bundle,
        read_manifest(trained_bundle),
        mnist,
        consumers=[c for c in CONSUMERS if c.name == "MediaPipe"],
    )
    row = _cells(table)[("MediaPipe", "tflite-rgb-int8")]
    assert table["images"] == 10_000 and row["status"] == "pass" and row["agreement"] == 1.0, row
    assert row["accuracy"] >= 0.99, row


def test_the_browser_runtimes_answer_alike(consumers_installed, chromium_ready, tiny_bundle, mnist):
    table = consumers_table(tiny_bundle, read_manifest(tiny_bundle), mnist, images=500, consumers=IN_BROWSER)
    cells = _cells(table)
    in_page = [fmt for fmt in BY_NAME.values() if fmt.browser]
    assert set(cells) == {(c.name, fmt.name) for c in IN_BROWSER for fmt in in_page if fmt.browser == c.browser}
    for key, row in cells.items():
        assert row["status"] == "pass" and row["agreement"] >= MIN_AGREEMENT, (key, row)


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


def test_verify_consumers_writes_the_table_into_the_report(
    consumers_installed, chromium_ready, tiny_bundle, mnist_dir, tmp_path
):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = manifest_json(bundle)
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] in ("keras", "onnx-fp32", "tflite-fp16")]
    write_json(bundle / "manifest.json", manifest)
    assert main(["verify", str(bundle), "--data", str(mnist_dir), "--consumers"]) == 0  # an inherent n/a passes
    markdown = (bundle / "report.md").read_text()
    assert "## In other consumers" in markdown and "| onnx-fp32 | ✅ pass" in markdown
    assert "| tflite-fp16 | ✅ pass" in markdown and "⚪ n/a" in markdown
    assert "**tflite-fp16 in TFLite Micro** (⚪ n/a): TFLite Micro has no float16 kernels" in markdown
    report = json.loads((bundle / "report.json").read_text())["consumers"]
    assert report["images"] == 10_000
    assert {row["consumer"] for row in report["rows"]} == {consumer.name for consumer in CONSUMERS}


def test_consumers_is_a_local_verify_option(tiny_bundle, mnist_dir, capsys):
    args = ["verify", str(tiny_bundle), "--data", str(mnist_dir), "--target", "arm64-emu", "--consumers"]
    assert main(args) == 2
    assert "--consumers: for a local verify" in capsys.readouterr().err
