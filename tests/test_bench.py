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
from lenet_edge.formats import FORMATS, RUNTIMES
from lenet_edge.manifest import read_manifest
from lenet_edge.measure import time_calls
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
    written = json.loads((bundle / "bench.json").read_text())
    assert rows == written["rows"] and written["profile"] == "mobile"
    assert {"cpu", "cores", "kernel_features", "int8_dot_product", "versions"} <= set(written["machine"])
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
        if row["delegate"] == "wasm":  # the browser's memory: not this process's
            assert row["model_mb"] is row["footprint_mb"] is row["process_peak_mb"] is None
        else:
            assert 0 < row["model_mb"] <= row["footprint_mb"] <= row["footprint_peak_mb"] < row["process_peak_mb"]
    # the memory a model costs differs as the models do: float32 weights take more than int8 ones
    model_mb = {(r["format"], r["runtime"]): r["model_mb"] for r in rows if r["delegate"] != "wasm"}
    assert model_mb[("tflite-fp32", "litert")] - model_mb[("tflite-int8", "litert")] > 0.1  # 247 KB against 62 KB
    assert model_mb[("onnx-fp32", "onnxruntime")] > model_mb[("onnx-int8", "onnxruntime")]
    markdown = (bundle / "report.md").read_text()
    assert "## Speed: mobile profile" in markdown and "not a phone" in markdown
    assert "## What to deploy on this host" in markdown and "kernel features" in markdown
    assert (
        "| Format | Runtime | threads | p50 µs | p99 µs | img/s @256 | load ms | model MB | footprint MB | size KB "
        "| speed-up vs Keras |" in markdown
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
    rows = json.loads((bundle / "bench.json").read_text())["rows"]
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


def test_the_quick_bench_measures_each_deployable_file_once_as_an_app_gets_it(tiny_bundle):
    """run's bench: one combination per file an app deploys, its runtime's default delegate on 1 thread; the
    delegates, thread counts and the Keras reference are `lenet-edge bench`'s."""
    manifest = read_manifest(tiny_bundle)
    quick = plan(manifest, "host", have_tf=True, quick=True)
    assert sorted(c.format for c in quick) == sorted(entry.format for entry in manifest.artifacts if entry.on_device)
    assert all(c.threads == 1 and c.delegate == RUNTIMES[c.runtime].default_delegate for c in quick)


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
    verify = ["verify", str(bundle), "--gpu-digits", "20"]  # the GPU's worker runs without TensorFlow too
    for command in (verify, ["bench", str(bundle), "--profile", "mobile", "--seconds", "0.05"]):
        done = subprocess.run([str(python), "-c", GUARD, *command, "--data", str(mnist_dir)],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((bundle / "bench.json").read_text())["rows"]
    assert len(rows) == len(FORMATS) and "keras" not in {r["runtime"] for r in rows}  # no TensorFlow, no Keras
    report = json.loads((bundle / "report.json").read_text())
    assert "skipped" in report["bench"]["mobile"]["info"]["keras"]
    assert "stored at export" in report["verify_info"]["reference"]
    # the microcontroller rows need tflite-micro, which the runtime-only install does not have: said, not hidden
    not_run = [note for note in report["verify_info"]["not_run"] if "LiteRT GPU" not in note]  # a Vulkan device's
    assert not_run == ["2 TFLite Micro rows: tflite-micro is not installed here"]  # absence: tests/test_gpu.py
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


def _row(fmt: str, runtime: str, delegate: str, threads: int, batch: int, p50: float, size_kb: float) -> dict:
    return {"format": fmt, "runtime": runtime, "delegate": delegate, "threads": threads, "batch": batch,
            "p50_us": p50, "throughput_ips": batch / (p50 / 1e6), "size_bytes": int(size_kb * 1024)}  # fmt: skip


def test_the_recommendation_is_the_fastest_file_that_passed_and_says_why_int8_is_slower():
    """A host where XNNPACK's int8 is slow (as a Xeon with AMX measured it): the recommendation points at the
    faster configuration, never at a file verify failed, and names the cause of the slow int8."""
    from lenet_edge.report import recommendations

    rows = [
        _row("tflite-fp32", "litert", "xnnpack", 1, 1, 20.0, 248),
        _row("tflite-int8", "litert", "xnnpack", 1, 1, 95.0, 75),
        _row("tflite-int8", "litert", "none", 1, 1, 55.0, 75),
        _row("tflite-fp16", "litert", "xnnpack", 1, 1, 5.0, 130),
        _row("tflite-fp32", "litert", "xnnpack", 2, 256, 900.0, 248),
        _row("tflite-int8", "litert", "xnnpack", 2, 256, 1500.0, 75),
        _row("onnx-fp32", "onnxruntime", "cpu", 1, 1, 36.0, 245),
        _row("onnx-int8", "onnxruntime", "cpu", 1, 1, 68.0, 81),
        _row("keras", "keras", "tf.function", 1, 1, 1.0, 773),  # never a deployment choice
    ]  # fmt: skip
    report = {
        "bench": {"host": {"rows": rows, "info": {"machine": {"cpu": "a Xeon with AMX"}}}},
        "verify": [{"format": f, "status": "pass"} for f in ("tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8")]
        + [{"format": "tflite-fp16", "status": "fail"}],
        "profile": {"onnx-int8": {"float_nodes": ["C1/Tanh:0", "C3/Tanh:0"]}, "tflite-int8": {"left_to_cpu": []}},
    }
    found = recommendations(report)
    assert found["latency"]["format"] == "tflite-fp32" and found["latency"]["ratio"] == pytest.approx(36 / 20)
    assert found["one_core"]["choice"] == "tflite-fp32 on LiteRT + XNNPACK, 1 thread"
    assert found["throughput"]["format"] == "tflite-fp32" and found["throughput_batch"] == 256
    assert found["size"]["format"] == "tflite-int8" and found["size"]["choice"] == "tflite-int8, lenet5_int8.tflite"
    slow = {pair["runtime"]: pair for pair in found["int8"]}
    assert slow["LiteRT"]["slower"] and slow["LiteRT"]["ratio"] == pytest.approx(95 / 20)
    assert "kernels themselves are slower" in slow["LiteRT"]["cause"]
    assert slow["ONNX Runtime"]["slower"] and "2 nodes run in float between Q/DQ pairs" in slow["ONNX Runtime"]["cause"]


def _spec(path: Path, runtime: str, delegate: str, digits: Path) -> dict:
    return {"path": str(path), "runtime": runtime, "delegate": delegate, "threads": 1, "batches": [1],
            "seconds": 0.02, "digits": str(digits), "pin_core": None}  # fmt: skip


@pytest.mark.parametrize(("file", "runtime", "delegate"), [("lenet5_fp32.tflite", "litert", "xnnpack"),
                                                          ("lenet5_fp32.onnx", "onnxruntime", "cpu")])  # fmt: skip
def test_a_forked_measurement_counts_the_memory_a_fresh_process_does(tiny_bundle, mnist, tmp_path, file, runtime,
                                                                     delegate):  # fmt: skip
    """bench forks each combination from a server that imported its runtime: the model's memory and footprint
    are those of a fresh process that imported it (within 0.3 MB of allocator state), not inflated by the code
    pages a fork has to map again, and the process peak is the child's own, not its parent's."""
    import sys

    from lenet_edge.forks import Forks
    from lenet_edge.runtimes import RUNNERS

    digits = tmp_path / "digits.npy"
    np.save(digits, mnist.x_test[:8].reshape(-1, 28, 28, 1))
    spec = _spec(tiny_bundle / file, runtime, delegate, digits)
    done = subprocess.run([sys.executable, "-m", "lenet_edge.bench", json.dumps(spec)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    fresh = json.loads(done.stdout.splitlines()[-1])[0]
    with Forks("lenet_edge.bench", [RUNNERS[runtime].library], tmp_path) as forks:
        forked = [forks.run(spec) for _ in range(2)]
    for rows, reason in forked:
        assert reason == ""
        assert abs(rows[0]["model_mb"] - fresh["model_mb"]) < 0.3
        assert abs(rows[0]["footprint_mb"] - fresh["footprint_mb"]) < 0.3
        assert rows[0]["process_peak_mb"] < 200  # this test process holds TensorFlow: far more than that


def test_a_forked_measurement_that_fails_says_why_and_the_next_one_runs(tiny_bundle, mnist, tmp_path):
    from lenet_edge.forks import Forks

    digits = tmp_path / "digits.npy"
    np.save(digits, mnist.x_test[:8].reshape(-1, 28, 28, 1))
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    with Forks("lenet_edge.bench", ["ai_edge_litert.interpreter"], tmp_path) as forks:
        rows, reason = forks.run(_spec(broken, "litert", "xnnpack", digits))
        assert rows is None and reason.startswith("ValueError")  # the last line the child printed: its exception
        rows, reason = forks.run(_spec(tiny_bundle / "lenet5_int8.tflite", "litert", "xnnpack", digits))
    assert reason == "" and rows[0]["p50_us"] > 0
