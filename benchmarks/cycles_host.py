"""The cycle estimate's own error, measured where the truth is at hand: this x86-64 host.

    python benchmarks/cycles_host.py [BUNDLE]

BUNDLE (default export, from `make run`) is counted exactly as `lenet-edge cost` counts it on an emulated ARM
core, but with this host's own runtimes under QEMU's x86-64 user-mode emulation (``-cpu max``: AVX2, FMA, no
AVX-512), each executed block priced on LLVM's scheduling model of this CPU (``llc --version``'s host CPU).
The estimate in µs uses this core's clock, measured between the timings with short chains of dependent adds
(median). The truth: the same files, the same digit, the same prepared call timed natively at batch 1 on 1
thread (medians of rounds alternating between the files), in a process whose CPUID instructions were
patched to hide AVX-512, VNNI and AMX (benchmarks/cpuid_patch.c), so that XNNPACK and ONNX Runtime run the
AVX2 kernels the emulated run ran. Writes benchmarks/CYCLES_HOST.md and cycles_host.json, and the table into
the bundle's report.json (``cycles_validation``)."""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROUNDS, SECONDS = 11, 0.15
# The clock: short samples (about 30 µs each, like the calls timed), their median, so that a sample the OS
# preempted (the busy host's other processes) counts as little as a preempted call does in a p50
GHZ_ADDS, GHZ_SAMPLES = 100_000, 20
LIBRARIES = ("ai_edge_litert", "onnxruntime")  # where XNNPACK and MLAS live


def host_mcpu() -> str:
    """LLVM's name of this CPU (``llc --version``: Host CPU)."""
    llc = shutil.which("llc-19") or shutil.which("llc")
    done = subprocess.run([llc or "llc", "--version"], capture_output=True, text=True)
    found = re.search(r"Host CPU:\s*(\S+)", done.stdout)
    if not found:
        sys.exit("cycles_host: llc (llvm-19) is needed to name this CPU's model: apt-get install llvm-19")
    return found.group(1)


def cpuid_sites(library: Path, cache: Path) -> list[int]:
    """Offsets of every CPUID instruction in a shared library (llvm-objdump, cached by path, size and mtime)."""
    stat = library.stat()
    key = cache / f"{library.name}-{stat.st_size}-{int(stat.st_mtime)}.json"
    if key.exists():
        return json.loads(key.read_text())
    objdump = shutil.which("llvm-objdump-19") or "llvm-objdump"
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True).stdout
    sites = [int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s+cpuid\s*$", out, re.MULTILINE)]
    cache.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(sites))
    return sites


def hide_avx512(shim: Path, cache: Path) -> ctypes.CDLL:
    """Patch the CPUID instructions of the runtimes' libraries loaded in this process."""
    import ai_edge_litert.interpreter  # noqa: F401 - loads XNNPACK's library
    import onnxruntime  # noqa: F401 - loads MLAS's

    lib = ctypes.CDLL(str(shim))
    lib.cpuid_patch.argtypes = [ctypes.c_uint64]
    bases: dict[str, int] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        mapped = len(parts) >= 6 and parts[5].endswith(".so") and int(parts[2], 16) == 0
        if mapped and any(f"/{name}/" in parts[5] for name in LIBRARIES):
            bases.setdefault(parts[5], int(parts[0].split("-")[0], 16))
    for path, base in bases.items():
        for site in cpuid_sites(Path(path), cache):
            if lib.cpuid_patch(base + site) != 0:
                sys.exit(f"cycles_host: no CPUID at {path}+{site:#x}")
    return lib


def timings(listing: dict) -> dict:
    """Batch-1 p50 µs per file, 1 thread, medians over rounds alternating between the files, and the clock."""
    shim = None
    if listing["hide"]:
        shim = hide_avx512(Path(listing["shim"]), Path(listing["cache"]))
    else:
        shim = ctypes.CDLL(listing["shim"])
    shim.cpuid_patch_ghz.restype = ctypes.c_double
    shim.cpuid_patch_ghz.argtypes = [ctypes.c_uint64]
    from lenet_edge.measure import time_calls
    from lenet_edge.runtimes import open_runner

    digit = np.load(listing["images"])[:1]
    runners = {name: open_runner(runtime, path, threads=1) for name, (runtime, path) in listing["files"].items()}
    calls = {name: runner.prepared_call(digit) for name, runner in runners.items()}
    ghz = []  # sampled between the timings, under the same load: the clock the timed calls ran at
    p50: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            p50[name].append(float(np.median(time_calls(call, SECONDS))) / 1e3)
            ghz += [shim.cpuid_patch_ghz(GHZ_ADDS) for _ in range(GHZ_SAMPLES)]
    traps = ctypes.c_uint32.in_dll(shim, "cpuid_patch_traps").value
    return {
        "p50_us": {n: float(np.median(v)) for n, v in p50.items()},
        "quietest_p50_us": {n: float(np.min(v)) for n, v in p50.items()},
        "ghz": ghz,
        "cpuid_traps": traps,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def emulated_cycles(bundle: Path, mnist, mcpu: str) -> dict:
    """The count job under qemu-x86_64 with the block counter; cycles priced on ``mcpu``."""
    from lenet_edge.cycles import X86_64
    from lenet_edge.targets.arm64_emu import build_plugin
    from lenet_edge.targets.base import CODE, LocalWorkspace, Target, Workspace, blocks_file, cache_dir
    from lenet_edge.targets.jobs import count_on_target

    plugin = build_plugin(cache_dir() / "x86-64" / "plugins")

    class X86EmuWorkspace(LocalWorkspace):
        def command(self, job_file: Path, plugin_out: Path | None) -> tuple[list[str], dict]:
            counter = ["-plugin", f"{plugin},out={plugin_out},blocks={blocks_file(plugin_out)}"] if plugin_out else []
            env = os.environ | {"PYTHONPATH": str(self.root / CODE), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
            qemu = ["setarch", "-R", "qemu-x86_64", "-cpu", "max", *counter, sys.executable]
            return [*qemu, "-m", "lenet_edge.targets.agent", str(job_file)], env

    class X86EmuTarget(Target):
        name, kind, core = "x86-64-emu", "emulated", "x86-64"

        def workspace(self) -> Workspace:
            return X86EmuWorkspace(self)

    return count_on_target(bundle, mnist, X86EmuTarget(), 20, pricing=(X86_64, [mcpu]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", nargs="?", default="export")
    parser.add_argument("--time", help=argparse.SUPPRESS)  # internal: time the files listed in this JSON file
    args = parser.parse_args()
    if args.time:
        print(json.dumps(timings(json.loads(Path(args.time).read_text()))))
        return
    for tool in ("qemu-x86_64", "setarch", "gcc"):
        if not shutil.which(tool):
            sys.exit(f"cycles_host: {tool} is missing (apt-get install qemu-user util-linux gcc)")

    from lenet_edge.cycles import llvm_missing
    from lenet_edge.data import load_mnist
    from lenet_edge.files import write_json
    from lenet_edge.host import machine_info
    from lenet_edge.manifest import read_manifest
    from lenet_edge.report import update_report
    from lenet_edge.targets.base import cache_dir

    if missing := llvm_missing():
        sys.exit(f"cycles_host: {missing}")
    bundle = Path(args.bundle)
    entries = read_manifest(bundle).exports
    mnist = load_mnist(os.environ.get("LENET_EDGE_DATA"))
    mcpu = host_mcpu()
    counted = emulated_cycles(bundle, mnist, mcpu)
    with tempfile.TemporaryDirectory(prefix="lenet-edge-cycles-") as tmp:
        folder = Path(tmp)
        shim = folder / "cpuid_patch.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(HERE / "cpuid_patch.c")], check=True)
        np.save(folder / "images.npy", mnist.x_test[:1])
        runs = {}
        for level, hide in (("AVX2 only (AVX-512, VNNI, AMX hidden)", True), ("as it is", False)):
            listing = {
                "files": {e.format: (e.runtime, str(bundle / e.file)) for e in entries},
                "images": str(folder / "images.npy"),
                "shim": str(shim),
                "cache": str(cache_dir() / "cpuid-sites"),
                "hide": hide,
            }
            (folder / "files.json").write_text(json.dumps(listing))
            out = subprocess.run([sys.executable, __file__, "--time", str(folder / "files.json")], check=True,
                                 capture_output=True, text=True)  # fmt: skip
            runs[level] = json.loads(out.stdout.strip().splitlines()[-1])
    hidden = runs["AVX2 only (AVX-512, VNNI, AMX hidden)"]
    ghz = float(np.median(hidden["ghz"]))
    rows = []
    for row in counted["rows"]:
        cycles = row.get("cycles_per_image", {}).get(mcpu)
        measured = hidden["quietest_p50_us"][row["format"]]
        estimated = cycles / (ghz * 1e3)
        rows.append(
            {"format": row["format"], "runtime": row["runtime"],
             "instructions_per_image": row["instructions_per_image"], "cycles_per_image": cycles,
             "estimated_us": round(estimated, 2), "measured_us": round(measured, 2),
             "ratio": round(estimated / measured, 3), "unpriced_share": row.get("unpriced_share"),
             "measured_median_round_us": round(hidden["p50_us"][row["format"]], 2),
             "measured_as_it_is_us": round(runs["as it is"]["quietest_p50_us"][row["format"]], 2)}
        )  # fmt: skip
    machine = machine_info()
    validation = {
        "date": dt.date.today().isoformat(),
        "host": f"{machine.get('cpu', 'this CPU')} ({os.cpu_count()} cores), {ghz:.2f} GHz measured",
        "mcpu": mcpu,
        "ghz": ghz,
        "measured_with": f"batch-1 p50 on 1 thread of the quietest of {ROUNDS} rounds (the host is shared: load "
        f"average {' '.join(hidden['loadavg'])} at the end), AVX-512/VNNI/AMX hidden by patching "
        f"{hidden['cpuid_traps']} CPUID answers",
        "rows": rows,
        "runs": runs,
        "machine": machine,
        "note": NOTE,
    }
    write_json(HERE / "cycles_host.json", validation)
    (HERE / "CYCLES_HOST.md").write_text(markdown(validation))
    update_report(bundle, {"cycles_validation": {k: v for k, v in validation.items() if k not in ("runs", "machine")}})
    print((HERE / "CYCLES_HOST.md").read_text())


NOTE = (
    "Estimate: the blocks the x86-64 build executed under QEMU (-cpu max: AVX2 and FMA kernels) between the "
    "marks, each priced by llvm-mca on this CPU's model, the empty loop's subtracted, at the clock measured here. "
    "Measured: the same prepared call timed natively with AVX-512 hidden from the runtimes' CPUID."
)


def markdown(result: dict) -> str:
    lines = [
        "# The cycle estimate against the clock, on this host",
        "",
        f"Run {result['date']} by `python benchmarks/cycles_host.py` on {result['host']}; LLVM model "
        f"`-mcpu={result['mcpu']}`; measured: {result['measured_with']}.",
        "",
        "| artifact | instructions | estimated cycles | estimated µs | measured µs | estimate / measured | "
        "median round µs | measured with AVX-512 µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['format']} | {row['instructions_per_image']:,} | {row['cycles_per_image']:,} | "
            f"{row['estimated_us']:.1f} | {row['measured_us']:.1f} | {row['ratio']:.2f} | "
            f"{row['measured_median_round_us']:.1f} | {row['measured_as_it_is_us']:.1f} |"
        )
    lines += ["", result["note"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
