"""Keras (TensorFlow) Runner: the reference every export is judged against. Needs TensorFlow."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .base import Runner, TensorSpec


class KerasRunner(Runner):
    runtime = "keras"

    def __init__(
        self, path: str | Path | None = None, threads: int | None = None, model=None, mode: str = "predict_on_batch"
    ):
        """Load a .keras file, or wrap a model already in memory (``model=``). ``mode`` is how bench calls it:
        ``predict_on_batch`` or ``tf.function``. ``threads`` holds only if TensorFlow is not yet running."""
        super().__init__(path or "<in memory>", threads)
        from ..tf_quiet import import_tensorflow

        self.tf = import_tensorflow(threads)
        self.mode = mode
        if model is None:
            import keras

            model = keras.saving.load_model(path, compile=False)
        self.model = model
        self.input = TensorSpec(
            model.inputs[0].name, "float32", [-1 if d is None else d for d in model.inputs[0].shape]
        )
        shape = [-1 if d is None else d for d in model.outputs[0].shape]
        self.output = TensorSpec(model.output_names[0], "float32", shape)

    def _prepare(self, batch: np.ndarray):
        if self.mode == "tf.function":
            function = self.tf.function(self.model)
            tensor = self.tf.constant(batch)
            function(tensor)  # trace once, outside the timed region
            return functools.partial(function, tensor)
        return functools.partial(self.model.predict_on_batch, batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))
