"""A SavedModel folder written by Keras 2 (``model.save('lenet')`` under TensorFlow 2.x, the default without a
suffix): its Keras metadata (``keras_metadata.pb``, or inside ``saved_model.pb`` for folders of TensorFlow
2.0-2.4) read and checked for code first, the model revived by Keras 2 (tf-keras) from its configs and
weights (no Python of the user's runs), then rebuilt in Keras 3. A SavedModel without Keras metadata (its
serving signature alone) is refused in one line.

May import: base, configs, keras2, errors and the standard library (TensorFlow's protobufs lazily).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError, first_line
from .base import MAX_MODEL_BYTES, Loaded
from .configs import MODEL_CLASSES, keras2_layer_classes, refuse_code_keras2
from .keras2 import import_tf_keras, predictor, rebuild

METADATA = "keras_metadata.pb"
MAX_FILES = 10_000


def folder_files(folder: Path) -> list[Path]:
    """Every regular file of the folder, bounded in number and size before anything is read."""
    files, total = [], 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise UsageError(f"{folder}: holds a symbolic link ({path.relative_to(folder)}); not a SavedModel folder")
        if path.is_file():
            files.append(path)
            total += path.stat().st_size
        if len(files) > MAX_FILES or total > MAX_MODEL_BYTES:
            raise UsageError(f"{folder}: more files or bytes than a digit classifier's SavedModel; not one")
    return files


def _metadata_nodes(folder: Path) -> Iterator[dict]:
    """The Keras metadata of every object of the SavedModel, as JSON objects."""
    if (folder / METADATA).is_file():
        from tf_keras.protobuf import saved_metadata_pb2

        saved = saved_metadata_pb2.SavedMetadata()
        saved.ParseFromString((folder / METADATA).read_bytes())
        texts = [node.metadata for node in saved.nodes]
    else:  # TensorFlow 2.0-2.4 kept it in the object graph
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((folder / "saved_model.pb").read_bytes())
        graph = saved_model.meta_graphs[0].object_graph_def if saved_model.meta_graphs else None
        texts = [node.user_object.metadata for node in (graph.nodes if graph else []) if node.HasField("user_object")]
    for text in texts:
        try:
            found = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(found, dict):
            yield found


def _version(node: Any) -> str | None:
    if isinstance(node, dict):
        if isinstance(node.get("keras_version"), str):
            return node["keras_version"]
        for value in node.values():
            if (found := _version(value)) is not None:
                return found
    return None


def load_savedmodel(folder: Path) -> Loaded:
    """The Keras 2 model of a SavedModel folder as Keras 3, answering as Keras 2 revives it."""
    files = folder_files(folder)
    tf_keras = import_tf_keras(folder, "2 (a SavedModel folder)")
    try:
        nodes = list(_metadata_nodes(folder))
    except Exception as exc:  # a broken protobuf: one line
        raise UsageError(f"{folder}: an unreadable SavedModel ({first_line(exc)[:150]})") from None
    root = nodes[0] if nodes else None  # the first object is the model itself
    if root is None or root.get("class_name") not in MODEL_CLASSES:
        kind = root.get("class_name", "?") if root else None
        what = f"a subclassed {kind} model" if kind else "no Keras metadata (its serving signature alone)"
        raise UsageError(
            f"{folder}: a TensorFlow SavedModel with {what}, which Keras cannot rebuild as layers; save the Keras "
            "Sequential or functional model itself (model.save('lenet.h5') or model.save('lenet.keras'))"
        )
    version = _version(root) or "2 (version not recorded)"
    refuse_code_keras2(folder, {"class_name": root["class_name"], "config": root.get("config")}, keras2_layer_classes())
    try:
        model2 = tf_keras.models.load_model(folder, compile=False)
    except Exception as exc:  # whatever Keras 2 raises, one line naming the cause
        raise UsageError(f"{folder}: Keras 2 cannot load this SavedModel: {first_line(exc)[:200]}") from None
    return Loaded(rebuild(model2, folder), "keras2-savedmodel", version, files, predictor(model2))
