"""An int8 .tflite as a dependency-free C model: ``<stem>.h`` and ``<stem>.c`` with one call,
``<stem>_predict(input, output)``, that answers bit for bit as TensorFlow Lite Micro does on the same file.

``generate(model)`` reads the flatbuffer (``c_graph``), turns each op into a step with the constants TFLite
Micro's Prepare computes (``c_steps``), places every activation in one static scratch buffer with a greedy
arena planner (elementwise ops run in place, RESHAPE is free), and writes C99 that needs only <stdint.h>: the
weights and requantization tables as ``static const`` arrays (flash), the scratch as one ``static`` array (RAM),
TFLite's integer reference kernels (``c_kernels``); no libc, no malloc, no float. An op it does not implement
raises ``UnsupportedModelError`` naming it. The same file in gives the same bytes out. NumPy and LiteRT's
flatbuffer schema; no TensorFlow."""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from .c_graph import Graph, Step, Tensor
from .c_kernels import STRUCT_FIELDS, function, kernel_text, struct_of
from .c_steps import SUPPORTED_OPS, plan_steps

ALIGN = 4  # every scratch tensor starts on a word: kernels may be given word loads later
_STEM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
VALUES_PER_LINE = {"int8_t": 16, "int32_t": 8}
ARITHMETIC = "TFLite's int8 reference kernels, double-rounding MultiplyByQuantizedMultiplier (as TFLite Micro)"

__all__ = ["SUPPORTED_OPS", "CModel", "UnsupportedModelError", "file_names", "generate"]


@dataclass(frozen=True)
class CModel:
    """The generated C model of one .tflite file."""

    stem: str
    header: str  # <stem>.h
    source: str  # <stem>.c
    scratch_bytes: int  # the one static buffer (RAM) every activation lives in
    weight_bytes: int  # the const arrays (flash): weights, biases, requantization multipliers and shifts
    ops: tuple[str, ...]  # the file's ops, in order
    input_elements: int
    output_elements: int

    @property
    def files(self) -> dict[str, str]:
        """{file name: text}: the header and the source."""
        header, source = file_names(self.stem)
        return {header: self.header, source: self.source}


def file_names(stem: str) -> tuple[str, str]:
    """(header, source) file names of the C model of ``stem``."""
    return f"{stem}.h", f"{stem}.c"


@dataclass
class _Block:
    """Tensors that share the same bytes (an op run in place, a reshape) and when they are alive."""

    tensors: list[int]
    size: int
    start: int
    end: int
    offset: int = 0


def _blocks(graph: Graph, steps: list[Step]) -> tuple[dict[int, _Block], set[int]]:
    """Each internal activation's block, and the steps (reshapes) that need no code because their output is
    their input's bytes. The graph's input (the caller's pixels) and output (the caller's array) are no block."""
    external = {graph.inputs[0], graph.outputs[0]}
    last_read: dict[int, int] = {}
    for i, step in enumerate(steps):
        last_read[step.input] = i
    block_of: dict[int, _Block] = {}
    free: set[int] = set()
    for i, step in enumerate(steps):
        out_size = graph.tensors[step.output].elements
        source = block_of.get(step.input)
        if step.output in external or step.output in block_of:
            continue
        shares = source is not None and (
            step.alias or (step.elementwise and max(last_read.get(t, -1) for t in source.tensors) <= i)
        )
        if source is not None and shares:
            source.tensors.append(step.output)
            source.size = max(source.size, out_size)
            block_of[step.output] = source
            if step.alias:
                free.add(i)
        else:
            block_of[step.output] = _Block([step.output], out_size, i, i)
    for block in {id(b): b for b in block_of.values()}.values():
        block.end = max([block.start, *(last_read.get(t, block.start) for t in block.tensors)])
    return block_of, free


def _place(blocks: list[_Block]) -> int:
    """Greedy arena planning (as TFLite Micro's GreedyMemoryPlanner): the largest block first, each at the lowest
    aligned offset clear of every placed block alive at the same time. Returns the scratch size."""
    placed: list[_Block] = []
    for block in sorted(blocks, key=lambda b: (-b.size, b.start, b.tensors[0])):
        overlapping = sorted(
            (b for b in placed if b.start <= block.end and block.start <= b.end), key=lambda b: b.offset
        )
        offset = 0
        for other in overlapping:
            if offset + block.size <= other.offset:
                break
            offset = max(offset, -(-(other.offset + other.size) // ALIGN) * ALIGN)
        block.offset = offset
        placed.append(block)
    end = max((b.offset + b.size for b in placed), default=0)
    return -(-end // ALIGN) * ALIGN


def _comment_text(text: str) -> str:
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text).replace("*/", "* /")
    return cleaned if len(cleaned) <= 100 else cleaned[:97] + "..."


def _array(name: str, ctype: str, values: np.ndarray) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    step = VALUES_PER_LINE[ctype]
    rows = (", ".join(str(v) for v in flat[i : i + step]) for i in range(0, len(flat), step))
    body = ",\n".join(f"    {row}" for row in rows)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n{body}\n}};\n"


def _params(step: Step) -> str:
    struct = struct_of(step.kernel)
    unknown = set(step.fields) - STRUCT_FIELDS[struct.removesuffix("_params")]
    assert not unknown, f"{step.op}: fields {unknown} are not in {struct}"
    fields = ", ".join(f".{name} = {value}" for name, value in step.fields.items())
    return f"static const {struct} node{step.index} = {{{fields}}};\n"


def _ctype(tensor: Tensor) -> str:
    return "uint8_t" if tensor.dtype == "uint8" else "int8_t"


def _check_ends(graph: Graph) -> tuple[Tensor, Tensor]:
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    for role, tensor in (("input", inp), ("output", out)):
        if tensor.dtype not in ("int8", "uint8"):
            raise UnsupportedModelError(f"a {tensor.dtype} {role} ({tensor.name}); the C model takes int8 or uint8")
    return inp, out


def generate(model: bytes, stem: str = "lenet5_int8") -> CModel:
    """The C model of ``model`` (an int8 .tflite's bytes) as ``<stem>.h`` and ``<stem>.c``. Raises
    UnsupportedModelError naming the op, option or dtype it does not implement; ValueError for a stem that
    cannot name C symbols."""
    if not _STEM.fullmatch(stem):
        raise ValueError(f"stem {stem!r} cannot name C symbols: use ASCII letters, digits and single inner underscores")
    graph = Graph(model)
    steps = plan_steps(graph)
    inp, out = _check_ends(graph)
    block_of, free = _blocks(graph, steps)
    scratch = _place(list({id(b): b for b in block_of.values()}.values()))

    def where(tensor: int, writes: bool) -> str:
        if tensor == graph.inputs[0]:
            return "pixels" if inp.dtype == "int8" else "(const int8_t *)pixels"
        if tensor == graph.outputs[0]:
            return "probabilities" if out.dtype == "int8" else "(int8_t *)probabilities"
        offset = block_of[tensor].offset
        return f"scratch + {offset}" if offset else "scratch"

    constants = [const for step in steps for const in step.constants]
    weight_bytes = sum(c.nbytes for c in constants)
    ops = tuple(step.op for step in steps)
    prefix = stem.upper()
    sha256 = hashlib.sha256(model).hexdigest()
    header = _header(stem, prefix, inp, out, scratch, weight_bytes, ops, sha256)
    body = []
    for step in steps:
        note = f"/* node {step.index}: {step.op} -> {_comment_text(graph.tensors[step.output].name)} */\n"
        arrays = "".join(_array(f"node{step.index}_{c.name}", c.ctype, c.values) for c in step.constants)
        body.append(note + arrays + ("" if steps.index(step) in free else _params(step)))
    calls = [
        f"    {function(step.kernel)}(&node{step.index}, {where(step.input, False)}, {where(step.output, True)});"
        f" /* {step.op} */"
        for i, step in enumerate(steps)
        if i not in free
    ]
    scratch_decl = (
        f"static int32_t scratch_words[{scratch // 4}]; /* {scratch} bytes, word-aligned */\n" if scratch else ""
    )
    scratch_ptr = "    int8_t *const scratch = (int8_t *)scratch_words;\n" if scratch else ""
    source = f"""/*
 * {stem}.c: the model {stem} in plain C99, generated by lenet-edge from the .tflite file
 * (sha256 {sha256}); do not edit (regenerate it).
 *
 * {ARITHMETIC}: its answers are TensorFlow Lite Micro's, bit for bit.
{_wrapped("Ops: " + ", ".join(ops) + ".")}
 * Flash: {weight_bytes} bytes of const data. RAM: one static scratch buffer of {scratch} bytes.
 * Needs a C99 compiler and <stdint.h>; no libc, no heap, no floating point. Not reentrant (one scratch buffer).
 */
#include "{stem}.h"

/* signed right shifts must be arithmetic (they are on every GCC, Clang and Arm compiler) */
typedef char {stem}_needs_arithmetic_right_shift[(-1 >> 1) == -1 ? 1 : -1];
{kernel_text([step.kernel for i, step in enumerate(steps) if i not in free])}
{"".join(body)}
{scratch_decl}
void {stem}_predict(const {_ctype(inp)} pixels[{inp.elements}], {_ctype(out)} probabilities[{out.elements}]) {{
{scratch_ptr}{chr(10).join(calls)}
}}
"""
    return CModel(stem, header, source, scratch, weight_bytes, ops, inp.elements, out.elements)


def _wrapped(text: str) -> str:
    return "\n".join(f" * {line}" for line in textwrap.wrap(text, 108))


def _float(value: float) -> str:
    text = str(np.float32(value))
    return f"{text}f" if any(c in text for c in ".e") else f"{text}.0f"


def _header(
    stem: str, prefix: str, inp: Tensor, out: Tensor, scratch: int, weights: int, ops: tuple[str, ...], sha256: str
) -> str:
    return f"""/*
 * {stem}.h: the model {stem} as plain C99 (no TensorFlow Lite Micro), generated by lenet-edge from the .tflite
 * file (sha256 {sha256}); do not edit (regenerate it).
 *
 * {stem}_predict() takes the input tensor as the .tflite takes it ({inp.dtype} {list(inp.shape)}: raw 0-255
 * pixels for the bundle's int8 model, row by row) and writes its output tensor ({out.dtype} {list(out.shape)}:
 * the quantized probabilities; probability = scale * (value - zero point)), bit for bit as TensorFlow Lite
 * Micro answers on the same file.
{_wrapped("Ops: " + ", ".join(ops))}
 */
#ifndef {prefix}_H_
#define {prefix}_H_

#include <stdint.h>

#define {prefix}_INPUT_TYPE {_ctype(inp)}
#define {prefix}_INPUT_DIMS {{{", ".join(str(d) for d in inp.shape)}}} /* NHWC, as an initializer */
#define {prefix}_INPUT_SIZE {inp.elements}
#define {prefix}_INPUT_SCALE {_float(inp.scale)}
#define {prefix}_INPUT_ZERO_POINT {inp.zero_point}
#define {prefix}_OUTPUT_TYPE {_ctype(out)}
#define {prefix}_OUTPUT_DIMS {{{", ".join(str(d) for d in out.shape)}}}
#define {prefix}_OUTPUT_SIZE {out.elements}
#define {prefix}_OUTPUT_SCALE {_float(out.scale)}
#define {prefix}_OUTPUT_ZERO_POINT {out.zero_point}
#define {prefix}_SCRATCH_BYTES {scratch} /* RAM: the one static buffer inside {stem}.c */
#define {prefix}_WEIGHT_BYTES {weights} /* flash: the const arrays inside {stem}.c */

#ifdef __cplusplus
extern "C" {{
#endif

void {stem}_predict(const {_ctype(inp)} pixels[{inp.elements}], {_ctype(out)} probabilities[{out.elements}]);

#ifdef __cplusplus
}}
#endif

#endif /* {prefix}_H_ */
"""
