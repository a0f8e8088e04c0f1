"""An architecture JSON (``model.to_json()``) beside a weights-only HDF5 file (``model.save_weights(...)``), the
pair many course repositories keep: each file found from the other by its stem, or named with an option. A
Keras 2 JSON is built by Keras 2 (tf-keras) and rebuilt in Keras 3; a Keras 3 one by Keras 3 in safe mode.

May import: base, configs, hdf5, keras2, errors, the TensorFlow loader and the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError, first_line
from ..files import plain_file_problem
from ..tensorflow_loader import import_tensorflow
from .base import Loaded, check_file
from .configs import class_objects, keras2_layer_classes, map_tf_functions, refuse_code_keras2, refuse_code_keras3
from .hdf5 import read_header
from .keras2 import import_tf_keras, predictor, rebuild

WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5")
MAX_JSON_BYTES = 16 << 20  # a LeNet's architecture is a few KB


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (*WEIGHT_SUFFIXES, ".json"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def weights_beside(architecture: Path) -> Path:
    """The weights file of the same stem beside an architecture JSON; UsageError naming the option otherwise."""
    found = [architecture.with_name(_stem(architecture) + suffix) for suffix in WEIGHT_SUFFIXES]
    found = [path for path in found if path.is_file()]
    if not found:
        tried = ", ".join(_stem(architecture) + suffix for suffix in WEIGHT_SUFFIXES)
        raise UsageError(
            f"{architecture}: an architecture without weights: no {tried} beside it; name the weights file with "
            "--weights FILE.h5"
        )
    return found[0]


def architecture_beside(weights: Path) -> Path:
    """The architecture JSON of the same stem beside a weights-only HDF5 file; UsageError otherwise."""
    architecture = weights.with_name(_stem(weights) + ".json")
    if not architecture.is_file():
        raise UsageError(
            f"{weights}: holds weights only (no model config), and no {architecture.name} beside it holds the "
            "architecture; name it with --architecture FILE.json (model.to_json()), or save the whole model"
        )
    return architecture


def _read_json(path: Path) -> Any:
    problem = plain_file_problem(path, MAX_JSON_BYTES, "too large for a model's architecture")
    if problem:
        raise UsageError(f"{path}: {problem}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{path}: not a JSON file (an architecture saved with model.to_json())") from None


def _written_by_keras3(config: Any) -> bool:
    """Keras 3 writes no keras_version into to_json() but names each class's module; Keras 2 writes its version."""
    if isinstance(config, dict) and str(config.get("keras_version", "")).startswith("2"):
        return False
    return any(str(item.get("module", "")).startswith("keras") for item in class_objects(config))


def _load_keras3(architecture: Path, weights: Path, config: Any) -> Loaded:
    import_tensorflow()
    import keras

    renamed: list[str] = []
    config = map_tf_functions(config, renamed)
    refuse_code_keras3(architecture, config)
    try:
        model = keras.models.model_from_json(json.dumps(config))
        model.load_weights(weights)
    except Exception as exc:  # one line naming the cause
        raise UsageError(f"{architecture}: cannot load with {weights.name}: {first_line(exc)[:200]}") from None
    return Loaded(model, "json-weights", "3.x", [architecture, weights], notes=renamed)


def load_json_weights(architecture: Path, weights: Path) -> Loaded:
    """The model the JSON describes, with the weights of the HDF5 file, as Keras 3."""
    check_file(weights, "weights file")
    config = _read_json(architecture)
    header = read_header(weights)
    if header.model_config is not None:
        raise UsageError(f"{weights}: holds a whole model, not weights only: export it alone")
    if _written_by_keras3(config):
        return _load_keras3(architecture, weights, config)
    version = str(config.get("keras_version", header.keras_version)) if isinstance(config, dict) else "unknown"
    tf_keras = import_tf_keras(architecture, version)
    refuse_code_keras2(architecture, config, keras2_layer_classes())
    try:
        model2 = tf_keras.models.model_from_json(json.dumps(config))
        model2.load_weights(str(weights))
    except Exception as exc:  # whatever Keras 2 raises, one line naming the cause
        raise UsageError(
            f"{architecture}: Keras 2 cannot load it with {weights.name}: {first_line(exc)[:200]}"
        ) from None
    return Loaded(rebuild(model2, architecture), "json-weights", version, [architecture, weights], predictor(model2))
