"""Import TensorFlow without its start-up chatter (absl lines printed before logging is set up), or say in one
line that this install has none."""

from __future__ import annotations

import importlib.util
import os
import sys

from .console import silenced
from .errors import UsageError


def import_tensorflow(threads: int | None = None):
    """Return the tensorflow module, imported and its devices initialised quietly; ``threads`` sets its
    intra-op threads when this call is the one that starts TensorFlow."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if importlib.util.find_spec("tensorflow") is None:
        raise UsageError(
            "training and export need TensorFlow: pip install 'lenet-edge[train]' (this install is runtime-only)"
        )
    with silenced():
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.list_physical_devices()
        tf.constant(0)  # the first op initialises the device context (and its CUDA probe)
    tf.get_logger().setLevel("ERROR")
    return tf
