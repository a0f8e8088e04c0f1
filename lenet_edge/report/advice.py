"""What to deploy, computed from a report's measured sections: the fastest and smallest files that passed verify,
each with its lead over the best other format, and why an int8 model is slower than its fp32 twin where it is.
Imports the tables and the records only."""

from __future__ import annotations

from ..formats import BY_NAME, FORMATS, KERAS, RUNTIMES, Format, float_twin, runtime_label
from ..layer_names import layer_of
from ..records import BenchRow, VerifyRow

GPU_RUNTIME = "litert-gpu"  # verify's rows of every .tflite on LiteRT's GPU accelerator


def int8_pairs() -> list[tuple[str, Format, Format]]:
    """(runtime, its fp32 format, its int8 format): the comparisons a user weighs."""
    pairs = []
    for fmt in FORMATS:
        twin = float_twin(fmt)
        if fmt.gates.quantized and twin is not None and not fmt.variant_of:
            pairs.append((RUNTIMES[fmt.runtime].label, twin, fmt))
    return pairs


def bench_rows(bench: dict, profile: str) -> list[BenchRow]:
    """The rows of one profile of report.json's ``bench`` section ([] when that profile was not measured)."""
    return [BenchRow.from_dict(row) for row in bench.get(profile, {}).get("rows", [])]


def batch1_p50(bench: dict, fmt: str, delegate: str) -> float | None:
    """Batch-1, 1-thread p50 of a combination: the host profile's if measured, else the mobile one's."""
    for profile in ("host", "mobile"):
        for row in bench_rows(bench, profile):
            if (row.combination, row.batch) == ((fmt, delegate, 1), 1):
                return row.p50_us
    return None


def float_ops(nodes: list[str]) -> str:
    """ONNX node names ('C1/Tanh:0', 'Tanh_12') grouped by op, with their layers."""
    return grouped([{"op": n.split("/")[-1].split(":")[0].split("_")[0], "layer": layer_of(n)} for n in nodes])


def grouped(items: list[dict]) -> str:
    """Ops with the layers they stand in: 'Tanh (C1, C3), Reshape (flatten)'; 'none' for no item."""
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault(item["op"], []).append(item["layer"])
    return ", ".join(f"{op} ({', '.join(dict.fromkeys(layers))})" for op, layers in groups.items()) or "none"


def _configuration(row: BenchRow) -> str:
    threads = f"{row.threads} thread{'s' * (row.threads > 1)}"
    return f"{row.format} on {runtime_label(row.runtime, row.delegate)}, {threads}"


def _file(row: BenchRow) -> str:
    return f"{row.format}, {BY_NAME[row.format].file}"


def _winner(rows: list[BenchRow], key: str, lowest: bool, name=_configuration) -> dict | None:
    """The best row by ``key`` and how far the best of the other formats is behind it (a ratio ≥ 1)."""
    ranked = sorted(rows, key=lambda r: getattr(r, key), reverse=not lowest)
    if not ranked:
        return None
    best = ranked[0]
    other = next((r for r in ranked[1:] if r.format != best.format), None)
    value = getattr(best, key)
    ratio = None if other is None else (getattr(other, key) / value if lowest else value / getattr(other, key))
    return {
        "choice": name(best),
        "format": best.format,
        "value": value,
        "runner_up": None if other is None else name(other),
        "ratio": None if ratio is None else round(ratio, 3),
    }


def _int8_cause(profile: dict, fmt: str) -> str:
    """What the per-op profile says an int8 model pays for."""
    data = profile.get(fmt, {})
    if data.get("float_nodes"):
        return (
            f"{len(data['float_nodes'])} nodes run in float between Q/DQ pairs ({float_ops(data['float_nodes'])}): "
            "each pays a dequantize and a quantize around float arithmetic"
        )
    if data.get("left_to_cpu"):
        return f"XNNPACK leaves {grouped(data['left_to_cpu'])} to the reference kernels"
    return "the per-op profile shows no op left out: its int8 kernels themselves are slower here than float"


def recommendations(report: dict) -> dict | None:
    """What to deploy on this host, computed from the last bench run (the host profile if measured, else the
    mobile one) among the files verify passed: the fastest batch-1 configuration, the fastest on one core, the
    best throughput and the smallest file, each with its ratio to the best other format; and every int8 model
    that is slower than its fp32 twin here, with the cause its per-op profile shows; and the file to ship for a
    phone's GPU where verify judged the GPU (``gpu_choice``)."""
    bench = report.get("bench", {})
    profile = next((name for name in ("host", "mobile") if name in bench), None)
    if profile is None:
        return None
    verified = [VerifyRow.from_dict(row) for row in report.get("verify", [])]
    on_cpu = [row for row in verified if row.runtime != GPU_RUNTIME]  # the GPU's verdict is its own pick's
    passed = {row.format for row in on_cpu if row.status == "pass"}
    failed = {row.format for row in on_cpu if row.status != "pass"}
    rows = [r for r in bench_rows(bench, profile) if r.runtime != KERAS.runtime and r.format not in failed]
    if passed:
        rows = [r for r in rows if r.format in passed]
    single = [r for r in rows if r.batch == 1]
    largest = max((r.batch for r in rows), default=1)
    sizes = {r.format: r for r in rows}
    return {
        "profile": profile,
        "latency": _winner(single, "p50_us", lowest=True),
        "one_core": _winner([r for r in single if r.threads == 1], "p50_us", lowest=True),
        "throughput": _winner([r for r in rows if r.batch == largest], "throughput_ips", lowest=False),
        "throughput_batch": largest,
        "size": _winner(list(sizes.values()), "size_bytes", lowest=True, name=_file),
        "int8": _int8_verdicts({profile: bench[profile]}, report.get("profile", {})),
        "gpu": gpu_choice(verified),
    }


def _int8_verdicts(measured: dict, profile: dict) -> list[dict]:
    """Each runtime's int8 file against its fp32 twin at batch 1 on 1 thread; the cause where int8 is slower."""
    verdicts = []
    for runtime, fp32, int8 in int8_pairs():
        delegate = RUNTIMES[int8.runtime].default_delegate
        a, b = batch1_p50(measured, fp32.name, delegate), batch1_p50(measured, int8.name, delegate)
        if a and b:
            slower = b > a * 1.05
            verdicts.append(
                {
                    "runtime": runtime, "int8": int8.name, "fp32": fp32.name, "int8_us": b, "fp32_us": a,
                    "ratio": round(b / a, 3), "slower": slower,
                    "cause": _int8_cause(profile, int8.name) if slower else "",
                }
            )  # fmt: skip
    return verdicts


def costs_by_core(targets: dict) -> dict[str, list[dict]]:
    """Instruction-count rows of every emulated core measured, oldest core first (cortex-a53 … neoverse-n1)."""
    return dict(sorted((t["cost"]["identity"]["core"], t["cost"]["rows"]) for t in targets.values() if "cost" in t))


def gpu_choice(verified: list[VerifyRow]) -> dict | None:
    """The file to ship for a phone's GPU: the smallest float .tflite (not a variant) that passed verify on LiteRT's
    GPU accelerator whole, in fp16 arithmetic (the GPU's default) or else with fp32 enforced; None when no GPU row
    was run, with ``why`` when rows ran and no float file passed."""
    gpu = [row for row in verified if row.runtime == GPU_RUNTIME]
    if not gpu:
        return None
    floats = [f for f in FORMATS if f.runtime == "litert" and f.precision in ("fp32", "fp16") and not f.variant_of]
    for setting in ("fp16", "fp32"):
        passed = {
            row.format: row for row in gpu if row.delegate == setting and row.status == "pass" and row.whole_graph
        }
        candidates = sorted((f for f in floats if f.name in passed), key=lambda f: passed[f.name].size_bytes or 0)
        if candidates:
            fmt = candidates[0]
            row = passed[fmt.name]
            return {
                "format": fmt.name, "file": fmt.file, "setting": setting,
                "agreement": row.agreement, "max_abs_dp": row.max_abs_dp, "images": row.images,
                "others": [f.name for f in candidates[1:]],
            }  # fmt: skip
    return {"format": None, "why": "no float .tflite passed verify whole on the GPU"}
