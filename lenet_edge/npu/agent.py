"""The NPU agent: what runs in the NPU tools' own Python (see env.py), with NumPy, ONNX Runtime and its QNN
execution provider, LiteRT and onnx only (never TensorFlow).

``python -m lenet_edge.npu.agent JOB.json`` does one task and prints its answer as one JSON line:
- ``versions``: the versions of the tools that compile and simulate (and of the QNN libraries inside).
- ``compile``: LiteRT's Qualcomm compiler plugin on a .tflite for one SoC (the plugin's own driver binary, with
  the QNN libraries of the onnxruntime-qnn wheel on its library path), then the same context binary wrapped as
  ONNX Runtime's EPContext model (``_ctx.onnx``).
- ``simulate``: a ``_ctx.onnx`` in ONNX Runtime's QNN execution provider, HTP backend (on x86-64: Qualcomm's HTP
  simulator), CPU fallback disabled, one digit per call; raw outputs saved as .npy; with ``profile`` > 0 the
  first digits run again with QNN profiling at "detailed", whose cycles per op are returned."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .graph import dispatches, io_tensors

EP = "QNNExecutionProvider"
_STATS = re.compile(
    r"Partitioned subgraph<(\d+)>, selected (\d+) ops, from a total of (\d+) ops\. resulted in (\d+) partitions"
)
_OP_EVENT = re.compile(r"^(?P<name>.*?)(?::OpId_\d+)? \(cycles\)$")
_SOURCE_OP = re.compile(r"_LiteRt_OpId_(\d+)$")
_COMPILED_FOR = re.compile(rb"soc_type=(\w+);arch=(\d+);")  # what the HTP compiler states in the context binary


def versions(job: dict) -> dict:
    import ai_edge_litert
    import onnx
    import onnxruntime
    import onnxruntime_qnn
    from onnxruntime_qnn import build_and_package_info as qnn_info

    litert = getattr(ai_edge_litert, "__version__", None)
    if litert is None:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    return {
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime-qnn": onnxruntime_qnn.__version__,
        "qnn_sdk": getattr(qnn_info, "qnn_version", None),
        "ai-edge-litert": litert,
        "onnx": onnx.__version__,
        "python": sys.version.split()[0],
    }


def _library_path(glue: str) -> str:
    """The QNN libraries of the wheel, the glue, and LiteRT's own folders (as its AOT driver sets them)."""
    import ai_edge_litert
    import onnxruntime_qnn

    litert = Path(ai_edge_litert.__file__).parent
    folders = [onnxruntime_qnn.LIB_DIR_FULL_PATH, glue, str(litert)]
    folders += sorted(str(p) for p in litert.rglob("*") if p.is_dir() and p.name != "__pycache__")
    return os.pathsep.join(folders)


def compile_soc(job: dict) -> dict:
    """The plugin's driver on one file for one SoC; returns its partition statistics (and its log on failure)."""
    import ai_edge_litert

    litert = Path(ai_edge_litert.__file__).parent
    plugin_dir = litert / "vendors" / "qualcomm" / "compiler"
    out = Path(job["out"])
    args = [
        str(litert / "tools" / "apply_plugin_main"),
        "--cmd=apply",
        f"--model={job['source']}",
        f"--o={out}",
        "--soc_manufacturer=Qualcomm",
        f"--soc_model={job['soc']}",
        f"--libs={plugin_dir}",
        "--err=-",
        "--qualcomm_log_level=warn",
    ]
    env = os.environ | {"LD_LIBRARY_PATH": _library_path(job["glue"])}
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    stats = [
        {"subgraph": int(s), "offloaded": int(sel), "total": int(tot), "partitions": int(p)}
        for s, sel, tot, p in _STATS.findall(done.stdout)
    ]
    if done.returncode != 0 or not out.is_file():
        tail = [line for line in done.stdout.splitlines() if "ERROR" in line or "rror" in line][-3:]
        return {"ok": False, "stats": stats, "error": "; ".join(tail)[:400] or f"exit code {done.returncode}"}
    answer: dict = {"ok": True, "stats": stats}
    stated = sorted({(soc.decode(), int(arch)) for soc, arch in _COMPILED_FOR.findall(out.read_bytes())})
    answer["compiled_for"] = [{"soc": soc, "htp_arch": f"v{arch}"} for soc, arch in stated]
    if job.get("ctx_out") and any(d.name for d in dispatches(out)):
        answer["ctx"] = write_ctx_model(out, Path(job["ctx_out"]))
    return answer


def write_ctx_model(compiled: Path, ctx_out: Path) -> dict:
    """The compiled file's context binary as an ONNX model of one EPContext node (embedded), I/O as the
    .tflite's. Only a file compiled whole (one partition, nothing left on the CPU) has one."""
    import onnx
    from onnx import TensorProto, helper

    found = dispatches(compiled)
    if len(found) != 1:
        return {"written": False, "why": f"{len(found)} partitions; an EPContext model is written for one"}
    dispatch = found[0]
    blob = compiled.read_bytes()[dispatch.offset : dispatch.offset + dispatch.size]
    inputs, outputs = io_tensors(compiled)
    types = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "float32": TensorProto.FLOAT}
    node = helper.make_node(
        "EPContext",
        [t.name for t in inputs],
        [t.name for t in outputs],
        name=dispatch.name,
        domain="com.microsoft",
        main_context=1,
        embed_mode=1,
        ep_cache_context=blob,
        source=EP,
        partition_name=dispatch.name,
    )
    graph = helper.make_graph(
        [node],
        "lenet5_int8_npu",
        [helper.make_tensor_value_info(t.name, types[t.dtype], list(t.shape)) for t in inputs],
        [helper.make_tensor_value_info(t.name, types[t.dtype], list(t.shape)) for t in outputs],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="lenet-edge",
    )
    model.ir_version = 9
    onnx.save(model, str(ctx_out))
    digest = hashlib.sha256(blob).hexdigest()
    return {"written": True, "partition": dispatch.name, "context_bytes": len(blob), "context_sha256": digest}


def _session(model: str, profile_csv: str | None = None, provider: dict | None = None):
    """A session on the QNN execution provider (HTP backend), CPU fallback disabled; every symbolic input
    dimension fixed to 1 (QNN compiles static shapes: a batch of one, as an app calls it)."""
    import onnx
    import onnxruntime as ort
    import onnxruntime_qnn

    if EP not in ort.get_available_providers() and not any(d.ep_name == EP for d in ort.get_ep_devices()):
        ort.register_execution_provider_library(EP, onnxruntime_qnn.get_library_path())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for tensor in onnx.load(model, load_external_data=False).graph.input:
        for dim in tensor.type.tensor_type.shape.dim:
            if dim.dim_param:
                options.add_free_dimension_override_by_name(dim.dim_param, 1)
    settings = {"backend_type": "htp"} | (provider or {})
    if profile_csv:
        settings |= {"profiling_level": "detailed", "profiling_file_path": profile_csv}
    options.add_provider_for_devices([d for d in ort.get_ep_devices() if d.ep_name == EP], settings)
    return ort.InferenceSession(model, options)


def parse_profile(path: Path) -> list[dict]:
    """QNN's "detailed" profile (CSV) as one record per execution: total cycles, cycles per op."""
    runs: list[dict] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            unit, name = row.get("Unit of Measurement"), row.get("Event Identifier", "")
            if unit != "CYCLES":
                continue
            if row.get("Event Level") == "ROOT" and name.startswith("Accelerator (execute) time"):
                runs.append({"cycles": int(row["Time"]), "ops": []})
            elif row.get("Event Level") == "SUB-EVENT" and runs:
                match = _OP_EVENT.match(name)
                op = match.group("name") if match else name
                source = _SOURCE_OP.search(op)
                runs[-1]["ops"].append(
                    {"op": op, "source_op": int(source.group(1)) if source else None, "cycles": int(row["Time"])}
                )
    return runs


def simulate(job: dict) -> dict:
    images = np.load(job["images"], allow_pickle=False)
    session = _session(job["model"], provider=job.get("provider"))
    name = session.get_inputs()[0].name
    kind = {"tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(session.get_inputs()[0].type, np.float32)
    outputs = [session.run(None, {name: images[i : i + 1].astype(kind)})[0][0] for i in range(len(images))]
    np.save(job["out"], np.stack(outputs))
    answer: dict = {"providers": session.get_providers(), "count": len(outputs)}
    if job.get("profile"):
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = str(Path(tmp) / "profile.csv")
            profiled = _session(job["model"], csv_path, job.get("provider"))
            for i in range(min(int(job["profile"]), len(images))):
                profiled.run(None, {name: images[i : i + 1].astype(kind)})
            del profiled  # the profile is written when the session ends
            answer["profile"] = parse_profile(Path(csv_path))
    return answer


TASKS = {"versions": versions, "compile": compile_soc, "simulate": simulate}


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text())
    try:
        answer = TASKS[job["task"]](job)
    except Exception as exc:  # one line back to the host, which names the SoC and the file
        answer = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
