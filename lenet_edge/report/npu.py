"""report.md's NPU part, rendered from report.json's ``npu`` section (command.py writes it). Standard library only."""

from __future__ import annotations

_AOT = (
    'python -c "from ai_edge_litert.aot import aot_compile as a; from ai_edge_litert.aot.vendors.{v} import target '
    "as t; a.aot_compile('lenet5_int8.tflite', 'npu', t.Target(t.SocModel.{soc}))\""
)
OTHER_VENDORS = (
    ("MediaTek (Dimensity, NeuroPilot)", "ai-edge-litert-sdk-mediatek", _AOT.format(v="mediatek", soc="ALL")),
    ("Google Tensor (G3-G5)", "ai-edge-litert-sdk-google-tensor", _AOT.format(v="google_tensor", soc="ALL")),
    ("Samsung Exynos (E9965…)", "ai-edge-litert-sdk-samsung", _AOT.format(v="samsung", soc="ALL")),
)  # LiteRT 2.3's AOT entry point and the vendor modules it ships (ai_edge_litert/aot/vendors/*)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _short(op: str) -> str:
    """A QNN op's name without the model's prefix and LiteRT's suffix: C1_rows_1/depthwise2/DepthWiseConv2d."""
    parts = op.split("/")
    name = "/".join(parts[1:]) if len(parts) > 2 else op
    return name.split("_LiteRt_OpId_")[0]


def _quartiles(row: dict) -> str:
    low, high = row["cycles"].get("quartiles_per_image", [0, 0])
    return f"{row['soc']['model']} {low:,}-{high:,}"


def _graph(source: dict) -> str:
    """What the NPU compiled of the source file, when not the file as it is."""
    graph = source.get("graph")
    return (
        f", {graph} (it answers bit for bit as the file in LiteRT on the CPU),"
        if graph and graph != "as shipped"
        else ""
    )


def _shipped_lines(source: dict, rows: list[dict]) -> list[str]:
    """The compiled graph's cycles beside those of the bundle's file compiled as it is, profiled in the same run."""
    pairs = [(r, r["shipped"]["cycles"]) for r in rows if r.get("cycles") and r.get("shipped", {}).get("cycles")]
    if not pairs:
        return []
    lines = [
        "",
        f"### What the NPU pays for `{source.get('file')}` as it is",
        "",
        "The int8 file splits its first convolution (C1) into row shifts, a one-hot depthwise 5×1 and a 1×5 "
        "convolution: the same int32 sums, fewer multiply-adds in XNNPACK's x86 int8 kernels, which take input "
        "channels in blocks of 8. The HTP pays for it, so the NPU compiles the file with C1 whole again (the "
        "split undone in the file itself, the same weights and quantization; it is compiled only when it answers "
        "bit for bit as the file in LiteRT on the CPU on the digits judged). The file as it is, compiled and "
        "profiled right after on the same digits:",
        "",
        "| SoC | compiled: cycles/image (median) | the file as it is | compiled / as it is, in units of the layers "
        "both share |",
        "|---|---:|---:|---:|",
    ]
    for row, before in pairs:
        ratio = row["shipped"].get("ratio_same_layers")
        lines.append(
            f"| {row['soc']['model']} | {row['cycles']['median_per_image']:,} | {before['median_per_image']:,} | "
            + ("—" if ratio is None else f"{ratio:.2f}×")
            + " |"
        )
    lines += [
        "",
        "The simulator's cycles move from one profile to the next, every op together (by up to 1.7× on a 2-core "
        "host), so the two medians are not compared directly: the last column divides each file's cycles by those "
        "of the layers both compute alike (all but C1) in the same profile, which cancels that drift. The "
        "project's `benchmarks/NPU_VARIANTS.md` compares more graph variants of the trained model that way (C5 as a "
        "dense layer, too), with the host it ran on.",
    ]
    return lines


def npu_section(report: dict) -> list[str]:
    """Markdown lines for report.md ([] when the report has no ``npu`` section)."""
    npu = report.get("npu")
    if not npu:
        return []
    info, rows = npu.get("info", {}), npu.get("socs", [])
    tools = info.get("tools", {})
    lines = [
        "## Phone NPU: Qualcomm Snapdragon (Hexagon HTP)",
        "",
        f"Compiled from `{info.get('source', {}).get('file')}`{_graph(info.get('source', {}))} with LiteRT "
        f"{tools.get('ai-edge-litert')}'s Qualcomm "
        f"compiler plugin and the QNN {tools.get('qnn_sdk')} libraries of onnxruntime-qnn "
        f"{tools.get('onnxruntime-qnn')}; judged on {info.get('images', 0):,} test digits in "
        f"{info.get('simulator', 'the HTP simulator')} Host: "
        f"{info.get('host')}, {info.get('workers')} simulator processes.",
        "",
        "| SoC | HTP | on the NPU | accuracy | Δ vs Keras | agree Keras | agree LiteRT CPU | max steps | "
        "identical | cycles/image (median) | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        soc, compiled, judged, counted = row["soc"], row.get("compile", {}), row.get("judge"), row.get("cycles", {})
        proof = compiled.get("proof", {})
        ops = f"{proof.get('ops_offloaded')} of {proof.get('ops_total')} ops, {proof.get('partitions')} partition"
        status = "✅ pass" if row.get("status") == "pass" else "❎ fail"
        if judged is None:
            lines.append(f"| {soc['model']} ({soc['name']}) | {soc['htp_arch']} | {ops if proof else '—'} |"
                         + " — |" * 7 + f" {status}: {compiled.get('reason', '')} |")  # fmt: skip
            continue
        lines.append(
            f"| {soc['model']} ({soc['name']}) | {soc['htp_arch']} | {ops} | {_pct(judged['accuracy'])} | "
            f"{judged['delta_vs_keras_pt']:+.2f} pt | {_pct(judged['agreement_keras'])} | "
            f"{_pct(judged['agreement_cpu'])} | {judged['max_step_diff_cpu']} | {_pct(judged['identical_cpu'])} | "
            f"{counted.get('median_per_image', 0):,} | {status}{': ' + judged['reason'] if judged['reason'] else ''} |"
        )
    lines += _shipped_lines(info.get("source", {}), rows)
    onnx_rows = [r for r in rows if r.get("onnx")]
    if onnx_rows:
        lines += [
            "",
            f"### `{onnx_rows[0]['onnx']['file']}` on ONNX Runtime's QNN execution provider",
            "",
            "The bundle's int8 ONNX as it is, compiled by the QNN execution provider for each SoC (options soc_model "
            "and htp_arch), CPU fallback disabled and the batch dimension fixed to 1 (the session option "
            "`add_free_dimension_override_by_name`): QNN compiles static shapes only, and with a free batch "
            "dimension it refuses every node.",
            "",
            "| SoC | whole on the NPU | accuracy | agree Keras | agree ONNX Runtime CPU | max abs Δp vs CPU | "
            "cycles/image (median) | status |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in onnx_rows:
            onnx, soc = r["onnx"], r["soc"]
            status = "✅ pass" if onnx["status"] == "pass" else f"❎ fail: {onnx.get('reason', '')}"
            if "judge" not in onnx:
                lines.append(f"| {soc['model']} | no |" + " — |" * 5 + f" {status} |")
                continue
            j = onnx["judge"]
            lines.append(
                f"| {soc['model']} | yes | {_pct(j['accuracy'])} | {_pct(j['agreement_keras'])} | "
                f"{_pct(j['agreement_cpu'])} | {j.get('max_abs_dp_cpu', 0):.4f} | "
                f"{onnx['cycles'].get('median_per_image', 0):,} | {status} |"
            )
    counted_rows = [r for r in rows if r.get("cycles", {}).get("ops")]
    if counted_rows:
        names = list(dict.fromkeys(op["op"] for r in counted_rows for op in r["cycles"]["ops"]))
        lines += [
            "",
            "### Simulated HTP cycles per op (median per image)",
            "",
            "| Op | " + " | ".join(r["soc"]["model"] for r in counted_rows) + " |",
            "|---|" + "---:|" * len(counted_rows),
        ]
        for name in names:
            cells = []
            for r in counted_rows:
                found = next((op for op in r["cycles"]["ops"] if op["op"] == name), None)
                cells.append(f"{found['median_cycles']:,}" if found else "—")
            lines.append(f"| {_short(name)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Cycles are the simulator's, at no clock: no microseconds are claimed here (no public HTP clock figure "
            "for these SoCs is used). They are measured in one process after the others end, yet they are not "
            "repeatable: the simulator runs the HTP's threads as host threads, and from one run to the next every "
            "op's count moves together, by up to 1.7× on a 2-core host; compare ops within one run. "
            "Quartiles per image: " + "; ".join(_quartiles(r) for r in counted_rows) + ".",
        ]
    if report.get("charts", {}).get("npu_cycles.png"):
        lines += ["", "![simulated HTP cycles per image by layer](npu_cycles.png)"]
    lines += [
        "",
        "Files: `npu/lenet5_int8_SOC.tflite` (LiteRT's NPU file: one `DISPATCH_OP` holding the QNN context "
        "binary) and `npu/lenet5_int8_SOC_ctx.onnx` (ONNX Runtime's EPContext model of the same binary), both in "
        "manifest.json under `npu`. The QNN libraries come under Qualcomm's licence (Qualcomm_LICENSE.pdf in the "
        "onnxruntime-qnn wheel).",
        "",
        "### Other NPU vendors",
        "",
        "| Vendor | Why not here | With the vendor's SDK installed (pip install the package, then) |",
        "|---|---|---|",
    ]
    for vendor, package, command in OTHER_VENDORS:
        lines.append(
            f"| {vendor} | `{package}` is a stub that downloads the SDK from the vendor's own server at install "
            f"time (not reachable here) | `{command}` |"
        )
    return [*lines, ""]
