"""Time on named cores without the device: the emulated run's blocks priced on each core's LLVM model, turned
into microseconds at each device's clocks, with what to deploy and why.

Data in report.json: each emulated target's ``cost`` rows carry ``cycles_per_image`` {LLVM model: cycles},
``unpriced_blocks`` and ``unpriced_share`` (of the instructions retired); ``devices`` {device name: the
estimate :func:`device_estimate` returns, with ``npu`` for a Snapdragon device: the simulated HTP cycles that
``lenet-edge npu`` recorded in report.json's ``npu`` for its SoC, or how to get them}; ``cycles_validation``
(the host check, benchmarks/cycles_host.py).
:func:`cycles_section` writes report.md's section from those keys.

May import: cycles, devices, console, errors (and the standard library)."""

from __future__ import annotations

from pathlib import Path

from .console import log
from .cycles import CyclesError, Isa, estimate, llvm_missing
from .devices import EMULATED_ISA, SOURCES, Device
from .formats import RUNTIMES

CYCLES_METHOD = (
    "each translated block the emulated run executed between the marks, priced with llvm-mca on the core's "
    "LLVM scheduling model (cycles per iteration in steady state × runs), the empty loop's subtracted: no cache "
    "misses, no branch mispredictions, every load an L1 hit"
)
ESTIMATE_IS = (
    "An estimate, not a measurement: LLVM's scheduling model of each core prices the instructions the emulated "
    "run executed (QEMU, the Cortex-A76's instruction set for ARMv8.2+ cores), at the published clock. It "
    "knows issue width, latencies and pipelines; it does not know caches, branch prediction, thermal limits, "
    "DVFS or the OS."
)


def models_for(core: str) -> list[str]:
    """The LLVM models an emulated core's run is priced on: its own and every device core that runs its ISA."""
    return sorted({core} | {model for model, isa in EMULATED_ISA.items() if isa == core})


def price_count(trace_file: Path, plan: list[dict], calls: int, isa: Isa, models: list[str]) -> dict[str, dict]:
    """Cycles per image of each planned format on each of ``models``; {} (and one line) without LLVM."""
    missing = llvm_missing()
    if missing:
        log(f"  (instructions only: {missing})")
        return {}
    if not trace_file.exists():
        log("  (no block trace from the counter: instructions only)")
        return {}
    regions = {item["format"]: item["marks"] for item in plan}
    log(f"  pricing the executed blocks with llvm-mca on {len(models)} core models: {', '.join(models)}")
    try:
        return estimate(trace_file, regions, calls, isa, models)
    except CyclesError as exc:
        log(f"  (instructions only: {exc})")
        return {}


NO_HTP_CLOCK = "no public HTP clock: cycles only"


def npu_estimate(npu: dict | None, device: Device, bundle: str = "BUNDLE", sha256: dict | None = None) -> dict | None:
    """The Hexagon NPU of ``device`` from report.json's ``npu`` section (``lenet-edge npu``): per compiled file its
    verdict in Qualcomm's HTP simulator and its median simulated cycles per image, never microseconds (no public
    HTP clock figure is known). Without a row for the device's SoC, or with one compiled from another int8 file
    than the bundle's (``sha256``: the manifest's {format: sha256}), the command that makes one. None for a
    device with no Snapdragon NPU."""
    if device.npu_soc is None:
        return None
    entry: dict = {"soc": device.npu_soc, "source": device.npu_source, "clock": NO_HTP_CLOCK, "us_per_image": None}
    command = {"measured": False, "command": f"lenet-edge npu {bundle} --soc {device.npu_soc}"}
    row = next((r for r in (npu or {}).get("socs", []) if r.get("soc", {}).get("model") == device.npu_soc), None)
    source = (npu or {}).get("info", {}).get("source", {})
    if row is None:
        return entry | command
    if sha256 and sha256.get(source.get("format")) not in (None, source.get("sha256")):
        return entry | command | {"stale": f"measured on an earlier {source.get('format')} than the bundle's"}
    soc, compiled = row["soc"], row.get("compile", {})
    proof = compiled.get("proof") or {}
    files = [_npu_file(source.get("format"), f"npu/lenet5_int8_{device.npu_soc}.tflite", "LiteRT", row, compiled)]
    if row.get("onnx"):
        onnx = row["onnx"]
        files.append(_npu_file("onnx-int8", onnx.get("file"), "ONNX Runtime QNN", onnx, onnx))
    return entry | {
        "measured": True,
        "name": soc.get("name"),
        "htp_arch": soc.get("htp_arch"),
        "label": f"NPU (Hexagon HTP {soc.get('htp_arch')}, {device.npu_soc})",
        "status": row.get("status"),
        "ops_offloaded": proof.get("ops_offloaded"),
        "ops_total": proof.get("ops_total"),
        "partitions": proof.get("partitions"),
        "images": (npu or {}).get("info", {}).get("images"),
        "files": files,
    }


def _npu_file(fmt: str | None, file: str | None, runtime: str, row: dict, compiled: dict) -> dict:
    """One compiled form's verdict and median simulated cycles per image (None when it never ran)."""
    judged = row.get("judge") or {}
    status = judged.get("status") or compiled.get("status")
    reason = judged.get("reason") or compiled.get("reason") or row.get("reason") or ""
    return {
        "format": fmt, "file": file, "runtime": runtime, "status": status, "reason": reason,
        "cycles_per_image": row.get("cycles", {}).get("median_per_image"),
        "profiled_images": row.get("cycles", {}).get("images"),
        "accuracy": judged.get("accuracy"), "agreement_cpu": judged.get("agreement_cpu"),
    }  # fmt: skip


def npu_verdict(npu: dict) -> str:
    """One line on the device's NPU: what ran whole, its verdict and cycles, or how to measure it."""
    if not npu["measured"]:
        why = npu.get("stale", "not in this bundle's report")
        return f"NPU (Hexagon, {npu['soc']}): {why}; measure it: {npu['command']}"
    ops = f"{npu['ops_offloaded']} of {npu['ops_total']} ops on the NPU"
    parts = []
    for item in npu["files"]:
        verdict = "passed in the simulator" if item["status"] == "pass" else f"failed: {item['reason'] or 'see npu'}"
        cycles = item["cycles_per_image"]
        counted = f", {cycles:,} simulated cycles per image (median)" if cycles else ""
        parts.append(f"{item['file']} ({item['runtime']}, from {item['format']}) {verdict}{counted}")
    return f"{npu['label']}: {ops}; " + "; ".join(parts) + f"; {npu['clock']}"


def device_estimate(
    targets: dict, device: Device, npu: dict | None = None, bundle: str = "BUNDLE", sha256: dict | None = None
) -> dict:
    """µs per image of every artifact on every core type of ``device`` from the cost rows in ``targets``
    (report.json's), its NPU's simulated cycles from report.json's ``npu`` section (a Snapdragon device; see
    :func:`npu_estimate`), and what to deploy with its reason."""
    cores = []
    for core in device.cores:
        rows = targets.get(f"arm64-emu:{core.emulated}", {}).get("cost", {}).get("rows", [])
        artifacts = []
        for row in rows:
            cycles = row.get("cycles_per_image", {}).get(core.core)
            if cycles is None:
                continue
            us = round(cycles / (core.clock_ghz * 1e3), 2) if core.clock_ghz else None
            artifacts.append(
                {"format": row["format"], "runtime": row["runtime"], "cycles_per_image": cycles, "us_per_image": us,
                 "unpriced_share": row.get("unpriced_share")}
            )  # fmt: skip
        cores.append(
            {"role": core.role, "core": core.core, "count": core.count, "clock_ghz": core.clock_ghz,
             "emulated": core.emulated, "source": core.source, "label": core.label, "artifacts": artifacts}
        )  # fmt: skip
    npu_entry = npu_estimate(npu, device, bundle, sha256)
    estimate = {"device": device.name, "soc": device.soc, "cores": cores, "advice": _advice(cores, npu_entry)}
    return estimate | ({"npu": npu_entry} if npu_entry else {})


def _npu_advice(npu: dict | None) -> str | None:
    """What the NPU adds to the advice: whether the int8 file ran whole and passed, and its cycles, which no
    public clock turns into time, so the CPU recommendation stands in µs."""
    if npu is None or not npu["measured"]:
        return None  # the NPU's line says how to measure it
    main = npu["files"][0]
    if main["status"] != "pass" or not main["cycles_per_image"]:
        return f"{main['file']} ({npu['soc']}) did not pass, so the CPU it is"
    return (
        f"{npu['soc']} (HTP {npu['htp_arch']}) runs {main['format']} whole ({npu['ops_offloaded']} of "
        f"{npu['ops_total']} ops) and passed in Qualcomm's simulator at {main['cycles_per_image']:,} simulated "
        f"cycles per image; with no public HTP clock those cycles are not comparable with the CPU µs, so the CPU "
        f"choice stands and {main['file']} is the file to try on the phone's NPU"
    )


def _advice(cores: list[dict], npu: dict | None = None) -> dict | None:
    """The artifact with fewest cycles on the first (biggest) core type, against the fp32 file of its runtime,
    and on how many core types it wins."""
    priced = [core for core in cores if core["artifacts"]]
    if not priced:
        return None
    lead = priced[0]
    best = min(lead["artifacts"], key=lambda a: a["cycles_per_image"])
    wins = sum(
        1 for core in priced if min(core["artifacts"], key=lambda a: a["cycles_per_image"])["format"] == best["format"]
    )
    took = f"{best['cycles_per_image']:,} cycles"
    if best["us_per_image"] is not None:
        took = f"{best['us_per_image']:.1f} µs"
    reason = f"fewest cycles per image on the {lead['role']} core ({lead['core']}): {took}"
    fp32 = next(
        (a for a in lead["artifacts"] if a["runtime"] == best["runtime"] and a["format"].endswith("fp32")), None
    )
    if fp32 is not None and fp32 is not best and best["cycles_per_image"]:
        reason += f"; {fp32['format']} takes {fp32['cycles_per_image'] / best['cycles_per_image']:.1f}× as long"
    reason += f"; fastest on {wins} of {len(priced)} core types"
    advice = {"format": best["format"], "runtime": best["runtime"], "reason": reason}
    npu_note = _npu_advice(npu)
    return advice | ({"npu": npu_note} if npu_note else {})


def measured_beside(estimate: dict, target: str, bench: dict) -> dict:
    """A real device's own bench (report.json's, from ``bench --target ssh://…``) beside the estimate of the
    device's first core type: p50 at batch 1 on 1 thread with the delegate an app gets; estimate / measured."""
    rows = [
        row
        for result in bench.values()
        for row in result.get("rows", [])
        if row.get("batch") == 1 and row.get("threads") == 1 and row.get("runtime") in RUNTIMES
        and row.get("delegate") == RUNTIMES[row["runtime"]].default_delegate
    ]  # fmt: skip
    measured = {row["format"]: row["p50_us"] for row in rows}
    lead = next((core for core in estimate["cores"] if core["artifacts"]), None)
    paired = []
    for item in lead["artifacts"] if lead else []:
        if item["format"] in measured and item["us_per_image"] is not None and measured[item["format"]]:
            us = measured[item["format"]]
            paired.append({"format": item["format"], "estimated_us": item["us_per_image"], "measured_us": us,
                           "ratio": round(item["us_per_image"] / us, 3)})  # fmt: skip
    return {"target": target, "core": lead["label"] if lead else None, "rows": paired}


def device_chart(name: str) -> str:
    """The chart file of a device's estimate in the bundle: ``device_raspberry-pi-4.png``."""
    return "device_" + "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) + ".png"


def device_lines(estimate: dict) -> list[str]:
    """The terminal table: µs per image (cycles where the clock is unknown) per artifact and core type."""
    cores = [core for core in estimate["cores"] if core["artifacts"]]
    npu = estimate.get("npu")
    npu_files = npu["files"] if npu and npu["measured"] else []
    lines = [f"{estimate['device']} ({estimate['soc']}): estimated µs per image, batch 1, 1 thread"]
    formats = _formats(cores, npu_files)
    width = max((len(f) for f in formats), default=8) + 2
    header = "".join(f"{core['role'] + ' ' + core['core']:>26}" for core in cores)
    if npu and npu_files:
        header += f"{'NPU HTP ' + npu['htp_arch']:>26}"
    lines.append(" " * width + header)
    for fmt in formats:
        cells = []
        for core in cores:
            item = next((a for a in core["artifacts"] if a["format"] == fmt), None)
            if item is None:
                cells.append(f"{'—':>26}")
            elif item["us_per_image"] is None:
                cells.append(f"{item['cycles_per_image']:>13,} cycles (no clock)")
            else:
                cells.append(f"{item['us_per_image']:>23.1f} µs")
        if npu_files:
            cells.append(f"{_npu_cell(npu_files, fmt):>26}")
        lines.append(f"{fmt:<{width}}" + "".join(cells))
    for core in estimate["cores"]:
        if core["clock_ghz"] is None:
            lines.append(f"{core['label']}: no published clock known here, so cycles only")
    if npu:
        lines.append(npu_verdict(npu))
    advice = estimate["advice"]
    lines.append(f"deploy: {advice['format']} ({advice['reason']})" if advice else "deploy: no estimate")
    if advice and advice.get("npu"):
        lines.append(f"  NPU: {advice['npu']}")
    lines += _measured_lines(estimate.get("measured"))
    return lines


def _formats(cores: list[dict], npu_files: list[dict]) -> list[str]:
    """The table's rows: every artifact priced on a core, then any the NPU ran that no core did."""
    return list(dict.fromkeys([a["format"] for core in cores for a in core["artifacts"]] +
                              [f["format"] for f in npu_files if f["format"]]))  # fmt: skip


def _npu_cell(files: list[dict], fmt: str) -> str:
    """The NPU's cell for one artifact: simulated HTP cycles (never µs), failed, or — (not compiled for it)."""
    item = next((f for f in files if f["format"] == fmt), None)
    if item is None:
        return "—"
    if item["status"] != "pass":
        return "failed in the simulator"
    return f"{item['cycles_per_image']:,} HTP cycles" if item["cycles_per_image"] else "passed, not counted"


def _measured_lines(measured: dict | None) -> list[str]:
    if not measured:
        return []
    if not measured["rows"]:
        return [f"measured on {measured['target']}: no batch-1, 1-thread rows of these artifacts in its bench"]
    lines = [
        f"measured on {measured['target']} (bench p50, batch 1, 1 thread) beside the estimate on {measured['core']}:"
    ]
    for row in measured["rows"]:
        lines.append(
            f"  {row['format']:<15} estimated {row['estimated_us']:8.1f} µs  measured {row['measured_us']:8.1f} µs"
            f"  estimate / measured {row['ratio']:.2f}"
        )
    return lines


def cycles_section(report: dict) -> list[str]:
    """report.md's section: cycles per image per emulated core and model, each device's µs and advice, and the
    method's error on this host (keys ``targets``, ``devices``, ``cycles_validation`` of report.json)."""
    targets = report.get("targets", {})
    priced = {
        name: t["cost"]
        for name, t in targets.items()
        if any("cycles_per_image" in r for r in t.get("cost", {}).get("rows", []))
    }
    devices = report.get("devices", {})
    validation = report.get("cycles_validation")
    if not priced and not devices and not validation:
        return []
    lines = ["## Time on named cores (estimated)", "", ESTIMATE_IS, ""]
    for name, cost in sorted(priced.items()):
        groups = _same_schedule(cost["rows"])
        models = list(groups)
        lines += [f"**{name}**: thousands of cycles per image on each core's model ({cost.get('cycles_method')}).", ""]
        shared = [f"{' = '.join([m, *others])}" for m, others in groups.items() if others]
        if shared:
            lines += ["LLVM 19 prices these cores alike (one scheduling model): " + "; ".join(shared) + ".", ""]
        lines += ["| artifact | instructions (k) | " + " | ".join(models) + " | unpriced |"]
        lines += ["|---|---:|" + "---:|" * len(models) + "---:|"]
        for row in cost["rows"]:
            cells = [f"{row['cycles_per_image'].get(m, 0) / 1e3:,.1f}" for m in models]
            unpriced = f"{row.get('unpriced_share', 0):.2%} ({row.get('unpriced_blocks', 0)} blocks)"
            lines.append(
                f"| {row['format']} | {row['instructions_per_image'] / 1e3:,.1f} | "
                + " | ".join(cells)
                + f" | {unpriced} |"
            )
        lines.append("")
    for result in devices.values():
        cores = [core for core in result["cores"] if core["artifacts"]]
        npu = result.get("npu")
        npu_files = npu["files"] if npu and npu["measured"] else []
        unit = "µs per image on each CPU core type" + (
            f"; the NPU's simulated HTP cycles per image ({NO_HTP_CLOCK})" if npu_files else ""
        )
        lines += [f"**{result['device']}** ({result['soc']}): {unit}", ""]
        npu_header = [f"{npu['label']}, simulated cycles"] if npu_files else []
        lines += ["| artifact | " + " | ".join([core["label"] for core in cores] + npu_header) + " |"]
        lines += ["|---|" + "---:|" * (len(cores) + len(npu_header))]
        formats = _formats(cores, npu_files)
        for fmt in formats:
            cells = []
            for core in cores:
                item = next((a for a in core["artifacts"] if a["format"] == fmt), None)
                cells.append(
                    "—"
                    if item is None
                    else f"{item['us_per_image']:.1f}"
                    if item["us_per_image"] is not None
                    else f"{item['cycles_per_image']:,} cycles"
                )
            if npu_files:
                cells.append(_npu_cell(npu_files, fmt))
            lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
        if npu:
            said = npu_verdict(npu)
            lines += ["", said.replace(npu["command"], f"`{npu['command']}`") if not npu["measured"] else said + "."]
        if report.get("charts", {}).get(result.get("chart")):
            lines += ["", f"![estimated µs per image on {result['device']}]({result['chart']})"]
        advice = result["advice"]
        if advice:
            lines += ["", f"Deploy **{advice['format']}**: {advice['reason']}."]
            if advice.get("npu"):
                lines += ["", f"On the NPU: {advice['npu']}."]
        measured = result.get("measured")
        if measured and measured["rows"]:
            lines += ["", f"Measured on {measured['target']} (bench p50, batch 1, 1 thread) against the estimate on "
                      f"{measured['core']}:", "", "| artifact | estimated µs | measured µs | estimate / measured |",
                      "|---|---:|---:|---:|"]  # fmt: skip
            lines += [
                f"| {r['format']} | {r['estimated_us']:.1f} | {r['measured_us']:.1f} | {r['ratio']:.2f} |"
                for r in measured["rows"]
            ]
        sources = sorted({core["source"] for core in result["cores"]} | ({npu["source"]} if npu else set()))
        lines += ["", "Clocks and cores: " + "; ".join(SOURCES.get(source, source) for source in sources) + ".", ""]
    if validation:
        lines += validation_lines(validation)
    return lines


def _same_schedule(rows: list[dict]) -> dict[str, list[str]]:
    """Models by the cycles they give every row: the first of each group, and the others that price alike."""
    models = sorted({m for row in rows for m in row.get("cycles_per_image", {})})
    groups: dict[tuple, list[str]] = {}
    for model in models:
        groups.setdefault(tuple(row.get("cycles_per_image", {}).get(model) for row in rows), []).append(model)
    return {names[0]: names[1:] for names in groups.values()}


def validation_lines(validation: dict) -> list[str]:
    """The host check: the same pipeline on x86 (QEMU x86-64, llvm-mca's model of this CPU) against bench."""
    lines = [
        f"**The method's error on this host** ({validation['host']}; model -mcpu={validation['mcpu']}; "
        f"measured with {validation['measured_with']}):",
        "",
        "| artifact | estimated µs | measured µs (p50) | estimate / measured |",
        "|---|---:|---:|---:|",
    ]
    for row in validation["rows"]:
        lines.append(f"| {row['format']} | {row['estimated_us']:.1f} | {row['measured_us']:.1f} | {row['ratio']:.2f} |")
    lines += ["", validation.get("note", ""), ""]
    return lines


__all__ = [
    "CYCLES_METHOD",
    "NO_HTP_CLOCK",
    "cycles_section",
    "device_chart",
    "device_estimate",
    "device_lines",
    "models_for",
    "npu_estimate",
    "npu_verdict",
    "price_count",
]
