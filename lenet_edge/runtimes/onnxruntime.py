"""ONNX Runtime Runner for .onnx files (CPU execution provider). Never imports TensorFlow."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .base import Runner, TensorSpec

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}


def _spec(arg) -> TensorSpec:
    shape = [d if isinstance(d, int) else -1 for d in arg.shape]  # symbolic dims ("batch") are dynamic
    return TensorSpec(name=arg.name, dtype=_ORT_DTYPES.get(arg.type, arg.type), shape=shape)


class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__(path, threads)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (in_arg,), (out_arg,) = self.session.get_inputs(), self.session.get_outputs()
        self.input, self.output = _spec(in_arg), _spec(out_arg)

    def _prepare(self, batch: np.ndarray):
        return functools.partial(self.session.run, [self.output.name], {self.input.name: batch})

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._prepare(batch)()[0]
