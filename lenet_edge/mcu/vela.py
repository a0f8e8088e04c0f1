"""The int8 .tflite compiled for Arm's Ethos-U microcontroller NPUs by Vela (``ethos-u-vela``, Arm's own
compiler), one configuration at a time in a fresh process: ops placed on the NPU and left to the CPU, SRAM and
flash (or DRAM) used, and Vela's performance model's cycles and time per inference at the clock of the system
configuration Vela picks by default for that NPU. Those are Vela's estimates: no Ethos-U simulator is to be had
here, so the compiled model's answers are not judged.

May import: errors (and the standard library)."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import LenetEdgeError

CONFIGS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u85-256")
INSTALL = "pip install 'lenet-edge[mcu]' (or: pip install ethos-u-vela)"
MODEL = (
    "Vela's performance model (vela --accelerator-config CONFIG, its default system configuration and memory "
    "mode): an estimate, the compiled model not run, its answers not judged (no Ethos-U simulator here)"
)
_LINE = re.compile(r"^(System configuration|Memory mode|Accelerator clock)\s+(.+?)\s*$")
_OPS = re.compile(r"^(CPU|NPU) operators = (\d+)")
_ENTRY = "import sys; from ethosu.vela.vela import main; sys.exit(main())"


class VelaError(LenetEdgeError):
    """Vela refused or failed on the file."""


@dataclass(frozen=True)
class VelaRow:
    config: str
    system_config: str
    memory_mode: str
    clock_mhz: float
    npu_ops: int
    cpu_ops: int
    sram_kib: float
    flash_kib: float  # weights in flash, or in DRAM where the memory mode puts them there (weights_in)
    weights_in: str
    cycles: int
    microseconds: float
    version: str

    def to_dict(self) -> dict:
        return asdict(self)


def vela_missing() -> str | None:
    return None if importlib.util.find_spec("ethosu") is not None else f"Vela is not installed: {INSTALL}"


def version() -> str:
    from importlib import metadata

    return metadata.version("ethos-u-vela")


def compile_for(model: Path, config: str, folder: Path) -> VelaRow:
    """``model`` compiled by Vela for ``config`` into ``folder``; the summary Vela printed and wrote, read."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", _ENTRY, str(model), "--accelerator-config", config, "--output-dir", str(folder)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-1]
        raise VelaError(f"Vela ({config}) failed: {last}")
    printed: dict[str, str] = {}
    ops = {"CPU": 0, "NPU": 0}
    for line in done.stdout.splitlines():
        if found := _LINE.match(line):
            printed[found.group(1)] = found.group(2)
        elif found := _OPS.match(line):
            ops[found.group(1)] = int(found.group(2))
    summaries = sorted(folder.glob("*_summary_*.csv"))
    if not summaries:
        raise VelaError(f"Vela ({config}) wrote no summary")
    with open(summaries[0], newline="") as handle:
        row = next(csv.DictReader(handle))
    weights_in = row["weights_storage_area"]
    flash = max(float(row["off_chip_flash_memory_used"]), float(row["on_chip_flash_memory_used"]),
                float(row["dram_memory_used"]))  # fmt: skip
    return VelaRow(
        config=config,
        system_config=row["system_config"],
        memory_mode=row["memory_mode"],
        clock_mhz=float(row["core_clock"]) / 1e6,
        npu_ops=ops["NPU"],
        cpu_ops=ops["CPU"],
        sram_kib=round(float(row["sram_memory_used"]), 2),
        flash_kib=round(flash, 2),
        weights_in=weights_in,
        cycles=int(float(row["cycles_total"])),
        microseconds=round(float(row["inference_time"]) * 1e6, 1),
        version=version(),
    )
