"""Cross-compiling the C model with the bare-metal harness (harness/harness.c) for one emulated board: GCC for Arm
(``arm-none-eabi-gcc``, newlib's string functions only), the board's memory map filled into harness/link.ld.in,
no C library start-up (``-nostartfiles``). The model is also compiled alone, as an object: its own flash and
RAM, apart from the harness's.

May import: console, errors, mcu.boards (and the standard library)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

from ..errors import LenetEdgeError
from .boards import CORES, Board

GCC = "arm-none-eabi-gcc"
PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
INSTALL = f"apt-get install --no-install-recommends {PACKAGES}"
MARK = "harness_mark"


class BuildError(LenetEdgeError):
    """The cross-compiler refused the model or the harness."""


class Optimisation(str, Enum):
    """GCC's optimisation level for the model and the harness."""

    O2 = "O2"
    OS = "Os"
    O3 = "O3"


@dataclass(frozen=True)
class Firmware:
    elf: Path
    model_object: Path
    flags: tuple[str, ...]
    gcc: str


def toolchain_missing() -> str | None:
    """One line saying what to install to build and run boards, or None when everything is here."""
    missing = [tool for tool in (GCC, "qemu-system-arm") if shutil.which(tool) is None]
    if not missing and not _has_newlib():
        missing = ["newlib"]
    return f"{', '.join(missing)} missing: {INSTALL}" if missing else None


def _has_newlib() -> bool:
    done = subprocess.run([GCC, "-print-file-name=libc_nano.a"], capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).is_file()


def gcc_version() -> str:
    done = subprocess.run([GCC, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else GCC


def flags(board: Board, optimisation: Optimisation) -> tuple[str, ...]:
    core = CORES[board.core]
    return ("-mthumb", f"-mcpu={core.name}", *core.gcc_flags, f"-{optimisation.value}", "-std=c99",
            "-ffunction-sections", "-fdata-sections", "-Wall")  # fmt: skip


def linker_script(board: Board, path: Path) -> Path:
    template = resources.files(__package__).joinpath("harness", "link.ld.in").read_text()
    filled = {
        "@CODE_ORIGIN@": hex(board.code[0]),
        "@CODE_LENGTH@": str(board.code[1]),
        "@RAM_ORIGIN@": hex(board.ram[0]),
        "@RAM_LENGTH@": str(board.ram[1]),
    }
    for key, value in filled.items():
        template = template.replace(key, value)
    path.write_text(template)
    return path


def _gcc(argv: list[str], what: str, cwd: Path) -> None:
    done = subprocess.run([GCC, *argv], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines()
        raise BuildError(f"{what} failed: {' | '.join(errors[:3])}")


def build(board: Board, source: Path, stem: str, folder: Path, optimisation: Optimisation) -> Firmware:
    """``source`` (the C model, its header ``STEM.h`` beside it) and the harness linked for ``board`` into
    ``folder/BOARD.elf``; the model's own object beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    harness = Path(str(resources.files(__package__).joinpath("harness", "harness.c")))
    script = linker_script(board, folder / f"{board.name}.ld")
    common = [*flags(board, optimisation), f"-I{source.parent}"]
    model_object = folder / f"{board.name}-{stem}.o"
    _gcc([*common, "-c", "-o", str(model_object), str(source)], f"compiling {source.name} for {board.core}", folder)
    elf = folder / f"{board.name}.elf"
    harness_defines = [f"-DMODEL_PREDICT={stem}_predict", f'-DMODEL_HEADER="{stem}.h"']
    _gcc(
        [*common, *harness_defines, "--specs=nano.specs", "-nostartfiles", "-T", str(script), "-Wl,--gc-sections",
         "-o", str(elf), str(harness), str(model_object), "-Wl,--start-group", "-lc", "-lgcc", "-Wl,--end-group"],
        f"linking the harness for {board.name}",
        folder,
    )  # fmt: skip
    return Firmware(elf, model_object, tuple(flags(board, optimisation)), gcc_version())
