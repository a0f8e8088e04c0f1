"""Cycles and µs per image on each core, from the instruction counter's trace of a board run: the blocks that ran
between the harness's marks (right before and right after each prediction), each priced on the core, then the
time at a real board's clock. Every figure carries its method and what it leaves out.

- ``llvm-mca`` cores (M3, M4, M33, M55): LLVM 19's scheduling model through cycles.py (in-order: each block's
  steady-state cycles, its own dependencies included).
- ``trm-classes`` cores (M0, M0+, M7): each instruction classed from its disassembly and priced by the core's
  published timings (M0, M0+: the TRMs' cycle tables; M7: a greedy in-order dual-issue by the TRM's pairing
  rules, as Arm publishes no cycle table for it). Conditional branches: taken when they branch backwards (loops),
  not taken forwards, as the trace holds block counts, not edges.

May import: cycles, errors, mcu.boards (and the standard library)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..cycles import Block, disassemble, price_regions, read_trace, thumb
from .boards import CORES, LLVM, Core, RealBoard

LEFT_OUT = {
    "cortex-m0": "flash wait states (e.g. none at 16 MHz on the nRF51, more on faster parts) and bus contention",
    "cortex-m0plus": "flash wait states and the XIP cache's misses (the RP2040 runs code from QSPI flash through a "
    "16 KB cache)",
    "cortex-m3": "flash wait states (the flash accelerator's misses), branch refills beyond LLVM's model",
    "cortex-m4": "flash wait states (ST's ART accelerator, Nordic's cache), taken-branch pipeline refills (LLVM "
    "prices a branch at one cycle)",
    "cortex-m7": "data dependencies and load-use stalls, branch mispredictions, the caches and TCM/flash wait "
    "states (a lower bound for code and weights in fast memory)",
    "cortex-m33": "flash wait states and caches, taken-branch pipeline refills (LLVM prices a branch at one cycle)",
    "cortex-m55": "flash/MRAM wait states and caches, MVE beat overlap beyond LLVM's model, the low-overhead loop "
    "instructions (LLVM 19's model does not price them)",
}
METHOD = {
    "llvm-mca": "instructions counted under QEMU per image, each block priced by LLVM 19's llvm-mca -mcpu={core}",
    "trm-classes": "instructions counted under QEMU per image, each priced by its class's cycles in {source} "
    "(conditional branches taken backwards, not forwards)",
}
M7_METHOD = (
    "instructions counted under QEMU per image, issued in order two a cycle where the Cortex-M7 TRM's dual-issue "
    "rules allow (Arm publishes no cycle table for the M7; LLVM 19's model never dual-issues), a taken branch one "
    "cycle more"
)

# --- Cortex-M0 / M0+: the TRMs' tables (cycles per instruction; N registers moved) -------------------------------
REGISTERS = re.compile(r"\{([^}]*)\}")
CONDITIONAL = re.compile(r"^b(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)(\.n|\.w)?$")
BRANCH_OFFSET = re.compile(r"#(-?\d+)\s*$")


@dataclass(frozen=True)
class ClassPrices:
    """Cycles of an Armv6-M core's instruction classes, from its TRM's table."""

    load_store: int
    multiple: int  # LDM, STM, PUSH, POP: this + N
    pop_pc: int  # POP with PC: this + N
    branch_taken: int
    branch_not_taken: int
    branch_link: int  # BL
    branch_exchange: int  # BX, BLX
    write_pc: int  # MOV PC / ADD PC
    multiply: int  # MULS: 1 with the fast multiplier (both chips here), 32 with the small one
    system: int  # MRS, MSR, DMB, DSB, ISB


ARMV6M_PRICES = {
    "cortex-m0": ClassPrices(2, 1, 4, 3, 1, 4, 3, 3, 1, 4),
    "cortex-m0plus": ClassPrices(2, 1, 3, 2, 1, 3, 2, 2, 1, 3),
}


def _parts(text: str) -> tuple[str, str]:
    mnemonic, _, operands = text.strip().partition(" ")
    return mnemonic.lower(), operands.strip()


def _registers(operands: str) -> int:
    found = REGISTERS.search(operands)
    if not found:
        return 1
    count = 0
    for part in found.group(1).split(","):
        low, _, high = part.strip().partition("-")
        count += int(high.strip()[1:]) - int(low[1:]) + 1 if high and low[1:].isdigit() else 1
    return count


def _backward(operands: str) -> bool:
    found = BRANCH_OFFSET.search(operands)
    return found is not None and int(found.group(1)) < 0


def armv6m_cycles(text: str, prices: ClassPrices) -> int:
    """Cycles of one Armv6-M instruction (llvm-mc's text) by its TRM's table."""
    mnemonic, operands = _parts(text)
    base = mnemonic.split(".")[0]
    if base in ("push", "pop", "ldm", "ldmia", "stm", "stmia"):
        n = _registers(operands)
        return (prices.pop_pc if base == "pop" and "pc" in operands else prices.multiple) + n
    if base.startswith(("ldr", "str")):
        return prices.load_store
    if base == "b":
        return prices.branch_taken
    if CONDITIONAL.match(mnemonic):
        return prices.branch_taken if _backward(operands) else prices.branch_not_taken
    if base == "bl":
        return prices.branch_link
    if base in ("bx", "blx"):
        return prices.branch_exchange
    if base in ("mov", "add") and operands.startswith("pc"):
        return prices.write_pc
    if base == "muls":
        return prices.multiply
    if base in ("mrs", "msr", "dmb", "dsb", "isb"):
        return prices.system
    return 1


# --- Cortex-M7: greedy in-order dual issue by the TRM's pairing rules ---------------------------------------------
ALU, LOAD_STORE, MAC, BRANCH, MULTI, DIVIDE = "alu", "ls", "mac", "branch", "multi", "div"
DIVIDE_CYCLES = 7  # SDIV/UDIV take 2 to 12 cycles by operand size: the middle
MAC_PREFIXES = ("mul", "mla", "mls", "smla", "smul", "smla", "smlsd", "smmul", "smmla", "umul", "umla", "usad",
                "smuad", "smusd", "smlad", "smlal", "umlal", "umaal")  # fmt: skip


def m7_class(text: str) -> tuple[str, int]:
    """An instruction's M7 class and, for a multi-cycle one, its cycles."""
    mnemonic, operands = _parts(text)
    base = mnemonic.split(".")[0]
    if base in ("push", "pop", "ldm", "ldmia", "ldmdb", "stm", "stmia", "stmdb", "vpush", "vpop"):
        cycles = 1 + (_registers(operands) + 1) // 2  # the 64-bit load/store path: two registers a cycle
        return MULTI, cycles + (1 if base == "pop" and "pc" in operands else 0)
    if base in ("sdiv", "udiv"):
        return DIVIDE, DIVIDE_CYCLES
    if base.startswith(("ldr", "str", "vldr", "vstr", "pld")):
        return LOAD_STORE, 1
    if base in ("b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh") or CONDITIONAL.match(mnemonic):
        return BRANCH, 1
    if base.startswith(MAC_PREFIXES):
        return MAC, 1
    return ALU, 1


def _taken(text: str) -> bool:
    mnemonic, operands = _parts(text)
    base = mnemonic.split(".")[0]
    if base in ("b", "bl", "bx", "blx", "tbb", "tbh"):
        return True
    return (bool(CONDITIONAL.match(mnemonic)) or base in ("cbz", "cbnz")) and _backward(operands)


def m7_cycles(texts: list[str]) -> int:
    """Cycles of one run of a block on the M7: in order, two instructions a cycle where the pairing rules let
    them (not two loads/stores, not two multiplies, a branch only second, a multi-cycle one alone), a taken
    branch one cycle more."""
    classes = [m7_class(text) for text in texts]
    cycles, i = 0, 0
    while i < len(classes):
        kind, cost = classes[i]
        if kind in (MULTI, DIVIDE) or i + 1 == len(classes):
            cycles, i = cycles + cost, i + 1
            continue
        second = classes[i + 1][0]
        pairs = kind != BRANCH and second not in (MULTI, DIVIDE) and not (kind == second and kind in (LOAD_STORE, MAC))
        cycles, i = cycles + 1, i + (2 if pairs else 1)
    return cycles + (1 if texts and _taken(texts[-1]) else 0)


# --- the trace -------------------------------------------------------------------------------------------------


def thumb_bytes(insn: str) -> str:
    """One Thumb instruction's bytes (hex, memory order) cut to its length: 4 bytes when its first halfword starts
    0b11101, 0b11110 or 0b11111, else 2. QEMU 7.2 hands a plugin some Thumb-2 instructions with the next one's
    first halfword attached."""
    if len(insn) < 4:
        return insn
    first = int(insn[2:4] + insn[0:2], 16)
    return insn[:8] if first >> 11 in (0b11101, 0b11110, 0b11111) else insn[:4]


@dataclass(frozen=True)
class Counted:
    """What the counter saw over the predictions: instructions per image and the blocks that ran."""

    digits: int
    instructions_per_image: float
    runs: Counter[Block]


def read_counts(counts_file: Path, blocks_file: Path) -> Counted:
    """The prediction intervals (marks 2k-1 to 2k) of a run: instructions per image from the counter's marks and
    every block's runs within them."""
    marks = {}
    for line in counts_file.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key.isdigit():
            marks[int(key)] = int(value)
    digits = len(marks) // 2
    if digits == 0:
        return Counted(0, 0.0, Counter())
    executed = sum(marks[2 * k] - marks[2 * k - 1] for k in range(1, digits + 1))
    trace = read_trace(blocks_file)
    runs: Counter[Block] = Counter()
    for mark in trace.order:
        if mark % 2 == 0 and mark <= 2 * digits:
            for block_id, n in trace.runs[mark].items():
                runs[tuple(thumb_bytes(insn) for insn in trace.blocks[block_id])] += n
    return Counted(digits, executed / digits, runs)


@dataclass(frozen=True)
class CoreCycles:
    core: str
    cycles_per_image: float
    method: str
    left_out: str
    unpriced_share: float

    def to_dict(self) -> dict:
        return asdict(self)


def price(counted: Counted, core: Core) -> CoreCycles:
    """Cycles per image of the counted predictions on ``core``, by its method."""
    isa = thumb(core.llvm_triple, core.llvm_mattr)
    if core.pricing == LLVM:
        priced = price_regions(isa, core.name, {"predict": counted.runs})["predict"]
        unpriced = priced.unpriced_instructions / priced.instructions if priced.instructions else 0.0
        return CoreCycles(core.name, priced.cycles / counted.digits, METHOD[LLVM].format(core=core.name),
                          LEFT_OUT[core.name], round(unpriced, 6))  # fmt: skip
    texts = disassemble(isa, {insn for block in counted.runs for insn in block})
    total = unpriced_insns = all_insns = 0
    for block, n in counted.runs.items():
        all_insns += len(block) * n
        if not all(insn in texts for insn in block):
            unpriced_insns += len(block) * n
            continue
        lines = [line for insn in block for line in texts[insn]]
        if core.name == "cortex-m7":
            total += m7_cycles(lines) * n
        else:
            prices = ARMV6M_PRICES[core.name]
            total += sum(armv6m_cycles(line, prices) for line in lines) * n
    share = unpriced_insns / all_insns if all_insns else 0.0
    method = M7_METHOD if core.name == "cortex-m7" else METHOD[core.pricing].format(source=core.source.split(",")[0])
    return CoreCycles(core.name, total / counted.digits, method, LEFT_OUT[core.name], round(share, 6))


def microseconds(cycles: CoreCycles, real: RealBoard) -> float:
    return cycles.cycles_per_image / real.clock_mhz


assert set(LEFT_OUT) == set(CORES)
assert all(CORES[name].pricing == LLVM or name in ARMV6M_PRICES or name == "cortex-m7" for name in CORES)
