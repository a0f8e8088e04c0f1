"""The tables in lenet_edge/formats.py that export, verify, bench, the page and the CLI all read: consistent with
each other, with the Runners and the exporters, and the gate flags reach the gates they name."""

from __future__ import annotations

import dataclasses

import pytest

from lenet_edge.cli import _gates, build_parser
from lenet_edge.errors import UsageError
from lenet_edge.exporters import EXPORTERS
from lenet_edge.formats import (
    BY_NAME,
    FORMAT_NAMES,
    FORMATS,
    GATE_FLAGS,
    GPU_FP16,
    KERAS,
    PRECISIONS,
    RUNTIMES,
    Gate,
    float_twin,
    get_formats,
    runtime_label,
)
from lenet_edge.predict import MODEL_SUFFIXES
from lenet_edge.runtimes import RUNNERS, Runner


@pytest.mark.parametrize("fmt", [KERAS, *FORMATS], ids=lambda f: f.name)
def test_every_format_names_rows_that_exist(fmt):
    assert fmt.runtime in RUNTIMES and fmt.precision in PRECISIONS
    assert fmt.gates is PRECISIONS[fmt.precision] and BY_NAME[fmt.name] is fmt
    if fmt is KERAS:
        assert fmt.browser is None and not RUNTIMES[fmt.runtime].on_device
        return
    assert fmt.family in EXPORTERS
    assert MODEL_SUFFIXES["." + fmt.file.rsplit(".", 1)[1]] == fmt.runtime  # predict picks the runtime by suffix
    assert RUNTIMES[fmt.runtime].on_device and not RUNTIMES[fmt.runtime].in_browser
    twin = float_twin(fmt)
    assert twin is not None and twin.family == fmt.family and twin.precision == "fp32"


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not f.variant_of], ids=lambda f: f.name)
def test_a_browser_runtime_is_an_in_browser_one(fmt):
    assert fmt.browser in RUNTIMES, fmt.browser
    browser = RUNTIMES[fmt.browser]
    assert browser.in_browser and browser.delegates == {"wasm": browser.delegates["wasm"]}


def test_variants_and_microcontroller_rows_name_what_they_can_be():
    variants = [f for f in FORMATS if f.variant_of]
    assert [f.name for f in variants] == ["tflite-rgb-int8"]
    for fmt in variants:  # the same model with another input: same exporter, runtime and precision
        base = BY_NAME[fmt.variant_of]
        assert (fmt.family, fmt.runtime, fmt.precision) == (base.family, base.runtime, base.precision)
        assert fmt.options.get("color") == "rgb" and base.options.get("color", "gray") == "gray"
    micro = {f.name for f in FORMATS if f.micro}
    assert micro == {"tflite-fp32", "tflite-int8"}  # TFLite Micro has no fp16 or dynamic-range kernels
    assert {f.name for f in FORMATS if f.c_array} == {"tflite-int8"}


def test_names_and_files_are_unique():
    everything = [KERAS, *FORMATS]
    assert len({f.name for f in everything}) == len(everything) == len(BY_NAME)
    assert len({f.file for f in everything}) == len(everything)
    assert tuple(f.name for f in FORMATS) == FORMAT_NAMES and "keras" not in FORMAT_NAMES
    assert {f.precision for f in FORMATS} | {GPU_FP16} == set(PRECISIONS)  # a format's, or the GPU's fp16 arithmetic


def test_runners_are_one_per_runtime():
    assert set(RUNNERS) == set(RUNTIMES)
    assert len(set(RUNNERS.values())) == len(RUNTIMES)  # no Runner serves two rows
    for name, runner in RUNNERS.items():
        assert issubclass(runner, Runner) and runner.runtime == name
        assert not getattr(runner, "__abstractmethods__", None), f"{runner.__name__} leaves abstract methods"


@pytest.mark.parametrize("runtime", RUNTIMES.values(), ids=lambda r: r.name)
def test_runtime_delegates(runtime):
    assert runtime.delegates and runtime.default_delegate == next(iter(runtime.delegates))
    assert set(runtime.mobile_delegates) <= set(runtime.delegates)
    assert runtime.mobile_delegates or runtime.name == "litert-gpu"  # a CPU Vulkan driver's time: never benched
    assert runtime_label(runtime.name, runtime.default_delegate) == runtime.delegates[runtime.default_delegate]
    assert runtime_label(runtime.name, "no-such-delegate") == runtime.label


def test_get_formats_keeps_table_order_and_refuses_unknown_names():
    assert [f.name for f in get_formats(["onnx-int8", "tflite-fp32"])] == ["tflite-fp32", "onnx-int8"]
    assert get_formats(None) == list(FORMATS) == get_formats([])
    with pytest.raises(UsageError, match="unknown format\\(s\\) tflite-int4, tflite-int5; choose from tflite-fp32"):
        get_formats(["tflite-int5", "tflite-fp32", "tflite-int4"])


def _verify_gates(*flags: str) -> dict[str, Gate]:
    return _gates(build_parser().parse_args(["verify", "export", *flags]))


def test_without_flags_the_gates_are_the_precisions_table():
    assert _verify_gates() == {name: precision.verify for name, precision in PRECISIONS.items()}


@pytest.mark.parametrize(("flag", "precisions", "field", "unit", "metavar"), GATE_FLAGS, ids=[g[0] for g in GATE_FLAGS])
def test_each_gate_flag_sets_its_gates_and_no_other(flag, precisions, field, unit, metavar):
    assert set(precisions) <= set(PRECISIONS) and field in {f.name for f in dataclasses.fields(Gate)}
    value = 0.25 * (1 if field == "max_abs_dp" else 100)  # in the flag's unit: 25% or |Δp| 0.25
    gates = _verify_gates(flag, str(value))
    for name, gate in gates.items():
        default = PRECISIONS[name].verify
        if name in precisions:
            assert getattr(gate, field) == pytest.approx(value / unit)
        else:
            assert getattr(gate, field) == getattr(default, field)
        others = {f.name for f in dataclasses.fields(Gate)} - {field}
        assert all(getattr(gate, other) == getattr(default, other) for other in others)


def test_quant_min_agreement_sets_dynamic_and_int8():
    gates = _verify_gates("--quant-min-agreement", "99.9")
    assert gates["dynamic"].min_agreement == gates["int8"].min_agreement == pytest.approx(0.999)
    assert gates["fp32"] == PRECISIONS["fp32"].verify and gates["fp16"] == PRECISIONS["fp16"].verify


def test_a_threshold_typed_in_percent_admits_exactly_that_many_images():
    """--fp16-min-agreement 99.95 admits 9,995 agreements of 10,000 and refuses 9,994 (no float rounding)."""
    gate = _verify_gates("--fp16-min-agreement", "99.95")["fp16"]
    assert gate.failures(9_995 / 10_000, 0.0, 0.0) == []
    assert gate.failures(9_994 / 10_000, 0.0, 0.0) == ["agreement 99.94% < 99.95%"]
    drop = _verify_gates("--quant-max-drop", "0.3")["int8"]
    assert drop.failures(1.0, 0.0, round(-0.3, 4)) == [] and drop.failures(1.0, 0.0, -0.31) != []
