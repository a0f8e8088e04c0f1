"""verify and bench on a target: the bundle goes over, the target's agent runs it, the answers come back.

- Parity: every artifact's raw outputs on the target against the same artifact run here, on the same test
  digits: top-1 agreement, max |Δ| (probability, or quantization steps for a quantized output), accuracy,
  and a gate per precision.
- Cost, emulated targets: guest instructions retired per batch-1 inference, counted by the TCG plugin
  between marks, less an empty loop's count. Deterministic, unlike wall-clock time under emulation.
- Bench, real devices: the full bench table, measured on the device."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..console import STATUS_ICON, log
from ..cycle_cost import (
    CYCLES_METHOD,
    device_chart,
    device_estimate,
    device_lines,
    measured_beside,
    models_for,
    price_count,
)
from ..cycles import AARCH64, Isa
from ..devices import Device
from ..errors import UsageError
from ..formats import Format
from ..host import usable_cores
from ..manifest import MANIFEST, REPORT_MD, Artifact, read_manifest, write_manifest
from ..plots import plot_device_times
from ..records import StepResult
from ..report import draw_chart, read_report, record_target, update_report
from ..runtimes import open_runner
from .arm64_emu import Arm64EmuTarget
from .base import Target, TargetError, blocks_file


def _stage(space, bundle: Path, entries: list[Artifact], images: np.ndarray, tmp: Path) -> list[dict]:
    """Copy the artifacts, a manifest listing just them, and the digits into the workspace; the job's list."""
    np.save(tmp / "images.npy", images)
    write_manifest(tmp, replace(read_manifest(bundle), artifacts=entries))
    files = {"images.npy": tmp / "images.npy", f"bundle/{MANIFEST}": tmp / MANIFEST}
    files |= {f"bundle/{entry.file}": bundle / entry.file for entry in entries}
    space.put(files)
    return [{"format": e.format, "runtime": e.runtime, "file": f"bundle/{e.file}"} for e in entries]


def parity_row(fmt: Format, local: np.ndarray, remote: np.ndarray, output: dict, labels: np.ndarray) -> dict:
    """The target's raw outputs against this machine's, for one format's file, judged by its parity gate."""
    gate = fmt.gates.parity
    quantized = output.get("scale") is not None
    row: dict[str, Any] = {"format": fmt.name, "runtime": fmt.runtime, "precision": fmt.precision}
    row["gate"] = gate.describe(quantized)
    if remote.shape != local.shape:
        return row | {"status": "error", "reason": f"target answered {remote.shape}, expected {local.shape}"}
    diff = np.abs(local.astype(np.float64) - remote.astype(np.float64))
    agreement = float(np.mean(local.argmax(1) == remote.argmax(1)))
    row |= {
        "accuracy": float(np.mean(remote.argmax(1) == labels)),
        "local_accuracy": float(np.mean(local.argmax(1) == labels)),
        "agreement": agreement,
        "max_delta": float(diff.max()),
        "delta_unit": "steps" if quantized else "|Δp|",
        "outputs_differing": int(np.count_nonzero(diff)),
        "outputs": int(diff.size),
    }
    failures = gate.failures(agreement, row["max_delta"], quantized)
    return row | {"status": "fail" if failures else "pass", "reason": "; ".join(failures)}


def verify_on_target(bundle: str | Path, mnist, target: Target, limit: int | None = None) -> dict:
    """Parity of every artifact on ``target`` against this machine; {'identity', 'rows', 'images', ...}."""
    folder = Path(bundle)
    entries = read_manifest(folder).exports
    images, labels = mnist.x_test[:limit], mnist.y_test[:limit]
    log(f"verify on {target.name}: {len(entries)} artifacts on {len(images)} test digits, against this machine")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lenet-edge-parity-") as tmp_dir, target.workspace() as space:
        tmp = Path(tmp_dir)
        job: dict[str, Any] = {
            "task": "predict",
            "images": "images.npy",
            "artifacts": _stage(space, folder, entries, images, tmp),
        }
        if target.kind == "emulated":  # every host core: emulation is slow, and threads change no result here
            job["threads"] = usable_cores()
        answer = space.run(job)
        outputs = {item["format"]: item for item in answer["artifacts"]}
        not_run = [f"{item['format']}: {item['not_run']}" for item in answer["artifacts"] if "not_run" in item]
        for line in not_run:
            log(f"  (not run on {target.name}: {line})")
        for entry in entries:
            if "not_run" in outputs[entry.format]:
                continue
            remote = np.load(space.get(f"out/{entry.format}.npy", tmp / "remote.npy"), allow_pickle=False)
            local = open_runner(entry.runtime, folder / entry.file).predict(images, raw=True)
            row = parity_row(entry.spec, local, remote, outputs[entry.format]["output"], labels)
            row["xnnpack_partitions"] = outputs[entry.format]["xnnpack_partitions"]
            rows.append(row)
            mark = STATUS_ICON[row["status"]]
            figures = ""
            if "agreement" in row:
                delta = f"max|Δ| {row['max_delta']:.3g} {row['delta_unit']}" if row["max_delta"] else "bit-identical"
                figures = f"agreement {row['agreement']:.2%}, {delta}, accuracy {row['accuracy']:.2%}"
            log(f"  {mark} {row['format']:<15} {figures}  {row['reason']}".rstrip())
    return {
        "identity": target.describe(answer["identity"]),
        "rows": rows,
        "images": len(images),
        "against": "the same artifacts run on this machine",
        "not_run": not_run,
        "seconds": round(time.perf_counter() - started, 1),
    }


def count_on_target(
    bundle: str | Path, mnist, target: Target, calls: int = 20, pricing: tuple[Isa, list[str]] | None = None
) -> dict:
    """Guest instructions per batch-1 inference of every artifact on an emulated core (Python loop excluded),
    and cycles on LLVM's models (``pricing``: the instruction set and models; default the ARM core's own and
    every device core that runs its instruction set)."""
    if target.kind != "emulated":
        raise UsageError(f"{target.name}: instruction counts need an emulated target (arm64-emu[:CORE])")
    folder = Path(bundle)
    entries = read_manifest(folder).exports
    log(f"counting instructions on {target.name}: {len(entries)} artifacts × {calls} batch-1 inferences")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lenet-edge-count-") as tmp_dir, target.workspace() as space:
        tmp = Path(tmp_dir)
        counts_file = tmp / "counts.txt"
        job: dict[str, Any] = {"task": "count", "images": "images.npy", "calls": calls}
        job["artifacts"] = _stage(space, folder, entries, mnist.x_test[:1], tmp)
        answer = space.run(job, plugin_out=counts_file)
        marks = _read_marks(counts_file)
        isa, models = pricing or (AARCH64, models_for(str(target.core)))
        cycles = price_count(blocks_file(counts_file), answer["plan"], calls, isa, models)
    rows = []
    for item in answer["plan"]:
        try:
            start, stop, empty_start, empty_stop = (marks[m] for m in item["marks"])
        except KeyError:
            raise TargetError(f"{target.name}: the instruction counter missed marks of {item['format']}") from None
        loop = empty_stop - empty_start
        per_image = (stop - start - loop) / calls
        rows.append(
            {"format": item["format"], "runtime": item["runtime"], "core": target.core,
             "instructions_per_image": round(per_image), "loop_instructions_per_call": round(loop / calls)}
            | cycles.get(item["format"], {})
        )  # fmt: skip
    _ratios(rows, {entry.format: entry.precision for entry in entries})
    for row in rows:
        cycles = row.get("cycles_per_image", {})
        model = target.core if target.core in cycles else next(iter(cycles), None)  # its own, else the first
        priced = f"  {cycles[model] / 1e6:7.3f} M cycles/image on {model}'s model" if model else ""
        log(f"  {row['format']:<15} {row['instructions_per_image'] / 1e6:7.3f} M instructions/image{priced}")
    return {
        "identity": target.describe(answer["identity"]),
        "rows": rows,
        "calls": calls,
        "seconds": round(time.perf_counter() - started, 1),
        "method": "guest instructions retired between marks, counted by a QEMU TCG plugin, minus an empty "
        "loop's; batch 1, 1 thread, a real test digit; address randomisation off, PYTHONHASHSEED=0",
        "cycles_method": CYCLES_METHOD if any("cycles_per_image" in row for row in rows) else None,
    }


def cost_on_device(bundle: str | Path, load_mnist: Callable, device: Device, calls: int) -> dict:
    """µs per image of every artifact on every core type of ``device``: each emulated core its cores need is
    counted, priced and recorded in the report (unless report.json has its cycles already, then reused;
    ``load_mnist()`` only when a count runs); the estimate comes from report.json's cost rows, and its NPU's
    simulated cycles from report.json's ``npu`` section."""
    for emulated, models in device.models().items():
        known = read_report(bundle).get("targets", {}).get(f"arm64-emu:{emulated}", {})
        rows = known.get("cost", {}).get("rows", [])
        if rows and all(model in row.get("cycles_per_image", {}) for row in rows for model in models):
            log(f"{device.name}: cycles on {', '.join(sorted(models))} from the count on {emulated} in report.json")
            continue
        target = Arm64EmuTarget(emulated)
        record_target(bundle, target.name, "cost", count_on_target(bundle, load_mnist(), target, calls))
    report = read_report(bundle)
    sha256 = {artifact.format: artifact.sha256 for artifact in read_manifest(bundle).artifacts}
    return device_estimate(report.get("targets", {}), device, report.get("npu"), str(bundle), sha256)


def _read_marks(path: Path) -> dict[int, int]:
    marks = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        key, _, value = line.partition(" ")
        if key.isdigit():
            marks[int(key)] = int(value)
    return marks


def _ratios(rows: list[dict], precisions: dict[str, str]) -> None:
    """Each row's cost against the fp32 export of the same runtime (int8/fp32 is what a user weighs)."""
    fp32 = {r["runtime"]: r["instructions_per_image"] for r in rows if precisions[r["format"]] == "fp32"}
    for row in rows:
        base = fp32.get(row["runtime"])
        row["vs_fp32"] = round(row["instructions_per_image"] / base, 3) if base else None


def bench_on_target(bundle: str | Path, mnist, target: Target, profile: str, seconds: float) -> dict:
    """The bench table measured on a real device (runtime-only: no Keras rows)."""
    if target.kind == "emulated":
        raise UsageError("wall-clock time under emulation is not latency: use the instruction counts")
    folder = Path(bundle)
    entries = read_manifest(folder).exports
    with tempfile.TemporaryDirectory(prefix="lenet-edge-bench-") as tmp, target.workspace() as space:
        _stage(space, folder, entries, mnist.x_test[:256], Path(tmp))
        job = {"task": "bench", "images": "images.npy", "bundle": "bundle", "profile": profile, "seconds": seconds}
        answer = space.run(job)
    answer["info"]["target"] = target.name
    return {"identity": target.describe(answer.pop("identity")), **answer}


def verify_there(bundle: str, mnist, target: Target, limit: int | None = None) -> StepResult:
    """verify --target: parity on ``target``, recorded in the report; status 1 if a file differs beyond its gate."""
    result = verify_on_target(bundle, mnist, target, limit)
    record_target(bundle, target.name, "verify", result)
    failed = [row["format"] for row in result["rows"] if row["status"] != "pass"]
    verdict = (
        f"{len(failed)} of {len(result['rows'])} differ beyond the gate: {', '.join(failed)}"
        if failed
        else "all answer like this machine"
    )
    log(f"verify on {target.name}: {verdict} ({result['seconds']:.0f} s); see {Path(bundle) / REPORT_MD}")
    return StepResult(1 if failed else 0, result["rows"])


def bench_there(bundle: str, mnist, target: Target, profile: str, seconds: float) -> StepResult:
    """bench --target ssh://…: the bench table measured on the device, recorded in the report."""
    result = bench_on_target(bundle, mnist, target, profile, seconds)
    record_target(bundle, target.name, "bench", result)
    log(f"bench on {target.name}: {len(result['rows'])} rows; see {Path(bundle) / REPORT_MD}")
    return StepResult(0, result["rows"])


def device_there(bundle: str, load_mnist: Callable, device: Device, calls: int, target: Target) -> StepResult:
    """cost --device: µs per image on every core type of a named device and what to deploy, printed and kept
    in report.json's ``devices``. With a real device as ``target``, its bench in report.json stands beside."""
    bench = None
    if target.kind == "local":
        raise UsageError("cost --device estimates a named device; --target local has nothing to compare")
    if target.kind == "device":  # checked before any count runs
        bench = read_report(bundle).get("targets", {}).get(target.name, {}).get("bench")
        if not bench:
            raise UsageError(f"no bench from {target.name} in report.json: run lenet-edge bench {bundle} "
                             f"--target {target.name} first, then cost --device again")  # fmt: skip
    estimate = cost_on_device(bundle, load_mnist, device, calls)
    if bench:
        estimate["measured"] = measured_beside(estimate, target.name, bench)
    estimate["chart"] = device_chart(device.name)
    charts = draw_chart(plot_device_times, estimate, bundle, estimate["chart"])
    update_report(bundle, {"devices": read_report(bundle).get("devices", {}) | {device.name: estimate}}, charts)
    print("\n".join(device_lines(estimate)))
    return StepResult(0, [estimate])


def cost_there(bundle: str, mnist, target: Target, calls: int) -> StepResult:
    """cost: instructions per image on an emulated core, recorded in the report with the chart of every core."""
    result = count_on_target(bundle, mnist, target, calls)
    record_target(bundle, target.name, "cost", result)
    log(f"cost on {target.name}: {len(result['rows'])} rows; see {Path(bundle) / REPORT_MD}")
    return StepResult(0, result["rows"])


__all__ = [
    "bench_on_target",
    "bench_there",
    "cost_on_device",
    "cost_there",
    "count_on_target",
    "device_there",
    "parity_row",
    "verify_on_target",
    "verify_there",
]
