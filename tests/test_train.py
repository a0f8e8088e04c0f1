"""A short real training run on a slice of MNIST: it learns, it records, and a seed repeats it exactly."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_edge.train import TrainConfig, train

pytestmark = pytest.mark.slow  # real training runs

QUICK = {"limit": 4000, "validation": 500, "epochs": 2, "seed": 11}


@pytest.mark.parametrize("batch_norm", [True, False])
def test_short_training_learns_and_records(mnist, batch_norm):
    result = train(mnist, TrainConfig(**QUICK, augment=False, batch_norm=batch_norm), verbose=0)
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in result.history.values())
    assert result.test_accuracy > 0.85  # 3,500 images, 2 epochs: far above chance
    assert 1 <= result.best_epoch <= 2
    assert result.val_accuracy == max(result.history["val_accuracy"])
    record = result.describe()
    assert record["config"]["seed"] == 11 and record["deterministic"] is True
    assert [layer.name for layer in result.model.layers if layer.weights] == ["C1", "C3", "C5", "F6", "probabilities"]


def test_same_seed_same_weights_with_augmentation(mnist):
    first = train(mnist, TrainConfig(**QUICK, augment=True), verbose=0)
    second = train(mnist, TrainConfig(**QUICK, augment=True), verbose=0)
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = train(mnist, TrainConfig(**{**QUICK, "seed": 12}, augment=True), verbose=0)
    assert not np.array_equal(first.model.get_weights()[0], other.model.get_weights()[0])
