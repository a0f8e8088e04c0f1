"""Keras (TensorFlow) Runner: the reference every export is judged against. Needs TensorFlow."""

from __future__ import annotations

import functools

import numpy as np

from ..manifest import Tensor
from ..tensorflow_loader import import_tensorflow
from .base import InProcessRunner


class KerasRunner(InProcessRunner):
    """A .keras file, or a model already in memory (``model=``, with no path). Delegates are how bench calls
    it: ``tf.function`` or ``predict_on_batch``. ``threads`` holds only if TensorFlow is not yet running."""

    runtime = "keras"
    library = "keras"

    def __init__(self, path=None, threads: int | None = None, delegate: str | None = None, model=None):
        super().__init__(path or "<in memory>", threads, delegate, model=model)

    def _load(self, threads: int | None, model=None, **options) -> None:
        self.tf = import_tensorflow(threads)
        if model is None:
            import keras

            model = keras.saving.load_model(self.path, compile=False)
        self.model = model
        self.input = Tensor(model.inputs[0].name, "float32", [-1 if d is None else d for d in model.inputs[0].shape])
        shape = [-1 if d is None else d for d in model.outputs[0].shape]
        names = getattr(model, "output_names", None) or [model.layers[-1].name]  # a Sequential has no output_names
        self.output = Tensor(names[0], "float32", shape)
        return None

    def precision(self) -> str:
        dtypes = {weight.dtype for weight in self.model.weights}
        return "fp32" if dtypes <= {"float32"} else ",".join(sorted(map(str, dtypes)))

    def _prepare(self, batch: np.ndarray):
        if self.delegate == "tf.function":
            function = self.tf.function(self.model)
            tensor = self.tf.constant(batch)
            function(tensor)  # trace once, outside the timed region
            return functools.partial(function, tensor)
        return functools.partial(self.model.predict_on_batch, batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))
