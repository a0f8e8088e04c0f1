"""Classic graph against deployment graph, and the int8 ONNX options, measured in one run on this machine.

    python benchmarks/graphs.py [MODEL.keras] [--relu RELU_MODEL.keras]

MODEL.keras (default export/lenet5.keras, from `make run`) is converted twice: as trained (average pools,
Flatten) and as `lenet_edge.model.deployment_graph` makes it (fixed depthwise pools, constant reshape), which
is what lenet-edge ships. Each file: accuracy on the 10,000 test images, XNNPACK partitions and the ops left
to the CPU, batch-1 p50 and batch-256 throughput on 1 thread. Then the int8 ONNX options on the deployment
graph: QDQ or QOperator, S8S8 or U8S8, per-tensor or per-channel, ORT graph optimization levels and a saved
optimized model. With --relu, the same for a model trained with `--activation relu`. Timings alternate
between files over several rounds and report medians, so drift hits every file alike. Writes
benchmarks/GRAPHS.md and graphs.json."""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np

from lenet_edge.data import calibration_batches, calibration_images, load_mnist
from lenet_edge.exporters import onnx as onnx_exporter
from lenet_edge.exporters import tflite as tflite_exporter
from lenet_edge.files import write_json
from lenet_edge.host import machine_info
from lenet_edge.measure import time_calls
from lenet_edge.model import deployment_graph
from lenet_edge.runtimes import open_runner

HERE = Path(__file__).resolve().parent
ROUNDS, SECONDS = 5, 0.3


def export_pair(model, folder: Path, calibration: np.ndarray, tag: str) -> dict[str, Path]:
    """tflite fp32/int8 and onnx fp32/int8 of one graph."""
    files = {}
    for fmt, exporter, quantization, suffix in (
        ("tflite-fp32", tflite_exporter, "none", "tflite"), ("tflite-int8", tflite_exporter, "int8", "tflite"),
        ("onnx-fp32", onnx_exporter, "none", "onnx"), ("onnx-int8", onnx_exporter, "int8", "onnx"),
    ):  # fmt: skip
        path = folder / f"{tag}_{fmt}.{suffix}"
        exporter.export(model, path, calibration, quantization=quantization)
        files[fmt] = path
    return files


def onnx_options(fp32: Path, folder: Path, calibration: np.ndarray) -> dict[str, Path]:
    """The int8 ONNX variants ONNX Runtime's quantizer offers, from one float file."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = calibration_batches(calibration, 100)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {onnx_exporter.INPUT_NAME: batch}

    prepared = folder / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    files = {}
    for form in ("QDQ", "QOperator"):
        for activations in ("S8", "U8"):
            for per_channel in (False, True):
                name = f"{form} {activations}S8 {'per-channel' if per_channel else 'per-tensor'}"
                path = folder / (name.replace(" ", "_") + ".onnx")
                quantize_static(
                    str(prepared), str(path), Reader(), quant_format=getattr(QuantFormat, form),
                    activation_type=QuantType.QInt8 if activations == "S8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel,
                )  # fmt: skip
                files[name] = path
    return files


def ort_session_runner(path: Path, level: str, optimized: Path | None = None):
    """An ONNX Runtime runner at a graph optimization level (optionally saving the optimized model)."""
    import onnxruntime as ort

    runner = open_runner("onnxruntime", path, threads=1)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    runner.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return runner


def measure(runners: dict[str, object], mnist, reference: np.ndarray) -> dict[str, dict]:
    """Accuracy, agreement with Keras, batch-1 p50 and batch-256 throughput; timings over alternating rounds."""
    results = {}
    for name, runner in runners.items():
        probs = runner.predict(mnist.x_test)
        results[name] = {
            "accuracy": float(np.mean(probs.argmax(1) == mnist.y_test)),
            "agreement": float(np.mean(probs.argmax(1) == reference.argmax(1))),
            "max_abs_dp": float(np.abs(probs - reference).max()),
            "p50_us": [],
            "ips_256": [],
        }
    one, many = mnist.x_test[:1], mnist.x_test[:256]
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            results[name]["p50_us"].append(float(np.median(time_calls(runner.prepared_call(one), SECONDS))) / 1e3)
            batch = time_calls(runner.prepared_call(many), SECONDS, min_runs=5)
            results[name]["ips_256"].append(256 / (float(np.median(batch)) / 1e9))
    for row in results.values():
        row["p50_us"], row["ips_256"] = float(np.median(row["p50_us"])), float(np.median(row["ips_256"]))
    return results


def graphs_table(model, mnist, calibration, folder: Path, tag: str) -> tuple[list[dict], Path, dict]:
    import keras  # noqa: F401  (TensorFlow is needed here anyway)

    reference = model.predict(mnist.x_test.reshape(-1, 28, 28, 1).astype(np.float32), verbose=0, batch_size=1000)
    files = {}
    for graph, built in (("classic", model), ("deployment", deployment_graph(model))):
        for fmt, path in export_pair(built, folder, calibration, f"{tag}_{graph}").items():
            files[(graph, fmt)] = path
    runners = {key: open_runner("litert" if key[1].startswith("tflite") else "onnxruntime", path, threads=1)
               for key, path in files.items()}  # fmt: skip
    measured = measure(runners, mnist, reference)
    rows = []
    for (graph, fmt), result in measured.items():
        path = files[graph, fmt]
        row = {"model": tag, "graph": graph, "format": fmt, "size_kb": path.stat().st_size / 1024, **result}
        if fmt.startswith("tflite"):
            found = open_runner("litert", path).op_profile()
            row["partitions"] = found["partitions"]
            row["left_to_cpu"] = sorted({op["op"] for op in found["left_to_cpu"]})
        else:
            row["float_ops"] = sorted({r["op"] for r in open_runner("onnxruntime", path).op_profile(runs=20)["ops"]
                                       if r["kind"] == "float in a quantized model"})  # fmt: skip
        rows.append(row)
    profiles = {fmt: open_runner("onnxruntime", files["deployment", fmt]).op_profile(runs=2000)
                for fmt in ("onnx-fp32", "onnx-int8")}  # fmt: skip
    return rows, files["deployment", "onnx-fp32"], profiles


def ort_table(fp32: Path, mnist, calibration, reference_model, folder: Path, tag: str) -> list[dict]:
    reference = reference_model.predict(mnist.x_test.reshape(-1, 28, 28, 1).astype(np.float32), verbose=0)
    variants = onnx_options(fp32, folder, calibration)
    runners = {("fp32", "ORT_ENABLE_ALL"): ort_session_runner(fp32, "ORT_ENABLE_ALL")}
    for name, path in variants.items():
        runners[(name, "ORT_ENABLE_ALL")] = ort_session_runner(path, "ORT_ENABLE_ALL")
    qdq = variants["QDQ S8S8 per-tensor"]
    for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED"):
        runners[("QDQ S8S8 per-tensor", level)] = ort_session_runner(qdq, level)
    saved = folder / f"{tag}_qdq_optimized.onnx"
    ort_session_runner(qdq, "ORT_ENABLE_ALL", optimized=saved)
    runners[("QDQ S8S8 per-tensor, saved optimized model", "ORT_DISABLE_ALL")] = ort_session_runner(
        saved, "ORT_DISABLE_ALL"
    )
    measured = measure(runners, mnist, reference)
    fp32_p50 = measured["fp32", "ORT_ENABLE_ALL"]["p50_us"]
    return [
        {"model": tag, "variant": name, "optimization": level, **result, "vs_fp32": result["p50_us"] / fp32_p50}
        for (name, level), result in measured.items()
    ]


def main() -> int:
    import keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(HERE.parent / "export" / "lenet5.keras"))
    parser.add_argument("--relu", help="a model trained with --activation relu")
    args = parser.parse_args()
    mnist = load_mnist()
    calibration = calibration_images(mnist, 500, 0)
    graph_rows, ort_rows, profiles = [], [], {}
    with tempfile.TemporaryDirectory(prefix="lenet-edge-graphs-") as tmp:
        for tag, path in (("tanh", args.model), ("relu", args.relu)):
            if path is None:
                continue
            model = keras.saving.load_model(path, compile=False)
            print(f"{tag}: classic and deployment graphs", flush=True)
            rows, fp32, profiles[tag] = graphs_table(model, mnist, calibration, Path(tmp), tag)
            graph_rows += rows
            print(f"{tag}: int8 ONNX options", flush=True)
            ort_rows += ort_table(fp32, mnist, calibration, model, Path(tmp), tag)
    results = {"machine": machine_info(), "graphs": graph_rows, "onnx_int8": ort_rows, "ort_profiles": profiles}
    write_json(HERE / "graphs.json", results)
    (HERE / "GRAPHS.md").write_text(render(graph_rows, ort_rows, profiles, machine_info()))
    print(f"wrote {HERE / 'GRAPHS.md'}")
    return 0


def render(graph_rows: list[dict], ort_rows: list[dict], profiles: dict, machine: dict) -> str:
    lines = [
        "# Classic graph against deployment graph",
        "",
        f"Run {dt.date.today().isoformat()} by `python benchmarks/graphs.py` on {machine['cpu']} "
        f"({machine['cores']} cores). 1 thread; batch-1 p50 and batch-256 throughput are medians of {ROUNDS} "
        "rounds that alternate between the files; accuracy on the 10,000 test images. Read ratios within this "
        "run: the machine is noisy.",
        "",
        "| model | graph | format | accuracy | agreement with Keras | p50 µs | img/s @256 | partitions / float ops |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in graph_rows:
        if "partitions" in row:
            left = ", ".join(row["left_to_cpu"]) or "none"
            accel = f"XNNPACK {row['partitions']}; CPU: {left}"
        elif row["format"].endswith("int8"):
            accel = "float inside int8: " + (", ".join(row["float_ops"]) or "none")
        else:
            accel = "—"
        lines.append(
            f"| {row['model']} | {row['graph']} | {row['format']} | {row['accuracy']:.2%} | {row['agreement']:.2%} "
            f"| {row['p50_us']:.1f} | {row['ips_256']:,.0f} | {accel} |"
        )
    lines += ["", "## int8/fp32 at batch 1", ""]
    for model in dict.fromkeys(r["model"] for r in graph_rows):
        for graph in ("classic", "deployment"):
            cell = {r["format"]: r for r in graph_rows if r["model"] == model and r["graph"] == graph}
            ratios = [
                f"{family} {cell[f'{family}-int8']['p50_us'] / cell[f'{family}-fp32']['p50_us']:.2f}×"
                for family in ("tflite", "onnx")
            ]
            lines.append(f"- {model}, {graph} graph: {', '.join(ratios)}")
    lines += [
        "",
        "## int8 ONNX options (deployment graph)",
        "",
        "| model | variant | ORT optimization | accuracy | agreement with Keras | p50 µs | vs fp32 | img/s @256 |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in ort_rows:
        lines.append(
            f"| {row['model']} | {row['variant']} | {row['optimization']} | {row['accuracy']:.2%} | "
            f"{row['agreement']:.2%} | {row['p50_us']:.1f} | {row['vs_fp32']:.2f}× | {row['ips_256']:,.0f} |"
        )
    lines += [
        "",
        "## Where ONNX Runtime's int8 time goes (deployment graph)",
        "",
        "ONNX Runtime's profiler over 2,000 batch-1 runs on 1 thread: mean µs per run by op type (the profiler "
        "adds its own cost per node, so compare the columns, not with the p50s above).",
        "",
    ]
    for model, by_format in profiles.items():
        ops = list(dict.fromkeys(r["op"] for data in by_format.values() for r in data["ops"]))
        us = {(fmt, r["op"]): r for fmt, data in by_format.items() for r in data["ops"]}
        lines += [f"*{model}*", "", "| op | fp32 µs | int8 µs | int8 kind |", "|---|---:|---:|---|"]
        for op in ops:
            fp32, int8 = us.get(("onnx-fp32", op)), us.get(("onnx-int8", op))
            cells = [f"{r['us']:.1f}" if r else "—" for r in (fp32, int8)]
            lines.append(f"| {op} | {cells[0]} | {cells[1]} | {int8['kind'] if int8 else '—'} |")
        totals = [by_format[f]["total_us"] for f in ("onnx-fp32", "onnx-int8")]
        lines += [f"| **all** | **{totals[0]:.1f}** | **{totals[1]:.1f}** | |", ""]
        conv, qconv = us.get(("onnx-fp32", "Conv")), us.get(("onnx-int8", "QLinearConv"))
        floats = [r["op"] for r in by_format["onnx-int8"]["ops"] if r["kind"] == "float in a quantized model"]
        conversions = sum(r["us"] for r in by_format["onnx-int8"]["ops"] if r["kind"] == "Q/DQ conversion")
        if conv and qconv:
            lines += [
                f"Reading ({model}): the int8 convolutions alone take {qconv['us']:.1f} µs against "
                f"{conv['us']:.1f} µs for the float ones; Q/DQ conversions add {conversions:.1f} µs; float inside "
                f"int8: {', '.join(floats) or 'nothing'}.",
                "",
            ]
    return "\n".join(lines) + "\n"


def rerender() -> None:
    """GRAPHS.md again from graphs.json, without measuring."""
    import json

    data = json.loads((HERE / "graphs.json").read_text())
    (HERE / "GRAPHS.md").write_text(render(data["graphs"], data["onnx_int8"], data["ort_profiles"], data["machine"]))


if __name__ == "__main__":
    raise SystemExit(main())
