"""LiteRT (ai-edge-litert) Runner for .tflite files; XNNPACK on by default, as apps get it. Never imports
TensorFlow. Its per-op profile is read from the delegated graph: which ops XNNPACK took, in how many partitions,
and which it left to the reference CPU kernels (LiteRT's Python API has no per-op timer)."""

from __future__ import annotations

import numpy as np

from ..console import silenced
from ..layer_names import layer_of
from .base import InProcessRunner, tflite_precision, tflite_tensor


def _interpreter(path, threads: int | None = None, xnnpack: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return interpreter


def graph_ops(path) -> list[str]:
    """The builtin ops of the file's graph, as its C++ op resolver must register them, in graph order."""
    ops = _interpreter(path, xnnpack=False)._get_ops_details()
    return list(dict.fromkeys(op["op_name"] for op in ops))


def xnnpack_partitions(interpreter) -> dict:
    """Ops XNNPACK took, in how many partitions, and the ops it left to the CPU reference kernels."""
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {tensor: op["index"] for op in originals for tensor in op["outputs"]}
    by_index = {op["index"]: op for op in originals}
    taken: set[int] = set()
    for delegate in delegates:  # walk back from each partition's outputs to its inputs
        boundary, stack = set(delegate["inputs"]), list(delegate["outputs"])
        while stack:
            tensor = stack.pop()
            index = producer.get(tensor)
            if index is None or index in taken or tensor in boundary:
                continue
            taken.add(index)
            stack.extend(by_index[index]["inputs"])
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    left = [
        {"op": op["op_name"], "layer": layer_of(names.get(op["outputs"][0], ""), op["op_name"])}
        for op in originals
        if op["index"] not in taken
    ]
    return {"partitions": len(delegates), "ops": len(originals), "delegated": len(taken), "left_to_cpu": left}


class LiteRTRunner(InProcessRunner):
    runtime = "litert"
    library = "ai_edge_litert.interpreter"
    distribution = install = "ai-edge-litert"

    def _load(self, threads: int | None, **options) -> None:
        self.interpreter = _interpreter(self.path, threads, xnnpack=self.delegate == "xnnpack")
        (in_detail,), (out_detail,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self._in_index, self._out_index = in_detail["index"], out_detail["index"]
        self.input, self.output = tflite_tensor(in_detail), tflite_tensor(out_detail)
        self._shape = tuple(in_detail["shape"])
        return None

    @property
    def partitions(self) -> int:
        """Delegate partitions in the graph: 0 means XNNPACK was not applied (reference kernels only)."""
        return sum(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())

    def precision(self) -> str:
        """What the file computes in, by base.tflite_precision's rules, read from its own graph."""
        interpreter = _interpreter(self.path, xnnpack=False)  # the file's own graph, no delegate rewriting it
        dtype = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
        computed = {dtype[i] for op in interpreter._get_ops_details() for i in op["outputs"] if i in dtype}
        return tflite_precision(computed, set(dtype.values()))

    def op_profile(self, runs: int = 300) -> dict:
        """What XNNPACK takes of the file as an app loads it (a fresh interpreter, default delegates)."""
        return {"runtime": self.runtime, **xnnpack_partitions(_interpreter(self.path))}

    def _prepare(self, batch: np.ndarray):
        if batch.shape != self._shape:
            self.interpreter.resize_tensor_input(self._in_index, batch.shape, strict=True)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        self.interpreter.set_tensor(self._in_index, batch)
        return self.interpreter.invoke

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._prepare(batch)()
        return self.interpreter.get_tensor(self._out_index).copy()
