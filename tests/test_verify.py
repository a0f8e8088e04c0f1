"""verify: a good bundle passes, and every kind of wrong artifact is caught with exit code 1. Most of it on
tiny_bundle (a real bundle of a model that was never trained); what is about LeNet-5's trained layers on
trained_bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json, row_key

from lenet_edge.cli import main
from lenet_edge.console import STATUS_ICON
from lenet_edge.exporters import tflite
from lenet_edge.files import write_json
from lenet_edge.report.markdown import _verify_section
from lenet_edge.runtimes import open_runner
from lenet_edge.verify import verify_bundle

ROW_KEYS = {
    "format", "runtime", "status", "accuracy", "delta_vs_keras_pt", "agreement", "max_abs_dp", "mean_abs_dp", "reason"
}  # fmt: skip


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    return out


def _resign(bundle: Path, fmt: str) -> None:
    """Rewrite the manifest's sha256 and size of ``fmt`` to match its file, as a careless re-export would."""
    manifest = manifest_json(bundle)
    for entry in manifest["artifacts"]:
        if entry["format"] == fmt:
            blob = (bundle / entry["file"]).read_bytes()
            entry["bytes"], entry["sha256"] = len(blob), hashlib.sha256(blob).hexdigest()
    write_json(bundle / "manifest.json", manifest)


def _verify(bundle: Path, data: Path, *extra: str) -> tuple[int, dict[str, dict]]:
    """`lenet-edge verify` of ``bundle`` on the MNIST at ``data``: (its exit code, its rows by format)."""
    code = main(["verify", str(bundle), "--data", str(data), *extra])
    report = json.loads((bundle / "report.json").read_text())
    return code, {row_key(row): row for row in report["verify"]}


def test_good_bundle_passes_with_the_promised_report(bundle_copy, raw_mnist_dir, tmp_path):
    code, rows = _verify(bundle_copy, raw_mnist_dir, "--json", str(tmp_path / "rows.json"))
    assert code == 0
    assert set(rows) == {
        "keras",
        "tflite-fp32",
        "tflite-fp16",
        "tflite-dynamic",
        "tflite-int8",
        "tflite-rgb-int8",
        "onnx-fp32",
        "onnx-int8",
        "tflite-fp32 in tflm",
        "tflite-int8 in tflm",
        "tflite-int8 in c",
    }
    for key, row in rows.items():
        assert set(row) >= ROW_KEYS and row["status"] == "pass", row
        if " in " not in key and key != "tflite-rgb-int8":  # the same model again: no second confusion matrix
            assert len(row["per_class_accuracy"]) == 10 and np.asarray(row["confusion"]).sum() == 10_000
    for fmt in ("tflite-fp32", "onnx-fp32"):
        assert rows[fmt]["agreement"] == 1.0 and rows[fmt]["max_abs_dp"] <= 1e-5
    assert json.loads((tmp_path / "rows.json").read_text()) == list(rows.values())
    markdown = (bundle_copy / "report.md").read_text()
    assert "| Format | Runtime | Status | Size KB | Accuracy | Δ vs Keras (pt) | Agreement | max\\|Δp\\| |" in markdown
    assert (bundle_copy / "verify_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "![confusion matrices](verify_confusion.png)" in markdown  # drawn by this run: shown


def test_int8_calibrated_on_blank_images_fails_the_gate(bundle_copy, raw_mnist_dir):
    import keras

    model = keras.saving.load_model(bundle_copy / "lenet5.keras")
    blank = np.zeros((20, 28, 28), np.uint8)
    blank[:, 0, 0] = 255  # one lit pixel keeps the input range 0-255, so only the activations are miscalibrated
    tflite.export(model, bundle_copy / "lenet5_int8.tflite", blank, quantization="int8")
    _resign(bundle_copy, "tflite-int8")
    code, rows = _verify(bundle_copy, raw_mnist_dir)
    assert code == 1
    assert rows["tflite-int8"]["status"] == "fail" and "agreement" in rows["tflite-int8"]["reason"]
    assert rows["tflite-fp32"]["status"] == "pass"


def test_float_model_with_perturbed_weights_fails_the_gate(bundle_copy, raw_mnist_dir):
    import keras

    model = keras.saving.load_model(bundle_copy / "lenet5.keras")
    kernel = next(layer for layer in model.layers if layer.weights).kernel  # the first layer with weights
    kernel.assign(kernel.numpy() * 1.001)  # a 0.1% nudge: invisible in accuracy, not in |Δp|
    tflite.export(model, bundle_copy / "lenet5_fp32.tflite", np.zeros((1, 28, 28), np.uint8))
    _resign(bundle_copy, "tflite-fp32")
    code, rows = _verify(bundle_copy, raw_mnist_dir)
    assert code == 1
    assert rows["tflite-fp32"]["status"] == "fail" and "max|Δp|" in rows["tflite-fp32"]["reason"]


def test_tampered_file_is_caught_by_its_checksum(bundle_copy, raw_mnist_dir):
    path = bundle_copy / "lenet5_fp32.onnx"
    blob = bytearray(path.read_bytes())
    blob[-200] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(blob))
    code, rows = _verify(bundle_copy, raw_mnist_dir)
    assert code == 1
    assert rows["onnx-fp32"]["status"] == "fail" and "sha256" in rows["onnx-fp32"]["reason"]


def test_manifest_that_misstates_the_input_breaks_the_app_contract(bundle_copy, raw_mnist_dir):
    manifest = manifest_json(bundle_copy)
    entry = next(e for e in manifest["artifacts"] if e["format"] == "tflite-int8")
    entry["input"]["dtype"] = "float32"
    write_json(bundle_copy / "manifest.json", manifest)
    code, rows = _verify(bundle_copy, raw_mnist_dir)
    assert code == 1 and "app contract" in rows["tflite-int8"]["reason"]


def test_unloadable_artifact_is_an_error_row(bundle_copy, raw_mnist_dir):
    (bundle_copy / "lenet5_fp16.tflite").write_bytes(b"not a flatbuffer at all")
    _resign(bundle_copy, "tflite-fp16")
    code, rows = _verify(bundle_copy, raw_mnist_dir)
    assert code == 1 and rows["tflite-fp16"]["status"] == "error" and rows["tflite-fp16"]["reason"]


@pytest.mark.parametrize(
    ("fmt", "other", "found"),
    [("tflite-fp16", "lenet5_fp32.tflite", "fp32"), ("tflite-dynamic", "lenet5_fp16.tflite", "fp16"),
     ("onnx-int8", "lenet5_fp32.onnx", "fp32"), ("onnx-fp32", "lenet5_int8.onnx", "int8")],
)  # fmt: skip
def test_verify_judges_the_file_not_its_label(bundle_copy, mnist, fmt, other, found):
    """A row pointing at another precision's file, its checksum made to match (a mislabelled re-export), fails:
    the precision is read from the file itself."""
    manifest = manifest_json(bundle_copy)
    entry = next(e for e in manifest["artifacts"] if e["format"] == fmt)
    entry["file"] = other
    write_json(bundle_copy / "manifest.json", manifest)
    _resign(bundle_copy, fmt)
    rows = {row.format: row for row in verify_bundle(bundle_copy, mnist)["rows"]}
    precision = next(e["precision"] for e in manifest["artifacts"] if e["format"] == fmt)
    assert rows[fmt].status == "fail"
    assert f"the file is {found}, not the {precision} its row ({fmt}) claims" in rows[fmt].reason
    assert all(row.status == "pass" for name, row in rows.items() if name != fmt)


def test_runners_agree_with_each_other_on_real_digits(tiny_bundle, mnist):
    digits = mnist.x_test[:500]
    keras_probs = open_runner("keras", tiny_bundle / "lenet5.keras").predict(digits)
    for runtime, file in (("litert", "lenet5_fp32.tflite"), ("onnxruntime", "lenet5_fp32.onnx")):
        for threads in (1, 2):
            probs = open_runner(runtime, tiny_bundle / file, threads=threads).predict(digits, batch_size=128)
            np.testing.assert_allclose(probs, keras_probs, atol=1e-5)
    int8 = open_runner("litert", tiny_bundle / "lenet5_int8.tflite")
    assert int8.input.dtype == "uint8" and np.mean(int8.predict(digits).argmax(1) == keras_probs.argmax(1)) > 0.98


def test_stored_reference_serves_a_device_without_keras(tiny_bundle, mnist):
    result = verify_bundle(tiny_bundle, mnist, use_keras=False)
    formats = [row.format for row in result["rows"] if row.runtime not in ("tflm", "c")]
    assert "keras" not in formats and len(formats) == 7
    assert all(row.status == "pass" for row in result["rows"])
    assert "stored" in result["reference"]


def test_gate_flags_reach_the_gates(bundle_copy, raw_mnist_dir):
    code, rows = _verify(bundle_copy, raw_mnist_dir, "--quant-min-agreement", "100", "--fp16-max-dp", "1e-9")
    assert code == 1  # demanding int8 agree with Keras on every image and exact fp16 cannot pass
    for fmt in ("tflite-int8", "onnx-int8"):
        assert rows[fmt]["status"] == "fail" and "agreement" in rows[fmt]["reason"]
    assert rows["tflite-fp16"]["status"] == "fail" and rows["tflite-fp32"]["status"] == "pass"


def test_deployment_graph_is_the_same_lenet5(untrained_lenet, mnist):
    """Pools as fixed depthwise convolutions, a constant reshape, the input scale folded into C1: the same
    arithmetic on the same raw pixels, and the same parameters (the rewrite owes nothing to training: LeNet-5 as
    built, seeded)."""
    import keras

    from lenet_edge.model import count_params, deployment_graph

    model = keras.saving.load_model(untrained_lenet, compile=False)
    deployed = deployment_graph(model)
    kinds = {type(layer).__name__ for layer in deployed.layers}
    assert {"AveragePooling2D", "Flatten", "Rescaling"}.isdisjoint(kinds) and "DepthwiseConv2D" in kinds
    assert count_params(deployed) == count_params(model)  # the fixed pooling weights are not parameters
    images = mnist.x_test[:500].reshape(-1, 28, 28, 1).astype(np.float32)
    np.testing.assert_allclose(deployed.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_every_tflite_export_runs_in_one_xnnpack_partition(trained_bundle):
    rows = {row_key(row): row for row in json.loads((trained_bundle / "report.json").read_text())["verify"]}
    dynamic_shape = {"SHAPE", "STRIDED_SLICE", "PACK", "AVERAGE_POOL_2D"}
    for fmt in ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-rgb-int8"):
        assert rows[fmt]["partitions"] == 1, rows[fmt]
        left = {item.split(" ")[0] for item in rows[fmt]["left_to_cpu"]}
        assert not left & dynamic_shape
        # int8: only the uint8 input's requantization and the int8 softmax at the edges stay on the CPU
        assert left <= ({"QUANTIZE", "SOFTMAX"} if fmt.endswith("int8") else set()), left
    assert any("Tanh" in node for node in rows["onnx-int8"]["float_nodes"])  # tanh has no int8 kernel in ORT
    assert rows["onnx-fp32"]["float_nodes"] == []
    assert "keras" not in rows  # run leaves the Keras model to `lenet-edge verify`: its answers are the reference
    assert "The Keras model is not run again" in (trained_bundle / "report.md").read_text()


def test_report_never_links_a_chart_the_run_did_not_redraw(bundle_copy, mnist, monkeypatch, capsys):
    """A verify that cannot draw (no matplotlib on a runtime-only install) leaves the earlier run's chart file
    alone but no longer shows it in report.md, and says why (a verify that draws links it: the test above)."""
    import lenet_edge.cli

    def no_matplotlib(*args):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(lenet_edge.steps, "plot_confusion_matrices", no_matplotlib)
    stale = bundle_copy / "verify_confusion.png"
    stale.write_bytes(b"an earlier run's chart")
    assert main(["verify", str(bundle_copy), "--data", str(mnist.path)]) == 0
    report = (bundle_copy / "report.md").read_text()
    assert "](verify_confusion.png)" not in report
    assert "verify_confusion.png was not redrawn by the last run: matplotlib is not installed here" in report
    assert stale.read_bytes() == b"an earlier run's chart"
    assert "verify_confusion.png not redrawn" in capsys.readouterr().out


def test_run_judges_the_microcontroller_rows_on_a_sample_and_says_so(bundle_copy, mnist):
    """run and export's verify: TFLite Micro (one digit a call) and the C model on the first N test digits, the
    row and the report saying how many; every other row on all 10,000."""
    result = verify_bundle(bundle_copy, mnist, micro_digits=300)
    rows = {row_key(row.to_dict()): row for row in result["rows"]}
    assert {key: row.images for key, row in rows.items() if row.images} == {
        "tflite-fp32 in tflm": 300,
        "tflite-int8 in tflm": 300,
        "tflite-int8 in c": 300,  # the C model, compared byte for byte with TFLite Micro on the same digits
    }
    assert all(row.status == "pass" for row in rows.values())
    tflm = rows["tflite-int8 in tflm"]
    assert tflm.agreement * 300 == pytest.approx(round(tflm.agreement * 300))  # judged on 300 digits
    markdown = "\n".join(_verify_section(list(rows.values()), result))
    assert "| tflite-int8 | tflm (first 300 digits) |" in markdown and "| tflite-int8 | litert |" in markdown


def test_every_row_judged_is_printed_and_the_layer_report_after_them(bundle_copy, raw_mnist_dir, capsys):
    """What a user reads: one line for every row verify judged (none lost while a converter silences the
    process's output for the layer report), then the layer report's lines."""
    code, rows = _verify(bundle_copy, raw_mnist_dir, "--layers")
    assert code == 0
    out = capsys.readouterr().out
    printed = [line for line in out.splitlines() if line.lstrip().startswith(tuple(STATUS_ICON.values()))]
    assert len(printed) == len(rows)
    layer_lines = [index for index, line in enumerate(out.splitlines()) if line.startswith("layer errors: ")]
    assert len(layer_lines) == 2  # tflite-int8 and onnx-int8 (the RGB variant is measured as the int8 model)
    assert min(layer_lines) > max(out.splitlines().index(line) for line in printed)


def test_two_cores_judge_every_row_as_one_does(bundle_copy, mnist, monkeypatch):
    """With two cores a helper process judges some files while this one judges the rest and does the caller's
    work alongside: the same rows, in the manifest's order, as one process alone gives, and the work's result."""
    import lenet_edge.verify as verify

    assert verify.usable_cores() > 1  # CI's machines have two cores: the helper is used
    two = verify_bundle(bundle_copy, mnist, micro_digits=200, alongside=lambda: "done alongside")
    monkeypatch.setattr(verify, "usable_cores", lambda: 1)
    one = verify_bundle(bundle_copy, mnist, micro_digits=200)

    def same(rows):
        return [{k: v for k, v in row.to_dict().items() if k != "seconds"} for row in rows]

    assert same(two["rows"]) == same(one["rows"])
    assert [row_key(row.to_dict()) for row in two["rows"]][:3] == ["keras", "tflite-fp32", "tflite-fp32 in tflm"]
    assert two["alongside"] == "done alongside" and one["alongside"] is None


def _same(rows: list) -> list[dict]:
    return [{k: v for k, v in row.to_dict().items() if k != "seconds"} for row in rows]


@pytest.mark.slow  # writes two bundles
def test_rows_judged_while_export_writes_are_those_a_verify_after_it_gives(mnist, tmp_path):
    """run and export begin verify while the files are written (a helper judges each one as it comes); verify
    takes those rows, the same as judging the finished bundle gives. A file changed after it was judged early
    is judged again, and fails."""
    from conftest import tiny_model

    from lenet_edge.bundle_writer import write_bundle
    from lenet_edge.formats import FORMATS
    from lenet_edge.verify import EarlyVerify

    model, training = tiny_model(mnist)
    bundle = tmp_path / "bundle"
    settings = {"gpu_digits": 0, "micro_digits": 200}
    early = EarlyVerify.begin(mnist, None, None, **settings)
    assert early is not None  # two cores
    try:
        write_bundle(bundle, model, training, mnist, list(FORMATS), calibration_count=200, watcher=early)
        assert set(early.judged) == {fmt.name for fmt in FORMATS if fmt.name != "keras"}
        with_early = verify_bundle(bundle, mnist, use_keras=False, early=early, **settings)
    finally:
        early.close()
    after = verify_bundle(bundle, mnist, use_keras=False, **settings)
    assert _same(with_early["rows"]) == _same(after["rows"]) and all(r.status == "pass" for r in after["rows"])

    early = EarlyVerify.begin(mnist, None, None, **settings)
    assert early is not None
    try:
        write_bundle(bundle, model, training, mnist, list(FORMATS), calibration_count=200, watcher=early)
        with (bundle / "lenet5_fp16.tflite").open("ab") as handle:
            handle.write(b"\0")  # after it was judged early
        rows = verify_bundle(bundle, mnist, use_keras=False, early=early, **settings)["rows"]
    finally:
        early.close()
    fp16 = next(row for row in rows if row.format == "tflite-fp16")
    assert fp16.status != "pass" and "integrity" in fp16.reason
