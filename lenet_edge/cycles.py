"""Cycles from the blocks an emulated run executed: each distinct block priced on a core's scheduling model.

The instruction counter (targets/insn_count.c) writes every translated block's instruction bytes and, at each
mark, how often each block ran since the previous mark. Here each block is disassembled with ``llvm-mc
--disassemble`` and priced with ``llvm-mca -mcpu=CORE``: the block's cycles per iteration in steady state
(``Total Cycles / iterations``), as if it ran back to back. A region's cycles are the sum over its blocks of
cycles per iteration × runs. That is LLVM's model of the core for straight-line code: it knows issue width,
latencies and ports; it does not know cache misses, branch mispredictions or the pipeline's start-up, and it
assumes every load hits L1. Blocks llvm-mc cannot decode are not priced: they are counted and reported.

Prices are cached per model in ``~/.cache/lenet-edge/cycles/`` (same block, same model, same price: the
figures repeat). Needs LLVM 19 (Debian: ``apt-get install llvm-19``); without it :func:`llvm_missing` says so.

May import: console, errors, files (and the standard library)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LenetEdgeError
from .files import atomic_output

ITERATIONS = 50  # steady state within a cycle or two of the block's latency / 50
LLVM_HINT = "cycles need LLVM 19's llvm-mca and llvm-mc: apt-get install llvm-19"
WARNING = re.compile(r"^<stdin>:(\d+):\d+: warning", re.MULTILINE)
REGION = re.compile(r"^\[(\d+)\] Code Region(?: - (\S+))?")
TOTAL = re.compile(r"^Total Cycles:\s+(\d+)")
RTHROUGHPUT = re.compile(r"^Block RThroughput:\s+([0-9.]+)")
# A block that branches back to its own start is a loop: its loop-carried dependencies are real
X86_BRANCH = re.compile(r"^j\w+\s+(-?\d+)$")  # displacement from the end of the instruction
ARM_BRANCH = re.compile(r"^(?:b\.\w+|b|cbn?z|tbn?z)\s.*#(-?\d+)$")  # offset from the instruction itself
# x86 string instructions with a rep prefix: QEMU runs one element per block entry (each counted as a run)
REP_STRING = re.compile(r"^rep\w*\s+(stos|movs|cmps|scas|lods)([bwlq])\b")
REP_BYTES_PER_CYCLE = 32  # fast-string stores and copies move about a 32-byte line per cycle once started
ELEMENT_BYTES = {"b": 1, "w": 2, "l": 4, "q": 8}
# Hints real cores retire as no-ops that an LLVM 19 model charges for (znver4: endbr64 at 25 cycles):
# left out of the text priced
FREE = {"x86_64": re.compile(r"^endbr(64|32)$"), "aarch64": re.compile(r"^$")}
# In-order cores: no overlap between blocks, so a block's own dependencies stall it as in a loop
IN_ORDER = {"cortex-a53", "cortex-a55", "cortex-a510", "cortex-a520", "cortex-m3", "cortex-m4", "cortex-m33",
            "cortex-m55"}  # fmt: skip
# llvm-mca assumes a call takes 100 cycles: a Cortex-M block that calls out, priced in its steady state, would
# pay them each run. A BL is a branch there (its pipeline refill is left out like every taken branch's).
THUMB_CALL_LATENCY = 1
# Thumb branches, conditional or not, and the M-profile low-overhead loop end: offset from the instruction + 4
THUMB_BRANCH = re.compile(
    r"^(?:b(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?|cbn?z|le|letp)(?:\.[nw])?\s.*#(-?\d+)$"
)

Block = tuple[str, ...]  # each instruction's bytes in hex, in memory order


class CyclesError(LenetEdgeError):
    """llvm-mc or llvm-mca failed in a way that is not one block's fault."""


@dataclass(frozen=True)
class Isa:
    """How to read a guest's instruction bytes: LLVM's triple and the features the disassembler may assume."""

    name: str
    triple: str
    mattr: str
    sentinel: str  # bytes of an instruction no real block holds, and what llvm-mc prints of it
    sentinel_text: str


AARCH64 = Isa(
    "aarch64", "aarch64", "+v8.2a,+dotprod,+i8mm,+bf16,+fullfp16,+fp16fml,+rcpc,+lse,+crc,+aes,+sha2",
    "0xef 0xbe 0x00 0x00", "udf #48879",
)  # fmt: skip
X86_64 = Isa("x86_64", "x86_64", "", "0x49 0xbf 0x1e 0xab 0xa1 0x5c 0xde 0xc0 0xad 0x1b", "0x1BADC0DE5CA1AB1E")


def thumb(triple: str, mattr: str = "") -> Isa:
    """A Cortex-M's Thumb instruction set (``thumbv7em-none-eabi``…); the sentinel is ``udf #254``, which llvm-mc
    prints as ``trap``."""
    return Isa(triple.split("-")[0], triple, mattr, "0xfe 0xde", "trap")


@dataclass
class Trace:
    """What the counter saw: each block id's instructions, and per mark the runs of each block since the last."""

    blocks: dict[int, Block] = field(default_factory=dict)
    runs: dict[int, dict[int, int]] = field(default_factory=dict)  # mark -> block id -> runs since previous mark
    order: list[int] = field(default_factory=list)  # marks as they came

    def between(self, start: int, stop: int) -> Counter[Block]:
        """Runs of each distinct block after mark ``start`` up to mark ``stop`` (by content: retranslations add)."""
        marks = self.order[self.order.index(start) + 1 : self.order.index(stop) + 1]
        total: Counter[Block] = Counter()
        for mark in marks:
            for block_id, n in self.runs[mark].items():
                total[self.blocks[block_id]] += n
        return total


def read_trace(path: Path) -> Trace:
    """Parse the counter's blocks file (``B id vaddr insn:insn…``, ``M mark``, ``C id runs``)."""
    trace = Trace()
    current: dict[int, int] | None = None
    with open(path) as lines:
        for line in lines:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "C" and current is not None:
                block_id, _, n = rest.partition(" ")
                current[int(block_id)] = int(n)
            elif kind == "B":
                block_id, _, rest = rest.partition(" ")
                insns = rest.partition(" ")[2]
                trace.blocks[int(block_id)] = tuple(insns.split(":")) if insns else ()
            elif kind == "M":
                mark = int(rest)
                current = trace.runs[mark] = {}
                trace.order.append(mark)
    return trace


def llvm_tool(name: str) -> str | None:
    """``llvm-mca-19`` (Debian's name), else an unversioned ``llvm-mca`` of version 19 or later."""
    versioned = shutil.which(f"{name}-19")
    if versioned:
        return versioned
    plain = shutil.which(name)
    if plain is None:
        return None
    done = subprocess.run([plain, "--version"], capture_output=True, text=True)
    found = re.search(r"LLVM version (\d+)", done.stdout)
    return plain if found and int(found.group(1)) >= 19 else None


def llvm_missing() -> str | None:
    """One line saying what to install for cycles, or None when llvm-mc and llvm-mca are here."""
    return None if llvm_tool("llvm-mca") and llvm_tool("llvm-mc") else LLVM_HINT


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenet-edge" / "cycles"


def _tool(name: str) -> str:
    path = llvm_tool(name)
    if path is None:
        raise CyclesError(LLVM_HINT)
    return path


def is_thumb_it(insn: str) -> bool:
    """A Thumb IT instruction (``bfXY``, mask Y not 0): llvm-mc decodes the instructions after it as its block."""
    return len(insn) == 4 and insn[2:] == "bf" and int(insn[:2], 16) & 0xF != 0


def disassemble(isa: Isa, insns: set[str]) -> dict[str, list[str]]:
    """Assembly lines of each instruction (hex bytes); an instruction llvm-mc cannot decode is left out. A Thumb
    IT instruction is decoded on its own: in one stream it would make the next ones its conditional block."""
    if isa.sentinel_text != "trap":
        return _disassemble(isa, insns)
    its = {insn for insn in insns if is_thumb_it(insn)}
    text = _disassemble(isa, insns - its)
    for insn in sorted(its):
        text |= _disassemble(isa, {insn})
    return text


def _disassemble(isa: Isa, insns: set[str]) -> dict[str, list[str]]:
    """Assembly lines of each instruction (hex bytes) in one llvm-mc call; one it cannot decode is left out.

    One instruction a line, each followed by a sentinel instruction: the output between two sentinels is that
    instruction's (a prefix such as ``lock`` comes out as a line of its own). A line llvm-mc warns about is
    left out whatever it printed (QEMU hands some x86 instructions over cut short)."""
    if not insns:
        return {}
    ordered = sorted(insns)
    lines = [" ".join(f"0x{h[i : i + 2]}" for i in range(0, len(h), 2)) for h in ordered]
    text = "".join(f"[{line}]\n[{isa.sentinel}]\n" for line in lines)  # brackets: one instruction, no spill-over
    argv = [_tool("llvm-mc"), "--disassemble", f"-triple={isa.triple}"]
    argv += [f"-mattr={isa.mattr}"] if isa.mattr else []
    done = subprocess.run(argv, input=text, capture_output=True, text=True)
    if done.returncode != 0 and not done.stdout:
        raise CyclesError(f"llvm-mc --disassemble failed: {done.stderr.strip().splitlines()[-1:]}")
    warned = {int(m.group(1)) for m in WARNING.finditer(done.stderr)}
    groups: list[list[str]] = [[]]
    for line in done.stdout.splitlines():
        line = line.strip().replace("\t", " ")
        if not line or line.startswith("."):
            continue
        if isa.sentinel_text in line:
            groups.append([])
        else:
            groups[-1].append(line)
    if len(groups) != len(ordered) + 1:  # a sentinel went missing: no reading of the output can be trusted
        raise CyclesError(f"llvm-mc --disassemble: {len(groups) - 1} sentinels for {len(ordered)} instructions")
    pairs = enumerate(zip(ordered, groups[:-1], strict=True))
    return {insn: group for index, (insn, group) in pairs if group and 2 * index + 1 not in warned}


class Pricer:
    """Cycles per iteration of blocks on one llvm-mca model, with a cache on disk keyed by the block's text."""

    def __init__(self, isa: Isa, mcpu: str, mattr: str | None = None, call_latency: int | None = None):
        self.isa, self.mcpu, self.call_latency = isa, mcpu, call_latency
        self.mattr = isa.mattr if mattr is None else mattr
        calls = f"-call{call_latency}" if call_latency is not None else ""
        self.path = cache_home() / f"{isa.name}-{mcpu}-{ITERATIONS}{calls}-2.json"
        try:
            self.cache: dict[str, list[float]] = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self.cache = {}

    @staticmethod
    def key(text: list[str]) -> str:
        return hashlib.sha256("\n".join(text).encode()).hexdigest()[:24]

    def price(self, blocks: dict[Block, list[str]]) -> dict[Block, list[float]]:
        """Each block's [cycles per iteration run back to back, block reciprocal throughput] (llvm-mca's steady
        state with the block's loop-carried dependencies, and its resource bound without any)."""
        keys = {block: self.key(text) for block, text in blocks.items()}
        self.cache[self.key([])] = [0.0, 0.0]  # a block of hints only: nothing to price
        todo = {keys[b]: text for b, text in blocks.items() if keys[b] not in self.cache}
        if todo:
            self.cache |= self._run_mca(todo)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.path) as tmp:
                tmp.write_text(json.dumps(self.cache, sort_keys=True))
        return {block: self.cache[keys[block]] for block in blocks}

    def _run_mca(self, todo: dict[str, list[str]]) -> dict[str, list[float]]:
        """One llvm-mca call per share of the blocks, the shares run side by side (one per usable core)."""
        names = sorted(todo)
        workers = max(1, min(len(os.sched_getaffinity(0)), len(names) // 200 or 1))
        shares = [names[i::workers] for i in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda share: self._run_share(share, todo), shares))
        return {name: price for result in results for name, price in result.items()}

    def _run_share(self, names: list[str], todo: dict[str, list[str]]) -> dict[str, list[float]]:
        source = "".join(
            f"# LLVM-MCA-BEGIN {name}\n" + "".join(f"{line}\n" for line in todo[name]) + f"# LLVM-MCA-END {name}\n"
            for name in names
        )
        argv = [_tool("llvm-mca"), f"-mtriple={self.isa.triple}", f"-mcpu={self.mcpu}", f"-iterations={ITERATIONS}"]
        argv += [f"-mattr={self.mattr}"] if self.mattr else []
        argv += [f"--call-latency={self.call_latency}"] if self.call_latency is not None else []
        argv += ["-instruction-info=false", "-resource-pressure=false", "--skip-unsupported-instructions=any"]
        done = subprocess.run(argv, input=source, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise CyclesError(f"llvm-mca -mcpu={self.mcpu} failed: {tail[0]}")
        prices: dict[str, list[float]] = {}
        region: str | None = None
        for line in done.stdout.splitlines():
            if matched := REGION.match(line):
                region = matched.group(2)
                prices[str(region)] = [0.0, 0.0]
            elif (matched := TOTAL.match(line)) and region is not None:
                prices[region][0] = int(matched.group(1)) / ITERATIONS
            elif (matched := RTHROUGHPUT.match(line)) and region is not None:
                prices[region][1] = float(matched.group(1))
        return {name: prices.get(name, [0.0, 0.0]) for name in names}  # a region left empty (all skipped) costs 0


@dataclass
class Priced:
    """A region's estimate on one model: cycles, and the runs and instructions of blocks it could not price."""

    cycles: float = 0.0
    instructions: int = 0
    unpriced_instructions: int = 0
    unpriced_blocks: int = 0

    def __sub__(self, other: Priced) -> Priced:
        return Priced(
            self.cycles - other.cycles,
            self.instructions - other.instructions,
            self.unpriced_instructions - other.unpriced_instructions,
            self.unpriced_blocks,
        )


def block_cycles(isa: Isa, mcpu: str, block: Block, text: list[str], price: list[float]) -> float:
    """Cycles of one run of a block. A block that loops to itself, or any block on an in-order core: llvm-mca's
    steady state (its dependencies stall it). Any other block on an out-of-order core: its reciprocal
    throughput, as the core overlaps it with its neighbours (run back to back by llvm-mca, a straight-line
    block would carry dependencies from its end to its start that the real program does not have). An x86
    rep-string instruction, one element per run: its bytes at a fast-string rate."""
    loop, throughput = price
    if isa.name == "x86_64" and len(text) == 1 and (rep := REP_STRING.match(text[0])):
        return ELEMENT_BYTES[rep.group(2)] / REP_BYTES_PER_CYCLE
    return loop if mcpu in IN_ORDER or loops_to_itself(isa, block, text) else throughput


def loops_to_itself(isa: Isa, block: Block, text: list[str]) -> bool:
    """Whether the block's last instruction is a branch back to the block's first."""
    last = text[-1] if text else ""
    if isa.sentinel_text == "trap":  # Thumb: the branch's offset counts from its own address + 4
        branch = THUMB_BRANCH.match(last)
        before = sum(len(insn) // 2 for insn in block[:-1])
        return branch is not None and int(branch.group(1)) == -(before + 4)
    if isa.name == "x86_64":
        branch = X86_BRANCH.match(last)
        return branch is not None and int(branch.group(1)) == -sum(len(insn) // 2 for insn in block)
    branch = ARM_BRANCH.match(last)
    return branch is not None and int(branch.group(1)) == -4 * (len(block) - 1)


def price_regions(isa: Isa, mcpu: str, regions: dict[str, Counter[Block]]) -> dict[str, Priced]:
    """Each region's cycles on ``mcpu``: every distinct block priced once (one llvm-mc and one llvm-mca call)."""
    insns = {insn for runs in regions.values() for block in runs for insn in block}
    text = disassemble(isa, insns)
    free = FREE.get(isa.name, FREE["aarch64"])
    readable = {
        block: [line for insn in block for line in text[insn] if not free.match(line)]
        for runs in regions.values()
        for block in runs
        if block and all(insn in text for insn in block)
    }
    prices = {block: block_cycles(isa, mcpu, block, readable[block], price)
              for block, price in Pricer(isa, mcpu, call_latency=THUMB_CALL_LATENCY if isa.sentinel_text == "trap"
                                         else None).price(readable).items()}  # fmt: skip
    result = {}
    for name, runs in regions.items():
        priced = Priced()
        for block, n in runs.items():
            priced.instructions += len(block) * n
            if block in prices:
                priced.cycles += prices[block] * n
            else:
                priced.unpriced_instructions += len(block) * n
                priced.unpriced_blocks += 1
        result[name] = priced
    return result


def estimate(
    trace_file: Path, regions: dict[str, list[int]], calls: int, isa: Isa, models: list[str]
) -> dict[str, dict]:
    """Per region (name -> marks start, stop, empty start, empty stop): cycles per call on each model, the
    empty loop's subtracted, and what could not be priced. {name: {"cycles_per_image": {model: n}, ...}}."""
    trace = read_trace(trace_file)
    runs: dict[str, Counter[Block]] = {}
    for name, (start, stop, empty_start, empty_stop) in regions.items():
        runs[name] = trace.between(start, stop)
        runs[f"{name} (empty loop)"] = trace.between(empty_start, empty_stop)
    result: dict[str, dict] = {name: {"cycles_per_image": {}} for name in regions}
    for model in models:
        priced = price_regions(isa, model, runs)
        for name in regions:
            net = priced[name] - priced[f"{name} (empty loop)"]
            result[name]["cycles_per_image"][model] = round(net.cycles / calls)
            result[name]["unpriced_blocks"] = priced[name].unpriced_blocks
            share = priced[name].unpriced_instructions / priced[name].instructions if priced[name].instructions else 0
            result[name]["unpriced_share"] = round(share, 6)
    return result


__all__ = [
    "AARCH64",
    "LLVM_HINT",
    "X86_64",
    "CyclesError",
    "Isa",
    "Priced",
    "Trace",
    "estimate",
    "llvm_missing",
    "price_regions",
    "read_trace",
    "thumb",
]
