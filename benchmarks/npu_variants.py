"""Graph variants of the int8 model on Snapdragon's NPU, in Qualcomm's HTP simulator:

    python benchmarks/npu_variants.py [BUNDLE] [--soc SM8550 --soc SM8650] [--limit N] [--profiled N]

BUNDLE (default export/, from `make run`) holds the trained model. The int8 .tflite it ships splits C1 into row
shifts for XNNPACK's x86 int8 kernels (lenet_edge.model.row_shifted_first_conv); the HTP pays for that trick.
Each variant is converted from the same deployment graph and calibration, compiled by `lenet-edge npu` for each
SoC, judged on the first N test digits (default 2,000) and profiled on N more (default 100, in one process
with nothing beside it): accuracy and agreement against Keras with the int8 gates, and simulated HTP cycles
per image (median, quartiles, minimum) and per op. The simulator runs the HTP's threads as host threads, so
its cycles move with the host's load: run it on a quiet machine. Writes benchmarks/NPU_VARIANTS.md and
npu_variants.json, with the machine it ran on."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from lenet_edge.data import calibration_images, load_mnist
from lenet_edge.files import sha256_file, write_json
from lenet_edge.host import machine_info
from lenet_edge.manifest import read_manifest
from lenet_edge.npu.chart import layer_of
from lenet_edge.npu.command import NpuOptions, run_npu
from lenet_edge.npu.socs import parse_socs

HERE = Path(__file__).resolve().parent


def c5_as_dense(model):
    """The deployment graph with C5 (a 5×5 convolution over the 5×5×16 map, valid: one output position) as a
    reshape and a dense layer with the same weights: the same arithmetic, a matrix product instead of a conv."""
    import keras

    image = keras.Input(model.inputs[0].shape[1:], name=model.inputs[0].name.split(":")[0])
    x = image
    for layer in model.layers[1:]:
        if layer.name == "C5":
            kernel, bias = layer.get_weights()
            x = keras.ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))
            dense = keras.layers.Dense(kernel.shape[-1], activation=layer.activation, name="C5")
            dense.build(x.shape)
            dense.set_weights([kernel.reshape(-1, kernel.shape[-1]), bias])
            x = dense(x)
        elif len(x.shape) == 2 and not layer.weights:  # the reshape after C5: already flat
            continue
        else:
            x = layer(x)
    return keras.Model(image, x, name=model.name)


def variants(bundle: Path, mnist) -> dict[str, bytes]:
    """The int8 .tflite of each variant (the shipped file as it is, the others converted here)."""
    import keras

    from lenet_edge.exporters.tflite import make_converter
    from lenet_edge.model import deployment_graph
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    manifest = read_manifest(bundle)
    calibration = calibration_images(mnist, manifest.calibration["images"], manifest.calibration["seed"])
    deployed = deployment_graph(keras.models.load_model(bundle / "lenet5.keras"))
    dense = c5_as_dense(deployed)
    probe = mnist.x_test[:256].reshape(-1, 28, 28, 1).astype(np.float32)
    assert np.abs(dense.predict_on_batch(probe) - deployed.predict_on_batch(probe)).max() < 1e-5
    made = {"shipped: C1 split in row shifts": (bundle / "lenet5_int8.tflite").read_bytes()}
    for name, graph, split in (("C1 as trained", deployed, False), ("C1 as trained, C5 dense", dense, False),
                               ("C1 split, C5 dense", dense, True)):  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made[name] = make_converter(graph, "int8", calibration, row_split=split).convert()
    return made


def measure(bundle: Path, name: str, model: bytes, socs, mnist, limit: int, profiled: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="npu-variant-") as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("npu"))
        (copy / "lenet5_int8.tflite").write_bytes(model)
        data = json.loads((copy / "manifest.json").read_text())
        data.pop("npu", None)
        for artifact in data["artifacts"]:
            if artifact["format"] == "tflite-int8":
                artifact |= {"sha256": sha256_file(copy / "lenet5_int8.tflite"), "bytes": len(model)}
        write_json(copy / "manifest.json", data)
        print(f"== {name}", flush=True)
        options = NpuOptions(copy, socs, limit, workers=1, profiled=profiled, onnx=False, rewrite=False)
        status, section = run_npu(options, mnist)
    return {"variant": name, "bytes": len(model), "status": status, "socs": section["socs"], "info": section["info"]}


def markdown(results: list[dict], machine: dict, limit: int, profiled: int) -> str:
    socs = [row["soc"]["model"] for row in results[0]["socs"]]
    lines = [
        "# The int8 model's graph variants on Snapdragon's NPU (HTP), in Qualcomm's simulator",
        "",
        f"Made by `python benchmarks/npu_variants.py` on {dt.date.today()}: {machine['cpu']}, {machine['cores']} "
        f"cores. Each variant compiled by `lenet-edge npu` (LiteRT's Qualcomm plugin, QNN "
        f"{results[0]['info']['tools']['qnn_sdk']}), judged on the first {limit:,} test digits, profiled on "
        f"{profiled} digits in one process. Simulated cycles are not repeatable here: from one run to the next every "
        "op's count moves together, by up to 1.7× (the simulator runs the HTP's threads as host threads). So the "
        "variants are compared by their total against C3's own cycles in the same run (C3 is the same in every "
        "variant), below the table.",
        "",
        "| Variant | " + " | ".join(f"{s} cycles/image: median (quartiles), min" for s in socs)
        + " | accuracy | agree Keras | gate |",
        "|---|" + "---:|" * len(socs) + "---:|---:|---|",
    ]  # fmt: skip
    for result in results:
        cells = []
        for row in result["socs"]:
            c = row.get("cycles") or {}
            q = c.get("quartiles_per_image", [0, 0])
            cells.append(f"{c.get('median_per_image', 0):,} ({q[0]:,}-{q[1]:,}), {c.get('min_per_image', 0):,}")
        judged = result["socs"][0].get("judge") or {}
        lines.append(
            f"| {result['variant']} | " + " | ".join(cells) + f" | {judged.get('accuracy', 0):.2%} | "
            f"{judged.get('agreement_keras', 0):.2%} | {judged.get('status', result['socs'][0].get('status'))} |"
        )
    lines += ["", f"Cycles by layer (each op's median per image, summed), {socs[0]}:", ""]
    for result in results:
        layers: dict[str, int] = {}
        for op in (result["socs"][0].get("cycles") or {}).get("ops", []):
            layers[layer_of(op)] = layers.get(layer_of(op), 0) + op["median_cycles"]
        lines.append(f"- {result['variant']}: " + ", ".join(f"{k} {v:,}" for k, v in layers.items() if v))
    baseline = in_c3(results[0])
    lines += ["", "Cycles per image in units of the same run's C3, against the shipped file's:", ""]
    for result in results[1:]:
        ratios = [f"{soc} {new / old:.2f}×" for soc, new, old in zip(socs, in_c3(result), baseline, strict=True)]
        lines.append(f"- {result['variant']}: " + ", ".join(ratios))
    return "\n".join(lines) + "\n"


def in_c3(result: dict) -> list[float]:
    """Each SoC's cycles per image (the ops' medians summed) divided by C3's: the run's own yardstick."""
    ratios = []
    for row in result["socs"]:
        ops = (row.get("cycles") or {}).get("ops", [])
        c3 = sum(op["median_cycles"] for op in ops if layer_of(op) == "C3")
        ratios.append(sum(op["median_cycles"] for op in ops) / max(c3, 1))
    return ratios


def rewrite(json_path: Path) -> None:
    """Render NPU_VARIANTS.md again from npu_variants.json (no measuring)."""
    data = json.loads(json_path.read_text())
    (HERE / "NPU_VARIANTS.md").write_text(markdown(data["results"], data["machine"], data["limit"], data["profiled"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default="export")
    parser.add_argument("--soc", action="append")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--profiled", type=int, default=100)
    args = parser.parse_args()
    bundle = Path(args.bundle)
    mnist = load_mnist(None, recorded=read_manifest(bundle).dataset)
    socs = parse_socs(args.soc or ["SM8550", "SM8650"], False)
    results = [measure(bundle, name, model, socs, mnist, args.limit, args.profiled)
               for name, model in variants(bundle, mnist).items()]  # fmt: skip
    machine = machine_info()
    write_json(HERE / "npu_variants.json",
               {"machine": machine, "limit": args.limit, "profiled": args.profiled, "results": results})  # fmt: skip
    (HERE / "NPU_VARIANTS.md").write_text(markdown(results, machine, args.limit, args.profiled))
    print((HERE / "NPU_VARIANTS.md").read_text())


if __name__ == "__main__":
    main()
