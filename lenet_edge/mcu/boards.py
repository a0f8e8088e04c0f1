"""The microcontroller tables, each fact with its source: the Cortex-M cores (compiler flags, how their cycles are
priced), the boards QEMU emulates (their memory map, the core they carry) and the real boards each one stands for
(clock, flash and RAM: what the model must fit, and the clock its time is estimated at). Standard library only.

A real board's numbers are its microcontroller's, from the vendor's datasheet named in its ``source``; the
emulated boards' memory maps are QEMU 7.2's (hw/arm/mps2.c, mps2-tz.c, microbit.c / nrf51_soc.c)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError

KIB = 1024

# how a core's cycles are priced (timing.py holds the tables)
LLVM = "llvm-mca"  # LLVM 19's scheduling model of the core, through cycles.py
TRM = "trm-classes"  # instruction classes priced by the core's published timings (timing.py)

_QEMU = "QEMU 7.2 hw/arm (mps2.c, mps2-tz.c, nrf51_soc.c): the machine's CPU and memory map"
_M0_TRM = "Arm Cortex-M0 Technical Reference Manual (DDI 0432C), section 3.3, Table 3-1: cycles per instruction"
_M0P_TRM = "Arm Cortex-M0+ Technical Reference Manual (DDI 0484C), section 3.3, Table 3-1: cycles per instruction"
_M7_TRM = (
    "Arm Cortex-M7 Technical Reference Manual (DDI 0489), chapter 1 (six-stage, in-order, dual-issue pipeline: "
    "two ALU or one load/store, one MAC and a branch per cycle) and chapter 3 (64-bit load/store path); it "
    "publishes no per-instruction cycle table"
)
_LLVM_M4 = "LLVM 19 ARMScheduleM4.td (the cortex-m3, cortex-m4 and cortex-m33 model)"
_LLVM_M55 = "LLVM 19 ARMScheduleM55.td (cortex-m55, MVE included)"


@dataclass(frozen=True)
class Core:
    """A Cortex-M core: how GCC builds for it and how its cycles are priced."""

    name: str  # GCC's -mcpu
    arch: str
    gcc_flags: tuple[str, ...]
    pricing: str  # LLVM or TRM
    llvm_triple: str  # what llvm-mc decodes the trace with (and llvm-mca prices with, for LLVM)
    llvm_mattr: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self) | {"gcc_flags": list(self.gcc_flags)}


CORES: dict[str, Core] = {
    core.name: core
    for core in (
        Core("cortex-m0", "Armv6-M", ("-mfloat-abi=soft",), TRM, "thumbv6m-none-eabi", "", _M0_TRM),
        Core("cortex-m0plus", "Armv6-M", ("-mfloat-abi=soft",), TRM, "thumbv6m-none-eabi", "", _M0P_TRM),
        Core("cortex-m3", "Armv7-M", ("-mfloat-abi=soft",), LLVM, "thumbv7m-none-eabi", "", _LLVM_M4),
        Core("cortex-m4", "Armv7E-M", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), LLVM, "thumbv7em-none-eabi", "",
             _LLVM_M4),
        Core("cortex-m7", "Armv7E-M", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"), TRM, "thumbv7em-none-eabi", "",
             _M7_TRM),
        Core("cortex-m33", "Armv8-M Mainline", ("-mfloat-abi=soft",), LLVM, "thumbv8m.main-none-eabi", "+dsp",
             _LLVM_M4),
        Core("cortex-m55", "Armv8.1-M Mainline with MVE (Helium)", ("-mfloat-abi=hard",), LLVM,
             "thumbv8.1m.main-none-eabi", "+mve.fp,+fp-armv8d16", _LLVM_M55),
    )
}  # fmt: skip


@dataclass(frozen=True)
class RealBoard:
    """A board people put LeNet on, stood for by the emulated board of its core: its clock, flash and RAM."""

    name: str
    label: str
    mcu: str
    core: str  # a key of CORES: the core its cycles are priced on (may differ from the emulated board's)
    clock_mhz: float
    flash_kib: int
    ram_kib: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Board:
    """A board qemu-system-arm emulates: its machine name, core, memory map and the real boards it stands for."""

    name: str  # the QEMU machine (-M)
    label: str
    core: str  # a key of CORES
    code: tuple[int, int]  # where code and constants are linked: origin, length (bytes)
    ram: tuple[int, int]  # data, bss and the stack: origin, length
    stands_for: tuple[RealBoard, ...]
    source: str = _QEMU

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "core": self.core,
            "code": [hex(self.code[0]), self.code[1]],
            "ram": [hex(self.ram[0]), self.ram[1]],
            "stands_for": [real.to_dict() for real in self.stands_for],
            "source": self.source,
        }


def _real(name, label, mcu, core, clock, flash, ram, source) -> RealBoard:
    return RealBoard(name, label, mcu, core, clock, flash, ram, source)


BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board("microbit", "BBC micro:bit (nRF51822)", "cortex-m0", (0x0, 256 * KIB), (0x20000000, 16 * KIB), (
            _real("microbit-v1", "BBC micro:bit v1", "Nordic nRF51822", "cortex-m0", 16, 256, 16,
                  "Nordic nRF51822 Product Specification v3.4 (16 MHz Cortex-M0, 256 kB flash, 16 kB RAM)"),
            _real("pi-pico", "Raspberry Pi Pico", "Raspberry Pi RP2040", "cortex-m0plus", 133, 2048, 264,
                  "Raspberry Pi RP2040 datasheet (133 MHz Cortex-M0+, 264 kB SRAM) and Pico datasheet (2 MB QSPI "
                  "flash); the same Armv6-M code, priced on the M0+"),
        )),
        Board("mps2-an385", "Arm MPS2 AN385 (Cortex-M3)", "cortex-m3", (0x0, 4096 * KIB), (0x20000000, 4096 * KIB), (
            _real("arduino-due", "Arduino Due", "Microchip SAM3X8E", "cortex-m3", 84, 512, 96,
                  "Microchip SAM3X/SAM3A datasheet (84 MHz Cortex-M3, 512 KB flash, 96 KB SRAM)"),
        )),
        Board("mps2-an386", "Arm MPS2 AN386 (Cortex-M4)", "cortex-m4", (0x0, 4096 * KIB), (0x20000000, 4096 * KIB), (
            _real("nano-33-ble-sense", "Arduino Nano 33 BLE Sense", "Nordic nRF52840", "cortex-m4", 64, 1024, 256,
                  "Nordic nRF52840 Product Specification v1.7 (64 MHz Cortex-M4F, 1 MB flash, 256 KB RAM)"),
            _real("stm32f4-discovery", "STM32F4 Discovery", "ST STM32F407VG", "cortex-m4", 168, 1024, 192,
                  "ST STM32F405/407 datasheet DS8626 (168 MHz Cortex-M4, 1 MB flash, 192 KB SRAM incl. 64 KB CCM)"),
            _real("nucleo-f401re", "Nucleo-F401RE", "ST STM32F401RE", "cortex-m4", 84, 512, 96,
                  "ST STM32F401xD/E datasheet DS10086 (84 MHz Cortex-M4, 512 KB flash, 96 KB SRAM)"),
        )),
        Board("mps2-an500", "Arm MPS2 AN500 (Cortex-M7)", "cortex-m7", (0x0, 4096 * KIB), (0x20000000, 4096 * KIB), (
            _real("stm32f746g-disco", "STM32F746G Discovery", "ST STM32F746NG", "cortex-m7", 216, 1024, 320,
                  "ST STM32F745/746 datasheet DS10916 (216 MHz Cortex-M7, 1 MB flash, 320 KB SRAM)"),
            _real("nucleo-h743zi", "Nucleo-H743ZI", "ST STM32H743ZI", "cortex-m7", 480, 2048, 1024,
                  "ST STM32H742/743 datasheet DS12110 (480 MHz Cortex-M7, 2 MB flash, 1 MB RAM)"),
        )),
        Board("mps2-an505", "Arm MPS2+ AN505 (Cortex-M33)", "cortex-m33", (0x10000000, 4096 * KIB),
              (0x38000000, 4096 * KIB), (
            _real("nucleo-l552ze-q", "Nucleo-L552ZE-Q", "ST STM32L552ZE", "cortex-m33", 110, 512, 256,
                  "ST STM32L552xx datasheet DS13247 (110 MHz Cortex-M33, 512 KB flash, 256 KB SRAM)"),
            _real("pi-pico-2", "Raspberry Pi Pico 2", "Raspberry Pi RP2350", "cortex-m33", 150, 4096, 520,
                  "Raspberry Pi RP2350 datasheet (150 MHz Cortex-M33, 520 KB SRAM) and Pico 2 datasheet (4 MB flash)"),
        )),
        Board("mps3-an547", "Arm MPS3 AN547 (Corstone-300, Cortex-M55)", "cortex-m55", (0x10000000, 512 * KIB),
              (0x30000000, 512 * KIB), (
            _real("alif-e7-he", "Alif Ensemble E7, high-efficiency core", "Alif Ensemble E7", "cortex-m55", 160,
                  5632, 256,
                  "Alif Semiconductor Ensemble E7 product brief (M55-HE at 160 MHz beside an Ethos-U55-128, 5.5 MB "
                  "MRAM); RAM counted as the HE core's own 256 KB DTCM, the shared SRAM left out"),
        )),
    )
}  # fmt: skip

REAL_BOARDS: dict[str, tuple[Board, RealBoard]] = {
    real.name: (board, real) for board in BOARDS.values() for real in board.stands_for
}

# The table holds together: every core named exists, names are unique across both kinds, a real board's core runs
# the emulated board's code (same architecture), and the memory maps fit in 32 bits.
assert all(board.core in CORES for board in BOARDS.values())
assert all(real.core in CORES for _, real in REAL_BOARDS.values())
assert not set(BOARDS) & set(REAL_BOARDS)
assert len(REAL_BOARDS) == sum(len(board.stands_for) for board in BOARDS.values())
assert all(CORES[real.core].arch == CORES[board.core].arch for board, real in REAL_BOARDS.values())
assert all(o + n <= 2**32 for board in BOARDS.values() for o, n in (board.code, board.ram))


def known() -> str:
    emulated = ", ".join(BOARDS)
    real = ", ".join(f"{name} ({board.name})" for name, (board, _) in REAL_BOARDS.items())
    return f"emulated: {emulated}; real boards (the emulated board that runs them): {real}"


def parse_boards(names: list[str] | None, every: bool) -> list[Board]:
    """The emulated boards a command names, each once, in the order given; a real board's name picks the emulated
    board that stands for it. All of them with ``every``. UsageError (exit 2) naming an unknown board and listing
    the known ones."""
    if every and names:
        raise UsageError("--all and --board: give one or the other")
    if every:
        return list(BOARDS.values())
    if not names:
        raise UsageError(f"name a board with --board (or --all); known: {known()}")
    chosen: list[Board] = []
    for name in names:
        key = name.strip().lower()
        board = BOARDS.get(key) or (REAL_BOARDS[key][0] if key in REAL_BOARDS else None)
        if board is None:
            raise UsageError(f"unknown board {name!r}; known: {known()}")
        if board not in chosen:
            chosen.append(board)
    return chosen
