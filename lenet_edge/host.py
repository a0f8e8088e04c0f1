"""The machine a command runs on: CPU model and features, usable cores, library versions. Standard library only:
it runs on targets too."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path

from . import __version__

TOOLS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")
ARM_PARTS = {0xD03: "Cortex-A53", 0xD05: "Cortex-A55", 0xD08: "Cortex-A72", 0xD0B: "Cortex-A76",
             0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1",
             0xD46: "Cortex-A510", 0xD47: "Cortex-A710", 0xD4D: "Cortex-A715", 0xD80: "Cortex-A520",
             0xD81: "Cortex-A720"}  # fmt: skip


# ISA features that change which kernels XNNPACK, ruy and MLAS pick at run time (int8 dot products and matrix
# engines above all): what a speed figure depends on besides the CPU's name
KERNEL_FEATURES = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
    "amx_int8", "amx_bf16",  # x86
    "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme",  # ARM
)  # fmt: skip


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "lenet-edge": __version__}
    for dist in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> tuple[str, list[str]]:
    """The CPU's name and feature flags from /proc/cpuinfo: x86's 'model name', or ARM's implementer and part
    decoded (ARM Linux prints no name), with the board's name from the device tree when there is one."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    features = (fields.get("flags") or fields.get("Features") or "").split()
    if "model name" in fields:
        return fields["model name"], features
    name = platform.processor() or platform.machine()
    if fields.get("CPU implementer") == "0x41" and "CPU part" in fields:
        part = int(fields["CPU part"], 16)
        name = f"ARM {ARM_PARTS.get(part, f'part {part:#05x}')}"
    try:
        board = Path("/proc/device-tree/model").read_text().strip("\x00 \n")
        name = f"{name} ({board})" if board else name
    except OSError:
        pass
    return name, features


def machine_info() -> dict:
    cpu, features = cpu_model()
    return {
        "cpu": cpu,
        "cores": usable_cores(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "int8_dot_product": "asimddp" in features or "avx512_vnni" in features or "avx_vnni" in features,
        "int8_matrix_engine": "amx_int8" in features or "i8mm" in features,
        "kernel_features": [flag for flag in KERNEL_FEATURES if flag in features],
        "versions": {k: v for k, v in tool_versions().items() if k not in ("tf2onnx", "onnx")},
    }
