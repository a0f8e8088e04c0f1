"""The phone's GPU: every .tflite judged on LiteRT's GPU accelerator (WebGPU over Vulkan; here Mesa's lavapipe), in
fp16 arithmetic and with fp32 enforced. Where no Vulkan device is found the rows are not run and verify says so;
under CI=true the GPU tests fail instead of skipping. What runs the accelerator is in the slow tier (seconds per
file on a CPU Vulkan driver); what only parses, gates or finds no device is fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import require, row_key, tiny_model

from lenet_edge.cli import main
from lenet_edge.formats import FORMATS, GPU_FP16, PRECISIONS, Gate
from lenet_edge.runtimes import open_runner
from lenet_edge.runtimes.litert_gpu import NO_DEVICE, GpuUnavailable, compile_log
from lenet_edge.verify import DEFAULT_GATES, gpu_gate, gpu_sample

NO_DRIVER = {"VK_DRIVER_FILES": "/nonexistent/icd.json", "VK_ICD_FILENAMES": "/nonexistent/icd.json"}
TFLITE = [f.name for f in FORMATS if f.runtime == "litert"]

# What LiteRT 2.3 printed compiling a graph with an int64 ArgMax for the GPU (CPU fallback on)
ARGMAX_LOG = """\
I0000 00:00:1796666120.416631   31311 environment.cc:532] Selected adapter: llvmpipe (LLVM 15.0.6, 256 bits), \
arch=software, vendor=mesa, backend=Vulkan, adapterType=CPU / Software
INFO: [delegate_webgpu.cc:363] Created a WebGPU environment.
ERROR: Following operations are not supported by GPU delegate:
ARG_MAX: Tensor type(INT64) is not supported. ArgMax
CAST: Tensor type(INT64) is not supported. ArgMax
5 operations will run on the GPU, and the remaining 5 operations will run on the CPU.
I0000 00:00:1796666120.450005   31311 delegate_kernel.cc:984] Initializing WebGPU-based API from graph.
"""


def _verify(bundle: Path, data: Path, *extra: str) -> tuple[int, dict, dict[str, dict]]:
    """`lenet-edge verify`: (its exit code, report.json, its rows by name)."""
    code = main(["verify", str(bundle), "--data", str(data), *extra])
    report = json.loads((bundle / "report.json").read_text())
    return code, report, {row_key(row): row for row in report["verify"]}


def _require_gpu(report: dict) -> None:
    """Skip (fail under CI=true) where this machine has no Vulkan device for the accelerator."""
    missing = [line for line in report["verify_info"]["not_run"] if NO_DEVICE in line]
    require(not missing, f"{missing[0] if missing else ''}: LiteRT's GPU rows could not run here")


# --- fast: no GPU run --------------------------------------------------------------------------------------------


def test_compile_log_names_the_adapter_and_every_op_left_to_the_cpu():
    found = compile_log(ARGMAX_LOG)
    assert found["adapter"].startswith("llvmpipe (LLVM 15.0.6, 256 bits)") and "backend=Vulkan" in found["adapter"]
    assert found["fallback"] == [
        "ARG_MAX: Tensor type(INT64) is not supported. ArgMax",
        "CAST: Tensor type(INT64) is not supported. ArgMax",
    ]
    assert (found["ops_on_gpu"], found["ops_on_cpu"]) == (5, 5)
    assert compile_log("Selected adapter: x\nCreated a WebGPU environment.")["fallback"] == []


def test_fp16_arithmetic_has_a_gate_of_its_own_and_a_quantized_file_keeps_its_looser_one():
    fp16 = PRECISIONS[GPU_FP16].verify
    assert gpu_gate(DEFAULT_GATES, "fp32", "fp16") == fp16  # a float file is held to fp16 arithmetic's gate
    assert gpu_gate(DEFAULT_GATES, "fp32", "fp32") == PRECISIONS["fp32"].verify  # fp32 enforced: the file's own
    int8 = gpu_gate(DEFAULT_GATES, "int8", "fp16")
    assert int8 == Gate(min_agreement=PRECISIONS["int8"].verify.min_agreement, max_drop_pt=0.3)
    flipping = gpu_gate(DEFAULT_GATES, "fp16", "fp16")
    assert flipping.failures(0.999, 1e-3, 0.0) and not flipping.failures(0.9995, 1e-3, 0.0)  # 10 flips of 10,000 fail


def test_the_gpu_sample_is_seeded_sorted_and_all_on_request():
    first, again = gpu_sample(10_000, 1000), gpu_sample(10_000, 1000)
    assert len(first) == 1000 and (first == again).all() and (np.diff(first) > 0).all()
    assert (gpu_sample(10_000, -1) == np.arange(10_000)).all() and len(gpu_sample(10_000, 10_000)) == 10_000


@pytest.mark.parametrize("profile", ["host", "mobile"])
def test_bench_never_times_the_software_gpu(tiny_bundle, profile):
    """lavapipe's time is not a phone GPU's: no bench combination runs LiteRT's GPU accelerator."""
    from lenet_edge.bench import plan
    from lenet_edge.manifest import read_manifest
    from lenet_edge.runtimes.litert_gpu import LiteRTGpuRunner

    combos = plan(read_manifest(tiny_bundle), profile, have_tf=True, browser=True)
    assert combos and "litert-gpu" not in {combo.runtime for combo in combos}
    with pytest.raises(NotImplementedError, match="not a phone GPU's"):
        LiteRTGpuRunner.time_calls(None, np.zeros((1, 28, 28), np.uint8), 0.1)  # type: ignore[arg-type]


def test_without_a_vulkan_device_the_gpu_rows_say_so_and_nothing_else_changes(
    tiny_bundle, loaded_once, tmp_path, monkeypatch, capsys
):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    for name, value in NO_DRIVER.items():  # Vulkan's loader finds no driver: no adapter for Dawn
        monkeypatch.setenv(name, value)
    with pytest.raises(GpuUnavailable, match=r"no Vulkan device for LiteRT's GPU accelerator.*mesa-vulkan-drivers"):
        open_runner("litert-gpu", bundle / "lenet5_fp32.tflite")
    code, report, rows = _verify(bundle, loaded_once, "--gpu-digits", "50")
    assert code == 0 and all(row["status"] == "pass" for row in rows.values())
    assert not [row for row in rows.values() if row["runtime"] == "litert-gpu"]
    line = f"{2 * len(TFLITE)} LiteRT GPU rows: {NO_DEVICE}"
    assert any(note.startswith(line) and "mesa-vulkan-drivers" in note for note in report["verify_info"]["not_run"])
    assert f"LiteRT GPU: {2 * len(TFLITE)} rows not run here: {NO_DEVICE}" in capsys.readouterr().out
    markdown = (bundle / "report.md").read_text()
    assert f"Not run here: {line}" in markdown and "## The phone's GPU" in markdown


# --- slow: on LiteRT's GPU accelerator ---------------------------------------------------------------------------


def test_every_tflite_passes_on_the_gpu_whole_in_both_arithmetics(trained_bundle, mnist_dir, tmp_path):
    """`lenet-edge verify` of what `lenet-edge run` writes (run leaves the GPU rows to verify): every .tflite
    judged on the GPU beside the CPU, and the file to ship for it."""
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    code, report, rows = _verify(bundle, mnist_dir)
    _require_gpu(report)
    assert code == 0
    for fmt in TFLITE:
        for setting in ("fp16", "fp32"):
            row = rows[f"{fmt} in litert-gpu ({setting})"]
            assert row["status"] == "pass" and row["whole_graph"] is True and row["left_to_cpu"] == [], row
            assert row["images"] == 1000 and row["agreement"] >= 0.995
    for fmt in ("tflite-fp32", "tflite-fp16"):  # fp16 arithmetic moves a float file's answers, fp32 does not
        fp16, fp32 = rows[f"{fmt} in litert-gpu (fp16)"], rows[f"{fmt} in litert-gpu (fp32)"]
        assert fp16["max_abs_dp"] > 2 * fp32["max_abs_dp"]
    assert rows["tflite-fp32 in litert-gpu (fp32)"]["max_abs_dp"] <= 1e-5
    markdown = (bundle / "report.md").read_text()
    assert "## The phone's GPU: LiteRT's GPU accelerator" in markdown and "software Vulkan device" in markdown
    assert "**For the GPU: ship `lenet5_fp16.tflite`**" in markdown and "Accelerator.GPU" in markdown


def _flipping_bundle(mnist, folder: Path) -> Path:
    """The tiny linear model with 500 added to every logit: nothing changes in exact arithmetic (softmax ignores a
    shift), but fp16 keeps logits near 500 only to 0.25, so the closest calls flip."""
    from lenet_edge.bundle_writer import write_bundle
    from lenet_edge.formats import BY_NAME

    model, training = tiny_model(mnist)
    layer = model.get_layer("probabilities")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + 500.0])
    out = folder / "export"
    write_bundle(out, model, training, mnist, [BY_NAME["tflite-fp32"]], calibration_count=50)
    return out


@pytest.mark.slow
def test_a_model_whose_answers_flip_under_fp16_fails_on_the_gpu(mnist, raw_mnist_dir, tmp_path):
    bundle = _flipping_bundle(mnist, tmp_path)
    code, report, rows = _verify(bundle, raw_mnist_dir, "--gpu-digits", "1000")
    _require_gpu(report)
    fp16, fp32 = rows["tflite-fp32 in litert-gpu (fp16)"], rows["tflite-fp32 in litert-gpu (fp32)"]
    assert code == 1 and fp16["status"] == "fail" and "agreement" in fp16["reason"], fp16
    assert fp32["agreement"] >= 0.9995  # the same file in fp32 answers as Keras: fp16 arithmetic did it


@pytest.mark.slow
def test_a_graph_the_gpu_cannot_take_whole_names_the_ops_left_to_the_cpu(tmp_path, mnist):
    from lenet_edge.tensorflow_loader import import_tensorflow

    tf = import_tensorflow()

    class WithArgMax(tf.Module):  # the digit's index (int64 ArgMax, which LiteRT's GPU refuses) added to a logit
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")])
        def __call__(self, image):
            flat = tf.reshape(image, [-1, 784]) / 255.0
            logits = flat[:, 300:310] + tf.cast(tf.argmax(flat, axis=1), tf.float32)[:, None] / 784.0
            return {"probabilities": tf.nn.softmax(logits)}

    module = WithArgMax()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    path = tmp_path / "argmax.tflite"
    path.write_bytes(converter.convert())
    try:
        runner = open_runner("litert-gpu", path)
    except GpuUnavailable as exc:
        require(False, str(exc))
    assert runner.whole_graph is False
    assert any(op.startswith("ARG_MAX: ") for op in runner.op_profile()["fallback"])
    digits = mnist.x_test[:20]
    assert (runner.predict(digits).argmax(1) == open_runner("litert", path).predict(digits).argmax(1)).all()
