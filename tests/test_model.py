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
