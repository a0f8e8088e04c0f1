"""Exporter families, one module each with the same shape: ``export(model, path, calibration, **options)``
writes one file from a Keras model and raises ExportError on anything it cannot stand behind."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import numpy as np

from ..formats import Format


def export_format(fmt: Format, model, path: Path, calibration: np.ndarray) -> None:
    """Write ``fmt`` of ``model`` to ``path`` with its family's exporter (imported only when needed)."""
    import_module(f"{__name__}.{fmt.family}").export(model, path, calibration, **fmt.options)


def calibration_batches(images: np.ndarray, batch_size: int = 1):
    """Calibration inputs as the graphs take them: float32 raw pixels [n, 28, 28, 1], 0-255."""
    images = images.reshape(-1, 28, 28, 1).astype(np.float32)
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
