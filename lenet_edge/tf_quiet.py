"""Import TensorFlow without its start-up chatter (absl lines printed before logging is set up)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

from .errors import UsageError


@contextlib.contextmanager
def silenced(fds: tuple[int, ...] = (2,)):
    """Point file descriptors (2: stderr, 1: stdout) at /dev/null, C++ logging included, and the matching
    Python streams too (whatever they are: a test harness replaces them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as devnull, contextlib.ExitStack() as python_streams:
            for fd in fds:
                os.dup2(devnull.fileno(), fd)
                redirect = contextlib.redirect_stdout if fd == 1 else contextlib.redirect_stderr
                python_streams.enter_context(redirect(devnull))
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


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
