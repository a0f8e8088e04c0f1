"""bench: the promised rows for every artifact and runtime, in both profiles, and a TensorFlow-free device; the
timing loop and the harness it is checked against. The browser rows and the TensorFlow-free venv are slow; the
rest runs on tiny_bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
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


def test_mobile_profile_rows_for_every_artifact(trained_bundle, mnist_dir, tmp_path):
    reason = browser_missing()
    require(reason is None, f"the browser rows: {reason}")
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    out = tmp_path / "out.json"
    args = ["bench", str(bundle), "--data", str(mnist_dir), "--profile", "mobile", "--seconds", "0.05"]
    assert main([*args, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows == json.loads((bundle / "bench.json").read_text())
    in_browser = {(f.name, f.browser, "wasm") for f in FORMATS if f.browser}  # onnxruntime-web, LiteRT.js
    assert {(r["format"], r["runtime"], r["delegate"]) for r in rows} == {
        ("keras", "keras", "tf.function"), ("keras", "keras", "predict_on_batch"),
        ("tflite-fp32", "litert", "xnnpack"), ("tflite-fp16", "litert", "xnnpack"),
        ("tflite-dynamic", "litert", "xnnpack"), ("tflite-int8", "litert", "xnnpack"),
        ("tflite-rgb-int8", "litert", "xnnpack"),
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


def test_host_profile_covers_threads_batches_and_delegates(tiny_bundle, mnist_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
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


def test_plan_follows_the_manifest(tiny_bundle):
    manifest = read_manifest(tiny_bundle)
    mobile = plan(manifest, "mobile", have_tf=False)
    assert {c.format for c in mobile} == {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8",
                                          "tflite-rgb-int8", "onnx-fp32", "onnx-int8"}  # fmt: skip
    assert all(c.threads == 1 for c in mobile)
    assert len(plan(manifest, "host", have_tf=True)) > len(mobile)


def _sleeper(seconds: float):
    calls = []

    def call():
        calls.append(None)
        time.sleep(seconds)

    return call, calls


def test_time_calls_is_time_bounded():
    """About ``seconds`` of timed calls after a warm-up of min(0.2 s, seconds / 5), one sample per timed call,
    in nanoseconds. The upper bounds leave a second of slack for a busy machine (a sleep may oversleep)."""
    call, calls = _sleeper(0.0002)
    start = time.perf_counter()
    times = time_calls(call, seconds=0.1)
    elapsed = time.perf_counter() - start
    assert 0.1 + 0.02 <= elapsed < 0.1 + 0.02 + 1.0, elapsed  # warm-up 0.02 s, then 0.1 s timed
    assert times.dtype == np.float64 and 20 <= len(times) <= 0.1 / 0.0002 + 1
    assert (times >= 0.0002e9).all() and times.sum() <= 0.1e9 + times.max()  # ns; the last call may overrun
    assert len(calls) > len(times)  # the warm-up calls are not among the samples


def test_time_calls_honours_min_runs_and_max_runs():
    call, calls = _sleeper(0.01)  # a slow call: 20 of them take 0.2 s, far past the 0.01 s asked for
    start = time.perf_counter()
    times = time_calls(call, seconds=0.01, min_runs=20)
    assert len(times) == 20 and (times >= 0.01e9).all()
    assert len(calls) - len(times) <= 1  # the warm-up, min(0.2 s, seconds / 5), is one call at most here
    assert time.perf_counter() - start < 0.2 + 0.002 + 1.0  # stops as soon as min_runs is reached
    start = time.perf_counter()
    times = time_calls(lambda: None, seconds=60, max_runs=1000)  # a cheap call: max_runs ends it, not 60 s
    assert len(times) == 1000 and time.perf_counter() - start < 0.2 + 2.0


GUARD = """
import sys
from lenet_edge.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
assert not heavy, heavy
sys.exit(code)
"""


def test_a_tensorflow_free_install_runs_verify_and_bench(trained_bundle, mnist_dir, tmp_path, runtime_only_python):
    python = runtime_only_python
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert probe.stdout.strip() == "None"
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    for command in (["verify", str(bundle)], ["bench", str(bundle), "--profile", "mobile", "--seconds", "0.05"]):
        done = subprocess.run([str(python), "-c", GUARD, *command, "--data", str(mnist_dir)],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((bundle / "bench.json").read_text())
    assert len(rows) == len(FORMATS) and "keras" not in {r["runtime"] for r in rows}  # no TensorFlow, no Keras
    report = json.loads((bundle / "report.json").read_text())
    assert "skipped" in report["bench"]["mobile"]["info"]["keras"]
    assert "stored at export" in report["verify_info"]["reference"]
    # the microcontroller rows need tflite-micro, which the runtime-only install does not have: said, not hidden
    assert report["verify_info"]["not_run"] == ["2 TFLite Micro rows: tflite-micro is not installed here"]
    assert "Not run here: 2 TFLite Micro rows" in (bundle / "report.md").read_text()


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf"])
def test_bench_needs_positive_finite_seconds(tiny_bundle, mnist_dir, capsys, seconds):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(tiny_bundle), "--data", str(mnist_dir), "--seconds", seconds])
    assert exit_.value.code == 2
    assert f"argument --seconds: {seconds} is not a number from 0.001 to 3600" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("file", "runtime"),
    [("lenet5_fp32.tflite", "litert"), ("lenet5_int8.tflite", "litert"), ("lenet5_fp32.onnx", "onnxruntime")],
)
def test_harness_check_compares_with_bare_runtime_loops(tiny_bundle, mnist, file, runtime):
    """The harness times the runtime's own call and nothing else: its batch-1 p50 is the bare loop's per-call
    time, within 0.5-1.5×. On tiny_bundle a call takes 1.5-8 µs, so timing nothing, or adding to the timed region
    what an app does not repeat per call (a Python-level predict(): encoding, a copy, decoding, ~10 µs), lands far
    outside; the harness's own clock reads cost ~3-5%. Measured quiet: 0.94-1.05. Why 0.5 below: the rounds
    alternate harness and bare loop and medians are compared, so a co-tenant's load hits both alike, except that
    the bare loop's samples are blocks of 100 calls (0.2-0.8 ms), which a time slice lost to another process on
    this shared 2-core machine inflates more often than the harness's single calls: with both cores kept busy
    by two other processes, one measurement in nine came out at 0.54. A measurement outside the band is taken
    again, up to three times: a broken harness is outside it every time."""
    for _ in range(3):
        check = harness_overhead(tiny_bundle / file, runtime, mnist.x_test[:1], rounds=5, seconds=0.05)
        assert check["file"] == file and check["runtime"] == runtime
        assert 0.5 < check["bare_us"] < 10_000, check  # a real call of a 7,850-parameter model, in µs
        assert check["ratio"] == pytest.approx(check["harness_p50_us"] / check["bare_us"])
        if 0.5 <= check["ratio"] <= 1.5:
            break
    assert 0.5 <= check["ratio"] <= 1.5, check


def test_harness_check_is_for_in_process_runtimes(tiny_bundle, mnist):
    with pytest.raises(ValueError, match="LiteRT or ONNX Runtime"):
        harness_overhead(tiny_bundle / "lenet5.keras", "keras", mnist.x_test[:1], rounds=1, seconds=0.01)
