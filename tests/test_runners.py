"""The Runner contract (lenet_edge/runtimes/base.py) as verify, bench and the targets rely on it, for the LiteRT
and ONNX Runtime runners on tiny_bundle's files: load time, predict's shapes and dtypes, raw outputs as the
runtime gives them, the timing calls, memory and the per-op profile."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from lenet_edge.formats import FORMATS, RUNTIMES
from lenet_edge.runtimes import open_runner
from lenet_edge.runtimes.base import InProcessRunner

NATIVE = [f for f in FORMATS if f.runtime in ("litert", "onnxruntime")]
DIGITS = 37  # not a multiple of any batch size used below


def _runtime_outputs(fmt, path, digits: np.ndarray, dtype: str) -> np.ndarray:
    """The file run by its runtime's own API, raw pixels cast to the input dtype: what an app gets."""
    pixels = digits.reshape(-1, 28, 28, 1).astype(dtype)
    if fmt.runtime == "litert":
        interpreter = Interpreter(model_path=str(path))
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        if fmt.options.get("color") == "rgb":  # an RGB image of batch 1: a gray digit is R = G = B
            interpreter.allocate_tensors()
            outputs = []
            for digit in np.repeat(pixels, 3, axis=-1):
                interpreter.set_tensor(inp["index"], digit[None])
                interpreter.invoke()
                outputs.append(interpreter.get_tensor(out["index"]))
            return np.concatenate(outputs)
        interpreter.resize_tensor_input(inp["index"], list(pixels.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]


@pytest.mark.parametrize("fmt", NATIVE, ids=lambda f: f.name)
def test_predict_shapes_dtypes_and_raw_outputs(tiny_bundle, mnist, fmt):
    runner = open_runner(fmt.runtime, tiny_bundle / fmt.file)
    assert isinstance(runner, InProcessRunner) and runner.runtime == fmt.runtime
    assert runner.load_ms > 0 and runner.delegate == RUNTIMES[fmt.runtime].default_delegate
    rgb = fmt.options.get("color") == "rgb"
    assert runner.input.shape == ([1, 28, 28, 3] if rgb else [-1, 28, 28, 1])
    assert runner.output.shape == ([1, 10] if rgb else [-1, 10])
    digits = mnist.x_test[:DIGITS]
    probs = runner.predict(digits, batch_size=16)
    assert probs.shape == (DIGITS, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.03)
    assert np.mean(probs.argmax(1) == mnist.y_test[:DIGITS]) > 0.7
    np.testing.assert_array_equal(runner.predict(digits.reshape(-1, 28, 28, 1)), probs)  # either image shape
    raw = runner.predict(digits, raw=True)
    assert raw.dtype == np.dtype(runner.output.dtype) and raw.shape == (DIGITS, 10)
    assert raw.dtype == (np.uint8 if fmt.name.startswith("tflite") and fmt.precision == "int8" else np.float32)
    np.testing.assert_array_equal(raw, _runtime_outputs(fmt, tiny_bundle / fmt.file, digits, runner.input.dtype))
    np.testing.assert_allclose(runner.output.decode(raw), probs, atol=1e-6)  # predict = decode(raw)
    empty = runner.predict(digits[:0])
    assert empty.shape == (0, 10)


@pytest.mark.parametrize("fmt", NATIVE, ids=lambda f: f.name)
def test_timing_first_call_and_memory(tiny_bundle, mnist, fmt):
    runner = open_runner(fmt.runtime, tiny_bundle / fmt.file, threads=1)
    digit = mnist.x_test[:1]
    assert runner.first_call_ms(digit) > 0
    times = runner.time_calls(digit, seconds=0.05)
    assert times.dtype == np.float64 and len(times) >= 20 and (times > 0).all()
    assert 100 < np.median(times) < 0.05e9  # nanoseconds: more than 0.1 µs, less than the 0.05 s asked for
    if runner.input.shape[0] == 1:
        return  # a model of batch 1 times one digit per call only
    batch = np.resize(mnist.x_test, (32, 28, 28))
    assert np.median(runner.time_calls(batch, seconds=0.05)) > np.median(times)  # 32 digits cost more than 1
    assert runner.peak_rss_mb() > 10  # this process, a runtime loaded: tens of MB at least


@pytest.mark.parametrize("fmt", [f for f in NATIVE if f.runtime == "litert"], ids=lambda f: f.name)
def test_litert_profile_is_its_xnnpack_partitions(tiny_bundle, fmt):
    runner = open_runner("litert", tiny_bundle / fmt.file)
    profile = runner.op_profile()
    assert set(profile) >= {"runtime", "partitions", "ops", "delegated", "left_to_cpu"}
    assert profile["runtime"] == "litert" and profile["partitions"] == 1 == runner.partitions
    assert 0 < profile["delegated"] <= profile["ops"]
    assert profile["ops"] - profile["delegated"] == len(profile["left_to_cpu"])
    assert all(set(item) == {"op", "layer"} for item in profile["left_to_cpu"])
    assert open_runner("litert", tiny_bundle / fmt.file, delegate="none").partitions == 0  # no XNNPACK


@pytest.mark.parametrize("fmt", [f for f in NATIVE if f.runtime == "onnxruntime"], ids=lambda f: f.name)
def test_onnxruntime_profile_shares_the_time_by_op(tiny_bundle, fmt):
    profile = open_runner("onnxruntime", tiny_bundle / fmt.file).op_profile(runs=50)
    assert profile["runtime"] == "onnxruntime" and profile["total_us"] > 0
    assert profile["quantized"] == (fmt.precision == "int8")
    rows = profile["ops"]
    assert rows and len({row["op"] for row in rows}) == len(rows)
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, abs=1e-6)
    assert sum(row["us"] for row in rows) == pytest.approx(profile["total_us"])
    assert [row["us"] for row in rows] == sorted((row["us"] for row in rows), reverse=True)
    assert all(row["nodes"] >= 1 and row["us"] >= 0 and row["kind"] for row in rows)
    assert isinstance(profile["float_nodes"], list)
    if fmt.precision == "fp32":
        assert profile["float_nodes"] == [] and {row["kind"] for row in rows} <= {"float", "layout"}
    else:
        assert "int8 kernel" in {row["kind"] for row in rows} or "Q/DQ conversion" in {row["kind"] for row in rows}


@pytest.mark.parametrize("fmt", NATIVE, ids=lambda f: f.name)
def test_an_unknown_delegate_is_a_value_error(tiny_bundle, fmt):
    with pytest.raises(ValueError, match=f"{fmt.runtime} has no delegate 'gpu'"):
        open_runner(fmt.runtime, tiny_bundle / fmt.file, delegate="gpu")
