"""Training with batch normalization costs the exports nothing: the normalized graph trains, and its statistics
fold into the plain architecture's weights and biases, which then answer as the normalized graph does."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_edge.model import build_model, count_params
from lenet_edge.normalization import fold, normalized, sample_images

pytestmark = pytest.mark.slow  # TensorFlow builds the graphs (its import alone can pass the fast tier's limit)


@pytest.mark.parametrize("arch", ["classic", "seed-valid"])
def test_folded_plain_model_answers_as_the_normalized_graph(arch):
    import keras

    keras.utils.set_random_seed(3)
    model = build_model(arch, "tanh")
    trained = normalized(keras, model, batch_size=256, steps_per_epoch=215)
    rng = np.random.default_rng(3)
    for layer in trained.layers:  # statistics far from the identity, as training leaves them
        if hasattr(layer, "moving_variance"):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2, channels))
            layer.beta.assign(rng.normal(0, 0.5, channels))
            layer.moving_mean.assign(rng.normal(0, 0.3, channels))
            layer.moving_variance.assign(rng.uniform(0.2, 3, channels))
    fold(keras, model, trained)
    digits = rng.integers(0, 256, (32, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(digits)), np.asarray(trained(digits)), atol=1e-5)
    assert count_params(model) == count_params(build_model(arch, "tanh"))  # the published architecture, as it is


def test_the_output_layer_keeps_its_bias_and_softmax():
    import keras

    model = build_model("classic", "tanh")
    trained = normalized(keras, model, batch_size=256, steps_per_epoch=215)
    assert trained.layers[-1].get_config()["activation"] == "softmax"
    assert trained.layers[-1].use_bias
    assert [layer.name for layer in trained.layers if hasattr(layer, "moving_variance")] == ["C1", "C3", "C5", "F6"]
    # only the first convolution's 784 outputs an image make its statistics from part of the batch
    assert [layer.sample for layer in trained.layers if hasattr(layer, "sample")] == [16, 0, 0, 0]


def test_sampled_statistics_only_where_a_quarter_of_the_batch_gives_them():
    assert sample_images(784, 256) == 16
    assert sample_images(100, 256) == 0  # 126 images: the whole batch
    assert sample_images(784, 32) == 0  # a small batch: the whole of it
    assert sample_images(1, 256) == 0


def test_training_normalizes_with_the_statistics_it_saw():
    """In training the first convolution's outputs are normalized by its first 16 images' statistics (those
    images come out at zero mean and unit variance a channel, before the activation); the moving ones, which
    inference uses, move towards what it saw."""
    import keras

    keras.utils.set_random_seed(5)
    model = build_model("classic", "tanh")
    trained = normalized(keras, model, batch_size=256, steps_per_epoch=4)
    c1 = trained.get_layer("C1")
    c1.activation = keras.activations.linear  # to read what the activation would be given
    digits = np.random.default_rng(5).integers(0, 256, (64, 28, 28, 1)).astype(np.float32)
    seen = keras.Model(trained.inputs, c1.output)(digits, training=True)
    first = np.asarray(seen)[:16].reshape(-1, 6)
    np.testing.assert_allclose(first.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(first.var(0), 1, atol=5e-2)  # var / (var + epsilon)
    assert not np.allclose(np.asarray(c1.moving_mean), 0)
