"""A whole model saved to HDF5 by Keras 2 (``model.save('lenet.h5')`` under Keras 2.0 to 2.x, standalone
``keras`` or ``tf.keras``): its config checked for code, loaded by Keras 2 (tf-keras), rebuilt in Keras 3.

May import: base, configs, hdf5, keras2, errors and the standard library.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError, first_line
from .base import Loaded
from .configs import keras2_layer_classes, refuse_code_keras2
from .hdf5 import Header
from .keras2 import import_tf_keras, predictor, rebuild


def load_keras2_h5(path: Path, header: Header) -> Loaded:
    """The Keras 2 model of ``path`` as Keras 3, answering as the file does."""
    tf_keras = import_tf_keras(path, header.keras_version)
    refuse_code_keras2(path, header.model_config, keras2_layer_classes())
    try:
        model2 = tf_keras.models.load_model(path, compile=False)
    except Exception as exc:  # whatever Keras 2 raises, one line naming the cause
        raise UsageError(f"{path}: Keras 2 cannot load it: {first_line(exc)[:200] or type(exc).__name__}") from None
    return Loaded(rebuild(model2, path), "keras2-h5", header.keras_version, [path], predictor(model2))
