"""Where the time goes, op by op: what XNNPACK takes whole and what ONNX Runtime leaves in float.

- LiteRT: which ops XNNPACK took (and in how many partitions) and which it left to the reference CPU kernels,
  read from the delegated graph itself. LiteRT's Python API has no per-op timer (the C++ benchmark_model's
  --enable_op_profiling has), so the cost of what XNNPACK left shows as latency with XNNPACK against without.
- ONNX Runtime: its own profiler, per node of the optimized graph, and for a quantized model which nodes run
  in float between Q/DQ pairs. NumPy and the runtimes only."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from .exporters import layer_of
from .tf_quiet import silenced

LAYOUT_OPS = {"Transpose", "Reshape", "ReorderInput", "ReorderOutput", "Flatten", "Squeeze", "Unsqueeze"}
CONVERSION_OPS = {"QuantizeLinear", "DequantizeLinear"}


def litert_partitions(path: Path) -> dict:
    """Ops XNNPACK took, in how many partitions, and the ops it left to the CPU reference kernels."""
    from ai_edge_litert.interpreter import Interpreter

    with silenced():
        interpreter = Interpreter(model_path=str(path))  # XNNPACK applied, as apps get it by default
        interpreter.allocate_tensors()
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


def ort_op_profile(path: Path, runs: int = 300, threads: int = 1) -> dict:
    """Mean time per op type over ``runs`` batch-1 inferences, from ONNX Runtime's profiler."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="lenet-edge-ortprof-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.zeros((1, 28, 28, 1), np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            per_op[op] += event["dur"] / runs
            nodes[op].add(event["name"].removesuffix("_kernel_time"))
    quantized = any(op in CONVERSION_OPS or op.startswith(("QLinear", "QGemm")) for op in per_op)
    total = sum(per_op.values()) or 1.0
    rows = [
        {"op": op, "kind": _kind(op, quantized), "nodes": len(nodes[op]), "us": us, "share": us / total}
        for op, us in sorted(per_op.items(), key=lambda item: -item[1])
    ]
    float_nodes = sorted(n for row in rows if row["kind"] == "float in a quantized model" for n in nodes[row["op"]])
    return {"ops": rows, "total_us": total, "quantized": quantized, "float_nodes": float_nodes}


def _kind(op: str, quantized: bool) -> str:
    if op.startswith(("QLinear", "QGemm")) or op.endswith("Integer"):
        return "int8 kernel"
    if op in CONVERSION_OPS:
        return "Q/DQ conversion"
    if op in LAYOUT_OPS:
        return "layout"
    return "float in a quantized model" if quantized else "float"


def profile_bundle(bundle: Path, manifest: dict) -> dict:
    """Per-op evidence for every TFLite and ONNX artifact of the bundle."""
    result = {}
    for entry in manifest["artifacts"]:
        path = bundle / entry["file"]
        if entry["runtime"] == "litert":
            result[entry["format"]] = {"runtime": "litert", **litert_partitions(path)}
        elif entry["runtime"] == "onnxruntime":
            result[entry["format"]] = {"runtime": "onnxruntime", **ort_op_profile(path)}
    return result
