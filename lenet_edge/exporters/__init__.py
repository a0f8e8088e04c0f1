"""Exporter families, one module each with the same shape: ``export(model, path, calibration, quantization,
keep_float)`` writes one file from a Keras model and raises ExportError on anything it cannot stand behind.
TensorFlow, tf2onnx and onnx are imported only when a file is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats import Format
from . import onnx, tflite

EXPORTERS = {"tflite": tflite.export, "onnx": onnx.export}


def export_format(fmt: Format, model, path: Path, calibration: np.ndarray, keep_float: tuple[str, ...] = ()) -> None:
    """Write ``fmt`` of ``model`` to ``path`` with its family's exporter.

    ``keep_float`` names Keras layers that the int8 formats leave in float (selective quantization)."""
    EXPORTERS[fmt.family](model, path, calibration, keep_float=keep_float, **fmt.options)
