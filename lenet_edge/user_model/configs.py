"""A saved model's config read as JSON before anything is loaded: what in it would run code (a Lambda layer,
whose Keras 2 config carries marshalled Python bytecode; a class only the user's code defines) is refused in
one line, and TensorFlow functions stored as activations (``tf.nn.softmax`` saved as the builtin
``softmax_v2``) are renamed to the Keras activations that compute the same.

May import: errors and the standard library; Keras only inside functions (the built-in class names).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError

# TensorFlow functions a layer's activation may name (tf.nn.*, tf.math.*, as Keras 3 stores them) -> the Keras
# activation computing the same
TF_FUNCTIONS = {
    "softmax_v2": "softmax",
    "softmax": "softmax",
    "log_softmax_v2": "log_softmax",
    "log_softmax": "log_softmax",
    "relu": "relu",
    "relu6": "relu6",
    "elu": "elu",
    "selu": "selu",
    "gelu": "gelu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
    "softsign": "softsign",
    "leaky_relu": "leaky_relu",
    "identity": "linear",
}
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
LAMBDA_ADVICE = "write it as a built-in layer (e.g. Rescaling) and save again"


def class_objects(node: Any) -> Iterator[dict]:
    """Every serialized object of a Keras config that names a class, depth first."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from class_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from class_objects(value)


def _name(item: dict) -> str:
    config = item.get("config")
    return str(config.get("name", "?")) if isinstance(config, dict) else "?"


def _tf_function(item: dict) -> str | None:
    """The Keras name of a TensorFlow function stored as ``{"module": "builtins", "class_name": "function",
    "config": "softmax_v2"}``, or None when ``item`` is not one."""
    if item.get("class_name") != "function" or not isinstance(item.get("config"), str):
        return None
    return TF_FUNCTIONS.get(item["config"])


def map_tf_functions(node: Any, renamed: list[str]) -> Any:
    """``node`` with every stored TensorFlow function that has a Keras twin replaced by the twin's name; each
    replacement said in ``renamed``."""
    if isinstance(node, dict):
        if (keras_name := _tf_function(node)) is not None:
            renamed.append(f"{node['config']} (a TensorFlow function) read as Keras's {keras_name!r}")
            return keras_name
        return {key: map_tf_functions(value, renamed) for key, value in node.items()}
    if isinstance(node, list):
        return [map_tf_functions(value, renamed) for value in node]
    return node


def refuse_code_keras3(path: Path, config: Any) -> None:
    """UsageError when a Keras 3 config holds a Lambda layer or a class registered by the user's own code."""
    for item in class_objects(config):
        if item.get("class_name") == "Lambda":
            raise UsageError(
                f"{path}: layer {_name(item)!r} is a Lambda layer, whose Python code Keras does not load (safe "
                f"mode); {LAMBDA_ADVICE}"
            )
        if item.get("class_name") == "function" and isinstance(item.get("config"), str):
            raise UsageError(
                f"{path}: names the function {item['config']!r}, which Keras cannot rebuild without its code; "
                "use a built-in activation name (e.g. activation='relu') and save again"
            )
        module = item.get("module")
        if item.get("registered_name") and not str(module or "").startswith("keras"):
            raise UsageError(
                f"{path}: layer {_name(item)!r} is {item['registered_name']}, a custom class Keras cannot rebuild "
                "without its code; export takes built-in Keras layers"
            )


def _layer_entries(node: Any) -> Iterator[dict]:
    """Every layer entry of a Keras 2 model config (a Sequential's or functional model's ``layers``, nested
    models' too), depth first."""
    if isinstance(node, dict):
        config = node.get("config")
        layers = config.get("layers") if isinstance(config, dict) else config if isinstance(config, list) else None
        if node.get("class_name") in MODEL_CLASSES and isinstance(layers, list):
            for layer in layers:
                if isinstance(layer, dict):
                    yield layer
                    yield from _layer_entries(layer)


def refuse_code_keras2(path: Path, config: Any, builtin: set[str]) -> None:
    """UsageError when a Keras 2 model config holds a Lambda layer (its config carries the function's marshalled
    bytecode, which loading would run), a layer class that is not one of Keras's ``builtin`` ones, or is not a
    Sequential or functional model (a subclassed model, saved without its code)."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        kind = config.get("class_name", "?") if isinstance(config, dict) else type(config).__name__
        raise UsageError(
            f"{path}: holds a {kind} model, a subclassed model Keras cannot rebuild without its code; save a "
            "Sequential or functional model, or its SavedModel folder (model.save('lenet'))"
        )
    for layer in _layer_entries(config):
        kind = str(layer.get("class_name", "?"))
        if kind == "Lambda" or any(item.get("class_name") == "Lambda" for item in class_objects(layer.get("config"))):
            raise UsageError(
                f"{path}: layer {_name(layer)!r} is a Lambda layer, whose Python code (stored as bytecode in the "
                f"file) is never run here; {LAMBDA_ADVICE}"
            )
        if kind not in builtin and kind not in MODEL_CLASSES:
            raise UsageError(
                f"{path}: layer {_name(layer)!r} is {kind}, a custom class Keras cannot rebuild without its code; "
                "export takes built-in Keras layers"
            )


def keras2_layer_classes() -> set[str]:
    """The layer classes Keras 2 (tf-keras) ships, by the names its configs use."""
    import tf_keras

    return {
        name
        for name in dir(tf_keras.layers)
        if isinstance(getattr(tf_keras.layers, name), type)
        and issubclass(getattr(tf_keras.layers, name), tf_keras.layers.Layer)
    }
