"""Training with batch normalization costs the exports nothing: the normalized graph trains, and its statistics
fold into the plain architecture's weights and biases, which then answer as the normalized graph does."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_edge.model import build_model, count_params
from lenet_edge.train import _normalized, fold

pytestmark = pytest.mark.slow  # TensorFlow builds the graphs (its import alone can pass the fast tier's limit)


@pytest.mark.parametrize("arch", ["classic", "seed-valid"])
def test_folded_plain_model_answers_as_the_normalized_graph(arch):
    import keras

    keras.utils.set_random_seed(3)
    model = build_model(arch, "tanh")
    normalized = _normalized(keras, model)
    rng = np.random.default_rng(3)
    for layer in normalized.layers:  # statistics far from the identity, as training leaves them
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, channels), rng.normal(0, 0.5, channels),
                               rng.normal(0, 0.3, channels), rng.uniform(0.2, 3, channels)])  # fmt: skip
    fold(keras, model, normalized)
    digits = rng.integers(0, 256, (32, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(digits)), np.asarray(normalized(digits)), atol=1e-5)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert count_params(model) == count_params(build_model(arch, "tanh"))  # the published architecture, as it is


def test_the_output_layer_keeps_its_bias_and_softmax():
    import keras

    model = build_model("classic", "tanh")
    normalized = _normalized(keras, model)
    assert normalized.layers[-1].get_config()["activation"] == "softmax"
    assert normalized.layers[-1].use_bias
    hidden = [layer for layer in normalized.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)]
    assert [layer.name for layer in hidden if not layer.use_bias] == ["C1", "C3", "C5", "F6"]
