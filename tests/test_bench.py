"""bench: the promised rows for every artifact and runtime, in both profiles, and a TensorFlow-free device."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import manifest_json, require

from lenet_edge.bench import ROW_KEYS, harness_overhead, plan
from lenet_edge.cli import main
from lenet_edge.files import write_json
from lenet_edge.formats import FORMATS
from lenet_edge.manifest import read_manifest
from lenet_edge.runtimes import time_calls
from lenet_edge.runtimes.wasm import browser_missing

REPO = Path(__file__).resolve().parents[1]


def test_mobile_profile_rows_for_every_artifact(small_bundle, mnist_dir, tmp_path):
    reason = browser_missing()
    require(reason is None, f"the browser rows: {reason}")
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)
    out = tmp_path / "out.json"
    args = ["bench", str(bundle), "--data", str(mnist_dir), "--profile", "mobile", "--seconds", "0.05"]
    assert main([*args, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows == json.loads((bundle / "bench.json").read_text())
    in_browser = {(f.name, f.browser, "wasm") for f in FORMATS}  # onnxruntime-web and LiteRT.js in Chromium
    assert {(r["format"], r["runtime"], r["delegate"]) for r in rows} == {
        ("keras", "keras", "tf.function"), ("keras", "keras", "predict_on_batch"),
        ("tflite-fp32", "litert", "xnnpack"), ("tflite-fp16", "litert", "xnnpack"),
        ("tflite-dynamic", "litert", "xnnpack"), ("tflite-int8", "litert", "xnnpack"),
        ("onnx-fp32", "onnxruntime", "cpu"), ("onnx-int8", "onnxruntime", "cpu"),
    } | in_browser  # fmt: skip
    for row in rows:
        assert tuple(row) == ROW_KEYS
        assert (row["profile"], row["threads"], row["batch"]) == ("mobile", 1, 1)
        assert 0 < row["p50_us"] <= row["p90_us"] <= row["p99_us"]
        assert row["load_ms"] > 0 and row["first_ms"] > 0 and row["size_bytes"] > 0
        assert row["rss_mb"] is None if row["delegate"] == "wasm" else row["rss_mb"] > 10
    markdown = (bundle / "report.md").read_text()
    assert "## Speed: mobile profile" in markdown and "not a phone" in markdown
    assert (
        "| Format | Runtime | threads | p50 µs | p99 µs | img/s @256 | load ms | size KB | speed-up vs Keras |"
        in markdown
    )
    assert "| onnx-int8 | onnxruntime-web (WASM, Chromium) | 1 |" in markdown and "5 µs steps" in markdown
    assert (bundle / "bench_mobile.png").read_bytes()[:4] == b"\x89PNG"


def test_host_profile_covers_threads_batches_and_delegates(small_bundle, mnist_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)
    manifest = manifest_json(bundle)
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] in ("tflite-int8", "onnx-fp32")]
    write_json(bundle / "manifest.json", manifest)
    assert main(["bench", str(bundle), "--data", str(mnist_dir), "--seconds", "0.02", "--no-browser"]) == 0
    rows = json.loads((bundle / "bench.json").read_text())
    cores = len(os.sched_getaffinity(0))
    expected = {
        (fmt, delegate, threads, batch)
        for fmt, delegate in (("tflite-int8", "xnnpack"), ("tflite-int8", "none"), ("onnx-fp32", "cpu"))
        for threads in {1, cores}
        for batch in (1, 32, 256)
    }
    assert {(r["format"], r["delegate"], r["threads"], r["batch"]) for r in rows} == expected
    by_batch = {r["batch"]: r for r in rows if r["format"] == "onnx-fp32" and r["threads"] == 1}
    assert by_batch[256]["throughput_ips"] > by_batch[1]["throughput_ips"]  # batching amortises the call


def test_plan_follows_the_manifest(small_bundle):
    manifest = read_manifest(small_bundle)
    mobile = plan(manifest, "mobile", have_tf=False)
    assert {c.format for c in mobile} == {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx-fp32",
                                          "onnx-int8"}  # fmt: skip
    assert all(c.threads == 1 for c in mobile)
    assert len(plan(manifest, "host", have_tf=True)) > len(mobile)


def test_time_calls_is_time_bounded():
    times = time_calls(lambda: None, seconds=0.05)
    assert len(times) >= 20 and (times >= 0).all()


GUARD = """
import sys
from lenet_edge.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
assert not heavy, heavy
sys.exit(code)
"""


def test_a_tensorflow_free_install_runs_verify_and_bench(small_bundle, mnist_dir, tmp_path, runtime_only_python):
    python = runtime_only_python
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert probe.stdout.strip() == "None"
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)
    for command in (["verify", str(bundle)], ["bench", str(bundle), "--profile", "mobile", "--seconds", "0.05"]):
        done = subprocess.run([str(python), "-c", GUARD, *command, "--data", str(mnist_dir)],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((bundle / "bench.json").read_text())
    assert len(rows) == 6 and "keras" not in {r["runtime"] for r in rows}  # no TensorFlow, no Keras rows
    report = json.loads((bundle / "report.json").read_text())
    assert "skipped" in report["bench"]["mobile"]["info"]["keras"]
    assert "stored at export" in report["verify_info"]["reference"]


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf"])
def test_bench_needs_positive_finite_seconds(small_bundle, mnist_dir, capsys, seconds):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(small_bundle), "--data", str(mnist_dir), "--seconds", seconds])
    assert exit_.value.code == 2
    assert f"argument --seconds: {seconds} is not a number from 0.001 to 3600" in capsys.readouterr().err


def test_harness_check_compares_with_bare_runtime_loops(small_bundle, mnist):
    for file, runtime in (("lenet5_fp32.tflite", "litert"), ("lenet5_fp32.onnx", "onnxruntime")):
        check = harness_overhead(small_bundle / file, runtime, mnist.x_test[:1], rounds=2, seconds=0.05)
        assert check["harness_p50_us"] > 0 and check["bare_us"] > 0
        assert check["ratio"] == check["harness_p50_us"] / check["bare_us"]
