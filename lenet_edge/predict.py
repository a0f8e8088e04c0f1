"""predict: read digits from pictures with an exported model. Each picture becomes a 28×28 MNIST digit
(preprocess.py); the readable ones are answered in one batch; each unreadable one is named with its reason.
NumPy, Pillow and the runtimes only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import LenetEdgeError, UsageError, one_line
from .formats import FORMATS
from .preprocess import mnist_digit, require_pillow, save_digit
from .runtimes import RuntimeNotInstalled, open_runner

MODEL_SUFFIXES = {Path(f.file).suffix: f.runtime for f in FORMATS}  # what predict opens a model file with


@dataclass
class PictureAnswer:
    """One picture: the model's answer, or why the picture could not be read."""

    image: str
    label: int | None = None
    confidence: float | None = None
    probabilities: list[float] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict:
        """--json's row: the answer, or the picture and its error."""
        if self.error:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "label": self.label, "confidence": self.confidence,
                "probabilities": self.probabilities}  # fmt: skip


def predict_pictures(model: Path, images: list[str], save_digits: Path | None = None) -> list[PictureAnswer]:
    """Answer every picture given, in order (a picture named twice once); UsageError for a model that is not a
    digit model of a bundle. ``save_digits``: also write each 28×28 digit the model saw as PNG."""
    runtime = MODEL_SUFFIXES.get(model.suffix)
    if runtime is None or not model.is_file():
        raise UsageError(f"{model}: not a .tflite or .onnx file")
    require_pillow()  # one line naming the extra, not one per picture
    digits: dict[str, np.ndarray] = {}
    unreadable: dict[str, str] = {}
    for image in dict.fromkeys(images):
        try:
            digits[image] = mnist_digit(image)
        except LenetEdgeError as exc:  # named after the picture, whatever the reason says
            unreadable[image] = str(exc) if str(exc).startswith(f"{image}: ") else f"{image}: {exc}"
    answers = dict(zip(digits, _answer(model, runtime, digits), strict=True)) if digits else {}
    if digits and save_digits is not None:
        save_digits.mkdir(parents=True, exist_ok=True)
        for image, digit in digits.items():
            save_digit(digit, save_digits / f"{Path(image).stem}_28x28.png")
    return [
        PictureAnswer(image, error=unreadable[image]) if image in unreadable else _answered(image, answers[image])
        for image in dict.fromkeys(images)
    ]


def _answer(model: Path, runtime: str, digits: dict[str, np.ndarray]) -> np.ndarray:
    """The model's probabilities for the digits, [len(digits), 10]."""
    try:
        runner = open_runner(runtime, model)
    except RuntimeNotInstalled as exc:  # a one-runtime device given the other runtime's file
        raise UsageError(f"{model}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"{model}: cannot be loaded by {runtime} ({type(exc).__name__})") from None
    try:
        probabilities = runner.predict(np.stack(list(digits.values())))
    except Exception as exc:  # a foreign model: another input shape or type
        raise UsageError(
            f"{model}: does not answer 28×28 raw-pixel digits with 10 probabilities ({one_line(exc)[:160]})"
        ) from None
    if probabilities.shape != (len(digits), 10):
        raise UsageError(f"{model}: answers {probabilities.shape[1:]}, not 10 probabilities")
    return probabilities


def _answered(image: str, p: np.ndarray) -> PictureAnswer:
    rounded = p.round(6).tolist()
    return PictureAnswer(image, int(p.argmax()), float(p.max()), rounded)
