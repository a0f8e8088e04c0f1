"""What every loader of a brought model hands back, and the checks that make it a digit classifier here.

A loader reads one form of saved model (a Keras 3 archive, a Keras 2 HDF5 file, architecture JSON beside its
weights, a SavedModel folder) and returns a ``Loaded``: a Keras 3 model, the form and the Keras version that
wrote the file, and, when the Keras 3 model is a rebuild, how the file's own Keras answers (the self-check
compares the export against that, not against the rebuild). ``digit_classifier`` then turns it into a
``UserModel`` or refuses it in one line.

May import: manifest, files, errors and the standard library; Keras only inside functions, never at import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, UsageError
from ..files import plain_file_problem, sha256_file
from ..manifest import KERAS, TRAINING_RECORD, read_manifest
from ..model_origin import BROUGHT, TRAINED_HERE, Preprocessing

# the image shapes a model may take (batch left out) -> zero pixels added on each side of the 28x28 digit
INPUT_SIZES = {(28, 28, 1): 0, (28, 28): 0, (32, 32, 1): 2, (32, 32): 2}
MAX_MODEL_BYTES = 1 << 30  # a LeNet is well under 1 MB; a file this large is not one, and is not decoded
SCORE_BATCH = 500

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Loaded:
    """A saved model as a loader read it: the Keras 3 model export works on and what the file is."""

    model: Any  # a keras.Model (Keras 3)
    form: str  # a key of FORMS
    keras_version: str  # the Keras that wrote the file ('unknown' where the file does not say)
    files: list[Path]  # every file read (a folder's files for a SavedModel)
    own: Predict | None = None  # the file as its own Keras answers, where ``model`` is a rebuild of it
    notes: list[str] = field(default_factory=list)  # what was read differently from the file (said in the log)


# each form a loader takes: what the manifest and the log call it
FORMS = {
    "keras3-archive": "a Keras 3 archive",
    "keras3-h5": "a Keras 3 HDF5 file",
    "keras2-h5": "a Keras 2 HDF5 file",
    "json-weights": "an architecture JSON with a weights-only HDF5 file",
    "keras2-savedmodel": "a Keras 2 SavedModel folder",
}


@dataclass
class UserModel:
    """A loaded model that a digit export can take: one image input of an accepted size, 10 outputs."""

    path: Path
    model: Any
    padding: int  # zero pixels per side that turn the 28x28 digit into the model's input
    channel: bool  # the input has its channel axis (28, 28, 1), not (28, 28)
    origin: str
    record: dict[str, Any] = field(default_factory=dict)  # training.json beside it (ours), or {}
    loaded: Loaded | None = None

    def inputs(self, pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
        """Raw test digits [n, 28, 28] as this model takes them under ``preprocessing``."""
        side = self.padding
        images = np.pad(pixels, ((0, 0), (side, side), (side, side))) if side else pixels
        images = preprocessing.apply(images)
        return images[..., None] if self.channel else images

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The Keras 3 model's answers on images it takes."""
        return np.asarray(self.model.predict(images, SCORE_BATCH, verbose=0))

    def own(self, images: np.ndarray) -> np.ndarray:
        """The file's answers as the Keras that wrote it reads it (the Keras 3 model's where it is the file's)."""
        own = self.loaded.own if self.loaded is not None else None
        return np.asarray(own(images)) if own is not None else self.predict(images)

    @property
    def form(self) -> str:
        return self.loaded.form if self.loaded is not None else "keras3-archive"


def check_file(path: Path, what: str = "model file") -> None:
    """Refuse, before it is opened, a file that cannot be a saved model: missing, not regular, far too large."""
    problem = plain_file_problem(path, MAX_MODEL_BYTES, "too large for a digit classifier")
    if problem:
        raise UsageError(f"{path}: {problem}; not a {what}")


def sha256_files(files: list[Path], path: Path) -> str:
    """The sha256 of the one file read, or, for a folder's files (or a pair of files), the sha256 of their sorted
    'name  sha256' lines (names relative to the folder)."""
    if files == [path] and path.is_file():
        return sha256_file(path)
    lines = sorted(f"{file.relative_to(path) if path.is_dir() else file.name}  {sha256_file(file)}\n" for file in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def shape_of(tensor) -> tuple:
    return tuple(tensor.shape[1:])


def _origin(path: Path) -> tuple[str, dict[str, Any]]:
    """'trained here' for the Keras model of a lenet-edge bundle (its manifest lists this very file), else
    'brought'; and the training record beside it when it is one of ours."""
    if not path.is_file():
        return BROUGHT, {}
    origin = BROUGHT
    try:
        keras_entry = read_manifest(path.parent).artifact(KERAS.name)
        if keras_entry is not None and keras_entry.file == path.name and keras_entry.sha256 == sha256_file(path):
            origin = TRAINED_HERE
    except BundleError:
        pass
    record: dict[str, Any] = {}
    record_path = path.with_name(TRAINING_RECORD)
    if origin == TRAINED_HERE and record_path.is_file():
        try:
            found = json.loads(record_path.read_text())
        except (ValueError, OSError):
            found = None
        if isinstance(found, dict) and isinstance(found.get("config"), dict):
            record = found
    return origin, record


def digit_classifier(path: Path, loaded: Loaded) -> UserModel:
    """``loaded`` as a UserModel when it is a classifier of MNIST digits; one-line UsageError otherwise, whatever
    the form it came in."""
    import keras

    model = loaded.model
    if not isinstance(model, keras.Model):
        raise UsageError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    if len(model.inputs) != 1:
        raise UsageError(f"{path}: takes {len(model.inputs)} inputs; a digit classifier here takes one image")
    if len(model.outputs) != 1:
        raise UsageError(f"{path}: gives {len(model.outputs)} outputs; a digit classifier here gives one")
    shape, out = shape_of(model.inputs[0]), shape_of(model.outputs[0])
    if shape not in INPUT_SIZES:
        given = "[batch, " + ", ".join(str(d) for d in shape) + "]"
        raise UsageError(
            f"{path}: input {model.inputs[0].name!r} takes {given}; only MNIST's 28x28 gray digits are taken, "
            "as [batch, 28, 28, 1] or [batch, 28, 28], or padded to 32x32 ([batch, 32, 32, 1])"
        )
    if out != (10,):
        given = "[batch, " + ", ".join(str(d) for d in out) + "]"
        raise UsageError(
            f"{path}: output of layer {model.layers[-1].name!r} is {given}, not 10 classes ([batch, 10]): "
            "only a classifier of the 10 digits is taken"
        )
    origin, record = _origin(path) if loaded.form == "keras3-archive" else (BROUGHT, {})
    return UserModel(path, model, INPUT_SIZES[shape], len(shape) == 3, origin, record, loaded)
