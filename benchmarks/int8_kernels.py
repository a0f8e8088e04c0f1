"""int8 against fp32 by kernel path: this CPU as it is, and as an AVX2-only host, in one run.

    python benchmarks/int8_kernels.py [MODEL.keras]

MODEL.keras (default export/lenet5.keras, from `make run`) is converted to the shipped formats and to int8
graph variants (the deployment graph before and after the row split of C1, and the rewrites tried beside it),
each checked bit for bit against the unsplit int8 file on the 10,000 test images. Every file is then timed
at batch 1 on 1 thread, in rounds that alternate between the files (medians), twice: in a process that sees
the CPU as it is, and in one whose CPUID answers hide AVX-512, VNNI and AMX (benchmarks/isa_avx2.c, built
here with gcc; x86-64 Linux with CPUID faulting only), so that XNNPACK and ONNX Runtime pick the kernels an
AVX2-only host runs. Writes benchmarks/INT8_KERNELS.md and int8_kernels.json."""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROUNDS, SECONDS = 11, 0.15


def timings(files: dict[str, str]) -> dict:
    """Batch-1 p50 µs per file, 1 thread, medians over rounds alternating between the files."""
    from lenet_edge.measure import time_calls
    from lenet_edge.runtimes import open_runner

    runners = {name: open_runner("litert" if path.endswith(".tflite") else "onnxruntime", path, threads=1)
               for name, path in files.items()}  # fmt: skip
    images = np.zeros((1, 28, 28), np.uint8)
    calls = {name: runner.prepared_call(runner.pixels(images)) for name, runner in runners.items()}
    p50 = {name: [] for name in files}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            p50[name].append(float(np.median(time_calls(call, SECONDS))) / 1e3)
    traps = 0
    preload = os.environ.get("LD_PRELOAD", "")
    if preload:
        traps = ctypes.c_uint32.in_dll(ctypes.CDLL(preload), "isa_avx2_traps").value
    return {"p50_us": {name: float(np.median(v)) for name, v in p50.items()}, "cpuid_traps": traps}


def variants(deployed) -> dict:
    """The int8 graph rewrites tried against C1's padding waste (each keeps every answer; checked below)."""
    import keras

    from lenet_edge.model import row_shifted_first_conv

    def rebuild(graph, replace):  # replace(op, x) -> the new output, or None to apply op as it is
        image = keras.Input(graph.inputs[0].shape[1:], name=graph.inputs[0].name)
        x = image
        for op in graph.operations[1:]:
            new = replace(op, x)
            x = op(x) if new is None else new
        return keras.Model(image, x, name=graph.name)

    def one_hot_depthwise(x, size: tuple[int, int], name: str, padding: str = "same"):
        taps = size[0] * size[1]
        layer = keras.layers.DepthwiseConv2D(size, depth_multiplier=taps, padding=padding, use_bias=False, name=name)
        layer.build(x.shape)
        weights = np.zeros((*size, x.shape[-1], taps), np.float32)
        for tap in range(taps):
            weights[tap // size[1], tap % size[1], :, tap] = 1.0
        layer.set_weights([weights])
        return layer(x)

    def conv_as(x, original, kernel, size, padding="valid"):
        conv = keras.layers.Conv2D(kernel.shape[-1], size, padding=padding, activation=original.activation,
                                   name=original.name)  # fmt: skip
        conv.build(x.shape)
        conv.set_weights([kernel, original.get_weights()[1]])
        return conv(x)

    def c1_patches(op, x):  # C1 as a 1×1 convolution over its 25 taps, gathered by a one-hot depthwise 5×5
        if op.name != "C1":
            return None
        kernel = op.get_weights()[0]
        x = one_hot_depthwise(x, kernel.shape[:2], "C1_patches", padding="valid")
        return conv_as(x, op, kernel.reshape(1, 1, -1, kernel.shape[-1]), 1)

    def c3_rows(op, x):  # C3 split into row shifts too (6 channels -> 30), after the shipped C1 split
        if op.name != "C3":
            return None
        kernel = op.get_weights()[0]
        kh, kw, cin, cout = kernel.shape
        x = one_hot_depthwise(x, (kh, 1), "C3_rows", padding="valid")
        return conv_as(x, op, np.transpose(kernel, (1, 2, 0, 3)).reshape(1, kw, cin * kh, cout), (1, kw))

    def c5_dense(op, x):  # C5 (5×5 over a 5×5 map) as a dense layer on the flattened map
        if op.name.startswith("reshape"):
            return x  # already flat
        if op.name != "C5":
            return None
        kernel = op.get_weights()[0]
        x = keras.ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))
        dense = keras.layers.Dense(kernel.shape[-1], activation=op.activation, name="C5")
        dense.build(x.shape)
        dense.set_weights([kernel.reshape(-1, kernel.shape[-1]), op.get_weights()[1]])
        return dense(x)

    split = row_shifted_first_conv(deployed)
    return {
        "C1 split into 5 row shifts + 1×5 conv (shipped)": split,
        "C1 as 25 one-hot taps + 1×1 conv": rebuild(deployed, c1_patches),
        "C1 and C3 split into row shifts": rebuild(split, c3_rows),
        "C1 split, C5 as a dense layer": rebuild(split, c5_dense),
    }


def build_files(model_path: Path, folder: Path, mnist) -> tuple[dict[str, str], dict[str, str]]:
    """Every file timed here, and whether each int8 variant answers bit for bit as the unsplit int8 file."""
    import keras

    from lenet_edge.data import calibration_images
    from lenet_edge.exporters import onnx as onnx_exporter
    from lenet_edge.exporters import tflite as tflite_exporter
    from lenet_edge.model import deployment_graph
    from lenet_edge.runtimes import open_runner

    deployed = deployment_graph(keras.saving.load_model(model_path, compile=False))
    calibration = calibration_images(mnist, 500, 0)  # the bundle's default count and seed
    files: dict[str, str] = {}

    def tflite_int8(graph, name: str, split: bool) -> None:
        path = folder / f"{len(files)}.tflite"
        path.write_bytes(tflite_exporter.make_converter(graph, "int8", calibration, row_split=split).convert())
        files[name] = str(path)

    for quantization, name in (("none", "tflite fp32"), ("dynamic", "tflite dynamic")):
        path = folder / f"{len(files)}.tflite"
        path.write_bytes(tflite_exporter.make_converter(deployed, quantization, calibration).convert())
        files[name] = str(path)
    tflite_int8(deployed, "tflite int8, C1 as trained (before)", split=False)
    graphs = variants(deployed)
    for name, graph in graphs.items():
        tflite_int8(graph, f"tflite int8, {name}", split=False)
    for quantization, name in (("none", "onnx fp32"), ("int8", "onnx int8 (shipped)")):
        path = folder / f"{len(files)}.onnx"
        onnx_exporter.export(deployed, path, calibration, quantization=quantization)
        files[name] = str(path)
    path = folder / f"{len(files)}.onnx"
    onnx_exporter.export(graphs["C1 split into 5 row shifts + 1×5 conv (shipped)"], path, calibration,
                         quantization="int8")  # fmt: skip
    files["onnx int8, C1 split into row shifts"] = str(path)

    answers = {name: open_runner("litert", path).predict(mnist.x_test, raw=True)
               for name, path in files.items() if "tflite int8" in name}  # fmt: skip
    before = answers["tflite int8, C1 as trained (before)"]
    same = {}
    for name, out in answers.items():
        differ = int(np.any(out != before, axis=1).sum())
        same[name] = "identical" if differ == 0 else f"{differ} rows differ"
    return files, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="export/lenet5.keras")
    parser.add_argument("--time", help=argparse.SUPPRESS)  # internal: time the files listed in this JSON file
    args = parser.parse_args()
    if args.time:
        print(json.dumps(timings(json.loads(Path(args.time).read_text()))))
        return
    if "cpuid_fault" not in Path("/proc/cpuinfo").read_text():
        sys.exit("int8_kernels: this host has no CPUID faulting, so no process here can see it as an AVX2 host")

    from lenet_edge.data import load_mnist
    from lenet_edge.files import write_json
    from lenet_edge.host import machine_info

    mnist = load_mnist(os.environ.get("LENET_EDGE_DATA"))
    with tempfile.TemporaryDirectory(prefix="lenet-edge-int8-") as tmp:
        folder = Path(tmp)
        shim = folder / "isa_avx2.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(HERE / "isa_avx2.c")], check=True)
        files, same = build_files(Path(args.model), folder, mnist)
        listing = folder / "files.json"
        listing.write_text(json.dumps(files))
        runs = {}
        for level, env in (("as it is", {}), ("AVX2 only (AVX-512, VNNI, AMX hidden)", {"LD_PRELOAD": str(shim)})):
            out = subprocess.run([sys.executable, __file__, "--time", str(listing)], env={**os.environ, **env},
                                 check=True, capture_output=True, text=True)  # fmt: skip
            runs[level] = json.loads(out.stdout.strip().splitlines()[-1])
    machine = machine_info()
    result = {"date": dt.date.today().isoformat(), "machine": machine, "answers": same, "runs": runs}
    write_json(HERE / "int8_kernels.json", result)
    (HERE / "INT8_KERNELS.md").write_text(markdown(result))
    print((HERE / "INT8_KERNELS.md").read_text())


def markdown(result: dict) -> str:
    machine = result["machine"]
    levels = list(result["runs"])
    lines = [
        "# int8 against fp32 by kernel path",
        "",
        f"Run {result['date']} by `python benchmarks/int8_kernels.py` on {machine['cpu']} ({machine['cores']} cores; "
        f"{', '.join(machine['kernel_features'])}). Batch-1 p50 in µs on 1 thread, medians of {ROUNDS} rounds "
        "alternating between the files. Each column is one process: the CPU as it is, and the same CPU with "
        "AVX-512, VNNI and AMX hidden from CPUID (benchmarks/isa_avx2.c), where XNNPACK and ONNX Runtime run "
        "the kernels of an AVX2-only host. The hidden column measures those kernels on this core, not another "
        "CPU's timing. Answers: every int8 .tflite against the unsplit one on the 10,000 test images.",
        "",
        "| file | answers | " + " | ".join(f"{level}: µs | vs fp32" for level in levels) + " |",
        "|---|---|" + "---:|---:|" * len(levels),
    ]
    for name in result["runs"][levels[0]]["p50_us"]:
        cells = []
        for level in levels:
            p50 = result["runs"][level]["p50_us"]
            base = p50["onnx fp32" if name.startswith("onnx") else "tflite fp32"]
            cells += [f"{p50[name]:.1f}", f"{p50[name] / base:.2f}×"]
        lines.append(f"| {name} | {result['answers'].get(name, '—')} | " + " | ".join(cells) + " |")
    lines.append("")
    traps = result["runs"][levels[-1]]["cpuid_traps"]
    lines.append(f"CPUID instructions answered by the mask in the hidden process: {traps}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
