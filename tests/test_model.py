"""The three architectures have exactly the published parameter counts, in model.summary() too."""

from __future__ import annotations

import pytest

from lenet_edge.errors import UsageError
from lenet_edge.model import ARCHITECTURES, build_model, count_macs, count_params


@pytest.mark.parametrize(("arch", "params"), [("classic", 61_706), ("seed-3x3", 53_558), ("seed-valid", 44_426)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_parameter_counts(arch, params, activation):
    model = build_model(arch, activation)
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    summary = "\n".join(lines)
    assert count_params(model) == params == ARCHITECTURES[arch].params
    assert f"Trainable params: {params:,}" in summary
    assert "Non-trainable params: 0" in summary


def test_classic_is_lenet5_on_raw_pixels():
    model = build_model("classic")
    assert tuple(model.inputs[0].shape) == (None, 28, 28, 1)
    assert tuple(model.outputs[0].shape) == (None, 10)
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["rescale_0_1", "pad_to_32", "C1"]
    assert model.get_layer("pad_to_32").output.shape[1:3] == (32, 32)
    assert model.get_layer("C5").output.shape[1:] == (1, 1, 120)
    assert count_macs(model) == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 120 * 84 + 84 * 10


def test_unknown_names_are_usage_errors():
    with pytest.raises(UsageError, match="unknown architecture"):
        build_model("alexnet")
    with pytest.raises(UsageError, match="unknown activation"):
        build_model("classic", "gelu")


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")  # the converter, not ours
def test_row_split_first_conv_changes_no_int8_answer(untrained_lenet, mnist, tmp_path):
    """The int8 LeNet-5's C1 runs as row shifts (a one-hot depthwise 5×1, multiplier 5, keeping the image's
    scale and zero point) and a 1×5 convolution over them, and answers bit for bit as the same graph converted
    without the split, on 2,000 test digits."""
    import keras
    import numpy as np

    from lenet_edge.data import calibration_images
    from lenet_edge.exporters import tflite
    from lenet_edge.model import deployment_graph
    from lenet_edge.runtimes import open_runner
    from lenet_edge.runtimes.litert import _interpreter

    model = deployment_graph(keras.saving.load_model(untrained_lenet, compile=False))
    calibration = calibration_images(mnist, 200, 0)
    split, unsplit = tmp_path / "split.tflite", tmp_path / "unsplit.tflite"
    split.write_bytes(tflite.make_converter(model, "int8", calibration).convert())
    unsplit.write_bytes(tflite.make_converter(model, "int8", calibration, row_split=False).convert())

    interpreter = _interpreter(split, xnnpack=False)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    assert [op["op_name"] for op in ops[:3]] == ["QUANTIZE", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert tuple(details[ops[1]["outputs"][0]]["shape"]) == (1, 28, 28, 5)
    assert tuple(details[ops[2]["inputs"][1]]["shape"]) == (6, 1, 5, 5)  # 6 filters, 1×5 over 5 row shifts
    assert details[ops[1]["outputs"][0]]["quantization"] == details[ops[0]["outputs"][0]]["quantization"]
    assert [op["op_name"] for op in _interpreter(unsplit, xnnpack=False)._get_ops_details()][1] == "CONV_2D"
    digits = mnist.x_test[:2000]
    np.testing.assert_array_equal(
        open_runner("litert", split).predict(digits, raw=True), open_runner("litert", unsplit).predict(digits, raw=True)
    )


@pytest.mark.parametrize("arch", ["seed-valid", "seed-3x3"])
def test_row_split_keeps_every_architecture_answers_in_float(arch, mnist):
    """The split graph computes the same k×k sums in another order: in float its probabilities are the unsplit
    graph's to within float32 rounding (bit for bit on some CPUs, not on others), its answers the same."""
    import numpy as np

    from lenet_edge.model import deployment_graph, row_shifted_first_conv

    deployed = deployment_graph(build_model(arch))
    split = row_shifted_first_conv(deployed)
    assert [op.name for op in split.operations][1:3] == ["conv1_rows", "conv1"]
    assert row_shifted_first_conv(deployed, keep=("conv1",)) is deployed  # a C1 kept in float stays whole
    images = mnist.x_test[:300].reshape(-1, 28, 28, 1).astype(np.float32)
    ours, theirs = split.predict(images, verbose=0), deployed.predict(images, verbose=0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))
