"""Exporter families, one module each with the same shape: ``export(model, path, calibration, **options)``
writes one file from a Keras model and raises ExportError on anything it cannot stand behind."""

from __future__ import annotations

import re
from importlib import import_module
from pathlib import Path

import numpy as np

from ..formats import Format


def export_format(fmt: Format, model, path: Path, calibration: np.ndarray, keep_float: tuple[str, ...] = ()) -> None:
    """Write ``fmt`` of ``model`` to ``path`` with its family's exporter (imported only when needed).

    ``keep_float`` names Keras layers that the int8 formats leave in float (selective quantization)."""
    import_module(f"{__name__}.{fmt.family}").export(model, path, calibration, keep_float=keep_float, **fmt.options)


def layer_of(tensor_name: str, op: str = "") -> str:
    """The Keras layer a converted tensor or node comes from ('lenet5_classic_1/C3_1/BiasAdd;…' -> 'C3').
    A name the converter gave no layer is labelled by its ``op`` where that says what it is (the TFLite
    output 'StatefulPartitionedCall_1:0' of SOFTMAX is 'probabilities'), else returned as it is ('Conv__89')."""
    match = _LAYER.match(tensor_name)
    return match[1] if match else _OP_LABELS.get(op, tensor_name)


_OP_LABELS = {"SOFTMAX": "probabilities", "QUANTIZE": "uint8/int8 I/O"}


_LAYER = re.compile(r"^(?:NumericVerify/)?[^/;]+/([^/;]+?)(?:_\d+)?/")


def calibration_batches(images: np.ndarray, batch_size: int = 1):
    """Calibration inputs as the graphs take them: float32 raw pixels [n, 28, 28, 1], 0-255."""
    images = images.reshape(-1, 28, 28, 1).astype(np.float32)
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
