"""One Runner per runtime of ``formats.RUNTIMES``, shared by the export checks, verify, bench, the targets and
the page. Each runtime's own library is imported when a file is loaded, so a device with only ai-edge-litert
or onnxruntime (and no TensorFlow) runs the runners it has."""

from __future__ import annotations

from pathlib import Path

from ..formats import RUNTIMES
from .base import InProcessRunner, Runner, RuntimeNotInstalled
from .c import CRunner
from .keras import KerasRunner
from .litert import LiteRTRunner
from .litert_gpu import LiteRTGpuRunner
from .onnxruntime import OnnxRuntimeRunner
from .tflm import TFLMRunner
from .wasm import LiteRTJsRunner, OrtWebRunner

RUNNERS: dict[str, type[Runner]] = {
    runner.runtime: runner
    for runner in (
        KerasRunner,
        LiteRTRunner,
        LiteRTGpuRunner,
        OnnxRuntimeRunner,
        OrtWebRunner,
        LiteRTJsRunner,
        TFLMRunner,
        CRunner,
    )
}
assert set(RUNNERS) == set(RUNTIMES), "every runtime of the table has exactly one Runner"


def open_runner(runtime: str, path: str | Path, **options) -> Runner:
    """Load ``path`` in ``runtime`` (a key of RUNTIMES); options (threads, delegate, …) go to that Runner.
    RuntimeNotInstalled where this install lacks the runtime's library."""
    return RUNNERS[runtime](path, **options)


def runtime_missing(runtime: str) -> str | None:
    """Why ``runtime`` (a key of RUNTIMES) cannot run in this install, e.g. 'onnxruntime is not installed here
    (pip install onnxruntime)' on a device that has LiteRT only; None when it can, or when another check says
    (Keras: the TensorFlow loader; the page's runtimes: ``wasm.browser_missing``). Imports nothing."""
    return RUNNERS[runtime].missing()


__all__ = [
    "RUNNERS",
    "InProcessRunner",
    "KerasRunner",
    "Runner",
    "RuntimeNotInstalled",
    "open_runner",
    "runtime_missing",
]
