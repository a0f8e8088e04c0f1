"""LiteRT (ai-edge-litert) Runner for .tflite files; XNNPACK on by default. Never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tf_quiet import silenced
from .base import Runner, TensorSpec


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    quantized = scale != 0.0
    return TensorSpec(
        name=detail["name"],
        dtype=np.dtype(detail["dtype"]).name,
        shape=[int(d) for d in detail["shape_signature"]],
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


class LiteRTRunner(Runner):
    runtime = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True):
        super().__init__(path, threads)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.xnnpack = xnnpack
        with silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(
                model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver
            )
            self.interpreter.allocate_tensors()
        (in_detail,), (out_detail,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self._in_index, self._out_index = in_detail["index"], out_detail["index"]
        self.input, self.output = _spec(in_detail), _spec(out_detail)
        self._shape = tuple(in_detail["shape"])

    @property
    def partitions(self) -> int:
        """Delegate partitions in the graph: 0 means XNNPACK was not applied (reference kernels only)."""
        return sum(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())

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
