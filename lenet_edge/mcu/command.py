"""``lenet-edge mcu BUNDLE --board NAME | --all``: the bundle's C model (``lenet5_int8.c``, generated from the int8
.tflite here when the bundle does not hold it) cross-compiled with the bare-metal harness for each emulated board
(build.py), run under qemu-system-arm on test digits (qemu.py), every answer compared byte for byte with TFLite
Micro on this host, flash and RAM read from the linked ELF and the painted stack (elf.py), the cycles of a
prediction priced per core (timing.py) and the time at each real board's clock; whether the model fits each
real board; the int8 file compiled by Vela for Ethos-U NPUs (vela.py). The findings go to report.json's ``mcu``
section (the caller writes them).

May import: console, data, errors, exporters (the C model generator), manifest, runtimes, mcu.* (and the
standard library, NumPy)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..console import log
from ..cycles import CyclesError
from ..data import Mnist
from ..errors import BundleError, UsageError
from ..host import cpu_model
from ..manifest import read_manifest
from ..runtimes import open_runner, runtime_missing
from . import build as builder
from . import qemu, timing, vela
from .boards import CORES, Board, parse_boards
from .elf import sizes

SOURCE_FORMAT = "tflite-int8"
STEM = "lenet5_int8"
DEFAULT_DIGITS = 1000
TFLM_RUNTIME = "tflm"
TFLM_LIBRARY = (
    "not measured: TFLite Micro's C++ sources are in no package registry this tool installs from (the "
    "tflite-micro wheel is the x86 Python interpreter), so its own code for a Cortex-M could not be built here; "
    "its flash is the C array plus that library"
)
TFLM_ARENA = (
    "TFLite Micro's arena for this file as recorded in the manifest (RecordingMicroAllocator on this 64-bit host; "
    "a 32-bit build's is a little smaller, its pointers being half the size), beside which TFLite Micro needs its "
    "interpreter's own objects and the stack"
)


@dataclass(frozen=True)
class McuOptions:
    bundle: Path
    boards: list[Board]
    digits: int = DEFAULT_DIGITS
    optimisation: builder.Optimisation = builder.Optimisation.O2
    with_vela: bool = True
    vela_configs: tuple[str, ...] = vela.CONFIGS
    generated: dict[str, str] | None = None  # {file name: text} of the C model made here; None: the bundle's own


def mcu_options(bundle: str | Path, names: list[str] | None, every: bool, digits: int | None = None,
                optimisation: str = "O2", with_vela: bool = True) -> McuOptions:  # fmt: skip
    """Arguments checked before any work: known boards, a bundle with an int8 .tflite whose graph the C model
    generator takes (when the bundle holds no C model), digits in range."""
    boards = parse_boards(names, every)
    count = DEFAULT_DIGITS if digits is None else digits
    if not 1 <= count <= 10000:
        raise UsageError(f"--digits {count}: give 1 to 10000 (the MNIST test set)")
    generated = c_model(Path(bundle))
    return McuOptions(Path(bundle), boards, count, builder.Optimisation(optimisation), with_vela, generated=generated)


def int8_file(bundle: Path) -> Path:
    """The bundle's int8 .tflite; BundleError (exit 2) when the bundle has none."""
    artifact = read_manifest(bundle).artifact(SOURCE_FORMAT)
    path = bundle / artifact.file if artifact else None
    if path is None or not path.is_file():
        raise BundleError(f"{bundle}: no int8 .tflite ({SOURCE_FORMAT}) in this bundle: the C model is made from it")
    return path


def c_model(bundle: Path) -> dict[str, str] | None:
    """None when the bundle's manifest lists its C model (``lenet5_int8.c``/``.h``) and the files are there; else
    the C model generated from its int8 .tflite, {file name: text}: a bundle made before the C model existed (a
    graph the generator does not take: its one-line UnsupportedModelError naming the op)."""
    model = int8_file(bundle)
    artifact = read_manifest(bundle).artifact(SOURCE_FORMAT)
    listed = artifact.micro.c_model if artifact is not None and artifact.micro is not None else None
    names = {ref.file for ref in listed.files} if listed is not None else set()
    if {f"{STEM}.c", f"{STEM}.h"} <= names and all((bundle / name).is_file() for name in names):
        return None
    from ..exporters.c_model import generate

    return generate(model.read_bytes(), stem=STEM).files


def c_model_source(options: McuOptions, folder: Path) -> tuple[Path, str]:
    """Where the C model's source is (its header beside it), and where it comes from."""
    if options.generated is None:
        return options.bundle / f"{STEM}.c", "the bundle's"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in options.generated.items():
        (folder / name).write_text(text)
    return folder / f"{STEM}.c", "generated here from the int8 .tflite: the bundle holds no C model"


def tflm_answers(model: Path, digits: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """TFLite Micro's raw uint8 answers on this host, or why it cannot run here."""
    missing = runtime_missing(TFLM_RUNTIME)
    if missing:
        return None, missing
    return np.asarray(open_runner(TFLM_RUNTIME, model).predict(digits, raw=True), dtype=np.uint8), None


def judge(answers: np.ndarray, reference: np.ndarray | None, why_not: str | None) -> dict:
    """Byte-for-byte comparison with TFLite Micro: the share of digits answered identically and the largest
    step (in output units) any probability differs by."""
    if reference is None:
        return {"bit_exact": None, "judged": why_not}
    same = np.all(answers == reference, axis=1)
    step = int(np.max(np.abs(answers.astype(np.int16) - reference.astype(np.int16)))) if answers.size else 0
    return {"bit_exact": bool(same.all()), "identical": int(same.sum()), "identical_share": float(same.mean()),
            "largest_step": step}  # fmt: skip


def real_board_rows(
    board: Board, firmware: dict, cycles: dict[str, timing.CoreCycles], unpriced: dict[str, str]
) -> list[dict]:
    rows = []
    for real in board.stands_for:
        priced = cycles.get(real.core)
        fits_flash = firmware["flash"] <= real.flash_kib * 1024
        fits_ram = firmware["ram"] <= real.ram_kib * 1024
        rows.append(real.to_dict() | {
            "fits": fits_flash and fits_ram, "fits_flash": fits_flash, "fits_ram": fits_ram,
            "microseconds": round(timing.microseconds(priced, real), 1) if priced else None,
            "cycles_per_image": round(priced.cycles_per_image) if priced else None,
            "method": priced.method if priced else unpriced.get(real.core),
            "left_out": priced.left_out if priced else None,
            "unpriced_share": priced.unpriced_share if priced else None,
        })  # fmt: skip
    return rows


def run_board(board: Board, source: Path, digits: np.ndarray, reference, why_not, folder: Path,
              optimisation: builder.Optimisation) -> dict:  # fmt: skip
    """Build, run, judge, size and time one board."""
    firmware = builder.build(board, source, STEM, folder, optimisation)
    ran = qemu.run(board, firmware.elf, digits, folder / "run")
    whole, model = sizes(firmware.elf), sizes(firmware.model_object)
    ram = whole.static_ram + ran.stack_bytes
    sized = {"flash": whole.flash, "ram": ram, "stack_bytes": ran.stack_bytes, "sections": whole.to_dict()}
    model_sized = {"flash": model.flash, "ram": model.static_ram + ran.stack_bytes, "sections": model.to_dict()}
    cores = {board.core, *(real.core for real in board.stands_for)}
    counted = timing.read_counts(ran.counts, ran.blocks) if ran.counts and ran.blocks else None
    priced, unpriced = {}, {}
    for core in sorted(cores):
        if counted is None:
            break
        try:
            priced[core] = timing.price(counted, CORES[core])
        except CyclesError as error:  # LLVM 19 missing: the instructions stay, the time says what to install
            unpriced[core] = str(error)
    return {
        "board": board.name, "label": board.label, "core": board.core, "digits": len(digits),
        **judge(ran.answers, reference, why_not),
        "firmware": sized, "model": model_sized,
        "instructions_per_image": round(counted.instructions_per_image) if counted else None,
        "cycles": {core: cycles.to_dict() for core, cycles in priced.items()},
        "real_boards": real_board_rows(board, sized, priced, unpriced),
        "emulation_seconds": round(ran.seconds, 1),
        "gcc": firmware.gcc, "flags": list(firmware.flags),
    }  # fmt: skip


def vela_rows(model: Path, configs: tuple[str, ...], folder: Path) -> dict:
    missing = vela.vela_missing()
    if missing:
        return {"missing": missing, "rows": [], "model": vela.MODEL}
    rows = []
    for config in configs:
        log(f"Vela: {config}")
        try:
            rows.append(vela.compile_for(model, config, folder / config).to_dict())
        except vela.VelaError as error:
            rows.append({"config": config, "error": str(error)})
    return {"rows": rows, "model": vela.MODEL, "version": vela.version()}


def tflm_figures(bundle: Path, model: Path) -> dict:
    artifact = read_manifest(bundle).artifact(SOURCE_FORMAT)
    arena = artifact.micro.arena_bytes if artifact is not None and artifact.micro is not None else None
    return {"c_array_bytes": model.stat().st_size, "arena_bytes": arena, "arena_note": TFLM_ARENA,
            "library": TFLM_LIBRARY}  # fmt: skip


def run_mcu(options: McuOptions, mnist: Mnist) -> tuple[int, dict]:
    """Every board of ``options``, then Vela: (status, the report's ``mcu`` section). Status 1 when a board's
    answers differ from TFLite Micro's, could not be judged, or a board could not be run (each row says why:
    the Debian packages to install when the toolchain or QEMU is missing)."""
    missing = builder.toolchain_missing()
    model = int8_file(options.bundle)
    folder = Path(tempfile.mkdtemp(prefix="lenet-edge-mcu-"))
    try:
        source, origin = c_model_source(options, folder / "model")
        digits = np.ascontiguousarray(mnist.x_test[: options.digits], dtype=np.uint8).reshape(-1, qemu.PIXELS)
        log(f"TFLite Micro on this host: {len(digits)} digits")
        reference, why_not = tflm_answers(model, digits.reshape(-1, 28, 28, 1))
        boards = []
        for index, board in enumerate(options.boards, 1):
            log(f"[{index}/{len(options.boards)}] {board.name} ({board.core}): building, then {len(digits)} digits "
                f"under qemu-system-arm with the instruction counter")  # fmt: skip
            try:
                if missing:
                    raise builder.BuildError(missing)
                row = run_board(board, source, digits, reference, why_not, folder / board.name, options.optimisation)
            except (builder.BuildError, qemu.QemuError) as error:
                row = {"board": board.name, "label": board.label, "core": board.core, "error": str(error)}
            log(_summary(row))
            boards.append(row)
        section = {
            "c_model": {"origin": origin, "optimisation": options.optimisation.value},
            "digits": len(digits),
            "boards": boards,
            "tflm": tflm_figures(options.bundle, model),
            "vela": vela_rows(model, options.vela_configs, folder / "vela") if options.with_vela else None,
            "host": cpu_model()[0],
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    failed = [row["board"] for row in boards if row.get("bit_exact") is not True]
    return (1 if failed else 0), section


def _summary(row: dict) -> str:
    if "error" in row:
        return f"    {row['board']}: {row['error']}"
    if row["bit_exact"]:
        verdict = f"bit-exact with TFLite Micro on {row['digits']} digits"
    else:
        verdict = row.get("judged") or f"{row['identical']} of {row['digits']} identical to TFLite Micro"
    firmware = row["firmware"]
    text = f"    {row['board']}: {verdict}; flash {firmware['flash']:,} B, RAM {firmware['ram']:,} B"
    times = [
        f"{real['name']} {real['microseconds'] / 1000:,.1f} ms" for real in row["real_boards"] if real["microseconds"]
    ]
    return text + (f"; {', '.join(times)} (estimated)" if times else "")
