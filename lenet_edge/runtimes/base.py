"""What every runtime's Runner shares: tensor descriptions, (de)quantization with the model's own
parameters, and batched prediction on raw uint8 digits. NumPy only."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

IMAGE_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the runtime reports it. ``-1`` marks a dynamic dimension;
    ``scale``/``zero_point`` are None for float tensors (real = (q - zero_point) * scale otherwise)."""

    name: str
    dtype: str
    shape: list[int]
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Real values (raw 0-255 pixels) to this tensor's dtype, quantizing with its own parameters."""
        if not self.quantized:
            return values.astype(self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(values.astype(np.float32) / self.scale + self.zero_point)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """This tensor's values as float32, dequantized with its own parameters."""
        if not self.quantized:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


class Runner(ABC):
    """A loaded model in one runtime: raw uint8 digits in, float32 probabilities [N, 10] out."""

    runtime: str = ""
    input: TensorSpec
    output: TensorSpec

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One inference on an already encoded batch [n, 28, 28, 1]; returns the raw output tensor."""

    @abstractmethod
    def _prepare(self, batch: np.ndarray) -> Callable[[], object]:
        """Put an encoded batch in place; return the bare inference call that bench times."""

    def prepared_call(self, images: np.ndarray) -> Callable[[], object]:
        """For timing: raw pixels encoded and set as the input now, outside the timed region; the returned
        zero-argument call is the runtime's own inference call and nothing else."""
        return self._prepare(self.input.encode(np.asarray(images).reshape((-1, *IMAGE_SHAPE))))

    def predict(self, images: np.ndarray, batch_size: int = 1000, raw: bool = False) -> np.ndarray:
        """Probabilities for raw pixels (uint8 [N, 28, 28] or [N, 28, 28, 1]), in batches.

        ``raw=True`` is the app's path: pixels only cast to the input dtype, the output tensor returned as it
        comes, no (de)quantization. A model with a fixed batch dimension is fed in chunks of exactly that size
        (the last one padded)."""
        images = np.asarray(images).reshape((-1, *IMAGE_SHAPE))
        fixed = self.input.shape[0]
        step = fixed if fixed > 0 else batch_size
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            real = len(chunk)
            if fixed > 0 and real < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - real, *IMAGE_SHAPE), chunk.dtype)])
            if raw:
                outputs.append(self._run(chunk.astype(self.input.dtype))[:real])
            else:
                outputs.append(self.output.decode(self._run(self.input.encode(chunk)))[:real])
        if not outputs:
            return np.zeros((0, 10), np.float32)
        return np.concatenate(outputs)
