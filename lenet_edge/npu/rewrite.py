"""The int8 .tflite the NPU compiles: the bundle's file with its first convolution whole again.

The int8 export splits C1 into row shifts for XNNPACK's x86 int8 kernels (``lenet_edge.model.row_shifted_first_conv``):
a one-hot depthwise k×1 convolution copies the k row shifts of the image into k channels (with the image's own
scale and zero point), then a 1×k convolution over them does the arithmetic. The HTP pays for that trick (about a
sixth of its cycles). ``unsplit_first_conv`` undoes it in the file itself: the depthwise op goes, and the 1×k
convolution becomes the k×k one over the image, with the same int8 weights (transposed back), the same per-channel
scales, bias and output quantization, so the same products and int32 sums. The caller still holds the result to
answering bit for bit as the file it came from (command.py, on the digits it judges). No TensorFlow: the file is
read and written with LiteRT's flatbuffer schema; the same bytes in give the same bytes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRAPH_SHIPPED = "as shipped"  # the bundle's int8 file as it is (its C1 split in row shifts for x86 kernels)
GRAPH_UNSPLIT = "C1 as trained: the row-shift split undone"


def _op_name(schema, model, op) -> str:
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    code = model.operatorCodes[op.opcodeIndex]
    return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")


def _quant(tensor) -> tuple:
    q = tensor.quantization
    if q is None or q.scale is None:
        return ()
    return (tuple(np.asarray(q.scale).tolist()), tuple(np.asarray(q.zeroPoint).tolist()))


def _constant(model, tensor) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) != int(np.prod(tensor.shape)):
        return None
    return np.asarray(data, dtype=np.uint8).view(np.int8).reshape(tuple(int(d) for d in tensor.shape))


def _plain(options, padding: int | None = None) -> bool:
    return (
        options.strideW == options.strideH == 1
        and options.dilationWFactor == options.dilationHFactor == 1
        and (padding is None or options.padding == padding)
    )


def unsplit_first_conv(data: bytes) -> bytes | None:
    """``data`` (an int8 .tflite) with a row-shift split first convolution made whole again; None when the file
    holds no such split (nothing to undo)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    ops = list(graph.operators or [])
    for i, rows in enumerate(ops[:-1]):
        conv = ops[i + 1]
        if _op_name(schema, model, rows) != "DEPTHWISE_CONV_2D" or _op_name(schema, model, conv) != "CONV_2D":
            continue
        image, shifts = graph.tensors[rows.inputs[0]], graph.tensors[rows.outputs[0]]
        one_hot, weights = _constant(model, graph.tensors[rows.inputs[1]]), graph.tensors[conv.inputs[1]]
        k = int(shifts.shape[-1])
        consumers = [op for op in ops if rows.outputs[0] in list(op.inputs)]
        if (
            one_hot is None
            or one_hot.shape != (1, k, 1, k)
            or int(image.shape[-1]) != 1
            or rows.builtinOptions.depthMultiplier != k
            or rows.builtinOptions.fusedActivationFunction != 0
            or not _plain(rows.builtinOptions)
            or not _plain(conv.builtinOptions, rows.builtinOptions.padding)
            or conv.inputs[0] != rows.outputs[0]
            or consumers != [conv]
            or rows.outputs[0] in list(graph.outputs)
            or _quant(shifts) != _quant(image)  # the copies keep the image's scale and zero point
            or not np.array_equal(one_hot[0, :, 0, :] != 0, np.eye(k, dtype=bool))  # row i goes to channel i
            or len(weights.shape) != 4
            or int(weights.shape[1]) != 1
            or int(weights.shape[3]) != k
        ):
            continue
        kernel = _constant(model, weights)
        if kernel is None or (weights.quantization and weights.quantization.quantizedDimension not in (0, None)):
            continue
        whole = np.ascontiguousarray(np.transpose(kernel, (0, 3, 2, 1)))  # [f, 1, kw, rows] -> [f, rows, kw, 1]
        model.buffers[weights.buffer].data = whole.view(np.uint8).reshape(-1)
        weights.shape = np.asarray(whole.shape, dtype=np.int32)
        conv.inputs = np.asarray([rows.inputs[0], *list(conv.inputs)[1:]], dtype=np.int32)
        graph.operators = ops[:i] + ops[i + 1 :]  # the row copies' tensors stay, unused
        builder = flatbuffers.Builder(len(data) + 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
    return None


def write_unsplit(source: Path, out: Path) -> bool:
    """Write ``source`` with its first convolution whole to ``out``; False (nothing written) when it has no split."""
    made = unsplit_first_conv(Path(source).read_bytes())
    if made is None:
        return False
    Path(out).write_bytes(made)
    return True
