"""A saved Keras model made ready for export, whoever trained it: loaded (Sequential or functional, .keras or .h5)
with one-line refusals naming the layer or property in the way, the input preprocessing it was trained with
found by scoring the MNIST test digits under each candidate (or named with --input-scale), and wrapped so that
every export takes raw pixels [batch, 28, 28, 1] 0-255 and answers as the model answers its own preprocessed
input: the padding to 32x32, the scaling and, for a model ending in logits, a softmax are folded into the graph.

May import: model, model_origin, manifest, data, files, errors, console and the TensorFlow loader (Keras lazily).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .console import log
from .data import Mnist
from .errors import BundleError, UsageError, first_line
from .files import sha256_file
from .manifest import KERAS, TRAINING_RECORD, read_manifest
from .model import ARCHITECTURES, INPUT_NAME, count_macs, count_params, layer_chain
from .model_origin import BROUGHT, PREPROCESSINGS, TRAINED_HERE, Preprocessing
from .tensorflow_loader import import_tensorflow

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
AUTO = "auto"
INPUT_SCALES = (AUTO, *PREPROCESSINGS)
# the image shapes a model may take (batch left out) -> zero pixels added on each side of the 28x28 digit
INPUT_SIZES = {(28, 28, 1): 0, (28, 28): 0, (32, 32, 1): 2, (32, 32): 2}
CHANCE = 0.2  # a best score below this reads no candidate: the model is not trained (or not on MNIST)
CLOSE_PT = 1.0  # candidates this close to the best accuracy are a close call, settled by the cross-entropy
SCORE_BATCH = 500
SELF_CHECK_DIGITS = 1000  # test digits on which the wrapped model must answer as the model under its preprocessing
SELF_CHECK_TOLERANCE = 1e-4


@dataclass
class UserModel:
    """A loaded model that a digit export can take: one image input of an accepted size, 10 outputs."""

    path: Path
    model: Any
    padding: int  # zero pixels per side that turn the 28x28 digit into the model's input
    channel: bool  # the input has its channel axis (28, 28, 1), not (28, 28)
    origin: str
    record: dict[str, Any] = field(default_factory=dict)  # training.json beside it (ours), or {}

    def inputs(self, pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
        """Raw test digits [n, 28, 28] as this model takes them under ``preprocessing``."""
        side = self.padding
        images = np.pad(pixels, ((0, 0), (side, side), (side, side))) if side else pixels
        images = preprocessing.apply(images)
        return images[..., None] if self.channel else images


def _layer_configs(node: Any):
    """Every serialized object of a Keras config that names a class, depth first."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _layer_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layer_configs(value)


def _config_refusal(path: Path) -> str:
    """What in a .keras archive's config Keras will not rebuild here ('' when nothing): a Lambda layer (its
    Python code is not loaded, safe mode) or a class registered by the user's own code."""
    if not zipfile.is_zipfile(path):
        return f"{path}: cannot load as a Keras model: not a Keras archive (save it with model.save('model.keras'))"
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return f"{path}: cannot load as a Keras model: a zip without a readable config.json, not a Keras archive"
    for item in _layer_configs(config):
        name = item.get("config", {}).get("name", "?") if isinstance(item.get("config"), dict) else "?"
        if item.get("class_name") == "Lambda":
            return (
                f"{path}: layer {name!r} is a Lambda layer, whose Python code Keras does not load (safe mode); "
                "write it as a built-in layer (e.g. Rescaling) and save again"
            )
        module = item.get("module")
        if item.get("registered_name") and not str(module or "").startswith("keras"):
            return (
                f"{path}: layer {name!r} is {item['registered_name']}, a custom class Keras cannot rebuild without "
                "its code; export takes built-in Keras layers"
            )
    return ""


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
        return f"{path}: cannot load as a Keras model: not a Keras archive (save it with model.save('model.keras'))"
    return f"{path}: cannot load as a Keras model: {text[:200] or type(exc).__name__}"


def _shape(tensor) -> tuple:
    return tuple(tensor.shape[1:])


def _origin(path: Path) -> tuple[str, dict[str, Any]]:
    """'trained here' for the Keras model of a lenet-edge bundle (its manifest lists this very file), else
    'brought'; and the training record beside it when it is one of ours."""
    origin = BROUGHT
    try:
        keras_entry = read_manifest(path.parent).artifact(KERAS.name)
        if keras_entry is not None and keras_entry.file == path.name and keras_entry.sha256 == sha256_file(path):
            origin = TRAINED_HERE
    except BundleError:
        pass
    record: dict[str, Any] = {}
    record_path = path.with_name(TRAINING_RECORD)
    if record_path.is_file():
        try:
            found = json.loads(record_path.read_text())
        except (ValueError, OSError):
            found = None
        if isinstance(found, dict) and isinstance(found.get("config"), dict):
            record = found
    return origin, record


def load_user_model(model_path: str | Path) -> UserModel:
    """Load a saved Keras model and check it can be a digit classifier here; UsageError (exit 2) in one line
    naming what is in the way otherwise."""
    path = Path(model_path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        raise UsageError(
            f"{path}: a TensorFlow SavedModel folder, which Keras 3 cannot load as a model; "
            "save the Keras model itself (model.save('model.keras'))"
        )
    if not path.is_file() or path.suffix.lower() not in MODEL_SUFFIXES:
        raise UsageError(f"{path}: not a .keras model file (nor a .h5 one): save it with model.save('model.keras')")
    if path.suffix.lower() == ".keras" and (refusal := _config_refusal(path)):
        raise UsageError(refusal)
    import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # whatever Keras raises, the user gets one line naming the cause
        raise UsageError(_refusal(path, exc)) from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    if len(model.inputs) != 1:
        raise UsageError(f"{path}: takes {len(model.inputs)} inputs; a digit classifier here takes one image")
    if len(model.outputs) != 1:
        raise UsageError(f"{path}: gives {len(model.outputs)} outputs; a digit classifier here gives one")
    shape, out = _shape(model.inputs[0]), _shape(model.outputs[0])
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
    origin, record = _origin(path)
    return UserModel(path, model, INPUT_SIZES[shape], len(shape) == 3, origin, record)


def _probabilities(outputs: np.ndarray) -> bool:
    """Whether outputs are already probabilities (non-negative rows summing to 1), not logits."""
    finite = np.isfinite(outputs).all()
    return bool(finite and outputs.min() >= 0 and np.abs(outputs.sum(1) - 1).max() < 1e-3)


def _softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = outputs.astype(np.float64) - outputs.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


@dataclass
class Scores:
    """The model on the test digits under each preprocessing candidate."""

    accuracy: dict[str, float]
    loss: dict[str, float]  # mean cross-entropy of the true digit (the softmax of logits)
    logits: bool  # the outputs are not probabilities under any candidate: a softmax goes into the export


def score(user: UserModel, mnist: Mnist) -> Scores:
    """Accuracy and cross-entropy of the model on the 10,000 test digits under every candidate."""
    accuracy, loss, normalized = {}, {}, []
    for name, preprocessing in PREPROCESSINGS.items():
        outputs = np.asarray(user.model.predict(user.inputs(mnist.x_test, preprocessing), SCORE_BATCH, verbose=0))
        normalized.append(_probabilities(outputs))
        accuracy[name] = float(np.mean(outputs.argmax(1) == mnist.y_test))
        probabilities = outputs.astype(np.float64) if normalized[-1] else _softmax(outputs)
        true = np.nan_to_num(probabilities[np.arange(len(mnist.y_test)), mnist.y_test], nan=0.0)
        loss[name] = float(-np.mean(np.log(np.clip(true, 1e-12, None))))
    return Scores(accuracy, loss, logits=not any(normalized))


def choose(scores: Scores, named: str = AUTO) -> tuple[str, str]:
    """The preprocessing to fold in, and how it was found: the one named; else the candidate under which the
    model reads the test digits best, candidates within CLOSE_PT of that accuracy settled by the lowest
    cross-entropy (neither alone is enough: a briefly trained model can read digits a little better under
    MNIST mean/std than under the pixels / 255 it was trained on, and a model whose batch-norm statistics are
    still settling can be better calibrated under the wrong scale); raw pixels when no candidate reads the
    digits better than chance."""
    if named != AUTO:
        return named, "named with --input-scale"
    best = max(scores.accuracy.values())
    if best < CHANCE:
        return "raw", (
            f"no candidate reads the test digits better than chance (best {best:.1%}): taken as raw pixels; "
            "name the right one with --input-scale"
        )
    close = [name for name, accuracy in scores.accuracy.items() if (best - accuracy) * 100 <= CLOSE_PT]
    if len(close) == 1:
        return close[0], "found by scoring the 10,000 test digits under each candidate: the best accuracy"
    chosen = min(close, key=lambda name: scores.loss[name])
    return chosen, (
        f"found by scoring the 10,000 test digits under each candidate: {len(close)} within {CLOSE_PT:g} pt of the "
        "best accuracy, the lowest cross-entropy of them; a close call, name it with --input-scale if it is wrong"
    )


def _unique(name: str, taken: set[str]) -> str:
    found, n = name, 1
    while found in taken:
        n += 1
        found = f"{name}_{n}"
    taken.add(found)
    return found


def wrap(user: UserModel, preprocessing: Preprocessing, logits: bool):
    """The model the bundle holds and every export is converted from: raw pixels [batch, 28, 28, 1] 0-255 in,
    then the zero padding to the model's size, the preprocessing, the model's own layers (a chain's layers in
    line, which the deployment rewrite then understands; any other graph as one nested model) and, for logits,
    a softmax: 10 probabilities out. Returns (model, what was put inside the graph, in order)."""
    import keras

    chain = layer_chain(user.model)
    taken = {layer.name for layer in (chain or user.model.layers)}
    image = keras.Input((28, 28, 1), name=_unique(INPUT_NAME, taken))
    x, inside = image, []
    if user.padding:
        x = keras.layers.ZeroPadding2D(user.padding, name=_unique("pad_to_32", taken))(x)
        inside.append(f"zero padding 28x28 -> 32x32 ({user.padding} pixels each side, raw pixel 0)")
    if preprocessing.name != "raw":
        scaling = keras.layers.Rescaling(preprocessing.scale, preprocessing.offset, name=_unique("input_scale", taken))
        x = scaling(x)
        inside.append(f"the model's preprocessing, {preprocessing.label}")
    if not user.channel:
        x = keras.layers.Reshape(_shape(user.model.inputs[0]), name=_unique("drop_channel", taken))(x)
        inside.append("the channel axis dropped, as the model takes [batch, rows, cols]")
    if chain is not None:
        for layer in chain:
            x = layer(x)
    else:
        x = user.model(x)
    if logits:
        x = keras.layers.Softmax(name=_unique("softmax_appended", taken))(x)
        inside.append("a softmax appended: the model ends in logits")
    return keras.Model(image, x, name=user.model.name), inside


def _self_check(user: UserModel, wrapped, preprocessing: Preprocessing, logits: bool, mnist: Mnist) -> float:
    """The wrapped model on raw digits against the model on its own preprocessing: the largest |Δp|."""
    digits = mnist.x_test[:SELF_CHECK_DIGITS]
    theirs = np.asarray(user.model.predict(user.inputs(digits, preprocessing), SCORE_BATCH, verbose=0))
    theirs = _softmax(theirs) if logits else theirs
    ours = np.asarray(wrapped.predict(digits[..., None].astype(np.float32), SCORE_BATCH, verbose=0))
    apart = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
    if not apart <= SELF_CHECK_TOLERANCE:
        raise UsageError(
            f"{user.path}: with its preprocessing folded in, the model answers raw pixels differently from its own "
            f"input (by up to {apart:.1e}); it cannot be exported as it is"
        )
    return apart


def _activations(model) -> str | None:
    """The hidden layers' activations, as a tutorial names them ('relu', 'tanh, relu'), or None."""
    found: list[str] = []
    for layer in model.layers:
        config = layer.get_config()
        name = config.get("activation") if "activation" in config else None
        if type(layer).__name__ == "ReLU":
            name = "relu"
        if isinstance(name, str) and name not in ("linear", "softmax") and name not in found:
            found.append(name)
    return ", ".join(found) or None


def _facts(user: UserModel, scores: Scores, chosen: str, how: str, inside: list[str], apart: float) -> dict:
    """The manifest's ``model``: what the model is, its origin and the input it was trained on."""
    model, config = user.model, user.record.get("config", {})
    arch = config.get("arch", model.name) if user.origin == TRAINED_HERE else model.name
    known = ARCHITECTURES.get(arch)
    summary = known.summary if known else f"{type(model).__name__} of {len(layer_chain(model) or model.layers)} layers"
    return {
        "architecture": arch,
        "activation": config.get("activation") if user.origin == TRAINED_HERE else _activations(model),
        "summary": summary,
        "params": count_params(model),
        "macs": count_macs(model),
        "name": model.name,
        "origin": user.origin,
        "source": {"file": user.path.name, "sha256": sha256_file(user.path), "class": type(model).__name__},
        "input": [int(d) for d in _shape(model.inputs[0])],
        "output": "logits" if scores.logits else "probabilities",
        "preprocessing": {
            "chosen": chosen,
            "label": PREPROCESSINGS[chosen].label,
            "how": how,
            "test_accuracy": {name: round(value, 6) for name, value in scores.accuracy.items()},
            "test_loss": {name: round(value, 6) for name, value in scores.loss.items()},
        },
        "inside_graph": inside,
        "answers_as_its_own_input": f"max |Δp| {apart:.1e} on {SELF_CHECK_DIGITS:,} test digits",
    }


def for_export(
    user: UserModel, mnist: Mnist, input_scale: str = AUTO, seed: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """The model to export (wrap) and the training record write_bundle takes, its ``model`` the facts above.
    Prints the accuracy under each candidate and the choice."""
    scores = score(user, mnist)
    chosen, how = choose(scores, input_scale)
    kind = type(user.model).__name__
    log(f"{user.path.name}: {kind} {user.model.name!r}, {user.origin}; its Keras test accuracy under each input:")
    for name, accuracy in scores.accuracy.items():
        mark = "  <- chosen" if name == chosen else ""
        log(f"  {PREPROCESSINGS[name].label:<50} {accuracy:7.2%}  cross-entropy {scores.loss[name]:.3f}{mark}")
    log(f"  input: {PREPROCESSINGS[chosen].label} ({how})")
    wrapped, inside = wrap(user, PREPROCESSINGS[chosen], scores.logits)
    apart = _self_check(user, wrapped, PREPROCESSINGS[chosen], scores.logits, mnist)
    for item in inside:
        log(f"  inside the exports: {item}")
    record = dict(user.record) if user.record else {"config": {"seed": 0}}
    record["config"] = dict(record.get("config", {})) or {"seed": 0}
    record["config"].setdefault("seed", 0)
    if seed is not None:
        record["config"]["seed"] = seed
    record["model"] = _facts(user, scores, chosen, how, inside, apart)
    return wrapped, record
