"""What an HDF5 file says of itself before any of it is loaded: the Keras version that wrote it, the backend,
and its model config (absent from a weights-only file).

May import: errors and the standard library (h5py lazily).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Header:
    keras_version: str  # 'unknown' when the file does not say
    backend: str
    model_config: Any  # the parsed model_config attribute; None in a weights-only file
    layer_names: list[str]  # the layers a weights file holds weights for


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_header(path: Path) -> Header:
    """The file's Keras attributes; UsageError in one line when it is not an HDF5 file Keras wrote."""
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise UsageError(f"{path}: cannot load as a Keras model: not an HDF5 file")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
            weights = handle.get("model_weights", handle)
            names = [_text(name) for name in weights.attrs.get("layer_names", [])]
            version = attrs.get("keras_version", weights.attrs.get("keras_version", "unknown"))
            backend = attrs.get("backend", weights.attrs.get("backend", "unknown"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot load as a Keras model: an unreadable HDF5 file ({exc})") from None
    config = attrs.get("model_config")
    if config is not None:
        try:
            config = json.loads(_text(config))
        except ValueError:
            raise UsageError(f"{path}: cannot load as a Keras model: its model_config is not JSON") from None
    return Header(_text(version), _text(backend), config, names)
