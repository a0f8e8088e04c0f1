"""Exporter families, one module each with the same shape: ``export(model, path, calibration, quantization,
keep_float, about)`` writes one file from a Keras model, with ``about`` (what the file says about itself:
labels, input contract, producer, seed, source model) in the format's own metadata, and raises ExportError on
anything it cannot stand behind. TensorFlow, tf2onnx and onnx are imported only when a file is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats import Format
from . import onnx, tflite

EXPORTERS = {"tflite": tflite.export, "onnx": onnx.export}


def export_format(
    fmt: Format,
    model,
    path: Path,
    calibration: np.ndarray,
    keep_float: tuple[str, ...] = (),
    about: dict[str, str] | None = None,
) -> None:
    """Write ``fmt`` of ``model`` to ``path`` with its family's exporter.

    ``keep_float`` names Keras layers that the int8 formats leave in float (selective quantization); ``about``
    is what the file records about itself (strings), beside the model: it changes no output."""
    EXPORTERS[fmt.family](model, path, calibration, keep_float=keep_float, about=about or {}, **fmt.options)
