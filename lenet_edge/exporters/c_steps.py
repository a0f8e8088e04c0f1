"""Each op of an int8 .tflite turned into a ``c_graph.Step`` for the C model: its kernel, the kernel's parameters
and the constants it keeps in flash, as TFLite Micro's Prepare computes them (tflite-micro's kernels/*_common.cc:
conv, depthwise_conv, fully_connected, pooling, softmax, tanh, logistic, activations, quantize). An op, an
option or a dtype the C kernels do not implement raises ``UnsupportedModelError`` naming it. NumPy only."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import UnsupportedModelError
from .c_graph import (
    _ACTIVATIONS,
    _PADDING,
    Const,
    Graph,
    Step,
    Tensor,
    _f32,
    activation_range,
    input_radius,
    logistic_q0,
    mbqm,
    out_size,
    pad_before,
    quantize_multiplier,
    rdbpot,
    tanh_q0,
    tflite_round,
)


def _refuse(op: str, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{op}: {what} is not implemented by the C model")


def _activation(graph: Graph, index: int, op: str) -> Tensor:
    """An op's activation tensor, held to what the kernels take: int8 or uint8, per-tensor quantized, batch 1."""
    tensor = graph.tensors[index]
    if tensor.data is not None:
        raise _refuse(op, f"a constant input tensor ({tensor.name})")
    if tensor.dtype not in ("int8", "uint8"):
        raise _refuse(op, f"a {tensor.dtype} tensor ({tensor.name})")
    if len(tensor.scales) != 1 or len(tensor.zero_points) != 1:
        raise _refuse(op, f"a tensor without one scale and zero point ({tensor.name})")
    if tensor.shape and tensor.shape[0] != 1:
        raise _refuse(op, f"batch {tensor.shape[0]} ({tensor.name}; the C model runs one image)")
    return tensor


def _int8(tensor: Tensor, op: str) -> Tensor:
    if tensor.dtype != "int8":
        raise _refuse(op, f"a {tensor.dtype} activation ({tensor.name})")
    return tensor


def _weights(graph: Graph, index: int, op: str, channels: int, axis: int) -> Tensor:
    tensor = graph.tensors[index]
    if tensor.data is None or tensor.dtype != "int8":
        raise _refuse(op, f"{tensor.dtype} weights that are not a constant int8 tensor ({tensor.name})")
    if any(zp != 0 for zp in tensor.zero_points):
        raise _refuse(op, f"weights with a nonzero zero point ({tensor.name})")
    if len(tensor.scales) not in (1, channels) or tensor.shape[axis] != channels:
        raise _refuse(op, f"weights quantized neither per tensor nor per output channel ({tensor.name})")
    return tensor


def _bias(graph: Graph, inputs: list[int], op: str, channels: int) -> np.ndarray | None:
    if len(inputs) < 3 or inputs[2] < 0:
        return None
    tensor = graph.tensors[inputs[2]]
    if tensor.data is None or tensor.dtype != "int32" or tensor.data.size != channels:
        raise _refuse(op, f"a {tensor.dtype} bias of {tensor.data.size if tensor.data is not None else 0} values")
    return tensor.data.astype(np.int32)


def _per_channel(inp: Tensor, weights: Tensor, out: Tensor, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """tflite::PopulateConvolutionQuantizationParams: one multiplier per output channel, from the doubles of the
    float32 scales (input * filter / output)."""
    found = [quantize_multiplier(inp.scale * weights.scales[c if len(weights.scales) > 1 else 0] / out.scale)
             for c in range(channels)]  # fmt: skip
    return np.array([m for m, _ in found], np.int32), np.array([s for _, s in found], np.int8)


def _requant_constants(step: Step, mult: np.ndarray, shift: np.ndarray, bias: np.ndarray | None) -> None:
    step.constants += [Const("mult", "int32_t", mult), Const("shift", "int8_t", shift)]
    step.fields.update(mult=f"node{step.index}_mult", shift=f"node{step.index}_shift")
    if bias is not None:
        step.constants.append(Const("bias", "int32_t", bias))
    step.fields["bias"] = f"node{step.index}_bias" if bias is not None else 0


def _window(options, op: str, inp: Tensor, out: Tensor, kh: int, kw: int, dilated: bool) -> dict[str, int]:
    padding = _PADDING.get(options.padding)
    if padding is None:
        raise _refuse(op, f"padding {options.padding}")
    dh, dw = (options.dilationHFactor, options.dilationWFactor) if dilated else (1, 1)
    sh, sw = options.strideH, options.strideW
    if min(dh, dw, sh, sw) < 1:
        raise _refuse(op, f"stride {sh}x{sw} with dilation {dh}x{dw}")
    (_, ih, iw, _), (_, oh, ow, _) = inp.shape, out.shape
    if (out_size(padding, ih, kh, sh, dh), out_size(padding, iw, kw, sw, dw)) != (oh, ow):
        raise _refuse(op, f"an output of {oh}x{ow} that {padding} padding does not give")
    return {"ih": ih, "iw": iw, "oh": oh, "ow": ow, "kh": kh, "kw": kw, "sh": sh, "sw": sw, "dh": dh, "dw": dw,
            "ph": pad_before(sh, dh, ih, kh, oh), "pw": pad_before(sw, dw, iw, kw, ow)}  # fmt: skip


def _four_d(op: str, *tensors: Tensor) -> None:
    for tensor in tensors:
        if len(tensor.shape) != 4:
            raise _refuse(op, f"a tensor of rank {len(tensor.shape)} ({tensor.name}; NHWC expected)")


def _conv(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    _four_d(op, inp, out)
    oc = out.shape[3]
    depthwise = op == "DEPTHWISE_CONV_2D"
    weights = _weights(graph, inputs[1], op, oc, 3 if depthwise else 0)
    _four_d(op, weights)
    assert weights.data is not None
    if depthwise:
        kh, kw = weights.shape[1], weights.shape[2]
        multiplier = oc // inp.shape[3]
        if weights.shape[0] != 1 or oc != inp.shape[3] * multiplier or options.depthMultiplier not in (multiplier, 0):
            raise _refuse(op, f"a depth multiplier {options.depthMultiplier} for {inp.shape[3]} -> {oc} channels")
    else:
        kh, kw = weights.shape[1], weights.shape[2]
        if weights.shape[3] != inp.shape[3]:
            raise _refuse(op, f"a grouped convolution ({inp.shape[3]} input channels, filters of {weights.shape[3]})")
    step = Step(index, op, inp.index, out.index, "dwconv" if depthwise else "conv")
    step.fields.update(_window(options, op, inp, out, kh, kw, dilated=True))
    act_min, act_max = activation_range(options.fusedActivationFunction, out, op)
    step.fields.update(ic=inp.shape[3], oc=oc, in_offset=-inp.zero_point, out_offset=out.zero_point,
                       act_min=act_min, act_max=act_max)  # fmt: skip
    if depthwise:
        step.fields["dm"] = multiplier
    step.constants.append(Const("w", "int8_t", weights.data))
    step.fields["w"] = f"node{index}_w"
    _requant_constants(step, *_per_channel(inp, weights, out, oc), _bias(graph, inputs, op, oc))
    return step


def _fully_connected(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    units = out.shape[-1]
    weights = _weights(graph, inputs[1], op, units, 0)
    assert weights.data is not None
    if (
        len(weights.shape) != 2
        or inp.elements % weights.shape[1]
        or out.elements != inp.elements // weights.shape[1] * units
    ):
        raise _refuse(op, f"weights of shape {list(weights.shape)} for input {list(inp.shape)}")  # fmt: skip
    if getattr(options, "weightsFormat", 0) != 0:
        raise _refuse(op, f"weights format {options.weightsFormat}")
    step = Step(index, op, inp.index, out.index, "fc")
    act_min, act_max = activation_range(options.fusedActivationFunction, out, op)
    depth = weights.shape[1]
    step.fields.update(rows=inp.elements // depth, depth=depth, units=units, in_offset=-inp.zero_point,
                       out_offset=out.zero_point, act_min=act_min, act_max=act_max)  # fmt: skip
    step.constants.append(Const("w", "int8_t", weights.data))
    step.fields["w"] = f"node{index}_w"
    if len(weights.scales) > 1:
        mult, shift = _per_channel(inp, weights, out, units)
    else:  # tflite::GetQuantizedConvolutionMultipler: the scales' product in float32, then double
        m, s = quantize_multiplier(float(_f32(inp.scale) * _f32(weights.scale)) / out.scale)
        mult, shift = np.full(units, m, np.int32), np.full(units, s, np.int8)
    _requant_constants(step, mult, shift, _bias(graph, inputs, op, units))
    return step


def _pool(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    _four_d(op, inp, out)
    if abs(inp.scale - out.scale) > 1e-6 or inp.zero_point != out.zero_point:
        raise _refuse(op, "an output quantized otherwise than its input")
    step = Step(index, op, inp.index, out.index, "avgpool" if op == "AVERAGE_POOL_2D" else "maxpool")
    step.fields.update(_window(options, op, inp, out, options.filterHeight, options.filterWidth, dilated=False))
    del step.fields["dh"], step.fields["dw"]
    act_min, act_max = activation_range(options.fusedActivationFunction, out, op)
    step.fields.update(c=inp.shape[3], act_min=act_min, act_max=act_max)
    return step


def _softmax(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    if out.dtype != "int8" or out.zero_point != -128 or _f32(out.scale) != _f32(1 / 256):
        raise _refuse(op, f"a {out.dtype} output of scale {out.scale} and zero point {out.zero_point}")
    # tflite::PreprocessSoftmaxScaling with 5 integer bits (double rounding: the cap is 2^31 - 1)
    real = min(float(_f32(options.beta)) * inp.scale * (1 << 26), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise _refuse(op, f"an input scale {inp.scale} this small")
    step = Step(index, op, inp.index, out.index, "softmax", elementwise=True)
    depth = inp.shape[-1]
    step.fields.update(rows=inp.elements // depth, depth=depth, mult=mult, shift=shift,
                       diff_min=-input_radius(5, shift))  # fmt: skip
    return step


def _tanh_or_logistic(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    _int8(out, op)
    if op == "LOGISTIC" and out.zero_point != -128:
        raise _refuse(op, f"an output zero point {out.zero_point} (TFLite Micro takes -128)")
    q, shift = math.frexp(inp.scale * float(1 << 27))  # 4 integer bits, as tanh.cc and logistic_common.cc
    mult = tflite_round(q * (1 << 31))
    if not 0 <= shift <= 30 or mult >= 1 << 31:
        raise _refuse(op, f"an input scale {inp.scale}")
    radius = input_radius(4, shift)

    def answer(value: int) -> int:  # reference_integer_ops::Tanh / Logistic of one int8 value
        x = value - inp.zero_point
        if x <= -radius or x >= radius:
            return -128 if x < 0 else 127
        a = mbqm(x, mult, shift)
        q = rdbpot(tanh_q0(a), 24) if op == "TANH" else rdbpot(logistic_q0(a), 23) - 128
        return min(max(q, -128), 127)

    step = Step(index, op, inp.index, out.index, "lut", elementwise=True)
    step.constants.append(Const("table", "int8_t", np.array([answer(v) for v in range(-128, 128)], np.int8)))
    step.fields.update(n=inp.elements, table=f"node{index}_table")
    return step


def _relu(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _int8(_activation(graph, inputs[0], op), op)
    _int8(out, op)
    step = Step(index, op, inp.index, out.index, "relu", elementwise=True)
    if op == "RELU6":  # Relu6Eval clamps in the input's own quantization
        six = inp.zero_point + tflite_round(float(_f32(6.0) / _f32(inp.scale)))
        if not -128 <= six <= 127:
            raise _refuse(op, f"an input scale {inp.scale} that cannot hold 6")
        step.kernel = "relu6"
        step.fields.update(n=inp.elements, zero=inp.zero_point, six=six)
        return step
    mult, shift = quantize_multiplier(float(_f32(inp.scale) / _f32(out.scale)))  # CalculateReluOpData
    act_min = max(-128, out.zero_point + tflite_round(float(_f32(0.0) / _f32(out.scale))))
    step.fields.update(n=inp.elements, in_zp=inp.zero_point, out_zp=out.zero_point, mult=mult, shift=shift,
                       act_min=act_min, act_max=127)  # fmt: skip
    return step


def _quantize(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _activation(graph, inputs[0], op)
    if inp.dtype == out.dtype == "uint8":
        raise _refuse(op, "uint8 to uint8")
    if len(out.scales) != 1:
        raise _refuse(op, f"a per-channel output ({out.name})")
    mult, shift = quantize_multiplier(inp.scale / out.scale)  # PrepareQuantizeReference: doubles
    kinds = {"int8": "s8", "uint8": "u8"}
    step = Step(index, op, inp.index, out.index, f"requant_{kinds[inp.dtype]}_{kinds[out.dtype]}", elementwise=True)
    step.fields.update(n=inp.elements, in_zp=inp.zero_point, out_zp=out.zero_point, mult=mult, shift=shift)
    return step


def _reshape(graph: Graph, index: int, options, inputs: list[int], out: Tensor, op: str) -> Step:
    inp = _activation(graph, inputs[0], op)
    if inp.dtype != out.dtype or inp.elements != out.elements:
        raise _refuse(op, f"{inp.dtype} {list(inp.shape)} to {out.dtype} {list(out.shape)}")
    step = Step(index, op, inp.index, out.index, "copy", elementwise=True, alias=True)
    step.fields["n"] = inp.elements
    return step


PLANNERS: dict[str, Callable[..., Step]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "SOFTMAX": _softmax,
    "TANH": _tanh_or_logistic,
    "LOGISTIC": _tanh_or_logistic,
    "RELU": _relu,
    "RELU6": _relu,
    "QUANTIZE": _quantize,
    "RESHAPE": _reshape,
}
SUPPORTED_OPS = tuple(PLANNERS)


def shape_only(graph: Graph) -> set[int]:
    """The ops that only compute a RESHAPE's target shape (Flatten's SHAPE, STRIDED_SLICE and PACK when the graph
    is exported as it is): int32 results read by nothing but RESHAPE's shape input or other such ops. Every
    shape here is static, so the C model needs none of them."""
    ops = list(graph.ops())
    readers: dict[int, list[tuple[int, int]]] = {}
    for index, _, _, inputs, _ in ops:
        for position, tensor in enumerate(inputs):
            readers.setdefault(tensor, []).append((index, position))
    names = {index: name for index, name, *_ in ops}
    found: set[int] = set()
    for index, _, _, _, outputs in reversed(ops):
        if outputs and all(
            graph.tensors[t].dtype == "int32"
            and t not in graph.outputs
            and readers.get(t)
            and all((names[r] == "RESHAPE" and position == 1) or r in found for r, position in readers[t])
            for t in outputs
        ):
            found.add(index)
    return found


def plan_steps(graph: Graph) -> list[Step]:
    """Every op of ``graph`` as a Step, in the file's order (the shape-only ops left out); UnsupportedModelError
    names the first op (or option) the C model does not implement."""
    steps = []
    skipped = shape_only(graph)
    for index, op, options, inputs, outputs in graph.ops():
        if index in skipped:
            continue
        planner = PLANNERS.get(op)
        if planner is None:
            raise UnsupportedModelError(f"op {op} (node {index}) is not implemented by the C model")
        if len(outputs) != 1 or not inputs:
            raise _refuse(op, f"{len(inputs)} inputs and {len(outputs)} outputs")
        out = _activation(graph, outputs[0], op)
        fused = getattr(options, "fusedActivationFunction", 0)
        if fused not in _ACTIVATIONS:
            raise _refuse(op, f"fused activation {fused}")
        steps.append(planner(graph, index, options, inputs, out, op))
    if not steps:
        raise UnsupportedModelError("the model has no ops")
    return steps
