"""report.md: every section of report.json rendered as Markdown, in a fixed order. Pure: a report and its
manifest in, text out."""

from __future__ import annotations

from ..console import STATUS_ICON
from ..cycle_cost import cycles_section
from ..formats import KERAS, RUNTIMES, runtime_label
from ..manifest import CONFUSION_PNG, TARGETS_PNG, Manifest
from ..model_origin import model_origin_section
from ..records import BenchRow, VerifyRow
from .advice import batch1_p50, bench_rows, costs_by_core, float_ops, grouped, int8_pairs
from .gpu import gpu_section
from .mcu import mcu_section
from .npu import npu_section

STATUS_MARK = {status: f"{icon} {status}" for status, icon in STATUS_ICON.items()}


def chart_lines(name: str, alt: str, drawn: bool | None) -> list[str]:
    """A chart's image link when the last run of its section drew it; a note when that run could not (the file
    left in the bundle is an earlier run's); nothing when no run recorded drawing it."""
    if drawn:
        return ["", f"![{alt}]({name})"]
    if drawn is False:
        return ["", f"({name} was not redrawn by the last run: matplotlib is not installed here.)"]
    return []


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def render_markdown(report: dict, manifest: Manifest) -> str:
    model = manifest.model
    charts = report.get("charts", {})  # chart file -> drawn by the last run of its section
    lines = [
        "# lenet-edge report",
        "",
        f"Model: {model.get('architecture')} ({model.get('activation')}), {model.get('params', 0):,} parameters, "
        f"{model.get('macs', 0):,} MACs per image. Keras test accuracy {_pct(manifest.keras_test_accuracy)}. "
        f"Seed {manifest.seed}.",
        "",
    ]
    lines += model_origin_section(manifest)
    verified = [VerifyRow.from_dict(row) for row in report.get("verify", [])]
    if "verify" in report:
        lines += _verify_section(verified, report.get("verify_info", {}), charts.get(CONFUSION_PNG))
        lines += _no_c_model(manifest)
        lines += gpu_section(verified, report.get("verify_info", {}))  # the phone's GPU: lenet_edge/report/gpu.py
    if "consumers" in report:
        lines += _consumers_section(report["consumers"])
    if "layers" in report:
        lines += _layers_section(report["layers"], verified, manifest, charts)
    for profile, result in report.get("bench", {}).items():
        rows = bench_rows(report["bench"], profile)
        lines += bench_section(profile, result["info"], rows, chart=charts.get(f"bench_{profile}.png"))
    if "profile" in report:
        lines += profile_section(report["profile"], report.get("bench", {}))
    found = report.get("recommendation")  # computed by the bench step, from its rows and the verify section
    if found is not None:
        machine = report["bench"][found["profile"]]["info"].get("machine", {})
        lines += recommendation_section(found, machine)
    if report.get("targets"):
        lines += targets_section(report["targets"], charts.get(TARGETS_PNG))
    lines += cycles_section(report)  # time on named cores: lenet_edge/cycle_cost.py
    lines += npu_section(report)  # Snapdragon NPUs: lenet-edge npu
    lines += mcu_section(report)  # Cortex-M boards and Ethos-U: lenet-edge mcu
    return "\n".join(lines).rstrip() + "\n"


def _verify_section(rows: list[VerifyRow], info: dict, chart: bool | None = None) -> list[str]:
    lines = [
        f"## Parity: every export on the {info.get('images', 10000):,} MNIST test images",
        "",
        f"Each file run by its own runtime (and the int8 and fp32 `.tflite` in TFLite Micro, rows `tflm`; the int8 one "
        f"as the bundle's plain C model built with this host's cc, rows `c`; every `.tflite` on LiteRT's GPU "
        f"accelerator, rows `litert-gpu`, on the digits they name) and "
        f"compared with {info.get('reference', 'Keras')}. "
        f"Verify took {info.get('seconds', 0):.1f} s." + (f" {info['keras']}" if info.get("keras") else ""),
        "",
        "| Format | Runtime | Status | Size KB | Accuracy | Δ vs Keras (pt) | Agreement | max\\|Δp\\| | Accelerated |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        size = f"{row.size_bytes / 1024:.1f}" if row.size_bytes else "—"
        delta = "—" if row.delta_vs_keras_pt is None else f"{row.delta_vs_keras_pt:+.2f}"
        dp = "—" if row.max_abs_dp is None else f"{row.max_abs_dp:.1e}"
        lines.append(
            f"| {row.format} | {_where(row)} | {STATUS_MARK[row.status]} | {size} | "
            f"{_pct(row.accuracy)} | {delta} | {_pct(row.agreement)} | {dp} | {_accelerated(row)} |"
        )
    for row in rows:
        if row.identical_share is not None:
            lines += ["", f"**{row.format}** as the plain C model: "
                      f"{_pct(row.identical_share)} of the digits answer byte for byte as TFLite Micro on the same "
                      f"file (largest difference {row.max_steps} steps; the gate is 100% identical)."]  # fmt: skip
    reasons = [f"- **{row.format}** ({_where(row)}): {row.reason}" for row in rows if row.reason]
    if reasons:
        lines += ["", "Why:", "", *reasons]
    if info.get("not_run"):
        lines += ["", "Not run here: " + "; ".join(info["not_run"]) + "."]
    gates = info.get("gates", {})
    if gates:
        lines += ["", "Gates: " + "; ".join(f"{name}: {text}" for name, text in gates.items()) + "."]
    judged = [row for row in rows if row.per_class_accuracy]
    if judged:
        lines += ["", "### Per-class accuracy", "", "| Format | " + " | ".join(str(d) for d in range(10)) + " |"]
        lines.append("|---|" + "---:|" * 10)
        for row in judged:
            lines.append(f"| {row.format} | " + " | ".join(_pct(a, 1) for a in row.per_class_accuracy) + " |")
        lines += chart_lines(CONFUSION_PNG, "confusion matrices", chart)
    return [*lines, ""]


def _no_c_model(manifest: Manifest) -> list[str]:
    """Why a microcontroller file has no C model beside its C array (the generator refused one of its ops)."""
    refused = [(a.format, a.micro.c_model.refused) for a in manifest.artifacts
               if a.micro and a.micro.c_model and a.micro.c_model.refused]  # fmt: skip
    return [f"No C model for **{fmt}** (the bundle holds its C array only): {why}." for fmt, why in refused] + (
        [""] if refused else []
    )


CONSUMER_MARK = {**STATUS_MARK, "refused": "❌ refused", "inherent": "⚪ n/a", "absent": "— not installed"}


def _consumers_section(table: dict) -> list[str]:
    """Every export in the consumers apps deploy with, beside its own runtime: a table per file family."""
    lines = [
        "## In other consumers",
        "",
        f"Each export run by its own runtime and by consumers nobody here wrote, on the first {table['images']:,} "
        f"test digits: accuracy, and top-1 agreement with the file's own runtime (a pass needs "
        f"{table['min_agreement']:.1%}). ⚪ n/a: the consumer does not take this kind of file (why below); —: not "
        "tried (the page runs the gray int8 file, not its RGB variant). "
        "Not installed ones: `pip install 'lenet-edge[consumers]'`.",
    ]
    cell = {(row["format"], row["consumer"]): row for row in table["rows"]}
    families: dict[str, list[dict]] = {}
    for row in table["rows"]:
        families.setdefault(row.get("family", ""), []).append(row)
    for rows in families.values():
        formats = list(dict.fromkeys(row["format"] for row in rows))
        consumers = list(dict.fromkeys(row["consumer"] for row in rows))
        lines += ["", "| Format | " + " | ".join(consumers) + " |", "|---|" + "---|" * len(consumers)]
        for fmt in formats:
            cells = []
            for consumer in consumers:
                row = cell.get((fmt, consumer))
                if row is None:
                    cells.append("—")
                elif "accuracy" in row:
                    mark = CONSUMER_MARK[row["status"]]
                    cells.append(f"{mark} {_pct(row['accuracy'])}, {_pct(row['agreement'])} agree")
                else:
                    cells.append(CONSUMER_MARK[row["status"]])
            lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
    reasons = [f"- **{r['format']} in {r['consumer']}** ({CONSUMER_MARK[r['status']]}): {r['reason']}"
               for r in table["rows"] if r["status"] in ("fail", "refused", "inherent")]  # fmt: skip
    if reasons:
        lines += ["", "Why:", "", *reasons]
    lines += ["", "; ".join(f"{name}: {about}" for name, about in table["consumers"].items()) + ".", ""]
    return lines


WORST_SHOWN = 5


def _layers_section(layers: dict, verify_rows: list[VerifyRow], manifest: Manifest, charts: dict) -> list[str]:
    lines = ["## Quantization error by layer", ""]
    accuracy: dict[str, float] = {}
    for row in verify_rows:  # the file's own runtime's row comes first
        if row.accuracy is not None:
            accuracy.setdefault(row.format, row.accuracy)
    for fmt, data in layers.items():
        lines += [f"### {fmt}", ""]
        if "skipped" in data:
            lines += [f"Not measured here: {data['skipped']}.", ""]
            continue
        tflite = data["metric"] == "rmse_over_scale"
        rows = sorted(data["rows"], key=lambda r: r[data["metric"]], reverse=tflite)[:WORST_SHOWN]
        note = f"{data['tool']} on the first {data.get('images', 'n')} test images; suspect if {data['suspect_if']}."
        if "agreement_with_bundle_file" in data:
            note += (
                " It measures a re-conversion with the bundle's settings, which answers like the bundle's file on "
                f"{data['agreement_with_bundle_file']:.2%} of those images."
            )
        lines += [note, ""]
        if tflite:
            lines += ["| Layer | Op | RMSE/scale | max abs error | suspect |", "|---|---|---:|---:|---|"]
            lines += [
                f"| {r['layer']} | {r['op']} | {r['rmse_over_scale']:.3f} | {r['max_abs_error']:.4f} | "
                f"{'⚠️' if r['suspect'] else ''} |"
                for r in rows
            ]
        else:
            lines += [
                "| Layer | Op | SNR of its Q/DQ (dB) | SNR vs float model (dB) | suspect |",
                "|---|---|---:|---:|---|",
            ]
            lines += [
                f"| {r['layer']} | {r.get('op') or '`' + r['tensor'] + '`'} | {r['snr_qdq_db']:.1f} | "
                f"{r['snr_xmodel_db']:.1f} | "
                f"{'⚠️' if r['suspect'] else ''} |"
                for r in rows
            ]
        suspects = sorted({r["layer"] for r in data["rows"] if r["suspect"]})
        lines += ["", "Suspects: " + (", ".join(suspects) if suspects else "none") + "."]
        entry = manifest.artifact(fmt)
        if entry is not None and entry.keep_float and entry.without_keep_float and fmt in accuracy:
            full = entry.without_keep_float
            lines.append(
                f"Kept in float: {', '.join(entry.keep_float)}: {entry.bytes / 1024:.1f} KB, accuracy "
                f"{_pct(accuracy[fmt])}; fully quantized: {full['bytes'] / 1024:.1f} KB, {_pct(full['test_accuracy'])}."
            )
        elif suspects:
            lines.append(f"To try: `lenet-edge export BUNDLE/lenet5.keras --keep-float {' '.join(suspects)}`.")
        lines += chart_lines(f"layers_{fmt}.png", f"{fmt} layers", charts.get(f"layers_{fmt}.png"))
        lines += ["", f"All tensors: `layers_{fmt}.csv`.", ""]
    return lines


def _where(row: VerifyRow) -> str:
    """The runtime of a verify row, with its delegate and the digits it judged where those are not the usual."""
    where = f"{row.runtime} {row.delegate}".strip()
    first = "" if row.delegate else "first "  # the GPU rows' digits are a seeded sample, the others' the first N
    return f"{where} ({first}{row.images:,} digits)" if row.images else where


def _accelerated(row: VerifyRow) -> str:
    """XNNPACK partitions and the ops it left to the CPU, whether the whole graph ran on the GPU, or the float nodes
    of a quantized ONNX model."""
    if row.whole_graph is not None:
        return "GPU, whole graph" if row.whole_graph else f"GPU; CPU: {', '.join(row.left_to_cpu) or 'some ops'}"
    if row.partitions is not None:
        text = f"XNNPACK, {row.partitions} partition{'s' * (row.partitions != 1)}"
        left = ", ".join(dict.fromkeys(item.split(" (")[0] for item in row.left_to_cpu))
        return f"{text}; CPU: {left}" if left else f"{text}, nothing left out"
    if row.float_nodes:
        return f"float inside int8: {float_ops(row.float_nodes)}"
    return "—"


def bench_section(
    profile: str, info: dict, rows: list[BenchRow], title: str = "", chart: bool | None = True
) -> list[str]:
    machine = info["machine"]
    single = [row for row in rows if row.batch == 1]
    throughput = {r.combination: r.throughput_ips for r in rows if r.batch == 256}
    keras = (KERAS.runtime, RUNTIMES[KERAS.runtime].default_delegate)  # Keras through a tf.function
    keras_by_threads = {r.threads: r.p50_us for r in single if (r.runtime, r.delegate) == keras}
    lines = [
        title or f"## Speed: {profile} profile",
        "",
        f"{info['profile_means'][0].upper()}{info['profile_means'][1:]}. {info['inputs']} "
        f"Each combination ran in a fresh process; latency is one batch-1 inference after warm-up, over "
        f"{info['seconds_per_measurement']} s of calls. Keras: {info['keras']}."
        + (f" {info['browser']}" if info.get("browser") else ""),
        "",
        f"Host: {host_facts(machine)}.",
        "",
        "| Format | Runtime | threads | p50 µs | p99 µs | img/s @256 | load ms | model MB | footprint MB | size KB "
        "| speed-up vs Keras |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(single, key=lambda r: (r.threads, r.p50_us)):
        ips = throughput.get(row.combination)
        keras_p50 = keras_by_threads.get(row.threads)
        speedup = "—" if keras_p50 is None else f"{keras_p50 / row.p50_us:.1f}×"
        label = runtime_label(row.runtime, row.delegate)
        lines.append(
            f"| {row.format} | {label} | {row.threads} | {row.p50_us:.1f} | "
            f"{row.p99_us:.1f} | {'—' if ips is None else f'{ips:,.0f}'} | {row.load_ms:.1f} | "
            f"{_mb(row.model_mb)} | {_mb(row.footprint_mb)} | {row.size_bytes / 1024:.1f} | "
            f"{speedup} |"
        )
    slower = _slower_with_more_threads(single)
    if slower:
        lines += [
            "",
            "More threads made these slower at batch 1: "
            + "; ".join(f"{label} {one:.1f} → {many:.1f} µs on {n} threads" for label, one, many, n in slower)
            + ". A batch-1 op here takes microseconds, and splitting it costs a hand-over to another thread and "
            "back. LiteRT's built-in kernels (no delegate) hand ops to two pools of their own, ruy's for the "
            "convolutions and matrix products and gemmlowp's for the int8 depthwise convolutions (S2 and S4 here), "
            "whose workers spin while they wait: with as many threads as cores, the spinning workers and the "
            "calling thread compete for the cores, and the caller waits for a worker the scheduler has set aside. "
            "XNNPACK runs one pool. Use 1 thread at batch 1 on these.",
        ]
    if info.get("memory"):
        lines += ["", info["memory"]]
    for error in info.get("errors", []):
        lines.append(f"\nNot measured: {error['combination']}: {error['reason']}")
    if info.get("not_run"):
        lines += ["", "Not run here: " + "; ".join(info["not_run"]) + "."]
    lines += chart_lines(f"bench_{profile}.png", f"{profile} latency", chart)
    if not title:  # this host's bench; a target's rows are in report.json only
        lines += ["", "Every row: `bench.json` (last profile run)."]
    return [*lines, ""]


def _slower_with_more_threads(single: list[BenchRow]) -> list[tuple[str, float, float, int]]:
    """Batch-1 rows whose most-threads p50 is over 1.5× their 1-thread p50: (label, 1-thread, many, threads)."""
    by_key: dict[tuple, dict[int, float]] = {}
    for row in single:
        by_key.setdefault((row.format, row.runtime, row.delegate), {})[row.threads] = row.p50_us
    found = []
    for (fmt, runtime, delegate), p50 in by_key.items():
        most = max(p50)
        if most > 1 and 1 in p50 and p50[most] > 1.5 * p50[1]:
            found.append((f"{fmt} on {runtime_label(runtime, delegate)}", p50[1], p50[most], most))
    return found


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def host_facts(machine: dict) -> str:
    """The CPU, its cores, the ISA features its kernels are picked by, and the runtimes' versions, in a line."""
    features = ", ".join(machine.get("kernel_features", [])) or "none of note"
    dot = "yes" if machine.get("int8_dot_product") else "no"
    engine = "yes" if machine.get("int8_matrix_engine") else "no"
    versions = machine.get("versions", {})
    runtimes = ", ".join(f"{lib} {versions[lib]}" for lib in ("ai-edge-litert", "onnxruntime") if lib in versions)
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('machine', '')}; kernel "
        f"features {features} (int8 dot product: {dot}; int8 matrix engine, AMX or i8mm: {engine}); {runtimes}. "
        "XNNPACK, ruy and ONNX Runtime's MLAS pick their kernels from these features at run time, so every speed "
        "figure here is this host's"
    )


def profile_section(profile: dict, bench: dict) -> list[str]:
    lines = [
        "## Where the time goes: what the accelerators take, op by op",
        "",
        "**LiteRT with XNNPACK**, read from the delegated graph. Every op XNNPACK does not take runs on the "
        "reference CPU kernels and splits the graph: each partition boundary is a hand-over between the two. "
        "(LiteRT's Python API has no per-op timer; the last column shows what XNNPACK is worth for each file.)",
        "",
        "| Format | XNNPACK partitions | ops delegated | left to the reference kernels | p50 µs XNNPACK / none |",
        "|---|---:|---:|---|---:|",
    ]
    for fmt, data in profile.items():
        if data["runtime"] != "litert":
            continue
        on, off = batch1_p50(bench, fmt, "xnnpack"), batch1_p50(bench, fmt, "none")
        timing = " / ".join("—" if v is None else f"{v:.1f}" for v in (on, off))
        lines.append(
            f"| {fmt} | {data['partitions']} | {data['delegated']} of {data['ops']} | "
            f"{grouped(data['left_to_cpu'])} | {timing} |"
        )
    lines += [
        "",
        "**ONNX Runtime**, its profiler over 300 batch-1 runs on 1 thread: share of kernel time by op type in "
        "the optimized graph (the profiler's own cost per node inflates absolute times, so read the shares).",
        "",
    ]
    for fmt, data in profile.items():
        if data["runtime"] != "onnxruntime":
            continue
        lines += [f"*{fmt}*", "", "| op | kind | nodes | share |", "|---|---|---:|---:|"]
        lines += [f"| {r['op']} | {r['kind']} | {r['nodes']} | {r['share']:.0%} |" for r in data["ops"]]
        if data["float_nodes"]:
            lines += ["", f"Float between Q/DQ pairs: {float_ops(data['float_nodes'])}."]
        lines.append("")
    verdicts = []
    for runtime, fp32, int8 in int8_pairs():
        delegate = RUNTIMES[int8.runtime].default_delegate
        a, b = batch1_p50(bench, fp32.name, delegate), batch1_p50(bench, int8.name, delegate)
        if a and b:
            verdicts.append(f"{runtime} int8 {b:.1f} µs against fp32 {a:.1f} µs ({b / a:.2f}×)")
    if verdicts:
        lines += ["Batch 1, 1 thread: " + "; ".join(verdicts) + ".", ""]
    return lines


def recommendation_section(found: dict, machine: dict) -> list[str]:
    lines = [
        "## What to deploy on this host",
        "",
        f"Computed from this run's {found['profile']} profile, among the files verify passed, on "
        f"{machine.get('cpu', 'this CPU')} ({machine.get('cores', '?')} cores). Another CPU can rank them "
        "differently (int8 kernels above all): bench there before choosing.",
        "",
    ]

    def line(title: str, pick: dict | None, unit: str, fmt) -> None:
        if pick is None:
            return
        behind = f", {pick['ratio']:.2f}× ahead of {pick['runner_up']}" if pick["runner_up"] else ""
        lines.append(f"- **{title}**: {pick['choice']} ({fmt(pick['value'])} {unit}{behind}).")

    line("Lowest batch-1 latency", found["latency"], "µs p50", lambda v: f"{v:.1f}")
    line("Lowest latency on one core (a phone app's thread)", found["one_core"], "µs p50", lambda v: f"{v:.1f}")
    line(f"Highest throughput (batch {found['throughput_batch']})", found["throughput"], "images/s",
         lambda v: f"{v:,.0f}")  # fmt: skip
    line("Smallest file", found["size"], "KB", lambda v: f"{v / 1024:.1f}")
    for pair in found["int8"]:
        verdict = (
            f"int8 is **slower** than fp32 here ({pair['int8_us']:.1f} against {pair['fp32_us']:.1f} µs, "
            f"{pair['ratio']:.2f}×): {pair['cause']}"
            if pair["slower"]
            else f"int8 {pair['int8_us']:.1f} µs against fp32 {pair['fp32_us']:.1f} µs ({pair['ratio']:.2f}×)"
        )
        lines.append(f"- {pair['runtime']}, batch 1, 1 thread: {verdict}.")
    gpu = found.get("gpu") or {}
    if gpu.get("format"):
        arithmetic = "fp16 arithmetic, the GPU's default" if gpu["setting"] == "fp16" else "with fp32 enforced"
        lines.append(
            f"- **A phone's GPU** (LiteRT's GPU accelerator; answers judged, no time measured): "
            f"{gpu['format']}, `{gpu['file']}`, passed whole on the GPU in {arithmetic}."
        )
    return [*lines, ""]


def targets_section(targets: dict, chart: bool | None = None) -> list[str]:
    """ARM64 targets: who they are, parity on their kernels, cost per image per core, device speed."""
    lines = [
        "## Mobile-class targets",
        "",
        "The same files on ARM64 kernels (XNNPACK's NEON and dot-product paths, ONNX Runtime's ARM MLAS), "
        "which the x86 host never runs. Emulated targets run the real aarch64 wheels under QEMU user-mode "
        "emulation: parity, and a deterministic cost in guest instructions per image. Emulated wall-clock "
        "time is not latency and is never shown. Devices over SSH give real latency.",
        "",
        "| Target | uname -m | CPU | Python | LiteRT | ONNX Runtime | NumPy |",
        "|---|---|---|---|---|---|---|",
    ]
    targets = dict(sorted(targets.items()))
    for name, entry in targets.items():
        ident = entry["identity"]
        versions = ident.get("versions", {})
        cpu = ident.get("cpu", "?")
        if ident.get("kind") == "emulated":
            cpu = f"{cpu}, emulated ({ident.get('emulator') or 'QEMU'}): {ident.get('about', '')}"
        libraries = " | ".join(versions.get(lib, "—") for lib in ("ai-edge-litert", "onnxruntime", "numpy"))
        lines.append(f"| {name} | {ident.get('machine')} | {cpu} | {ident.get('python')} | {libraries} |")
    lines.append("")
    costs = costs_by_core(targets)
    if costs:
        lines += _cost_table(costs, targets, chart)
    for name, entry in targets.items():
        if "verify" in entry:
            lines += _target_parity(name, entry["verify"])
    for name, entry in targets.items():
        for profile, result in entry.get("bench", {}).items():
            title = f"### Speed on {name}: {profile} profile ({entry['identity'].get('cpu')})"
            rows = [BenchRow.from_dict(row) for row in result["rows"]]
            lines += bench_section(profile, result["info"], rows, title=title, chart=None)
    return lines


def _cost_table(costs: dict[str, list[dict]], targets: dict, chart: bool | None = None) -> list[str]:
    cores = list(costs)
    formats = list(dict.fromkeys(row["format"] for rows in costs.values() for row in rows))
    cell = {(core, row["format"]): row for core, rows in costs.items() for row in rows}
    calls = next(entry["cost"]["calls"] for entry in targets.values() if "cost" in entry)
    lines = [
        "### Cost per image on emulated ARM64 cores",
        "",
        f"Million guest instructions retired per batch-1 inference (1 thread, {calls} inferences of a real test "
        "digit counted by a QEMU TCG plugin, the Python loop's own count subtracted). The same files, input and "
        "core give the same count on every run; in brackets, the cost against the fp32 file of the same "
        "runtime. Instructions are not time (an in-order A53 retires fewer per cycle than an A76), but on one "
        "core they rank the formats.",
        "",
        "| Format | Runtime | " + " | ".join(cores) + " |",
        "|---|---|" + "---:|" * len(cores),
    ]
    for fmt in formats:
        runtime = next(cell[c, fmt]["runtime"] for c in cores if (c, fmt) in cell)
        values = []
        for core in cores:
            row = cell.get((core, fmt))
            values.append(
                "—" if row is None else f"{row['instructions_per_image'] / 1e6:.3f} ({row['vs_fp32'] or 0:.2f}×)"
            )
        lines.append(f"| {fmt} | {runtime} | " + " | ".join(values) + " |")
    lines.append("")
    for core in cores:
        least = min(r["instructions_per_image"] for r in costs[core])
        cheapest = [r["format"] for r in costs[core] if r["instructions_per_image"] <= least * 1.01]  # ties: 1%
        about = next((t["identity"].get("about") for t in targets.values() if t["identity"].get("core") == core), "")
        ratios = [
            f"{runtime} int8 {cell[core, int8.name]['vs_fp32']:.2f}× fp32"
            for runtime, _, int8 in int8_pairs()
            if (core, int8.name) in cell and cell[core, int8.name]["vs_fp32"]
        ]
        lines.append(
            f"- **{core}** ({about}): cheapest {'is' if len(cheapest) == 1 else 'are'} "
            f"**{' ≈ '.join(cheapest)}** ({least / 1e6:.3f} M); {', '.join(ratios)}."
        )
    lines += [*chart_lines(TARGETS_PNG, "instructions per image", chart), ""]
    return lines


def _target_parity(name: str, result: dict) -> list[str]:
    lines = [
        f"### Parity on {name}",
        "",
        f"Each export's raw outputs on {result['images']:,} test images against {result['against']}: "
        f"top-1 agreement, the largest output difference (|Δp| in probability, or quantization steps for a "
        f"quantized output) and how many of the outputs differ at all. Took {result['seconds']:.0f} s.",
        "",
        "| Format | Status | Agreement | max\\|Δ\\| | outputs differing | Accuracy | XNNPACK partitions | Gate |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["rows"]:
        if "agreement" not in row:
            lines.append(f"| {row['format']} | {STATUS_MARK[row['status']]} | — | — | — | — | — | {row['reason']} |")
            continue
        if not row["max_delta"]:
            delta = "0 (bit-identical)"
        elif row["delta_unit"] == "steps":
            delta = f"{row['max_delta']:.0f} step{'s' * (row['max_delta'] != 1)}"
        else:
            delta = f"{row['max_delta']:.2g}"
        partitions = "—" if row.get("xnnpack_partitions") is None else row["xnnpack_partitions"]
        lines.append(
            f"| {row['format']} | {STATUS_MARK[row['status']]} | {_pct(row['agreement'])} | {delta} | "
            f"{row['outputs_differing']:,} of {row['outputs']:,} | {_pct(row['accuracy'])} | {partitions} | "
            f"{(row['reason'] or row['gate']).replace('|', chr(92) + '|')} |"
        )
    if result.get("not_run"):
        lines += ["", "Not run there (its runtime is not installed): " + "; ".join(result["not_run"]) + "."]
    return [*lines, ""]
