"""The one ``load``: a saved model in any form a LeNet is found in, told apart by what the path is and what
the file says of itself (never by trying loaders in turn), handed to that form's loader, then checked to be a
classifier of MNIST digits. Every refusal is one line (UsageError, exit 2), before any data is read.

May import: base and the form loaders (keras3, keras2_h5, json_weights, savedmodel), hdf5, errors.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import Loaded, UserModel, check_file, digit_classifier
from .hdf5 import read_header
from .json_weights import architecture_beside, load_json_weights, weights_beside
from .keras2_h5 import load_keras2_h5
from .keras3 import load_archive, load_h5
from .savedmodel import load_savedmodel

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".json")
TAKEN = (
    "a .keras or .h5 model file, an architecture .json beside its weights .h5, or a SavedModel folder "
    "(model.save('lenet.keras'), model.save('lenet.h5'), model.to_json() + model.save_weights('lenet.h5'), "
    "model.save('lenet'))"
)


def _h5(path: Path, architecture: Path | None) -> Loaded:
    header = read_header(path)
    if header.model_config is None:
        return load_json_weights(architecture or architecture_beside(path), path)
    if architecture is not None:
        raise UsageError(f"{path}: holds a whole model; --architecture is for a weights-only file")
    if header.keras_version.startswith("3"):
        return load_h5(path, header.model_config, header.keras_version)
    return load_keras2_h5(path, header)


def load_form(path: Path, architecture: Path | None = None, weights: Path | None = None) -> Loaded:
    """``path`` read by the loader of its form; ``architecture`` / ``weights`` name the other file of an
    architecture JSON + weights pair whose stems differ."""
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise UsageError(f"{path}: a folder without saved_model.pb, not a SavedModel; export takes {TAKEN}")
        return load_savedmodel(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise UsageError(f"{path}: not a model file export takes; it takes {TAKEN}")
    check_file(path)
    if weights is not None and suffix != ".json":
        raise UsageError(f"--weights {weights}: only for an architecture .json (the model named is {path.name})")
    if suffix == ".json":
        if architecture is not None:
            raise UsageError(f"--architecture {architecture}: MODEL {path.name} is the architecture; name --weights")
        return load_json_weights(path, weights or weights_beside(path))
    if suffix == ".keras":
        return load_archive(path)
    return _h5(path, architecture)


def load(
    model_path: str | Path, architecture: str | Path | None = None, weights: str | Path | None = None
) -> UserModel:
    """Load a saved model, whatever the form, as a Keras 3 model and check it can be a digit classifier here;
    UsageError (exit 2) in one line naming what is in the way otherwise."""
    path = Path(model_path)
    loaded = load_form(
        path, None if architecture is None else Path(architecture), None if weights is None else Path(weights)
    )
    return digit_classifier(path, loaded)
