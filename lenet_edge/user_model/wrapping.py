"""A loaded model wrapped so that every export takes raw pixels [batch, 28, 28, 1] 0-255 and answers as the
file answers its own preprocessed input: the padding to 32x32, the scaling and, for a model ending in logits, a
softmax folded into the graph; proven on 1,000 test digits against the file as its own Keras reads it before
anything is written; and the manifest's facts about the model (its form and the Keras that wrote it included).

May import: base, preprocessing, model, model_origin, data, files, errors, console (Keras lazily).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..console import log
from ..data import Mnist
from ..errors import UsageError
from ..model import ARCHITECTURES, INPUT_NAME, count_macs, count_params, layer_chain
from ..model_origin import PREPROCESSINGS, TRAINED_HERE, Preprocessing
from .base import FORMS, UserModel, sha256_files, shape_of
from .preprocessing import AUTO, Scores, choose, score, softmax

SELF_CHECK_DIGITS = 1000  # test digits on which the wrapped model must answer as the file under its preprocessing
SELF_CHECK_TOLERANCE = 1e-4


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
        x = keras.layers.Reshape(shape_of(user.model.inputs[0]), name=_unique("drop_channel", taken))(x)
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


def self_check(user: UserModel, wrapped, preprocessing: Preprocessing, logits: bool, mnist: Mnist) -> float:
    """The wrapped model on raw digits against the file on its own preprocessing, read by the Keras that wrote it
    (for a Keras 2 file: Keras 2, not the Keras 3 rebuild): the largest |Δp|."""
    digits = mnist.x_test[:SELF_CHECK_DIGITS]
    theirs = user.own(user.inputs(digits, preprocessing))
    theirs = softmax(theirs) if logits else theirs
    ours = np.asarray(wrapped.predict(digits[..., None].astype(np.float32), 500, verbose=0))
    apart = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
    if not apart <= SELF_CHECK_TOLERANCE:
        raise UsageError(
            f"{user.path}: with its preprocessing folded in, the model answers raw pixels differently from the file "
            f"on its own input (by up to {apart:.1e}); it cannot be exported as it is"
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


def _source(user: UserModel) -> dict[str, Any]:
    """The manifest's ``model.source``: the file (or folder), its form, the Keras that wrote it, its checksum."""
    loaded = user.loaded
    files = loaded.files if loaded is not None else [user.path]
    source: dict[str, Any] = {
        "file": user.path.name,
        "sha256": sha256_files(files, user.path),
        "class": type(user.model).__name__,
        "form": user.form,
        "form_label": FORMS[user.form],
        "keras_version": loaded.keras_version if loaded is not None else "unknown",
    }
    if len(files) > 1 and not user.path.is_dir():
        source["files"] = [path.name for path in files]
    if loaded is not None and loaded.notes:
        source["read_as"] = list(loaded.notes)
    return source


def facts(user: UserModel, scores: Scores, chosen: str, how: str, inside: list[str], apart: float) -> dict:
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
        "source": _source(user),
        "input": [int(d) for d in shape_of(model.inputs[0])],
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
    Prints the form, the accuracy under each candidate and the choice."""
    scores = score(user, mnist)
    kind = type(user.model).__name__
    version = user.loaded.keras_version if user.loaded is not None else "unknown"
    log(f"{user.path.name}: {kind} {user.model.name!r}, {user.origin}, {FORMS[user.form]} written by Keras {version}")
    for note in user.loaded.notes if user.loaded is not None else []:
        log(f"  {note}")
    log("  its Keras test accuracy under each input:")
    chosen, how = choose(scores, input_scale, user.path)
    for name, accuracy in scores.accuracy.items():
        mark = "  <- chosen" if name == chosen else ""
        log(f"  {PREPROCESSINGS[name].label:<50} {accuracy:7.2%}  cross-entropy {scores.loss[name]:.3f}{mark}")
    log(f"  input: {PREPROCESSINGS[chosen].label} ({how})")
    wrapped, inside = wrap(user, PREPROCESSINGS[chosen], scores.logits)
    apart = self_check(user, wrapped, PREPROCESSINGS[chosen], scores.logits, mnist)
    for item in inside:
        log(f"  inside the exports: {item}")
    record = dict(user.record) if user.record else {"config": {"seed": 0}}
    record["config"] = dict(record.get("config", {})) or {"seed": 0}
    record["config"].setdefault("seed", 0)
    if seed is not None:
        record["config"]["seed"] = seed
    record["model"] = facts(user, scores, chosen, how, inside, apart)
    return wrapped, record
