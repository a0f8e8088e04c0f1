"""The emulated ARM64 target: an arm64 Debian bookworm userland run by QEMU user-mode emulation on this
machine, with the aarch64 wheels of the runtimes. Real ARM64 kernels (XNNPACK's NEON and dot-product paths,
ONNX Runtime's ARM MLAS) on any Linux box: for parity, and for a deterministic cost, the guest instructions
retired per inference counted by a small TCG plugin. Wall-clock time under emulation is not latency.

Set-up (``lenet-edge target setup arm64-emu``, about 2.5 minutes, needs root for debootstrap) is kept under
``~/.cache/lenet-edge/arm64/``:
- ``rootfs/``: debootstrap's first stage (``--foreign``), then every downloaded package unpacked with
  ``dpkg-deb -x``. That is all the second stage would leave that Python needs, and it needs no chroot and
  no binfmt_misc registration on the host.
- ``rootfs/opt/lenet-edge/site``: the aarch64 wheels, pinned to the versions this machine runs.
- ``cores/CORE/``: one view of the userland per core, with an ARM ``/proc/cpuinfo`` matching the core and
  ``/sys/devices/system/cpu/{possible,present,online}``. The host's x86 cpuinfo must never leak into the
  guest (``import onnxruntime`` segfaults), and a guest with no CPU topology gets no XNNPACK.
- ``plugins/insn_count-DIGEST.so``: the instruction and block counter, built from ``insn_count.c`` with gcc
  (again, on its own, whenever the source changes)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..console import log
from ..errors import UsageError
from .base import LocalWorkspace, Target, TargetError, Workspace, blocks_file, cache_dir

SUITE = "bookworm"
PYTHON = "/usr/bin/python3.11"
SITE = "/opt/lenet-edge/site"
INCLUDE = "python3.11-minimal,libpython3.11-stdlib,libstdc++6"
WHEELS = ("numpy", "ai-edge-litert", "onnxruntime")  # pinned to this machine's versions; deps follow
# Without manylinux_2_27 pip silently picks ai-edge-litert 1.4 instead of 2.x.
PLATFORMS = ("manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64")
PLUGIN_SOURCE = Path(__file__).with_name("insn_count.c")
ARMV80 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
ARMV82 = f"{ARMV80} atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"


@dataclass(frozen=True)
class Core:
    """An ARM core QEMU emulates, described as Linux's /proc/cpuinfo would on real silicon."""

    name: str
    part: int
    variant: int
    revision: int
    features: str
    about: str

    def cpuinfo(self, cpus: int) -> str:
        block = (
            "processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: {v:#x}\nCPU part\t: {p:#05x}\nCPU revision\t: {r}\n\n"
        )
        return "".join(
            block.format(i=i, f=self.features, v=self.variant, p=self.part, r=self.revision) for i in range(cpus)
        )


CORES = {
    core.name: core
    for core in (
        Core("cortex-a53", 0xD03, 0x0, 4, ARMV80, "ARMv8.0 in-order little core, no dot-product (2012; Pi 3)"),
        Core("cortex-a72", 0xD08, 0x0, 3, ARMV80, "ARMv8.0 big core, no dot-product (2015; Pi 4)"),
        Core("cortex-a76", 0xD0B, 0x4, 1, ARMV82, "ARMv8.2 big core with dot-product (2018; current phones)"),
        Core("neoverse-n1", 0xD0C, 0x4, 1, ARMV82, "ARMv8.2 server core with dot-product (2019; Graviton2)"),
    )
}
DEFAULT_CORE = "cortex-a76"


def home() -> Path:
    return cache_dir() / "arm64"


def pinned_versions() -> dict[str, str]:
    """The runtime versions this machine runs: the guest gets the same, so parity compares like with like."""
    try:
        return {name: metadata.version(name) for name in WHEELS}
    except metadata.PackageNotFoundError as exc:
        raise TargetError(f"{exc.name} is not installed: the ARM64 userland pins this machine's versions") from None


def plugin_digest() -> str:
    """Which counter source the cached plugin was built from: a changed source means a rebuild."""
    return hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:16]


def current(record: dict | None) -> bool:
    """Whether a set-up record matches this machine's runtime versions (the counter is rebuilt on its own)."""
    return record is not None and record.get("versions") == pinned_versions()


def plugin() -> Path:
    """The counter built from this checkout's source, ``plugins/insn_count-DIGEST.so`` (gcc, once per source)."""
    return build_plugin(home() / "plugins")


def build_plugin(folder: Path) -> Path:
    """``insn_count.c`` compiled into ``folder`` under its source digest (gcc); an existing build is reused."""
    built = folder / f"insn_count-{plugin_digest()}.so"
    if built.exists():
        return built
    if not shutil.which("gcc"):
        raise TargetError("gcc is missing (it builds the instruction counter): apt-get install gcc")
    folder.mkdir(parents=True, exist_ok=True)
    partial = built.with_name(f".{built.name}.{os.getpid()}")
    _run(
        ["gcc", "-shared", "-fPIC", "-pthread", "-O2", "-fvisibility=hidden", "-Wall", "-Werror", "-o", str(partial),
         str(PLUGIN_SOURCE)],
        "gcc insn_count.c",
    )  # fmt: skip
    partial.rename(built)
    return built


def status() -> dict | None:
    """The set-up record (versions installed, when), or None if the userland is missing."""
    try:
        return json.loads((home() / "ready.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _step(number: int, text: str) -> float:
    log(f"[{number}/5] {text}")
    return time.perf_counter()


def _run(argv: list[str], what: str, **options) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **options)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise TargetError(f"{what} failed (exit code {done.returncode}): {' | '.join(tail)}")


def _tools() -> None:
    missing = [tool for tool in ("qemu-aarch64", "debootstrap", "dpkg-deb", "gcc", "setarch") if not shutil.which(tool)]
    if missing:
        raise TargetError(
            f"missing {', '.join(missing)}: apt-get install qemu-user qemu-user-static debootstrap gcc util-linux"
        )
    if platform.machine() != "x86_64" and platform.machine() != "aarch64":
        raise TargetError(f"the emulated target is built on x86_64 or aarch64 Linux, not {platform.machine()}")


def _mirror() -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources), else deb.debian.org."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def setup(force: bool = False) -> dict:
    """Prepare (or reuse) the cached userland; return its record. Builds beside the cache, then renames."""
    versions = pinned_versions()
    record = status()
    if record is not None and current(record) and not force:
        log(f"arm64-emu: userland ready in {home()} (set up {record['created']}); --force rebuilds it")
        return record
    _tools()
    if os.geteuid() != 0:
        raise TargetError("setting up arm64-emu runs debootstrap, which needs root: run it with sudo once")
    started = time.perf_counter()
    staging = home().with_name(f"arm64.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    rootfs = staging / "rootfs"
    try:
        mirror = _mirror()
        t = _step(1, f"debootstrap --foreign arm64 {SUITE} minbase from {mirror} (about 1 min)")
        _run(
            ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={INCLUDE}", "--foreign", SUITE,
             str(rootfs), mirror],
            "debootstrap",
        )  # fmt: skip
        log(f"      done in {time.perf_counter() - t:.0f} s")
        archives = sorted((rootfs / "var/cache/apt/archives").glob("*.deb"))
        t = _step(2, f"unpacking {len(archives)} packages with dpkg-deb -x (no chroot, no binfmt)")
        for deb in archives:
            _run(["dpkg-deb", "-x", str(deb), str(rootfs)], f"dpkg-deb -x {deb.name}")
            deb.unlink()
        if not (rootfs / PYTHON.lstrip("/")).exists():
            raise TargetError(f"the userland has no {PYTHON} after unpacking")
        log(f"      done in {time.perf_counter() - t:.0f} s")
        pins = [f"{name}=={version}" for name, version in versions.items()]
        t = _step(3, f"aarch64 wheels: {', '.join(pins)}")
        platforms = [arg for name in PLATFORMS for arg in ("--platform", name)]
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(rootfs / SITE[1:]),
             "--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation", "cp", *pins],
            "pip install (aarch64 wheels)",
        )  # fmt: skip
        # byte-compiled here (same Python minor version): the guest then never compiles under emulation
        if sys.version_info[:2] == (3, 11):
            _run([sys.executable, "-m", "compileall", "-q", "-j0", str(rootfs / "usr/lib/python3.11")], "compileall")
        log(f"      done in {time.perf_counter() - t:.0f} s")
        _step(4, f"ARM CPU descriptions for {', '.join(CORES)}")
        for core in CORES.values():
            _core_view(staging, core)
        _step(5, "instruction counter: gcc insn_count.c")
        build_plugin(staging / "plugins")
        record = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "suite": SUITE,
            "mirror": mirror,
            "versions": versions,
            "plugin": plugin_digest(),
            "qemu": _qemu_version(),
            "setup_s": round(time.perf_counter() - started, 1),
        }
        (staging / "ready.json").write_text(json.dumps(record, indent=2) + "\n")
        old = home().with_name(f"arm64.old-{os.getpid()}")
        if home().exists():
            home().rename(old)
        staging.rename(home())
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in home().rglob("*") if f.is_file() and not f.is_symlink())
    log(f"arm64-emu: ready in {record['setup_s']:.0f} s, {size / 1e6:.0f} MB in {home()}")
    return record


def _core_view(root: Path, core: Core) -> None:
    """``cores/CORE``: the userland seen through symlinks, with its own /proc/cpuinfo and CPU topology."""
    view = root / "cores" / core.name
    view.mkdir(parents=True)
    for entry in (root / "rootfs").iterdir():
        if entry.name not in ("proc", "sys"):
            (view / entry.name).symlink_to(Path("../../rootfs") / entry.name)
    cpus = 1  # one CPU: the cost counted is one core's, and no thread pool can spin on another
    (view / "proc").mkdir()
    (view / "proc" / "cpuinfo").write_text(core.cpuinfo(cpus))
    topology = view / "sys" / "devices" / "system" / "cpu"
    topology.mkdir(parents=True)
    for name in ("possible", "present", "online"):
        (topology / name).write_text(f"0-{cpus - 1}\n" if cpus > 1 else "0\n")


def _qemu_version() -> str:
    done = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True)
    words = done.stdout.split()  # "qemu-aarch64 version 7.2.22 (Debian …)"
    return f"QEMU {words[2]}" if done.returncode == 0 and len(words) > 2 else "QEMU"


class EmulatedWorkspace(LocalWorkspace):
    """Files stay on this machine (the guest reads host paths the userland does not shadow); the agent runs
    as an aarch64 process under QEMU, pinned to a real core (QEMU 7.2's default ``-cpu max`` gives wrong
    int8 results), with address randomisation off and a fixed hash seed so instruction counts repeat."""

    target: Arm64EmuTarget

    def command(self, job_file: Path, plugin_out: Path | None) -> tuple[list[str], dict]:
        target = self.target
        view = home() / "cores" / target.core
        counter = ["-plugin", f"{plugin()},out={plugin_out},blocks={blocks_file(plugin_out)}"] if plugin_out else []
        qemu = ["qemu-aarch64", "-L", str(view), "-cpu", target.core, *counter, str(view / PYTHON[1:])]
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "PYTHONPATH": f"{self.root / 'code'}:{SITE}",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        return ["setarch", "-R", *qemu, "-m", "lenet_edge.targets.agent", str(job_file)], env


class Arm64EmuTarget(Target):
    kind = "emulated"
    core: str

    def __init__(self, core: str | None = None):
        core = core or DEFAULT_CORE
        if core not in CORES:
            raise UsageError(f"unknown core {core!r} for arm64-emu: choose from {', '.join(CORES)}")
        self.core = core
        self.name = f"arm64-emu:{core}"

    def workspace(self) -> Workspace:
        record = status()
        if record is None:
            raise TargetError("arm64-emu is not set up: run `lenet-edge target setup arm64-emu` once (about 2.5 min)")
        if not current(record):  # a record of other versions
            raise TargetError(
                f"the arm64-emu userland has {record.get('versions')}, this machine {pinned_versions()}: "
                "run `lenet-edge target setup arm64-emu` again"
            )
        if not shutil.which("qemu-aarch64") or not shutil.which("setarch"):
            raise TargetError("qemu-aarch64 or setarch is missing: apt-get install qemu-user util-linux")
        return EmulatedWorkspace(self)

    def describe(self, identity: dict) -> dict:
        record = status() or {}
        return super().describe(identity) | {"emulator": record.get("qemu"), "about": CORES[self.core].about}
