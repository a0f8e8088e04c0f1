"""Measurement helpers shared by the runners and bench: timing a call, reading this process's memory. The
standard library and NumPy only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def time_calls(call: Callable[[], object], seconds: float, min_runs: int = 20, max_runs: int = 200_000) -> np.ndarray:
    """Nanoseconds of each call after a warm-up, for about ``seconds`` (never fewer than ``min_runs``)."""
    warm_until = time.perf_counter() + min(0.2, seconds / 5)
    while time.perf_counter() < warm_until:
        call()
    times: list[int] = []
    clock = time.perf_counter_ns
    stop = clock() + int(seconds * 1e9)
    while (len(times) < min_runs or clock() < stop) and len(times) < max_runs:
        start = clock()
        call()
        times.append(clock() - start)
    return np.asarray(times, dtype=np.float64)


def process_memory_mb() -> dict[str, float]:
    """This process's memory in MB, from Linux's /proc/self/status: ``resident`` (VmRSS), ``private`` (RssAnon:
    the heap and other memory of its own), ``mapped`` (RssFile: pages of files, code and mapped models, which other
    processes may share) and ``peak`` (VmHWM, the resident peak since the last ``reset_peak_memory``). Empty where
    the system has no such file."""
    keys = {"resident": "VmRSS", "private": "RssAnon", "mapped": "RssFile", "peak": "VmHWM"}
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return {name: int(fields[key].split()[0]) / 1024 for name, key in keys.items()}
    except (OSError, KeyError, ValueError):
        return {}


def reset_peak_memory() -> bool:
    """Start the peak (VmHWM) afresh from the current resident size (Linux: '5' into /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
