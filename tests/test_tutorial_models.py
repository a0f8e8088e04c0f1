"""LeNets written the way tutorials write them (keras.Sequential, trained on pixels / 255 outside the model),
each trained briefly here, go through `lenet-edge export` as they are: exit 0, and every export passes verify's
default gates against the model's own answers under its own preprocessing.

Slow tier: each test fits a model (one epoch on a few thousand training digits, a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json

from lenet_edge.cli import main

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_tutorial_lenet.py"
TRAIN_IMAGES = 6_000
SEED = 3


def _example():
    """examples/train_tutorial_lenet.py as a module (it trains nothing when imported)."""
    spec = importlib.util.spec_from_file_location("train_tutorial_lenet", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _three_by_three(layers):
    """3x3 convolutions and Dense 128, with ReLU, max pooling, batch normalization and dropout."""
    return (28, [
        layers.Conv2D(6, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])  # fmt: skip


def _five_by_five_valid_logits(layers):
    """5x5 'valid' convolutions on 28x28 with tanh and average pooling, ending in logits (from_logits=True)."""
    return (28, [
        layers.Conv2D(6, 5, activation="tanh"),
        layers.AveragePooling2D(2),
        layers.Conv2D(16, 5, activation="tanh"),
        layers.AveragePooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="tanh"),
        layers.Dense(84, activation="tanh"),
        layers.Dense(10),
    ])  # fmt: skip


def _classic_same(layers):
    """The classic LeNet-5 on 28x28 (C1 'same'-padded, C5 a 5x5 convolution down to 1x1x120): the model of
    examples/train_tutorial_lenet.py, layer for layer."""
    import keras

    return (28, _example().tutorial_lenet(keras).layers)


def _classic_padded_32(layers):
    """The classic LeNet-5 of the paper: MNIST padded to 32x32 outside the model, 'valid' convolutions."""
    return (32, [
        layers.Conv2D(6, 5, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(16, 5, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(120, 5, activation="relu"),
        layers.Flatten(),
        layers.Dense(84, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])  # fmt: skip


TUTORIALS = {
    "3x3-dense128-relu-maxpool-batchnorm-dropout": _three_by_three,
    "5x5-valid-tanh-logits": _five_by_five_valid_logits,
    "classic-same-c5-conv": _classic_same,
    "classic-padded-32x32": _classic_padded_32,
}


def tutorial_inputs(images: np.ndarray, size: int) -> np.ndarray:
    """What the tutorials feed: pixels / 255, padded to 32x32 where the model takes that, with a channel axis."""
    x = images.astype("float32") / 255.0
    if size == 32:
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return x[..., None]


def train_tutorial(name: str, mnist, seed: int = SEED, images: int = TRAIN_IMAGES):
    """A tutorial's Sequential model, compiled and fitted as tutorials do (Adam, one epoch on ``images`` digits)."""
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    size, layers = TUTORIALS[name](keras.layers)
    model = keras.Sequential([keras.Input((size, size, 1)), *layers], name=name.replace("-", "_"))
    logits = layers[-1].get_config()["activation"] == "linear"
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=["accuracy"],
    )
    x, y = tutorial_inputs(mnist.x_train[:images], size), mnist.y_train[:images]
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, size, logits


@pytest.mark.parametrize("name", list(TUTORIALS))
def test_a_tutorial_lenet_exports_as_it_is_and_every_export_passes_verify(name, mnist, raw_mnist_dir, tmp_path):
    """Trained on pixels / 255 outside the model: export finds that preprocessing, folds it (and the padding, and a
    softmax after logits) into the graph, exit 0; the bundle's reference is the user's model on its own input,
    and verify passes every export against it with the default gates."""
    model, size, logits = train_tutorial(name, mnist)
    path = tmp_path / "my_lenet.keras"
    model.save(path)
    out = tmp_path / "bundle"
    data = ["--data", str(raw_mnist_dir)]
    assert (
        main(["export", str(path), "--out", str(out), "--calibration", "200", "--no-verify", "--no-bench", *data]) == 0
    )

    facts = manifest_json(out)["model"]
    assert facts["origin"] == "brought" and facts["preprocessing"]["chosen"] == "unit", facts["preprocessing"]
    assert facts["output"] == ("logits" if logits else "probabilities")
    assert facts["deployment_rewrite"] == "applied"
    inside = " ".join(facts["inside_graph"])
    assert ("32x32" in inside) == (size == 32) and ("softmax" in inside) == logits

    theirs = np.asarray(model.predict(tutorial_inputs(mnist.x_test, size), batch_size=1000, verbose=0), np.float64)
    if logits:
        theirs = np.exp(theirs - theirs.max(1, keepdims=True))
        theirs /= theirs.sum(1, keepdims=True)
    reference = np.load(out / "keras_test_probabilities.npy")
    np.testing.assert_allclose(reference, theirs, atol=1e-5)  # verify's reference: the model on its own input

    # the CPU runtimes, TFLite Micro and the C model; the GPU rows of these one-epoch models (88-91%, many near
    # ties between two digits) flip a few answers in 1,000 and miss the int8 and fp32 gates: tests/test_gpu.py
    # judges the GPU on the trained model
    assert main(["verify", str(out), "--gpu-digits", "0", *data]) == 0
