"""report.md's GPU part, rendered from verify's rows of every .tflite on LiteRT's GPU accelerator: the files side
by side (CPU, fp16 arithmetic, fp32 enforced, whole graph), the file to ship and how an Android app turns the GPU
on. No time is shown: the device here is a CPU Vulkan driver, not a phone's GPU. Imports the tables, the records
and the advice only."""

from __future__ import annotations

from ..formats import BY_NAME
from ..records import VerifyRow
from .advice import GPU_RUNTIME, gpu_choice


def _dp(row: VerifyRow | None) -> str:
    if row is None:
        return "—"
    if row.max_abs_dp is None:
        return f"{row.status}: {row.reason[:60]}"
    mark = "" if row.status == "pass" else f" ({row.status})"
    return f"{row.max_abs_dp:.1e}, {row.agreement:.2%}{mark}"


def _whole(rows: list[VerifyRow]) -> str:
    if not rows or any(row.whole_graph is None for row in rows):
        return "—"
    if all(row.whole_graph for row in rows):
        return "yes"
    left = {op.split(":")[0] for row in rows for op in row.left_to_cpu}
    return f"no: {', '.join(sorted(left)) or 'ops'} on the CPU"


def gpu_section(verified: list[VerifyRow], info: dict) -> list[str]:
    """The section, or a line saying why the GPU rows were not run; nothing when verify never tried them."""
    gpu = [row for row in verified if row.runtime == GPU_RUNTIME]
    not_run = [line for line in info.get("not_run", []) if "LiteRT GPU" in line]
    if not gpu:
        return ["## The phone's GPU", "", f"Not run here: {not_run[0]}.", ""] if not_run else []
    digits = gpu[0].images
    sample = (
        f"{digits:,} test digits drawn with seed {info.get('gpu_sample', {}).get('seed', 0)} "
        "(`lenet-edge verify --gpu-digits all` judges the 10,000)"
        if digits
        else "all 10,000 test digits"
    )
    lines = [
        "## The phone's GPU: LiteRT's GPU accelerator",
        "",
        "Every `.tflite` compiled as an Android app compiles it for the GPU (`CompiledModel` with "
        "`Accelerator.GPU`, the CPU as the fallback) and judged against Keras on "
        f"{sample}, in the arithmetic phones run by default (fp16) and with fp32 enforced. The GPU kernels ran on "
        "a software Vulkan device (Mesa's lavapipe): these are the GPU's answers, not a phone's speed, and no time "
        "is shown. Each cell: max|Δp| against Keras, top-1 agreement.",
        "",
        "| File | CPU (LiteRT + XNNPACK, all digits) | GPU, fp16 arithmetic (default) | GPU, fp32 enforced | "
        "whole graph on the GPU |",
        "|---|---:|---:|---:|---|",
    ]
    cpu = {row.format: row for row in verified if row.runtime == "litert"}
    for fmt in dict.fromkeys(row.format for row in gpu):
        mine = {row.delegate: row for row in gpu if row.format == fmt}
        lines.append(
            f"| {BY_NAME[fmt].file} | {_dp(cpu.get(fmt))} | {_dp(mine.get('fp16'))} | {_dp(mine.get('fp32'))} | "
            f"{_whole(list(mine.values()))} |"
        )
    lines += ["", *gpu_advice(verified), ""]
    return lines


def gpu_advice(verified: list[VerifyRow]) -> list[str]:
    """Which file to ship for the GPU and how an app turns it on, from the GPU rows."""
    found = gpu_choice(verified)
    if found is None:
        return []
    if found["format"] is None:
        return [f"**For the GPU:** none to recommend: {found['why']} (see the rows above)."]
    setting = (
        "in the GPU's default fp16 arithmetic"
        if found["setting"] == "fp16"
        else "only with fp32 enforced (fp16 arithmetic did not pass: turn it off in the app)"
    )
    return [
        f"**For the GPU: ship `{found['file']}`**: it passed {setting}, whole on the GPU "
        f"(agreement {found['agreement']:.2%}, max|Δp| {found['max_abs_dp']:.1e}). "
        'In an Android app: `CompiledModel.create(context.assets, "' + found["file"] + '", '
        "CompiledModel.Options(Accelerator.GPU, Accelerator.CPU))` (LiteRT 2.x with its `litert-gpu` artifact; the "
        "CPU takes any op the GPU refuses), or with the older "
        "Interpreter, `Interpreter.Options().addDelegate(GpuDelegate())`. Both compute in fp16 unless told otherwise "
        "(the GPU options' fp32 precision; `GpuDelegate.Options().setPrecisionLossAllowed(false)`): a float file's "
        "weights are fp16 on the GPU either way, so the fp16 file loses nothing there and is half the size.",
    ]
