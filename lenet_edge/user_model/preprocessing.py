"""The preprocessing a brought model was trained on, found by scoring the 10,000 MNIST test digits under each
candidate (or named with --input-scale); a model that no candidate lets read better than chance is refused:
it is no digit classifier (untrained, a dead output layer, or trained on something else).

May import: base, model_origin, data, errors and NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Mnist
from ..errors import UsageError
from ..model_origin import PREPROCESSINGS
from .base import UserModel

AUTO = "auto"
INPUT_SCALES = (AUTO, *PREPROCESSINGS)
CHANCE = 0.2  # a best score below this reads no candidate: the model is not trained (or not on MNIST)
CLOSE_PT = 1.0  # candidates this close to the best accuracy are a close call, settled by the cross-entropy


def probabilities(outputs: np.ndarray) -> bool:
    """Whether outputs are already probabilities (non-negative rows summing to 1), not logits."""
    finite = np.isfinite(outputs).all()
    return bool(finite and outputs.min() >= 0 and np.abs(outputs.sum(1) - 1).max() < 1e-3)


def softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = outputs.astype(np.float64) - outputs.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


@dataclass
class Scores:
    """The model on the test digits under each preprocessing candidate."""

    accuracy: dict[str, float]
    loss: dict[str, float]  # mean cross-entropy of the true digit (the softmax of logits)
    logits: bool  # the outputs are not probabilities under any candidate: a softmax goes into the export


def score(user: UserModel, mnist: Mnist) -> Scores:
    """Accuracy and cross-entropy of the model on the 10,000 test digits under every candidate."""
    accuracy, loss, normalized = {}, {}, []
    for name, preprocessing in PREPROCESSINGS.items():
        outputs = user.predict(user.inputs(mnist.x_test, preprocessing))
        normalized.append(probabilities(outputs))
        accuracy[name] = float(np.mean(outputs.argmax(1) == mnist.y_test))
        found = outputs.astype(np.float64) if normalized[-1] else softmax(outputs)
        true = np.nan_to_num(found[np.arange(len(mnist.y_test)), mnist.y_test], nan=0.0)
        loss[name] = float(-np.mean(np.log(np.clip(true, 1e-12, None))))
    return Scores(accuracy, loss, logits=not any(normalized))


def choose(scores: Scores, named: str = AUTO, path: object = "the model") -> tuple[str, str]:
    """The preprocessing to fold in, and how it was found: the one named; else the candidate under which the
    model reads the test digits best, candidates within CLOSE_PT of that accuracy settled by the lowest
    cross-entropy (neither alone is enough: a briefly trained model can read digits a little better under
    MNIST mean/std than under the pixels / 255 it was trained on, and a model whose batch-norm statistics are
    still settling can be better calibrated under the wrong scale). UsageError (exit 2) when no candidate reads
    the digits better than chance: no digit classifier is exported as one."""
    if named != AUTO:
        return named, "named with --input-scale"
    best = max(scores.accuracy.values())
    if best < CHANCE:
        top = max(scores.accuracy, key=lambda name: scores.accuracy[name])
        raise UsageError(
            f"{path}: reads no MNIST digit: {best:.1%} at best (under {PREPROCESSINGS[top].label}), chance is 10%; "
            "not a trained digit classifier (name its preprocessing with --input-scale to export it anyway)"
        )
    close = [name for name, accuracy in scores.accuracy.items() if (best - accuracy) * 100 <= CLOSE_PT]
    if len(close) == 1:
        return close[0], "found by scoring the 10,000 test digits under each candidate: the best accuracy"
    chosen = min(close, key=lambda name: scores.loss[name])
    return chosen, (
        f"found by scoring the 10,000 test digits under each candidate: {len(close)} within {CLOSE_PT:g} pt of the "
        "best accuracy, the lowest cross-entropy of them; a close call, name it with --input-scale if it is wrong"
    )
