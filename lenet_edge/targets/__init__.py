"""Targets: where the runtime-only code runs. ``local`` (this machine), ``arm64-emu[:CORE]`` (an ARM64 Debian
userland under QEMU user-mode emulation) and ``ssh://user@host[:port]`` (a real device).

Every target does the same three things: put files in a workspace of its own, run ``python -m
lenet_edge.targets.agent JOB`` there, and hand back the files the agent wrote. The project's own code travels
with the files, so the target runs exactly the code of this checkout and needs only Python, NumPy and the
runtimes (``pip install lenet-edge`` on a device)."""

from __future__ import annotations

from ..errors import UsageError
from .arm64_emu import Arm64EmuTarget
from .base import TARGET_HELP, LocalTarget, Target, TargetError, Workspace, cache_dir
from .ssh import SshTarget


def parse_target(text: str) -> Target:
    """``local``, ``arm64-emu[:CORE]`` or ``ssh://user@host[:port][?options]``; UsageError otherwise."""
    if text in ("", "local"):
        return LocalTarget()
    if text.split(":", 1)[0] == "arm64-emu":
        return Arm64EmuTarget(text.partition(":")[2] or None)
    if text.startswith("ssh://"):
        return SshTarget.from_url(text)
    raise UsageError(f"unknown target {text!r}: {TARGET_HELP}")


__all__ = ["TARGET_HELP", "LocalTarget", "Target", "TargetError", "Workspace", "cache_dir", "parse_target"]
