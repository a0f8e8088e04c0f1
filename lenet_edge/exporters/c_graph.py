"""An int8 .tflite read for the C model (``c_model``): its one subgraph as typed tensors, and each op turned into
a ``Step`` whose constants are what TFLite Micro's Prepare computes at load, computed here in Python the way its
C++ does (``QuantizeMultiplier`` on the same doubles, the float32 products where TFLite Micro multiplies floats,
round-half-away-from-zero, the padding formulas), so that the C kernels do integer arithmetic only.

The steps cover what the exporters emit for LeNet-class models: QUANTIZE (uint8/int8 requantization), CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED (per-channel or per-tensor weights), AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE,
SOFTMAX, TANH, LOGISTIC, RELU and RELU6, on batch-1 int8 activations. Anything else (an op, a fused
activation, a dtype, a float tensor, a grouped convolution) raises ``UnsupportedModelError`` naming it.
NumPy and LiteRT's flatbuffer schema (``ai_edge_litert``); no TensorFlow."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedModelError

INT8_RANGE = (-128, 127)
UINT8_RANGE = (0, 255)
_DTYPES = {"INT8": "int8", "UINT8": "uint8", "INT32": "int32", "FLOAT32": "float32", "INT16": "int16"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "same", 1: "valid"}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str  # int8, uint8, int32, float32, ... (the schema's name in lower case)
    shape: tuple[int, ...]
    scales: tuple[float, ...]  # float32 values, as the file stores them
    zero_points: tuple[int, ...]
    data: np.ndarray | None  # a constant's values; None for an activation

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass(frozen=True)
class Const:
    """A constant array the C model keeps in flash: ``<step>_<name>``."""

    name: str
    ctype: str  # int8_t, int32_t
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * (4 if self.ctype == "int32_t" else 1)


@dataclass
class Step:
    """One op of the graph as the C model runs it: ``kernel`` (a C function of c_kernels) called on the ``input``
    tensor's buffer, writing the ``output`` tensor's, with the parameter struct ``fields`` (names to integers, or
    to the name of one of ``constants``)."""

    index: int
    op: str
    input: int
    output: int
    kernel: str
    fields: dict[str, int | str] = field(default_factory=dict)
    constants: list[Const] = field(default_factory=list)
    elementwise: bool = False  # reads element i before writing element i: may run in place
    alias: bool = False  # RESHAPE: the same bytes under another shape


class Graph:
    """The file's first subgraph, read with LiteRT's flatbuffer schema."""

    def __init__(self, model: bytes):
        from ai_edge_litert import schema_py_generated as schema

        try:
            parsed = schema.ModelT.InitFromPackedBuf(model, 0)
        except Exception as exc:  # not a flatbuffer of the TFLite schema
            raise UnsupportedModelError(f"not a .tflite flatbuffer ({type(exc).__name__})") from None
        if len(parsed.subgraphs or []) != 1:
            raise UnsupportedModelError(f"the model has {len(parsed.subgraphs or [])} subgraphs; the C model takes one")
        self.schema, self.model, self.subgraph = schema, parsed, parsed.subgraphs[0]
        self._op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self._type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.tensors = [self._tensor(i, t) for i, t in enumerate(self.subgraph.tensors or [])]
        self.inputs = [int(i) for i in self.subgraph.inputs]
        self.outputs = [int(i) for i in self.subgraph.outputs]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise UnsupportedModelError(
                f"the model has {len(self.inputs)} inputs and {len(self.outputs)} outputs; the C model takes one each"
            )

    def _tensor(self, index: int, t) -> Tensor:
        dtype = _DTYPES.get(self._type_names.get(t.type, ""), self._type_names.get(t.type, f"type {t.type}").lower())
        q = t.quantization
        scales = (
            tuple(float(s) for s in np.asarray(q.scale, np.float32)) if q is not None and q.scale is not None else ()
        )
        zps = tuple(int(z) for z in np.asarray(q.zeroPoint)) if q is not None and q.zeroPoint is not None else ()
        data = None
        buffers = self.model.buffers or []
        raw = buffers[t.buffer].data if 0 < t.buffer < len(buffers) else None
        if raw is not None and len(raw):
            kind = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32, "float32": np.float32, "int16": np.int16}
            if dtype in kind:
                data = np.frombuffer(np.asarray(raw, np.uint8).tobytes(), dtype=np.dtype(kind[dtype]).newbyteorder("<"))
                data = data.astype(kind[dtype])
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        return Tensor(index, (t.name or b"").decode(errors="replace"), dtype, shape, scales, zps, data)

    def ops(self):
        """(index, name, options, input indices, output indices) of every op, in the file's order."""
        for index, op in enumerate(self.subgraph.operators or []):
            code = self.model.operatorCodes[op.opcodeIndex]
            if code.customCode:
                name = f"custom op {code.customCode.decode(errors='replace')}"
            else:
                builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
                name = self._op_names.get(builtin, f"builtin op {builtin}")
            inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
            yield index, name, op.builtinOptions, inputs, outputs


# TFLite's arithmetic, as its C++ computes it at Prepare.


def tflite_round(value: float) -> int:
    """std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: (multiplier Q0.31, shift) with real = multiplier * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = tflite_round(q * (1 << 31))
    if fixed > 1 << 31:
        raise UnsupportedModelError(f"a requantization multiplier {real!r} TFLite cannot represent")
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise UnsupportedModelError(f"a requantization multiplier {real!r} too large for int32 arithmetic")
    return fixed, shift


def _f32(value: float) -> np.float32:
    return np.float32(value)


def activation_range(activation: int, out: Tensor, op: str) -> tuple[int, int]:
    """tflite::CalculateActivationRangeQuantized for an int8 output (float32 division, std::round)."""
    low, high = INT8_RANGE if out.dtype == "int8" else UINT8_RANGE
    name = _ACTIVATIONS.get(activation, f"activation {activation}")

    def q(real: float) -> int:
        return out.zero_point + tflite_round(float(_f32(real) / _f32(out.scale)))

    if name == "NONE":
        return low, high
    if name == "RELU":
        return max(low, q(0.0)), high
    if name == "RELU6":
        return max(low, q(0.0)), min(high, q(6.0))
    if name == "RELU_N1_TO_1":
        return max(low, q(-1.0)), min(high, q(1.0))
    raise UnsupportedModelError(f"{op}: fused activation {name} is not implemented by the C model")


def out_size(padding: str, size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "same" else (size + stride - effective) // stride


def pad_before(stride: int, dilation: int, size: int, kernel: int, out: int) -> int:
    """tflite::ComputePaddingWithOffset: the padding before (TFLite puts the odd one after)."""
    total = (out - 1) * stride + (kernel - 1) * dilation + 1 - size
    return max(total, 0) // 2


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """tflite::CalculateInputRadius."""
    return math.floor(((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift))


# gemmlowp's fixed-point arithmetic on int32 (fixedpoint/fixedpoint.h), as TFLite's int8 TANH and LOGISTIC run it:
# the C model keeps their 256 answers as a table, computed here.
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k = -2..4


def _wrap(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    product = a * b
    nudged = product + ((1 << 30) if product >= 0 else 1 - (1 << 30))
    return _wrap(nudged >> 31 if nudged >= 0 else -((-nudged) >> 31))


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def sat_pot(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT."""
    if exponent > 0:
        threshold = (1 << (31 - exponent)) - 1
        return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << exponent
    return rdbpot(x, -exponent) if exponent < 0 else x


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier, double rounding (TFLite Micro's build)."""
    return rdbpot(srdhm(_wrap(x << max(shift, 0)), multiplier), max(-shift, 0))


def _exp_quarter(a: int) -> int:
    constant, third = 1895147668, 715827883
    x = _wrap(a + (1 << 28))
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    poly = rdbpot(_wrap(srdhm(_wrap(rdbpot(x4, 2) + x3), third) + x2), 1)
    return _wrap(constant + srdhm(constant, _wrap(x + poly)))


def exp_negative(a: int, bits: int) -> int:
    """exp_on_negative_values of a Q(bits).(31 - bits) value, as Q0.31."""
    fraction = 31 - bits
    quarter = 1 << (fraction - 2)
    mod_minus_quarter = (a & (quarter - 1)) - quarter
    remainder = _wrap(mod_minus_quarter - a)
    result = _exp_quarter(sat_pot(mod_minus_quarter, bits))
    for k, multiplier in enumerate(_EXP_BARREL):
        if bits > k - 2 and remainder & (1 << (fraction + k - 2)):
            result = srdhm(result, multiplier)
    if bits > 5 and a < -(1 << (36 - bits)):
        result = 0
    return INT32_MAX if a == 0 else result


def _reciprocal_q2(a: int) -> int:
    total = a + INT32_MAX
    rounded = total + (1 if total >= 0 else -1)
    half = rounded // 2 if rounded >= 0 else -((-rounded) // 2)
    x = _wrap(1515870810 + srdhm(half, -1010580540))
    for _ in range(3):
        x = _wrap(x + sat_pot(srdhm(x, _wrap((1 << 29) - srdhm(half, x))), 2))
    return x


def tanh_q0(a: int) -> int:
    """gemmlowp::tanh of a Q4.27 value, as Q0.31."""
    negative = a if a < 0 else -a
    t = sat_pot(_wrap(_reciprocal_q2(exp_negative(negative, 5)) - (1 << 29)), 2)
    return 0 if a == 0 else (-t if a < 0 else t)


def logistic_q0(a: int) -> int:
    """gemmlowp::logistic of a Q4.27 value, as Q0.31."""
    positive = sat_pot(_reciprocal_q2(exp_negative(-abs(a), 4)), 1)
    return (1 << 30) if a == 0 else (positive if a > 0 else _wrap(INT32_MAX - positive))
