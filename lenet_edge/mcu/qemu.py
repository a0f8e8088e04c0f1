"""One firmware run under ``qemu-system-arm``: the test digits written where the harness reads them over
semihosting (digits.bin), the answers and the stack's high-water mark read back, and, with the instruction
counter (targets/insn_count.c, given the harness's mark function), the blocks that ran between the marks.

May import: console, errors, targets (its instruction counter), mcu.boards, mcu.elf (and the standard library,
NumPy)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..console import progress
from ..errors import LenetEdgeError
from ..targets.arm64_emu import build_plugin
from ..targets.base import cache_dir
from .boards import Board
from .elf import function_address

QEMU = "qemu-system-arm"
PIXELS, CLASSES = 784, 10
SECONDS_PER_DIGIT = 2.0  # generous: a Cortex-M0 run takes about 20 ms a digit here; a hung guest is stopped
EXITS = {3: "digits.bin or answers.bin could not be opened", 4: "answers.bin could not be written",
         5: "stats.txt could not be written", 6: "no digit was read", 100: "the core faulted (HardFault)"}  # fmt: skip


class QemuError(LenetEdgeError):
    """The emulated board did not run the firmware to its end."""


@dataclass(frozen=True)
class BoardRun:
    answers: np.ndarray  # (digits, 10) uint8
    stack_bytes: int  # the stack's high-water mark: the deepest painted word overwritten, from its top
    seconds: float
    counts: Path | None  # the counter's marks (instructions executed at each)
    blocks: Path | None  # the counter's blocks and their runs between marks


def counter() -> Path:
    """The instruction counter, built once per source under the cache (gcc)."""
    return build_plugin(cache_dir() / "mcu" / "plugins")


def _watched(argv: list[str], folder: Path, digits: int, name: str) -> tuple[int, str]:
    """QEMU run to its end, the digits answered so far shown at each quarter (answers.bin grows 10 bytes a digit);
    stopped when it outlasts a generous limit."""
    limit = time.monotonic() + 30 + SECONDS_PER_DIGIT * digits
    with open(folder / "qemu.err", "w+") as stderr:
        process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
        shown = 0
        try:
            while process.poll() is None:
                if time.monotonic() > limit:
                    raise QemuError(f"{name}: the firmware did not finish in time (stopped)")
                time.sleep(0.5)
                answers = folder / "answers.bin"
                done = answers.stat().st_size // CLASSES if answers.exists() else 0
                if done * 4 // digits > shown and done < digits:
                    shown = done * 4 // digits
                    progress(done, digits, f"digits answered on {name}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        return process.returncode, stderr.read()


def run(board: Board, elf: Path, digits: np.ndarray, folder: Path, count: bool = True) -> BoardRun:
    """Run ``elf`` on ``board`` with ``digits`` ((n, 784) uint8) in ``folder``; with ``count``, under the counter."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("answers.bin", "stats.txt", "counts.txt", "blocks.txt"):
        (folder / name).unlink(missing_ok=True)
    (folder / "digits.bin").write_bytes(np.ascontiguousarray(digits, dtype=np.uint8).tobytes())
    argv = [QEMU, "-M", board.name, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf.resolve())]  # fmt: skip
    if count:
        mark = function_address(elf, "harness_mark")
        argv += ["-plugin", f"{counter()},out=counts.txt,blocks=blocks.txt,mark_pc={mark:x}"]
    started = time.perf_counter()
    returncode, stderr = _watched(argv, folder, len(digits), board.name)
    seconds = time.perf_counter() - started
    if returncode != 0:
        why = EXITS.get(returncode) or (stderr.strip().splitlines() or ["no message"])[-1]
        raise QemuError(f"{board.name}: the firmware stopped with exit code {returncode}: {why}")
    stats = dict(line.split(" ", 1) for line in (folder / "stats.txt").read_text().splitlines() if " " in line)
    answers = np.frombuffer((folder / "answers.bin").read_bytes(), dtype=np.uint8)
    if int(stats.get("digits", -1)) != len(digits) or answers.size != len(digits) * CLASSES:
        raise QemuError(f"{board.name}: the firmware answered {answers.size // CLASSES} of {len(digits)} digits")
    return BoardRun(answers.reshape(-1, CLASSES), int(stats["stack"]), seconds,
                    folder / "counts.txt" if count else None, folder / "blocks.txt" if count else None)  # fmt: skip
