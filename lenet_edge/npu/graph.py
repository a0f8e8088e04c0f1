"""What a .tflite file's graph holds, read from its flatbuffer: the op of every node, and the NPU bytecode a
compiled file's ``DISPATCH_OP`` nodes point at. Runs anywhere LiteRT is installed (it ships the schema);
NumPy, flatbuffers and the standard library otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DISPATCH_OP = "DISPATCH_OP"  # the custom op LiteRT's compiler plugins leave in place of what the NPU runs


@dataclass(frozen=True)
class Node:
    subgraph: int
    index: int
    op: str  # builtin name (CONV_2D) or the custom op's code (DISPATCH_OP)
    outputs: tuple[str, ...]  # the names of the tensors it writes: what says which layer it is


@dataclass(frozen=True)
class Dispatch:
    """One compiled partition: the NPU's bytecode (a QNN context binary) inside the .tflite file."""

    name: str  # the graph's name inside the context binary (qnn_partition_0)
    offset: int
    size: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _model(path: Path):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)


def nodes(path: Path) -> list[Node]:
    """Every op of every subgraph, in order."""
    schema, model = _model(path)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    found = []
    for s, subgraph in enumerate(model.subgraphs or []):
        for i, op in enumerate(subgraph.operators or []):
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = code.customCode.decode() if code.customCode else names.get(builtin, f"op {builtin}")
            outs = tuple(subgraph.tensors[t].name.decode() for t in (op.outputs if op.outputs is not None else []))
            found.append(Node(s, i, name, outs))
    return found


def dispatches(path: Path) -> list[Dispatch]:
    """The compiled partitions of a file LiteRT's compiler plugin wrote (none for a plain .tflite)."""
    from flatbuffers import flexbuffers

    _, model = _model(path)
    found = []
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if (code.customCode or b"").decode() != DISPATCH_OP:
                continue
            options = flexbuffers.Loads(bytes(op.customOptions))
            tensor_names = [t.name.decode() for t in subgraph.tensors]
            found.append(
                Dispatch(
                    name=str(options["name"]),
                    offset=int(options["bytecode_offset"]),
                    size=int(options["bytecode_size"]),
                    inputs=tuple(tensor_names[i] for i in op.inputs),
                    outputs=tuple(tensor_names[i] for i in op.outputs),
                )
            )
    return found


def left_on_cpu(compiled: Path) -> list[Node]:
    """The ops of a compiled file that the NPU does not run: everything but its DISPATCH_OP nodes."""
    return [node for node in nodes(compiled) if node.op != DISPATCH_OP]


@dataclass(frozen=True)
class IoTensor:
    name: str
    dtype: str  # numpy's name: uint8, int8, float32
    shape: tuple[int, ...]


_DTYPES = {"FLOAT32": "float32", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32"}


def io_tensors(path: Path) -> tuple[list[IoTensor], list[IoTensor]]:
    """The first subgraph's inputs and outputs: name, dtype, shape."""
    schema, model = _model(path)
    types = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    subgraph = model.subgraphs[0]

    def tensor(i: int) -> IoTensor:
        t = subgraph.tensors[i]
        return IoTensor(t.name.decode(), _DTYPES.get(types.get(t.type, ""), "unknown"), tuple(int(d) for d in t.shape))

    return [tensor(i) for i in subgraph.inputs], [tensor(i) for i in subgraph.outputs]
