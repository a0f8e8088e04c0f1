"""Keras 2 (the ``tf-keras`` package) imported only when a file needs it, and a model it loaded rebuilt in
Keras 3: the same layers from their configs (the Keras 2 keys Keras 3 does not take dropped, none of them
changing what a layer computes), then every layer's weights copied. The rebuild answers as the Keras 2 model
does; the self-check of export proves it on the test digits before anything is written.

May import: errors, the TensorFlow loader and the standard library (Keras and tf_keras lazily).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError, first_line
from ..tensorflow_loader import import_tensorflow
from .base import SCORE_BATCH, Predict

# Keras 2 config keys Keras 3 does not take. The initializers, regularizers and constraints only shape training
# (the weights are copied); the rest are Keras 2 options of BatchNormalization and InputLayer that leave the
# inference of a saved model unchanged.
_TRAINING_ONLY = ("_initializer", "_regularizer", "_constraint")
_DROPPED = {
    "activity_regularizer",
    "batch_input_shape",
    "ragged",
    "renorm",
    "renorm_clipping",
    "renorm_momentum",
    "fused",
    "virtual_batch_size",
    "adjustment",
}
MODEL_CLASSES = ("Sequential", "Functional", "Model")


def import_tf_keras(path: Path, version: str):
    """The tf_keras module; a one-line UsageError naming the install when this one has none."""
    import_tensorflow()
    if importlib.util.find_spec("tf_keras") is None:
        raise UsageError(
            f"{path}: written by Keras {version}; reading it needs Keras 2 beside Keras 3: "
            "pip install 'lenet-edge[train]' (it brings tf-keras)"
        )
    import tf_keras

    return tf_keras


def _layer_config(entry: dict) -> dict:
    """One layer entry of a Keras 2 (tf-keras) model config, as Keras 3 builds it."""
    kind = entry.get("class_name")
    config = dict(entry.get("config", {}))
    if kind in MODEL_CLASSES:
        return entry | {"config": model_config(config)}
    if kind == "InputLayer":
        config["batch_shape"] = config.pop("batch_input_shape", config.get("batch_shape"))
    for key in list(config):
        if key in _DROPPED or key.endswith(_TRAINING_ONLY):
            config.pop(key)
    axis = config.get("axis")
    if kind == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        config["axis"] = axis[0]  # Keras 2 stores the axis it normalizes as a list, Keras 3 takes one int
    return entry | {"config": config}


def model_config(config: dict) -> dict:
    """A Sequential's or functional model's config (``get_config()``) with every layer's made Keras 3's."""
    return config | {"layers": [_layer_config(entry) for entry in config.get("layers", [])]}


def _copy_weights(source, target, path: Path) -> None:
    """Each Keras 2 layer's weights into the Keras 3 layer of the same name."""
    for layer in target.layers:
        weights = source.get_layer(layer.name).get_weights()
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(w.shape) for w in weights] != shapes:
            raise UsageError(
                f"{path}: layer {layer.name!r} holds weights of shapes {[tuple(w.shape) for w in weights]}, its "
                f"Keras 3 twin takes {shapes}; this model cannot be rebuilt in Keras 3"
            )
        layer.set_weights(weights)


def rebuild(model2: Any, path: Path):
    """The Keras 3 twin of a model Keras 2 loaded, with its weights; UsageError in one line when a layer has
    none."""
    import keras

    kind = type(model2).__name__
    if kind not in MODEL_CLASSES:
        raise UsageError(
            f"{path}: a subclassed {kind} model, which Keras 3 cannot rebuild layer by layer; save a Sequential "
            "or functional model"
        )
    config = model_config(model2.get_config())
    try:
        builder = keras.Sequential if kind == "Sequential" else keras.Model
        model3 = builder.from_config(config)
    except Exception as exc:  # a layer or option Keras 3 does not have: named in one line
        raise UsageError(f"{path}: cannot rebuild this Keras 2 model in Keras 3: {first_line(exc)[:200]}") from None
    _copy_weights(model2, model3, path)
    return model3


def predictor(model2: Any) -> Predict:
    """How the Keras 2 model answers a batch of images (the self-check's reference)."""

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model2.predict(images, batch_size=SCORE_BATCH, verbose=0))

    return predict
