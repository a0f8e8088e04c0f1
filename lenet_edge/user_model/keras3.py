"""Models saved by Keras 3: a ``.keras`` archive, or an HDF5 file whose ``keras_version`` is 3.x. Loaded by
Keras 3 itself in safe mode, after the config was read: Lambda layers and the user's own classes refused,
TensorFlow functions named as activations renamed to their Keras twins (then loaded from a rewritten copy).

May import: base, configs, errors, the TensorFlow loader and the standard library (Keras, h5py lazily).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import UsageError, first_line
from ..tensorflow_loader import import_tensorflow
from .base import Loaded
from .configs import map_tf_functions, refuse_code_keras3

NOT_AN_ARCHIVE = "cannot load as a Keras model: not a Keras archive (save it with model.save('model.keras'))"


def _refusal(path: Path, exc: Exception) -> str:
    """The one-line reason Keras could not load ``path``, naming the layer or class in the way."""
    text = first_line(exc)
    if "Lambda" in text and "safe_mode" in str(exc):
        return (
            f"{path}: holds a Lambda layer, whose Python code Keras does not load (safe mode); "
            "write it as a built-in layer (e.g. Rescaling) and save again"
        )
    if "Could not locate" in text or "Unknown layer" in text:
        name = text.split("'")[1] if text.count("'") >= 2 else "a custom class"
        return (
            f"{path}: uses {name}, a custom layer or class Keras cannot rebuild without its code; "
            "export needs built-in Keras layers"
        )
    if "File format not supported" in text or "not a zip file" in text.lower() or "File is not a zip" in text:
        return f"{path}: {NOT_AN_ARCHIVE}"
    return f"{path}: cannot load as a Keras model: {text[:200] or type(exc).__name__}"


def _keras_load(path: Path, shown: Path):
    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # whatever Keras raises, the user gets one line naming the cause
        raise UsageError(_refusal(shown, exc)) from None


def _archive_parts(path: Path) -> tuple[dict, str]:
    """config.json and the writing Keras version of a .keras archive."""
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: {NOT_AN_ARCHIVE}")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            try:
                version = str(json.loads(archive.read("metadata.json")).get("keras_version", "unknown"))
            except (KeyError, ValueError, AttributeError):
                version = "unknown"
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        raise UsageError(
            f"{path}: cannot load as a Keras model: a zip without a readable config.json, not a Keras archive"
        ) from None
    return config, version


def load_archive(path: Path) -> Loaded:
    """A .keras archive; a rewritten copy when its activations name TensorFlow functions."""
    config, version = _archive_parts(path)
    renamed: list[str] = []
    mapped = map_tf_functions(config, renamed)
    refuse_code_keras3(path, mapped)
    if not renamed:
        return Loaded(_keras_load(path, path), "keras3-archive", version, [path])
    with tempfile.TemporaryDirectory(prefix="lenet-edge-model-") as tmp:
        copy = Path(tmp) / path.name
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
            for info in source.infolist():
                data = json.dumps(mapped).encode() if info.filename == "config.json" else source.read(info)
                target.writestr(info, data)
        model = _keras_load(copy, path)
    return Loaded(model, "keras3-archive", version, [path], notes=renamed)


def load_h5(path: Path, config: dict, version: str) -> Loaded:
    """An HDF5 file written by Keras 3 (``config``: its model_config attribute, already parsed)."""
    import h5py

    renamed: list[str] = []
    mapped = map_tf_functions(config, renamed)
    refuse_code_keras3(path, mapped)
    if not renamed:
        return Loaded(_keras_load(path, path), "keras3-h5", version, [path])
    with tempfile.TemporaryDirectory(prefix="lenet-edge-model-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as handle:
            handle.attrs["model_config"] = json.dumps(mapped)
        model = _keras_load(copy, path)
    return Loaded(model, "keras3-h5", version, [path], notes=renamed)
