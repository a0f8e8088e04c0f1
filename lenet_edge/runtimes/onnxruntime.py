"""ONNX Runtime Runner for .onnx files (CPU execution provider). Never imports TensorFlow. Its per-op profile
is ONNX Runtime's own profiler, per node of the optimized graph, with the nodes a quantized model runs in float
between Q/DQ pairs."""

from __future__ import annotations

import functools
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..manifest import Tensor
from .base import InProcessRunner

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}
LAYOUT_OPS = {"Transpose", "Reshape", "ReorderInput", "ReorderOutput", "Flatten", "Squeeze", "Unsqueeze"}
CONVERSION_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _spec(arg) -> Tensor:
    shape = [d if isinstance(d, int) else -1 for d in arg.shape]  # symbolic dims ("batch") are dynamic
    return Tensor(name=arg.name, dtype=_ORT_DTYPES.get(arg.type, arg.type), shape=shape)


def _session(path: Path, threads: int | None, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _kind(op: str, quantized: bool) -> str:
    if op.startswith(("QLinear", "QGemm")) or op.endswith("Integer"):
        return "int8 kernel"
    if op in CONVERSION_OPS:
        return "Q/DQ conversion"
    if op in LAYOUT_OPS:
        return "layout"
    return "float in a quantized model" if quantized else "float"


class OnnxRuntimeRunner(InProcessRunner):
    runtime = "onnxruntime"
    library = "onnxruntime"
    distribution = install = "onnxruntime"

    def _load(self, threads: int | None, **options) -> None:
        self.session = _session(self.path, threads)
        (in_arg,), (out_arg,) = self.session.get_inputs(), self.session.get_outputs()
        self.input, self.output = _spec(in_arg), _spec(out_arg)
        return None

    def precision(self) -> str:
        """int8 when the graph quantizes activations (Q/DQ pairs or QLinear kernels), dynamic when it has only
        integer kernels fed by DynamicQuantizeLinear, fp16 when it computes in float16, else fp32: from the ops
        ONNX Runtime runs (the runtime-only install has no onnx package to read initializers with)."""
        ops = {row["op"] for row in self.op_profile(runs=2)["ops"]}
        if ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm"}:
            return "int8"
        if "DynamicQuantizeLinear" in ops or any(op.endswith("Integer") for op in ops):
            return "dynamic"
        return "fp16" if self.input.dtype == "float16" else "fp32"

    def op_profile(self, runs: int = 300) -> dict:
        """Mean time per op type over ``runs`` batch-1 inferences on 1 thread, from ONNX Runtime's profiler."""
        with tempfile.TemporaryDirectory(prefix="lenet-edge-ortprof-") as tmp:
            session = _session(self.path, 1, str(Path(tmp) / "profile"))
            feed = {session.get_inputs()[0].name: np.zeros((1, 28, 28, 1), np.float32)}
            for _ in range(runs):
                session.run(None, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
        per_op: dict[str, float] = defaultdict(float)
        nodes: dict[str, set[str]] = defaultdict(set)
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                op = str(event["args"]["op_name"])
                per_op[op] += event["dur"] / runs
                nodes[op].add(event["name"].removesuffix("_kernel_time"))
        quantized = any(op in CONVERSION_OPS or op.startswith(("QLinear", "QGemm")) for op in per_op)
        total = sum(per_op.values()) or 1.0
        rows = [
            {"op": op, "kind": _kind(op, quantized), "nodes": len(nodes[op]), "us": us, "share": us / total}
            for op, us in sorted(per_op.items(), key=lambda item: -item[1])
        ]
        floats = sorted(n for op in per_op if _kind(op, quantized) == "float in a quantized model" for n in nodes[op])
        return {"runtime": self.runtime, "ops": rows, "total_us": total, "quantized": quantized, "float_nodes": floats}

    def _prepare(self, batch: np.ndarray):
        return functools.partial(self.session.run, [self.output.name], {self.input.name: batch})

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._prepare(batch)()[0]
