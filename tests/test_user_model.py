"""A Keras model the user already has, exported as it is: loaded whatever way Keras saved it (Sequential or
functional), the preprocessing it was trained on found on the test digits and folded into the graph (with the
padding to 32x32 and a softmax after logits), and refused in one line (exit 2) when it cannot be a digit
classifier here.

Fast tier: no model is fitted. The models whose preprocessing is known are the closed-form ridge classifier of
conftest, re-expressed exactly for each input scaling (the same answers under its own preprocessing as the
ridge under pixels / 255); trained tutorial models are in test_tutorial_models.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json, ridge_classifier

from lenet_edge.cli import main
from lenet_edge.model_origin import PREPROCESSINGS
from lenet_edge.runtimes import KerasRunner
from lenet_edge.user_model import choose, for_export, load_user_model, score


def _keras():
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    return keras


@pytest.fixture(scope="module")
def ridge(mnist) -> tuple[np.ndarray, np.ndarray]:
    """The ridge classifier of pixels / 255 (kernel [784, 10], bias [10]), solved once."""
    return ridge_classifier(mnist.x_train[:20_000], mnist.y_train[:20_000])


def linear_model(ridge, trained_on: str = "unit", size: int = 28, channel: bool = True, softmax: bool = True):
    """A Sequential Flatten -> Dense(10) that answers inputs preprocessed as ``trained_on`` exactly as the ridge
    answers pixels / 255; ``size`` 32: it takes MNIST padded to 32x32 (the border's weights zero)."""
    keras = _keras()
    kernel, bias = ridge
    p = PREPROCESSINGS[trained_on]
    # w·(x / 255) + b = w'·(s x + o) + b'  with  w' = w / (255 s),  b' = b - o Σw'
    kernel = kernel / (255.0 * p.scale)
    bias = bias - p.offset * kernel.sum(0)
    if size == 32:
        kernel = np.pad(kernel.reshape(28, 28, 10), ((2, 2), (2, 2), (0, 0))).reshape(-1, 10)
    shape = (size, size, 1) if channel else (size, size)
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax" if softmax else None),
        ],
        name=f"linear_{trained_on.replace('-', '_')}",
    )
    model.layers[-1].set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def saved(model, folder: Path, name: str = "model.keras") -> Path:
    path = folder / name
    model.save(path)
    return path


def test_a_sequential_model_loads_in_the_keras_runner(ridge, mnist, tmp_path):
    """The form every LeNet tutorial uses: a saved Sequential model opens in the Keras runner (no 'output_names'
    error) and answers 10 probabilities per digit."""
    path = saved(linear_model(ridge, "raw"), tmp_path)
    runner = KerasRunner(path)
    probabilities = runner.predict(mnist.x_test[:50])
    assert probabilities.shape == (50, 10)
    assert runner.output.shape == [-1, 10]
    assert np.mean(probabilities.argmax(1) == mnist.y_test[:50]) > 0.7


@pytest.mark.parametrize("trained_on", list(PREPROCESSINGS))
def test_the_preprocessing_a_model_was_trained_on_is_found(ridge, mnist, tmp_path, trained_on):
    """Raw pixels, pixels / 255, MNIST mean/std, -1 to 1: the scoring on the test digits picks the one the model
    was made for, and its accuracy there is the best of the four."""
    user = load_user_model(saved(linear_model(ridge, trained_on), tmp_path))
    scores = score(user, mnist)
    chosen, how = choose(scores)
    assert chosen == trained_on, (scores.accuracy, scores.loss)
    assert "scoring the 10,000 test digits" in how
    assert scores.accuracy[chosen] == max(scores.accuracy.values()) > 0.85
    assert not scores.logits


def test_a_named_input_scale_wins_over_the_scores(ridge, mnist, tmp_path):
    user = load_user_model(saved(linear_model(ridge, "unit"), tmp_path))
    assert choose(score(user, mnist), "signed") == ("signed", "named with --input-scale")


def _untrained(keras):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)], name="dead")
    model.layers[-1].set_weights([np.zeros((784, 10), np.float32), np.zeros(10, np.float32)])
    return model


def test_a_model_that_reads_no_digit_is_refused_with_its_best_score(mnist, raw_mnist_dir, tmp_path, capsys):
    """No candidate reads the digits better than chance (a dead output layer answers one class): export refuses
    it in one line, exit 2, naming the best score and the candidate; --input-scale names one and exports it."""
    path = saved(_untrained(_keras()), tmp_path)
    out = tmp_path / "bundle"
    args = ["export", str(path), "--out", str(out), "--data", str(raw_mnist_dir), "--formats", "onnx-fp32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads no MNIST digit: 9.8% at best (under raw pixels 0-255)" in err, err
    assert "--input-scale" in err and not out.exists()
    assert main([*args, "--input-scale", "unit", "--no-verify", "--no-bench"]) == 0
    assert manifest_json(out)["model"]["preprocessing"]["how"] == "named with --input-scale"


@pytest.mark.parametrize(
    ("trained_on", "size", "channel", "softmax"),
    [
        ("unit", 32, True, True),  # MNIST padded to 32x32 outside the model, as the classic tutorials do
        ("mean-std", 28, False, True),  # an input without its channel axis
        ("signed", 28, True, False),  # a model that ends in logits
        ("unit", 32, False, False),  # all three at once
    ],
)
def test_the_wrapped_model_answers_raw_pixels_as_the_model_answers_its_own_input(
    ridge, mnist, tmp_path, trained_on, size, channel, softmax
):
    """The model every export is made from takes raw 28x28 pixels and gives what the user's model gives its own
    preprocessed (padded) input, a softmax over logits appended; the manifest facts say what went inside."""
    model = linear_model(ridge, trained_on, size, channel, softmax)
    user = load_user_model(saved(model, tmp_path))
    wrapped, record = for_export(user, mnist)
    digits = mnist.x_test[:500]
    assert wrapped.inputs[0].shape[1:] == (28, 28, 1)
    ours = np.asarray(wrapped.predict_on_batch(digits[..., None].astype(np.float32)))
    side = (size - 28) // 2
    theirs_in = PREPROCESSINGS[trained_on].apply(np.pad(digits, ((0, 0), (side, side), (side, side))))
    theirs = np.asarray(model.predict_on_batch(theirs_in[..., None] if channel else theirs_in))
    if not softmax:
        theirs = np.exp(theirs - theirs.max(1, keepdims=True))
        theirs /= theirs.sum(1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    facts = record["model"]
    assert facts["origin"] == "brought" and facts["preprocessing"]["chosen"] == trained_on
    assert facts["output"] == ("probabilities" if softmax else "logits")
    inside = " ".join(facts["inside_graph"])
    assert ("32x32" in inside) == (size == 32)
    assert ("softmax" in inside) == (not softmax)
    assert set(facts["preprocessing"]["test_accuracy"]) == set(PREPROCESSINGS)


def _branching_model(ridge):
    """A functional model that is not a chain: two halves of the ridge's scores added (a merge)."""
    keras = _keras()
    kernel, bias = ridge
    image = keras.Input((28, 28, 1), name="digits")
    flat = keras.layers.Flatten(name="flat")(image)
    halves = []
    for i in range(2):
        dense = keras.layers.Dense(10, name=f"half_{i}")
        halves.append(dense(flat))
        dense.set_weights([kernel / 255.0 / 2, bias / 2])  # trained on raw: w·x/255 = (w/255)·x
    logits = keras.layers.Add(name="sum")(halves)
    return keras.Model(image, keras.layers.Softmax(name="probs")(logits), name="two_halves")


def test_a_graph_the_deployment_rewrite_does_not_know_is_exported_as_it_is(ridge, mnist, raw_mnist_dir, tmp_path):
    """A branching functional model: exported (exit 0), every export passes verify, and the manifest and
    report.md say the deployment rewrite was skipped and what that costs."""
    path = saved(_branching_model(ridge), tmp_path)
    out = tmp_path / "bundle"
    formats = "tflite-fp16,onnx-int8"  # no TFLite Micro rows: the fast tier affords them once, in tiny_bundle
    common = ["--data", str(raw_mnist_dir)]
    assert (
        main(["export", str(path), "--out", str(out), "--formats", formats, "--no-verify", "--no-bench", *common]) == 0
    )
    assert main(["verify", str(out), *common]) == 0
    facts = manifest_json(out)["model"]
    assert facts["deployment_rewrite"].startswith("skipped: the model is not a plain chain")
    assert "AVERAGE_POOL_2D" in facts["deployment_rewrite"]  # what skipping costs
    report = (out / "report.md").read_text()
    assert "## The model" in report and "Deployment rewrite skipped: the model is not a plain chain" in report


def test_export_states_the_model_its_origin_and_preprocessing(ridge, mnist, raw_mnist_dir, tmp_path, capsys):
    """A brought model: export prints the accuracy under each candidate and the choice; the manifest, the
    training record and report.md state the name, the origin and the preprocessing with every accuracy."""
    path = saved(linear_model(ridge, "mean-std"), tmp_path, "my_lenet.keras")
    out = tmp_path / "bundle"
    args = ["--data", str(raw_mnist_dir)]
    assert (
        main(["export", str(path), "--out", str(out), "--formats", "onnx-fp32", "--no-verify", "--no-bench", *args])
        == 0
    )
    printed = capsys.readouterr().out
    for p in PREPROCESSINGS.values():
        assert p.label in printed
    assert "<- chosen" in printed
    facts = manifest_json(out)["model"]
    assert facts["name"] == "linear_mean_std" and facts["origin"] == "brought"
    assert facts["source"]["file"] == "my_lenet.keras" and facts["source"]["class"] == "Sequential"
    assert facts["preprocessing"]["chosen"] == "mean-std"
    assert json.loads((out / "training.json").read_text())["model"] == facts
    assert main(["verify", str(out), *args]) == 0
    report = (out / "report.md").read_text()
    assert "brought: `my_lenet.keras` (Sequential; a Keras 3 archive written by Keras 3." in report
    assert facts["source"]["form"] == "keras3-archive" and facts["source"]["keras_version"].startswith("3.")
    assert f"**{PREPROCESSINGS['mean-std'].label}** (chosen)" in report


def test_a_bundles_own_model_exported_again_is_trained_here_on_raw_pixels(tiny_bundle, raw_mnist_dir, tmp_path):
    """The Keras model of a bundle (its rescaling inside): origin 'trained here', raw pixels, nothing added."""
    out = tmp_path / "again"
    args = ["--formats", "onnx-fp32", "--no-verify", "--no-bench", "--data", str(raw_mnist_dir)]
    assert main(["export", str(tiny_bundle / "lenet5.keras"), "--out", str(out), *args]) == 0
    facts = manifest_json(out)["model"]
    assert facts["origin"] == "trained here" and facts["preprocessing"]["chosen"] == "raw"
    assert facts["inside_graph"] == [] and facts["architecture"] == "ridge-linear"


# --- refusals: one line, exit 2, before any data is read ---------------------------------------------------------


def _refused(capsys, path: Path, tmp_path: Path) -> str:
    code = main(["export", str(path), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("lenet-edge: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def _model(layers, inputs=(28, 28, 1)):
    keras = _keras()
    return keras.Sequential([keras.Input(inputs), *layers])


def _five_classes():
    keras = _keras()
    return _model([keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax", name="five")])


def _rgb_64():
    keras = _keras()
    return _model([keras.layers.Flatten(), keras.layers.Dense(10)], inputs=(64, 64, 3))


def _flat_784():
    keras = _keras()
    return _model([keras.layers.Dense(10)], inputs=(784,))


def _two_inputs():
    keras = _keras()
    a, b = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    merged = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    return keras.Model([a, b], keras.layers.Dense(10)(merged))


def _lambda_layer():
    keras = _keras()
    return _model([keras.layers.Lambda(lambda x: x / 255.0), keras.layers.Flatten(), keras.layers.Dense(10)])


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_five_classes, "output of layer 'five' is [batch, 5], not 10 classes"),
        (_rgb_64, "takes [batch, 64, 64, 3]; only MNIST's 28x28 gray digits are taken"),
        (_flat_784, "takes [batch, 784]"),
        (_two_inputs, "takes 2 inputs"),
        (_lambda_layer, "is a Lambda layer, whose Python code Keras does not load"),
    ],
    ids=["five-classes", "rgb-64x64", "flat-784", "two-inputs", "lambda"],
)
def test_a_model_that_cannot_be_a_digit_classifier_here_is_refused_in_one_line(capsys, tmp_path, make, fragment):
    path = saved(make(), tmp_path)
    assert fragment in _refused(capsys, path, tmp_path)


def test_a_custom_layer_is_refused_naming_its_class(capsys, tmp_path):
    keras = _keras()

    @keras.saving.register_keras_serializable(package="mine")
    class Halve(keras.layers.Layer):
        def call(self, x):
            return x * 0.5

    path = saved(_model([Halve(), keras.layers.Flatten(), keras.layers.Dense(10)]), tmp_path)
    keras.saving.get_custom_objects().pop("mine>Halve")  # the exporting process does not have the user's code
    err = _refused(capsys, path, tmp_path)
    assert "mine>Halve, a custom class" in err


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("notes.keras", b"my notes\n", "cannot load as a Keras model: not a Keras archive"),
        ("weights.npz", b"PK\x03\x04", "not a model file export takes"),
        ("model.h5", b"not hdf5 at all", "cannot load as a Keras model"),
    ],
    ids=["text-as-keras", "other-suffix", "broken-h5"],
)
def test_a_file_that_is_not_a_model_is_refused_in_one_line(capsys, tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    assert fragment in _refused(capsys, path, tmp_path)


def test_a_broken_savedmodel_folder_is_refused_in_one_line(capsys, tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"not a protobuf")
    assert "SavedModel" in _refused(capsys, folder, tmp_path)


def test_a_model_saved_as_h5_is_taken(ridge, mnist, tmp_path):
    """The legacy HDF5 file (model.save('model.h5')) loads like a .keras one."""
    path = tmp_path / "model.h5"
    linear_model(ridge, "unit").save(path)
    user = load_user_model(path)
    assert choose(score(user, mnist))[0] == "unit"
