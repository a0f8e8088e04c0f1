"""The one Runner contract every runtime fulfils: load a file, run batches of raw uint8 digits, time calls, report
the first call, the memory and (where the runtime has one) a per-op profile. NumPy only."""

from __future__ import annotations

import importlib.util
import resource
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import LenetEdgeError
from ..formats import RUNTIMES
from ..manifest import Tensor
from ..measure import time_calls

IMAGE_SHAPE = (28, 28, 1)


def tflite_precision(computed: set[str], stored: set[str]) -> str:
    """What a .tflite computes in, from the dtypes its ops output (``computed``) and the dtypes it stores
    (``stored``): int8 when ops compute on int8/uint8 tensors (full-integer); dynamic when only weights are int8;
    fp16 when weights are stored as float16; else fp32."""
    if computed & {"int8", "uint8"}:
        return "int8"
    if "int8" in stored:
        return "dynamic"
    return "fp16" if "float16" in stored else "fp32"


def tflite_tensor(detail: dict) -> Tensor:
    """A tensor of a .tflite as LiteRT's interpreter details it (name, dtype, shape signature, quantization)."""
    scale, zero_point = detail["quantization"]
    quantized = scale != 0.0
    return Tensor(
        name=detail["name"],
        dtype=np.dtype(detail["dtype"]).name,
        shape=[int(d) for d in detail["shape_signature"]],
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


class RuntimeNotInstalled(LenetEdgeError):
    """A runtime whose library this install lacks (a device install with one runtime): one line, with the pip
    command that brings it."""

    exit_code = 2


class Runner(ABC):
    """A model file loaded in one runtime with one delegate: raw uint8 digits in, float32 probabilities out.

    ``load_ms`` is the time the load took (the runtime's import included, as an app's cold start pays it).
    ``library`` is the module that loads the runtime: imported alone, it is the baseline a model's memory is
    measured against. ``distribution`` is the package that brings it and ``install`` what to pip install for it
    (None: no such check here; Keras says so through the TensorFlow loader, the page's runtimes through
    ``wasm.browser_missing``)."""

    runtime: str = ""
    library: str | None = None
    distribution: str | None = None
    install: str | None = None
    input: Tensor
    output: Tensor

    @classmethod
    def missing(cls) -> str | None:
        """Why this runtime cannot load here (its library is not installed), or None. Nothing is imported."""
        if cls.library is None or cls.distribution is None:
            return None
        try:
            found = importlib.util.find_spec(cls.library.split(".")[0]) is not None
        except ValueError:  # a module already imported without a spec: it is here
            found = True
        return None if found else f"{cls.distribution} is not installed here (pip install {cls.install})"

    def __init__(self, path: str | Path, threads: int | None = None, delegate: str | None = None, **options):
        if reason := self.missing():
            raise RuntimeNotInstalled(reason)
        self.path = Path(path)
        delegates = RUNTIMES[self.runtime].delegates
        self.delegate = delegate or next(iter(delegates))
        if self.delegate not in delegates:
            raise ValueError(f"{self.runtime} has no delegate {self.delegate!r} (it has {', '.join(delegates)})")
        start = time.perf_counter()
        own = self._load(threads, **options)
        self.load_ms = own if own is not None else (time.perf_counter() - start) * 1e3

    @abstractmethod
    def _load(self, threads: int | None, **options) -> float | None:
        """Load ``self.path``; set ``input`` and ``output``. Return the load time in ms if the runtime measures
        it itself (the page does), else None."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One inference on an already encoded batch [n, 28, 28, channels]; returns the raw output tensor."""

    @abstractmethod
    def time_calls(self, images: np.ndarray, seconds: float) -> np.ndarray:
        """Nanoseconds per inference call on ``images`` (one batch, raw pixels), after a warm-up, for about
        ``seconds``. The timed region is the runtime's own inference call and nothing else."""

    @abstractmethod
    def first_call_ms(self, images: np.ndarray) -> float:
        """The time of the first inference after load (on ``images`` for an in-process runtime)."""

    def peak_rss_mb(self) -> float | None:
        """Peak memory of the process running the model, in MB (None where the runtime is another process's)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    @abstractmethod
    def precision(self) -> str | None:
        """What the file computes in, read from the file itself (not from any manifest): fp32, fp16, dynamic
        or int8, as in formats.PRECISIONS; None where the runtime cannot tell."""

    def op_profile(self, runs: int = 300) -> dict | None:
        """Where the time goes, op by op, if the runtime can tell (None otherwise)."""
        return None

    def close(self) -> None:  # noqa: B027 (an optional hook: most runners hold nothing to release)
        """Release what the runner holds beyond its own memory (a browser page)."""

    def pixels(self, images: np.ndarray) -> np.ndarray:
        """Raw gray digits (uint8 [N, 28, 28] or [N, 28, 28, 1]) in the input's layout: a model that takes an RGB
        image gets each digit as R = G = B, as a camera or a canvas gives a gray picture."""
        images = np.asarray(images).reshape((-1, *IMAGE_SHAPE))
        channels = self.input.shape[-1]
        return np.repeat(images, channels, axis=-1) if channels > 1 else images

    def predict(self, images: np.ndarray, batch_size: int = 1000, raw: bool = False) -> np.ndarray:
        """Probabilities for raw pixels (uint8 [N, 28, 28] or [N, 28, 28, 1]), in batches.

        ``raw=True`` is the app's path: pixels only cast to the input dtype, the output tensor returned as it
        comes, no (de)quantization. A model with a fixed batch dimension is fed in chunks of exactly that size
        (the last one padded)."""
        images = self.pixels(images)
        encoded = images.astype(self.input.dtype) if raw else self.input.encode(images)  # all at once: a model
        fixed = self.input.shape[0]  # of batch 1 runs one digit per call, and per-call NumPy work adds up
        step = fixed if fixed > 0 else batch_size
        outputs = []
        for start in range(0, len(encoded), step):
            chunk = encoded[start : start + step]
            real = len(chunk)
            if fixed > 0 and real < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - real, *chunk.shape[1:]), chunk.dtype)])
            outputs.append(self._run(chunk)[:real])
        if not outputs:
            return np.zeros((0, 10), np.float32)
        answers = np.concatenate(outputs)
        return answers if raw else self.output.decode(answers)


class InProcessRunner(Runner):
    """A runtime called from this Python process: timing wraps its bare inference call."""

    @abstractmethod
    def _prepare(self, batch: np.ndarray) -> Callable[[], object]:
        """Put an encoded batch in place; return the bare inference call."""

    def prepared_call(self, images: np.ndarray) -> Callable[[], object]:
        """Raw pixels encoded and set as the input now, outside any timed region; the returned zero-argument
        call is the runtime's own inference call and nothing else."""
        return self._prepare(self.input.encode(self.pixels(images)))

    def time_calls(self, images: np.ndarray, seconds: float) -> np.ndarray:
        return time_calls(self.prepared_call(images), seconds)

    def first_call_ms(self, images: np.ndarray) -> float:
        call = self.prepared_call(images)
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1e3
