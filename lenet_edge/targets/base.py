"""What every target shares: a workspace to put files in, run the agent in and get files back (the package
docstring tells the whole design), and the local target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path

from ..errors import LenetEdgeError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the lenet_edge package that ships to the target
CODE = "code"  # workspace folder holding that package
TARGET_HELP = (
    "where the models run: local (default), arm64-emu[:CORE] (ARM64 under QEMU; CORE: cortex-a53, cortex-a72, "
    "cortex-a76 (default), neoverse-n1), or ssh://user@host[:port][?python=PATH&key=FILE&known_hosts=FILE]"
)


class TargetError(LenetEdgeError):
    """A target that is not set up, not reachable, or whose agent failed."""


def cache_dir() -> Path:
    """``~/.cache/lenet-edge`` (or under $XDG_CACHE_HOME): slow set-ups are kept here."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenet-edge"


def blocks_file(plugin_out: Path) -> Path:
    """Where the counter writes the blocks it saw run, beside its marks file ``plugin_out``."""
    return plugin_out.with_name(plugin_out.name + ".blocks")


def copy_package(destination: Path) -> None:
    """This checkout's ``lenet_edge`` package (sources only) into ``destination/lenet_edge``."""
    shutil.copytree(PACKAGE_DIR, destination / "lenet_edge", ignore=shutil.ignore_patterns("__pycache__", "*.so"))


class Workspace(AbstractContextManager):
    """A folder on the target for one job's files; removed on exit."""

    def __init__(self, target: Target):
        self.target = target

    @abstractmethod
    def put(self, files: dict[str, Path]) -> None:
        """Copy local files (or folders) into the workspace under the given relative names."""

    @abstractmethod
    def run(self, job: dict, plugin_out: Path | None = None) -> dict:
        """Run the agent on ``job`` (paths in it relative to the workspace); return its JSON answer."""

    @abstractmethod
    def get(self, name: str, local: Path) -> Path:
        """Copy the workspace file ``name`` to ``local``."""


class Target(ABC):
    """Somewhere the agent can run. ``kind`` is local, emulated or device."""

    name: str
    kind: str
    core: str | None = None

    @abstractmethod
    def workspace(self) -> Workspace: ...

    def identity(self) -> dict:
        """``uname -m``, CPU model, library versions, and for emulation the emulated core."""
        with self.workspace() as space:
            return self.describe(space.run({"task": "identity"})["identity"])

    def describe(self, identity: dict) -> dict:
        """The agent's identity of the machine, with what only the host knows (the emulated core)."""
        return identity | {"target": self.name, "kind": self.kind, "core": self.core}


class LocalWorkspace(Workspace):
    """A temporary folder on this machine; also what the emulated target works in."""

    def __enter__(self) -> LocalWorkspace:
        self.root = Path(tempfile.mkdtemp(prefix="lenet-edge-target-"))
        copy_package(self.root / CODE)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def put(self, files: dict[str, Path]) -> None:
        for name, source in files.items():
            destination = self.root / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():
                shutil.copytree(source, destination)
            else:
                shutil.copy2(source, destination)

    def get(self, name: str, local: Path) -> Path:
        shutil.copy2(self.root / name, local)
        return local

    def command(self, job_file: Path, plugin_out: Path | None) -> tuple[list[str], dict]:
        env = os.environ | {"PYTHONPATH": str(self.root / CODE)}
        return [sys.executable, "-m", "lenet_edge.targets.agent", str(job_file)], env

    def run(self, job: dict, plugin_out: Path | None = None) -> dict:
        job_file = self.root / "job.json"
        job_file.write_text(json.dumps(job))
        argv, env = self.command(job_file, plugin_out)
        done = subprocess.run(argv, env=env, cwd=self.root, stdout=subprocess.PIPE, stderr=None, text=True)
        return agent_answer(done.returncode, done.stdout, self.target.name)


def agent_answer(returncode: int, stdout: str, target: str) -> dict:
    """The agent's last stdout line, parsed; a clear error when it failed (its stderr went to the user)."""
    lines = stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if returncode != 0 or not isinstance(answer, dict):
        signal_number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
        how = f"crashed (signal {signal_number})" if signal_number else f"failed (exit code {returncode})"
        raise TargetError(f"{target}: the agent {how}; its messages, if any, are above")
    if "error" in answer:
        raise TargetError(f"{target}: {answer['error']}")
    return answer


class LocalTarget(Target):
    name, kind = "local", "local"

    def workspace(self) -> Workspace:
        return LocalWorkspace(self)
