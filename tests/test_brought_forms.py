"""Every form a LeNet is found saved in goes through `lenet-edge export`: Keras 2 HDF5 files (written by tf-keras,
and as Keras 2.0 and 2.2 wrote them, made here with h5py from a config in that era's shape), an architecture
JSON beside its weights, Keras 2 SavedModel folders (with keras_metadata.pb, and with the metadata inside
saved_model.pb as TensorFlow 2.0-2.4 kept it), Keras 3 files naming tf.nn functions as activations. Each
exports with exit 0, every verify row passing, its reference the file's answers as its own Keras reads them.
What cannot be a digit classifier, or would run the file's code, is refused in one line (exit 2), and the
code never runs.

Fast tier: the files are built once, from fixed weights (a 1x1 convolution, batch normalization, max pooling,
dropout and the ridge classifier of the pooled digits: no training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json, ridge_classifier

from lenet_edge.cli import main

FORMATS = "tflite-fp32"


def _tf_keras():
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import tf_keras

    return tf_keras


@pytest.fixture(scope="module")
def k2():
    """Keras 2 (tf-keras), imported in the fixture (its import and TensorFlow's are set-up time)."""
    return _tf_keras()


def _pooled(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), 14, 2, 14, 2).max((2, 4))


@pytest.fixture(scope="module")
def weights(mnist) -> list[np.ndarray]:
    """The stand-in LeNet's weights in Keras order: 1x1 conv (identity), batch norm (identity), the ridge
    classifier of the 2x2 max-pooled digits."""
    kernel, bias = ridge_classifier(_pooled(mnist.x_train[:20_000]), mnist.y_train[:20_000])
    return [
        np.ones((1, 1, 1, 1), np.float32),
        np.zeros(1, np.float32),
        np.ones(1, np.float32),  # gamma
        np.zeros(1, np.float32),  # beta
        np.zeros(1, np.float32),  # moving mean
        np.full(1, 1.0 - 1e-3, np.float32),  # moving variance: with epsilon 1e-3, the identity
        kernel,
        bias,
    ]


def expected_answers(weights: list[np.ndarray], images: np.ndarray) -> np.ndarray:
    """What the stand-in answers pixels / 255, computed without Keras."""
    x = _pooled(images).reshape(len(images), -1).astype(np.float64) / 255.0
    logits = x @ weights[6] + weights[7]
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def keras2_lenet(weights, activation="softmax"):
    """The stand-in as a tf-keras (Keras 2) Sequential model."""
    k2 = _tf_keras()
    layers = k2.layers
    model = k2.Sequential(
        [
            layers.Conv2D(1, 1, activation="relu", input_shape=(28, 28, 1)),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(10, activation=activation),
        ],
        name="lenet",
    )
    model.set_weights(weights)
    return model


# --- HDF5 as Keras 2.0 and 2.2 wrote it -----------------------------------------------------------------------


def _initializer(name: str, **config) -> dict:
    return {"class_name": name, "config": config}


GLOROT = _initializer("VarianceScaling", scale=1.0, mode="fan_avg", distribution="uniform", seed=None)
NO_PENALTY = {"kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None}
NO_CONSTRAINT = {"kernel_constraint": None, "bias_constraint": None}


def era_layers(version: str) -> list[dict]:
    """The stand-in's layer configs as Keras 2.0 / 2.2 serialized them (numbered names, no InputLayer: the
    first layer carries batch_input_shape)."""
    flatten = {"name": "flatten_1", "trainable": True}
    if version >= "2.2":
        flatten["data_format"] = "channels_last"
    return [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 28, 28, 1], "dtype": "float32",
            "filters": 1, "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid",
            "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
            "kernel_initializer": GLOROT, "bias_initializer": _initializer("Zeros"), **NO_PENALTY, **NO_CONSTRAINT}},
        {"class_name": "BatchNormalization", "config": {
            "name": "batch_normalization_1", "trainable": True, "axis": -1, "momentum": 0.99, "epsilon": 0.001,
            "center": True, "scale": True, "beta_initializer": _initializer("Zeros"),
            "gamma_initializer": _initializer("Ones"), "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"), "beta_regularizer": None,
            "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None}},
        {"class_name": "MaxPooling2D", "config": {
            "name": "max_pooling2d_1", "trainable": True, "pool_size": [2, 2], "padding": "valid",
            "strides": [2, 2], "data_format": "channels_last"}},
        {"class_name": "Dropout", "config": {
            "name": "dropout_1", "trainable": True, "rate": 0.25, "noise_shape": None, "seed": None}},
        {"class_name": "Flatten", "config": flatten},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "units": 10, "activation": "softmax", "use_bias": True,
            "kernel_initializer": GLOROT, "bias_initializer": _initializer("Zeros"), **NO_PENALTY, **NO_CONSTRAINT}},
    ]  # fmt: skip


ERA_WEIGHTS = {  # layer -> its weights' names, in the order of ``weights``
    "conv2d_1": ["kernel:0", "bias:0"],
    "batch_normalization_1": ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"],
    "max_pooling2d_1": [],
    "dropout_1": [],
    "flatten_1": [],
    "dense_1": ["kernel:0", "bias:0"],
}


def write_era_h5(path: Path, version: str, weights: list[np.ndarray], layers: list[dict] | None = None) -> Path:
    """An HDF5 file as Keras ``version`` (2.0.x or 2.2.x, TensorFlow backend) saved it with model.save():
    keras_version, backend, model_config (2.0: a Sequential's config is its list of layers; 2.2: name and
    layers) and training_config as UTF-8 bytes attributes; model_weights with layer_names, and one group per
    layer whose weight_names are 'layer/kernel:0' (a nested group per layer name, as h5py makes of the '/')."""
    import h5py

    layers = era_layers(version) if layers is None else layers
    config = layers if version < "2.2" else {"name": "sequential_1", "layers": layers}
    optimizer = (
        _initializer("Adadelta", lr=1.0, rho=0.95, decay=0.0, epsilon=1e-07)
        if version < "2.2"
        else _initializer("Adam", lr=0.001, beta_1=0.9, beta_2=0.999, decay=0.0, amsgrad=False)
    )
    training = {"optimizer_config": optimizer, "loss": "categorical_crossentropy", "metrics": ["accuracy"]}
    training |= {"sample_weight_mode": None, "loss_weights": None}
    remaining = list(weights)
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = version.encode("utf8")
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": config}).encode("utf8")
        handle.attrs["training_config"] = json.dumps(training).encode("utf8")
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode("utf8") for name in ERA_WEIGHTS]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = version.encode("utf8")
        for layer, names in ERA_WEIGHTS.items():
            layer_group = group.create_group(layer)
            layer_group.attrs["weight_names"] = [f"{layer}/{name}".encode() for name in names]
            for name in names:
                value = remaining.pop(0)
                layer_group.create_dataset(f"{layer}/{name}", data=value)
    return path


# --- the files, built once ------------------------------------------------------------------------------------


def _metadata_into_object_graph(folder: Path) -> None:
    """A SavedModel as TensorFlow 2.0-2.4 wrote it: the Keras metadata inside saved_model.pb's object graph,
    no keras_metadata.pb."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString((folder / "keras_metadata.pb").read_bytes())
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((folder / "saved_model.pb").read_bytes())
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    for node in metadata.nodes:
        nodes[node.node_id].user_object.metadata = node.metadata
    (folder / "saved_model.pb").write_bytes(saved.SerializeToString())
    (folder / "keras_metadata.pb").unlink()


@pytest.fixture(scope="module")
def forms(weights, tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """Each form's saved file (or folder) and the export options it needs."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("forms")
    k2 = keras2_lenet(weights)
    made: dict[str, tuple[Path, list[str]]] = {}
    k2.save(folder / "tf_keras.h5")
    made["keras2-h5"] = (folder / "tf_keras.h5", [])
    made["keras-2.0-h5"] = (write_era_h5(folder / "keras_2_0.h5", "2.0.8", weights), [])
    made["keras-2.2-h5"] = (write_era_h5(folder / "keras_2_2.h5", "2.2.4", weights), [])
    (folder / "lenet5.json").write_text(k2.to_json())
    k2.save_weights(folder / "lenet5.h5")
    made["json-beside-weights"] = (folder / "lenet5.h5", [])
    made["json-finds-weights"] = (folder / "lenet5.json", [])
    shutil.copy(folder / "lenet5.json", folder / "architecture.json")
    shutil.copy(folder / "lenet5.h5", folder / "trained.h5")
    made["json-named-with-weights"] = (folder / "architecture.json", ["--weights", str(folder / "trained.h5")])
    made["weights-named-with-architecture"] = (
        folder / "trained.h5",
        ["--architecture", str(folder / "architecture.json")],
    )
    k2.save(folder / "lenet")
    made["keras2-savedmodel"] = (folder / "lenet", [])
    shutil.copytree(folder / "lenet", folder / "lenet_tf24")
    _metadata_into_object_graph(folder / "lenet_tf24")
    made["keras2-savedmodel-tf2.4"] = (folder / "lenet_tf24", [])
    functional = keras2_lenet(weights)
    image = functional.layers[0].input
    functional = _tf_keras().Model(image, functional.layers[-1].output, name="lenet_functional")
    functional.save(folder / "functional.h5")
    made["keras2-functional-h5"] = (folder / "functional.h5", [])
    k3 = keras3_lenet(weights, tf.nn.softmax)
    k3.save(folder / "tf_nn.keras")
    made["keras3-tf-nn-softmax"] = (folder / "tf_nn.keras", [])
    k3.save(folder / "tf_nn.h5")
    (folder / "keras3.json").write_text(k3.to_json())
    k3.save_weights(folder / "keras3.weights.h5")
    made["keras3-json-weights-tf-nn"] = (folder / "keras3.json", [])
    made["keras3-h5-tf-nn-softmax"] = (folder / "tf_nn.h5", [])
    return made


def keras3_lenet(weights, activation):
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(1, 1, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(10, activation=activation),
        ],
        name="lenet",
    )
    model.set_weights(weights)
    return model


FORMS = {  # exported end to end: one of each form
    "keras2-h5": ("keras2-h5", "2.21"),
    "keras-2.0-h5": ("keras2-h5", "2.0.8"),
    "keras-2.2-h5": ("keras2-h5", "2.2.4"),
    "json-beside-weights": ("json-weights", "2.21"),
    "keras2-savedmodel": ("keras2-savedmodel", "2.21"),
    "keras2-savedmodel-tf2.4": ("keras2-savedmodel", "2.21"),
    "keras3-tf-nn-softmax": ("keras3-archive", "3."),
}
VARIANTS = {  # loaded only: the same loaders reached another way
    "json-finds-weights": ("json-weights", "2.21"),
    "json-named-with-weights": ("json-weights", "2.21"),
    "weights-named-with-architecture": ("json-weights", "2.21"),
    "keras3-h5-tf-nn-softmax": ("keras3-h5", "3."),
    "keras2-functional-h5": ("keras2-h5", "2.21"),
    "keras3-json-weights-tf-nn": ("json-weights", "3."),
}


FAST_FORM = "keras2-h5"  # the form most LeNet files have; the others' exports run in the slow tier (3-4 s each)


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=() if name == FAST_FORM else pytest.mark.slow) for name in FORMS],
)
def exported(request, forms, raw_mnist_dir, tmp_path_factory) -> tuple[str, Path]:
    """Each form exported (exit 0), once: the export in set-up, verify in the test (each within the fast tier's
    limits on a busy machine)."""
    name = request.param
    path, options = forms[name]
    out = tmp_path_factory.mktemp(f"export-{name}") / "bundle"
    args = ["--formats", FORMATS, "--no-verify", "--no-bench", "--data", str(raw_mnist_dir), *options]
    assert main(["export", str(path), "--out", str(out), *args]) == 0
    return name, out


def test_every_form_exports_and_passes_verify_answering_as_the_file(exported, weights, mnist, raw_mnist_dir):
    """exit 0, then verify's rows all passing; the bundle's reference (what every export is judged against) is
    the stand-in's own answers on pixels / 255, computed without Keras; the manifest names the form and the
    Keras version that wrote the file."""
    name, out = exported
    reference = np.load(out / "keras_test_probabilities.npy")
    np.testing.assert_allclose(reference, expected_answers(weights, mnist.x_test), atol=1e-5)
    facts = manifest_json(out)["model"]
    form, version = FORMS[name]
    assert facts["source"]["form"] == form and facts["source"]["keras_version"].startswith(version), facts["source"]
    assert facts["preprocessing"]["chosen"] == "unit" and facts["deployment_rewrite"] == "applied"
    if "tf-nn" in name:
        assert "softmax_v2 (a TensorFlow function) read as Keras's 'softmax'" in facts["source"]["read_as"]
    assert main(["verify", str(out), "--data", str(raw_mnist_dir)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["verify"] and all(row["status"] == "pass" for row in report["verify"])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_way_to_name_a_form_loads_the_model_the_file_holds(name, forms, weights, mnist):
    """The JSON found from its weights and the weights from the JSON, either named with an option when the stems
    differ, a Keras 3 HDF5 file with tf.nn activations, a functional Keras 2 model, a Keras 3 JSON with its
    .weights.h5: the Keras 3 model loaded answers as the file."""
    from lenet_edge.user_model import load

    path, options = forms[name]
    named = dict(zip(options[::2], options[1::2], strict=True))
    user = load(path, named.get("--architecture"), named.get("--weights"))
    digits = mnist.x_test[:500]
    answers = user.predict((digits / np.float32(255))[..., None])
    np.testing.assert_allclose(answers, expected_answers(weights, digits), atol=1e-5)
    assert (user.form, user.loaded.keras_version[: len(VARIANTS[name][1])]) == VARIANTS[name]


# --- refused in one line, exit 2, and no code from the file runs ------------------------------------------------


def _refused(capsys, path: Path, tmp_path: Path, *options: str) -> str:
    code = main(["export", str(path), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "no-data"), *options])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("lenet-edge: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    return err


def test_a_keras2_lambda_layer_is_refused_and_its_bytecode_never_runs(capsys, tmp_path, k2):
    """A Keras 2 HDF5 file stores a Lambda's function as marshalled bytecode, which loading the model would run:
    the config is read first and the file refused, the function (which would write a file) never called."""
    marker = tmp_path / "ran"
    touch = eval(f"lambda x: x + float(__import__('pathlib').Path({str(marker)!r}).touch() or 0)")
    model = k2.Sequential([k2.layers.Lambda(touch, input_shape=(28, 28, 1)), k2.layers.Flatten(), k2.layers.Dense(10)])
    model.save(tmp_path / "lambda.h5")
    marker.unlink()  # building the model above ran it here
    err = _refused(capsys, tmp_path / "lambda.h5", tmp_path)
    assert "layer 'lambda' is a Lambda layer, whose Python code (stored as bytecode in the file) is never run" in err
    assert not marker.exists()


def test_a_keras2_custom_layer_class_is_refused_naming_it(capsys, weights, tmp_path):
    layers = era_layers("2.2.4")
    layers[1] = {"class_name": "MyNormalization", "config": {"name": "my_norm"}}
    path = write_era_h5(tmp_path / "custom.h5", "2.2.4", weights, layers)
    assert "layer 'my_norm' is MyNormalization, a custom class" in _refused(capsys, path, tmp_path)


def test_a_subclassed_keras2_savedmodel_is_refused(capsys, tmp_path, k2):
    class LeNet(k2.Model):
        def __init__(self):
            super().__init__()
            self.flat, self.dense = k2.layers.Flatten(), k2.layers.Dense(10)

        def call(self, x):
            return self.dense(self.flat(x))

    model = LeNet()
    model(np.zeros((1, 28, 28, 1), np.float32))
    model.save(tmp_path / "lenet")
    assert "a subclassed LeNet model, which Keras cannot rebuild" in _refused(capsys, tmp_path / "lenet", tmp_path)


def test_a_plain_tensorflow_savedmodel_is_refused_with_what_to_do(capsys, tmp_path, k2):
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.zeros((784, 10)))
    module.serve = tf.function(
        lambda x: {"probs": tf.nn.softmax(tf.reshape(x, (-1, 784)) @ module.w)},
        input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "lenet"), signatures={"serving_default": module.serve})
    err = _refused(capsys, tmp_path / "lenet", tmp_path)
    assert "no Keras metadata (its serving signature alone)" in err and "model.save('lenet.keras')" in err


def test_a_folder_named_lenet_holding_no_digit_classifier_is_refused(capsys, tmp_path, k2):
    """A 512x512 segmentation network (a U-Net's shape) in a SavedModel folder called lenet: its shape says so."""
    model = k2.Sequential([k2.layers.Conv2D(1, 3, padding="same", input_shape=(512, 512, 1))], name="unet")
    model.save(tmp_path / "lenet")
    err = _refused(capsys, tmp_path / "lenet", tmp_path)
    assert "takes [batch, 512, 512, 1]; only MNIST's 28x28 gray digits are taken" in err


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        ("weights-alone", "holds weights only (no model config), and no alone.json beside it"),
        ("json-alone", "an architecture without weights: no alone.weights.h5, alone.h5, alone.hdf5 beside it"),
        ("folder", "a folder without saved_model.pb, not a SavedModel"),
    ],
)
def test_half_a_pair_is_refused_naming_the_missing_half(capsys, forms, tmp_path, make, fragment):
    if make == "weights-alone":
        path = tmp_path / "alone.h5"
        shutil.copy(forms["json-beside-weights"][0], path)
    elif make == "json-alone":
        path = tmp_path / "alone.json"
        shutil.copy(forms["json-finds-weights"][0], path)
    else:
        path = tmp_path / "empty"
        path.mkdir()
    assert fragment in _refused(capsys, path, tmp_path)
