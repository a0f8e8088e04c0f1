"""One Runner per runtime, shared by export checks, verify and bench. Imports stay lazy, so a device with
only ai-edge-litert or onnxruntime (and no TensorFlow) can load the runners it has."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from .base import Runner, TensorSpec

RUNNERS = {
    "keras": ("lenet_edge.runtimes.keras", "KerasRunner"),
    "litert": ("lenet_edge.runtimes.litert", "LiteRTRunner"),
    "onnxruntime": ("lenet_edge.runtimes.onnxruntime", "OnnxRuntimeRunner"),
    "onnxruntime-web": ("lenet_edge.runtimes.wasm", "OrtWebRunner"),  # in headless Chromium, WebAssembly
    "litert.js": ("lenet_edge.runtimes.wasm", "LiteRTJsRunner"),
}


def open_runner(runtime: str, path: str | Path, **options) -> Runner:
    """Load ``path`` in ``runtime`` (a key of RUNNERS); options go to that Runner."""
    module, name = RUNNERS[runtime]
    return getattr(import_module(module), name)(path, **options)


__all__ = ["RUNNERS", "Runner", "TensorSpec", "open_runner"]
