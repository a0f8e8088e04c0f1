"""Reproduce the published benchmark numbers: python benchmarks/run.py [BUNDLE] (default export/).

Runs `lenet-edge bench` in the host and mobile profiles on the bundle `make run` wrote, checks the harness
against bare runtime loops, trains with lenet-edge's default recipe beside the peer recipe (peer_training.py),
alternated in fresh processes, and, when the emulated ARM64 target is set up (`make arm64-emu`), verifies every
export on it and counts instructions per image on each emulated core. Writes benchmarks/RESULTS.md (with its
charts) and results.json (every row), with the machine it ran on. `--no-training` leaves the training out."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from lenet_edge.bench import harness_overhead
from lenet_edge.cli import main as lenet_edge
from lenet_edge.data import load_mnist
from lenet_edge.files import write_json
from lenet_edge.host import machine_info
from lenet_edge.manifest import TARGETS_PNG, read_manifest
from lenet_edge.records import BenchRow
from lenet_edge.report import read_report
from lenet_edge.report.markdown import bench_section, profile_section, recommendation_section, targets_section
from lenet_edge.targets import arm64_emu

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training  # benchmarks/training.py, beside this script

HERE = Path(__file__).resolve().parent
TRAINING_ROUNDS = 2  # peer, ours, peer, ours: drift between them hits both alike


def training_side_by_side(data: str, rounds: int = TRAINING_ROUNDS) -> dict:
    """The seed recipe and `lenet-edge train` (its defaults, seed 0), alternated in fresh processes on this
    machine (benchmarks/training.py, where the table of the previous recipe beside them is kept too)."""
    result = training.side_by_side(data, rounds, ["seed recipe", "lenet-edge now"])
    medians = result["median_seconds"]
    return result | {"rounds": rounds, "ratio": medians["lenet-edge now"] / medians["seed recipe"]}


def _training_section(result: dict) -> list[str]:
    return [
        "## Training: lenet-edge's default recipe beside the seed recipe",
        "",
        "Alternated in fresh processes; `model.fit` alone is timed (`benchmarks/training.py`, which also times "
        "lenet-edge's previous recipe: [TRAINING.md](TRAINING.md)).",
        "",
        *training.table(result),
        "",
        *(f"- **{name}**: {training.RECIPES[name]}" for name in result["runs"]),
        "",
        f"Median training time: lenet-edge {result['median_seconds']['lenet-edge now']:.1f} s against the seed "
        f"recipe's {result['median_seconds']['seed recipe']:.1f} s (**{result['ratio']:.2f}×**).",
        "",
    ]


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg != "--no-training"]
    bundle = Path(args[0] if args else HERE.parent / "export")
    if not (bundle / "manifest.json").is_file():
        sys.exit(f"benchmarks: no bundle in {bundle}; run `make run` first")
    for profile in ("host", "mobile"):
        status = lenet_edge(["bench", str(bundle), "--profile", profile])
        if status:
            return status
    arm64 = arm64_emu.status() is not None
    if arm64:
        status = lenet_edge(["verify", str(bundle), "--target", "arm64-emu"])
        for core in arm64_emu.CORES:
            status = status or lenet_edge(["cost", str(bundle), "--target", f"arm64-emu:{core}"])
        if status:
            return status
    digit = load_mnist().x_test[:1]
    manifest = read_manifest(bundle)
    checks = [
        harness_overhead(bundle / manifest.artifact(fmt).file, runtime, digit)
        for fmt, runtime in (("tflite-fp32", "litert"), ("onnx-fp32", "onnxruntime"))
    ]
    training = None
    if "--no-training" not in sys.argv:
        data = os.environ.get("LENET_EDGE_DATA") or str(HERE.parent.parent / "shared" / "data" / "mnist")
        training = training_side_by_side(data)
    report = read_report(bundle)
    machine = machine_info()
    lines = [
        "# lenet-edge benchmark results",
        "",
        f"Run {dt.date.today().isoformat()} by `python benchmarks/run.py` on the bundle of `make run` "
        f"(seed {manifest.seed}, Keras test accuracy {manifest.keras_test_accuracy:.2%}).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['machine']}, {machine['system']}. "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
        + ".",
        "",
        "Machines here are noisy: read medians and the ratios within one table; numbers move between runs.",
        "",
        "## Harness check",
        "",
        "The harness's batch-1 p50 against a bare loop of the runtime's own call on the same model in the same "
        "process (target ≤ 1.05). The harness times each call and takes the median; the bare loop times blocks "
        "of 100 calls with no per-call clock and takes the median block's mean per call.",
        "",
        "| file | runtime | harness p50 µs | bare loop µs | ratio |",
        "|---|---|---:|---:|---:|",
        *(
            f"| {c['file']} | {c['runtime']} | {c['harness_p50_us']:.2f} | {c['bare_us']:.2f} | {c['ratio']:.3f} |"
            for c in checks
        ),
        "",
    ]
    for profile in ("host", "mobile"):
        measured = report["bench"][profile]
        rows = [BenchRow.from_dict(row) for row in measured["rows"]]
        lines += bench_section(profile, measured["info"], rows)
    lines += profile_section(report["profile"], report["bench"])
    if report.get("recommendation"):
        lines += recommendation_section(report["recommendation"], report["bench"]["host"]["info"]["machine"])
    if training:
        lines += _training_section(training)
    if arm64:
        lines += targets_section(report["targets"])
        shutil.copyfile(bundle / TARGETS_PNG, HERE / TARGETS_PNG)
    else:
        lines += ["## ARM64", "", "Not measured: the emulated ARM64 target is not set up (`make arm64-emu`).", ""]
    for profile in ("host", "mobile"):  # the charts travel with the committed results
        shutil.copyfile(bundle / f"bench_{profile}.png", HERE / f"bench_{profile}.png")
    (HERE / "RESULTS.md").write_text("\n".join(lines).rstrip() + "\n")
    raw = {"machine": machine, "harness": checks, "bench": report["bench"], "profile": report["profile"]}
    raw["targets"] = report.get("targets", {})
    raw["training"] = training
    write_json(HERE / "results.json", raw)
    print(f"wrote {HERE / 'RESULTS.md'}")
    worst = max(c["ratio"] for c in checks)
    print(f"harness overhead ratio: {worst:.3f} (target ≤ 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
