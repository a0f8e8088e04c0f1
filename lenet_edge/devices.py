"""Named devices people deploy to: each core type, how many, its clock, and the source of every figure.

A core type names the LLVM scheduling model that prices it (``llvm-mca -mcpu``) and the emulated ARM64 core
whose instruction set the runtimes see under QEMU (their kernels are chosen by CPU features: an ARMv8.0 core
gets no dot-product kernels). QEMU 7.2 emulates cortex-a53, a72, a76 and neoverse-n1 only, so ARMv8.2 and
ARMv9 cores run the Cortex-A76's instruction set (dot product, no i8mm/SVE2): on an ARMv9 core a runtime may
choose i8mm kernels the emulated run never shows. A clock nobody published is ``None``, never a guess.
A Snapdragon device names its SoC's model number (``npu_soc``, as the NPU command's SoC table spells it), so the
Hexagon NPU's simulated cycles from ``lenet-edge npu`` stand beside its cores.

May import: errors (and the standard library)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError

SOURCES = {
    "rpi3": "raspberrypi.com/products/raspberry-pi-3-model-b: Quad Core 1.2GHz Broadcom BCM2837 64bit CPU (Cortex-A53)",
    "rpi4": "raspberrypi.com/products/raspberry-pi-4-model-b/specifications: Broadcom BCM2711, Quad core "
    "Cortex-A72 (ARM v8) 64-bit SoC @ 1.8GHz (boards from 2020 on; the first ones ran at 1.5GHz)",
    "rpi5": "raspberrypi.com/products/raspberry-pi-5: Broadcom BCM2712 2.4GHz quad-core 64-bit Arm Cortex-A76 CPU",
    "8gen1": "Qualcomm, Snapdragon 8 Gen 1 Mobile Platform product brief; Wikipedia, List of Qualcomm Snapdragon "
    "systems on chips (Snapdragon 8 Gen 1): 1× Cortex-X2 @ 3.0 GHz, 3× Cortex-A710 @ 2.5 GHz, 4× Cortex-A510 "
    "@ 1.8 GHz",
    "8gen2": "Qualcomm, Snapdragon 8 Gen 2 Mobile Platform product brief; Wikipedia, List of Qualcomm Snapdragon "
    "systems on chips (Snapdragon 8 Gen 2): 1× Cortex-X3 @ 3.19 GHz, 2× Cortex-A715 and 2× Cortex-A710 @ "
    "2.8 GHz, 3× Cortex-A510 @ 2.0 GHz",
    "8gen3": "Qualcomm, Snapdragon 8 Gen 3 Mobile Platform product brief; Wikipedia, List of Qualcomm Snapdragon "
    "systems on chips (Snapdragon 8 Gen 3): 1× Cortex-X4 @ 3.3 GHz, 3× Cortex-A720 @ 3.15 GHz, 2× Cortex-A720 "
    "@ 2.96 GHz, 2× Cortex-A520 @ 2.27 GHz",
    "8gen1-soc": "Qualcomm, Snapdragon 8 Gen 1 Mobile Platform product brief: part number SM8450, Qualcomm Hexagon "
    "processor (the NPU)",
    "8gen2-soc": "Qualcomm, Snapdragon 8 Gen 2 Mobile Platform product brief: part number SM8550, Qualcomm Hexagon "
    "processor (the NPU)",
    "8gen3-soc": "Qualcomm, Snapdragon 8 Gen 3 Mobile Platform product brief: part number SM8650, Qualcomm Hexagon NPU",
    "tensor-g2": "Wikipedia, Google Tensor (Tensor G2, Pixel 7): 2× Cortex-X1 @ 2.85 GHz, 2× Cortex-A78 @ 2.35 "
    "GHz, 4× Cortex-A55 @ 1.80 GHz",
    "tensor-g3": "Wikipedia, Google Tensor (Tensor G3, Pixel 8): 1× Cortex-X3 @ 2.91 GHz, 4× Cortex-A715 @ 2.37 "
    "GHz, 4× Cortex-A510 @ 1.70 GHz",
}


@dataclass(frozen=True)
class CoreType:
    """One kind of core on a device: its role (prime, performance, efficiency), model, count and clock."""

    role: str
    core: str  # ARM's name, also LLVM's -mcpu
    count: int
    clock_ghz: float | None
    emulated: str  # the QEMU core whose instruction set the runtimes see
    source: str  # key of SOURCES

    @property
    def label(self) -> str:
        clock = f"{self.clock_ghz:g} GHz" if self.clock_ghz else "clock unknown"
        return f"{self.role} ({self.count}× {self.core}, {clock})"


@dataclass(frozen=True)
class Device:
    name: str
    soc: str
    cores: tuple[CoreType, ...]
    aliases: tuple[str, ...] = ()
    npu_soc: str | None = None  # the SoC's model number (SM8550) when `lenet-edge npu` compiles for its NPU
    npu_source: str | None = None  # key of SOURCES for npu_soc

    def models(self) -> dict[str, set[str]]:
        """Emulated core -> the LLVM models that price it, for every core type of this device."""
        by_isa: dict[str, set[str]] = {}
        for core in self.cores:
            by_isa.setdefault(core.emulated, set()).add(core.core)
        return by_isa


def _core(role: str, core: str, count: int, clock: float | None, source: str) -> CoreType:
    return CoreType(role, core, count, clock, EMULATED_ISA[core], source)


# Which emulated core runs a core's instruction set: ARMv8.0 cores as themselves, ARMv8.2+ with dot product
# (A55, A76 and later, ARMv9) as the Cortex-A76, the newest QEMU 7.2 emulates.
EMULATED_ISA = {
    "cortex-a53": "cortex-a53",
    "cortex-a72": "cortex-a72",
    **{
        core: "cortex-a76"
        for core in (
            "cortex-a55", "cortex-a76", "cortex-a78", "cortex-x1", "cortex-a510", "cortex-a710", "cortex-x2",
            "cortex-a715", "cortex-x3", "cortex-a520", "cortex-a720", "cortex-x4",
        )
    },
}  # fmt: skip

DEVICES = {
    device.name: device
    for device in (
        Device("Raspberry Pi 3", "Broadcom BCM2837", (_core("cpu", "cortex-a53", 4, 1.2, "rpi3"),), ("rpi3",)),
        Device("Raspberry Pi 4", "Broadcom BCM2711", (_core("cpu", "cortex-a72", 4, 1.8, "rpi4"),), ("rpi4",)),
        Device("Raspberry Pi 5", "Broadcom BCM2712", (_core("cpu", "cortex-a76", 4, 2.4, "rpi5"),), ("rpi5",)),
        Device(
            "Snapdragon 8 Gen 1 phone",
            "Qualcomm Snapdragon 8 Gen 1 (e.g. Galaxy S22, US)",
            (
                _core("prime", "cortex-x2", 1, 3.0, "8gen1"),
                _core("performance", "cortex-a710", 3, 2.5, "8gen1"),
                _core("efficiency", "cortex-a510", 4, 1.8, "8gen1"),
            ),
            ("snapdragon 8 gen 1", "8gen1"),
            npu_soc="SM8450",
            npu_source="8gen1-soc",
        ),
        Device(
            "Snapdragon 8 Gen 2 phone",
            "Qualcomm Snapdragon 8 Gen 2 (e.g. Galaxy S23 at its own clocks, OnePlus 11)",
            (
                _core("prime", "cortex-x3", 1, 3.19, "8gen2"),
                _core("performance", "cortex-a715", 2, 2.8, "8gen2"),
                _core("performance", "cortex-a710", 2, 2.8, "8gen2"),
                _core("efficiency", "cortex-a510", 3, 2.0, "8gen2"),
            ),
            ("snapdragon 8 gen 2", "8gen2"),
            npu_soc="SM8550",
            npu_source="8gen2-soc",
        ),
        Device(
            "Snapdragon 8 Gen 3 phone",
            "Qualcomm Snapdragon 8 Gen 3 (e.g. Galaxy S24 Ultra, OnePlus 12)",
            (
                _core("prime", "cortex-x4", 1, 3.3, "8gen3"),
                _core("performance", "cortex-a720", 3, 3.15, "8gen3"),
                _core("efficiency", "cortex-a520", 2, 2.27, "8gen3"),
            ),
            ("snapdragon 8 gen 3", "8gen3"),
            npu_soc="SM8650",
            npu_source="8gen3-soc",
        ),
        Device(
            "Google Pixel 7",
            "Google Tensor G2",
            (
                _core("prime", "cortex-x1", 2, 2.85, "tensor-g2"),
                _core("performance", "cortex-a78", 2, 2.35, "tensor-g2"),
                _core("efficiency", "cortex-a55", 4, 1.8, "tensor-g2"),
            ),
            ("pixel 7", "pixel7", "tensor g2"),
        ),
        Device(
            "Google Pixel 8",
            "Google Tensor G3",
            (
                _core("prime", "cortex-x3", 1, 2.91, "tensor-g3"),
                _core("performance", "cortex-a715", 4, 2.37, "tensor-g3"),
                _core("efficiency", "cortex-a510", 4, 1.7, "tensor-g3"),
            ),
            ("pixel 8", "pixel8", "tensor g3"),
        ),
    )
}


def find_device(name: str) -> Device:
    """A device by its name or an alias (any case); UsageError listing the known ones otherwise."""
    wanted = " ".join(name.lower().split())
    for device in DEVICES.values():
        if wanted == device.name.lower() or wanted in device.aliases:
            return device
    raise UsageError(f"unknown device {name!r}: choose from {', '.join(repr(d) for d in DEVICES)}")


def core_models() -> list[str]:
    """Every LLVM model a device here is priced on."""
    return sorted({core.core for device in DEVICES.values() for core in device.cores})


__all__ = ["DEVICES", "EMULATED_ISA", "SOURCES", "CoreType", "Device", "core_models", "find_device"]
