"""The ONNX exports in the consumers people deploy with, not only in our own runner: ONNX Runtime, OpenVINO
(default settings and its bf16 inference precision), tract and the onnx.reference evaluator must all read
each file and answer the test digits as ONNX Runtime does. These consumers are the `consumers` extra
(`make setup` installs it); under CI=true a missing one fails."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import require

from lenet_edge.formats import FORMATS
from lenet_edge.runtimes import open_runner

DIGITS = 2000
BATCH = 500
ONNX_FORMATS = [f for f in FORMATS if f.family == "onnx"]


def _openvino(path, images: np.ndarray, config: dict) -> np.ndarray:
    import openvino

    core = openvino.Core()
    request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
    return np.concatenate([next(iter(request.infer({"image": batch}).values())) for batch in _batches(images)])


def _tract(path, images: np.ndarray) -> np.ndarray:
    import tract

    model = tract.onnx().load(str(path))
    model.set_input_fact(0, f"{BATCH},28,28,1,f32")  # tract runs a fixed batch; the file's is symbolic
    runnable = model.into_model().into_runnable()
    return np.concatenate([runnable.run([batch])[0].to_numpy() for batch in _batches(images)])


def _reference(path, images: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(path))
    return np.concatenate([evaluator.run(None, {"image": batch})[0] for batch in _batches(images)])


def _batches(images: np.ndarray):
    floats = images.reshape(-1, 28, 28, 1).astype(np.float32)  # raw pixels, as the app contract says
    return [floats[start : start + BATCH] for start in range(0, len(floats), BATCH)]


CONSUMERS = {
    "openvino": ("openvino", lambda path, images: _openvino(path, images, {})),
    "openvino-bf16": ("openvino", lambda path, images: _openvino(path, images, {"INFERENCE_PRECISION_HINT": "bf16"})),
    "tract": ("tract", _tract),
    "onnx.reference": ("onnx", _reference),
}


@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("fmt", ONNX_FORMATS, ids=lambda f: f.name)
def test_onnx_exports_answer_alike_in_every_consumer(tiny_bundle, mnist, fmt, consumer):
    module, run = CONSUMERS[consumer]
    require(importlib.util.find_spec(module) is not None, f"{module} is not installed: pip install '.[consumers]'")
    images, labels = mnist.x_test[:DIGITS], mnist.y_test[:DIGITS]
    expected = open_runner(fmt.runtime, tiny_bundle / fmt.file).predict(images)
    answered = np.asarray(run(tiny_bundle / fmt.file, images), np.float32)
    assert answered.shape == expected.shape and np.isfinite(answered).all()
    agreement = float(np.mean(answered.argmax(1) == expected.argmax(1)))
    accuracy_gap = abs(float(np.mean(answered.argmax(1) == labels)) - float(np.mean(expected.argmax(1) == labels)))
    assert agreement >= 0.998 and accuracy_gap <= 0.001, (consumer, agreement, accuracy_gap)


def test_the_int8_onnx_is_uint8_per_channel_at_opset_19_with_a_float_softmax(tiny_bundle):
    import onnx

    proto = onnx.load(str(tiny_bundle / "lenet5_int8.onnx"))
    assert [(opset.domain, opset.version) for opset in proto.opset_import] == [("", 19)]
    producer = {output: node for node in proto.graph.node for output in node.output}
    assert producer["probabilities"].op_type == "Softmax"  # no Q/DQ pair around the output
    zero_points = [t for t in proto.graph.initializer if t.name.endswith("zero_point")]
    activation_types = {t.data_type for t in zero_points if t.dims == []}
    assert activation_types == {onnx.TensorProto.UINT8}
    assert any(len(t.dims) == 1 and t.dims[0] > 1 for t in zero_points)  # per-channel weights
    assert not proto.graph.value_info  # a symbolic batch there keeps tract from fixing it
