"""Shared fixtures. MNIST comes from $LENET_EDGE_DATA; without it a test that needs it skips, except under
CI=true, where it fails: CI never passes by skipping.

Two tiers. The fast one (`make test-fast`, `pytest -m "not slow"`) needs no training, no browser, no emulator
and no sshd; `pytest -m slow` runs the other, `make test` both. A test is slow when it uses a slow fixture,
directly or through another fixture (``trained_bundle`` trains a real model; see ``SLOW_FIXTURES``), or carries
``@pytest.mark.slow``. A new slow fixture is declared with ``@slow_fixture`` and every test that uses it is
marked slow at collection. So that nothing slow lands in the fast tier unnoticed, a fast test also fails when
it fits a Keras model (through lenet-edge's train() or directly) or when a phase of it runs longer than
``FAST_LIMIT_S``."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lenet_edge.train
from lenet_edge.cli import main
from lenet_edge.data import Mnist, load_mnist
from lenet_edge.targets import cache_dir

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Fixtures that cost more than the fast tier affords (a training run, a browser, an emulator, an sshd, a venv).
SLOW_FIXTURES = {"trained_bundle", "runtime_only_python"}
# A fast test's setup (session fixtures built on first use: the TensorFlow import and tiny_bundle take ~6 s)
# and its call must each end within this (a fast test takes ~0.1-4 s; several times that on a busy machine).
FAST_LIMIT_S = {"setup": 45.0, "call": 20.0, "teardown": 20.0}


def require(condition: bool, message: str) -> None:
    """Skip when a system tool is missing, except under CI=true, where it fails: CI never passes by skipping."""
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def row_key(row: dict) -> str:
    """A verify row's name: its format, and for the same file run elsewhere, '<format> in tflm', '<format> in c'
    (the C model) or '<format> in litert-gpu (fp16)' (verify.row_name)."""
    from lenet_edge.verify import row_name

    return row_name(row)


def manifest_json(bundle: Path) -> dict:
    """manifest.json as the file says it (what an app developer reads), to inspect or to alter in a test."""
    return json.loads((bundle / "manifest.json").read_text())


def slow_fixture(*args, **kwargs):
    """``pytest.fixture`` for a fixture too slow for the fast tier: every test using it is marked slow."""

    def declare(function):
        SLOW_FIXTURES.add(kwargs.get("name") or function.__name__)
        return pytest.fixture(*args, **kwargs)(function)

    return declare


# --- the tiers ----------------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    limit = FAST_LIMIT_S.get(report.when)
    if item.get_closest_marker("slow") is None and report.passed and limit and report.duration > limit:
        report.outcome = "failed"
        report.longrepr = (
            f"a fast-tier test's {report.when} took {report.duration:.1f} s, over the fast tier's {limit:.0f} s: "
            "mark it @pytest.mark.slow (or give the fixture that costs the time @slow_fixture)"
        )


def _refuse_fit(*args, **kwargs):
    pytest.fail("a fast-tier test trains a model: mark it @pytest.mark.slow (or use trained_bundle)", pytrace=False)


def _fitless(train):
    """lenet-edge's train(), which checks its config as it does, but fails the test where it would fit a model."""

    @functools.wraps(train)
    def checked_but_never_fitted(*args, **kwargs):
        from lenet_edge.tensorflow_loader import import_tensorflow

        import_tensorflow()
        import keras

        fit = keras.Model.fit
        keras.Model.fit = _refuse_fit
        try:
            return train(*args, **kwargs)
        finally:
            keras.Model.fit = fit

    return checked_but_never_fitted


@pytest.fixture(autouse=True)
def _fast_tier_trains_nothing(request, monkeypatch):
    """In a test not marked slow, fitting a Keras model fails the test: through lenet-edge's train() wherever it
    was imported, and directly once Keras is loaded."""
    if request.node.get_closest_marker("slow") is not None:
        return
    real = lenet_edge.train.train
    for name, module in list(sys.modules.items()):
        test_module = name.startswith("test_") and str(getattr(module, "__file__", "")).startswith(str(TESTS))
        ours = name.split(".")[0] == "lenet_edge" or test_module  # (other modules' attributes may load lazily)
        if ours and getattr(module, "train", None) is real:
            monkeypatch.setattr(module, "train", _fitless(real))
    if "keras" in sys.modules:
        monkeypatch.setattr(sys.modules["keras"].Model, "fit", _refuse_fit)


@pytest.fixture(autouse=True)
def _fast_tier_runs_no_gpu_rows(request, monkeypatch):
    """In a test not marked slow, verify runs no GPU row unless the test asks with --gpu-digits: LiteRT's GPU
    accelerator on a CPU Vulkan driver costs seconds per file (tests/test_gpu.py judges it, in the slow tier)."""
    if request.node.get_closest_marker("slow") is None:
        import lenet_edge.cli
        import lenet_edge.verify

        monkeypatch.setattr(lenet_edge.verify, "GPU_DIGITS", 0)  # verify's default sample
        monkeypatch.setattr(lenet_edge.cli, "GPU_RUN_DIGITS", 0)  # run and export's


# --- data -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = os.environ.get("LENET_EDGE_DATA", "")
    require(bool(folder) and Path(folder).is_dir(), "MNIST not found: set LENET_EDGE_DATA to the MNIST folder")
    return Path(folder)


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> Mnist:
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def raw_mnist_dir(mnist_dir, tmp_path_factory) -> Path:
    """The same MNIST as raw IDX files, which load in half the time of the .gz ones: for the many CLI calls that
    load MNIST before they refuse something."""
    folder = tmp_path_factory.mktemp("mnist-raw")
    for packed in sorted(mnist_dir.glob("*-ubyte.gz")):
        (folder / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    return folder


@pytest.fixture
def loaded_once(monkeypatch, mnist, raw_mnist_dir):
    """The CLI's MNIST load of ``raw_mnist_dir`` answered by the session's copy, loaded and checked once (the
    same four arrays; 0.2 s saved per command). Any other --data path is loaded as usual: the cases about bad
    data never come here."""
    import lenet_edge.steps

    real = lenet_edge.steps.load_mnist

    def load_mnist(data=None, download=True, check=True, recorded=None):
        if data is not None and Path(data) == raw_mnist_dir:
            return mnist
        return real(data, download=download, check=check, recorded=recorded)

    monkeypatch.setattr(lenet_edge.steps, "load_mnist", load_mnist)  # where every command's data step finds it
    return raw_mnist_dir


@pytest.fixture
def good_picture(mnist, tmp_path) -> Path:
    """A real test digit as a user has it (bad_input.digit_png), tmp_path/good.png."""
    from bad_input import digit_png

    path = tmp_path / "good.png"
    path.write_bytes(digit_png(mnist))
    return path


# --- bundles --------------------------------------------------------------------------------------------------

TINY_SEED = 7
TINY_VALIDATION = 5_000  # the last training images: held out of the fit, as run's validation split is
RIDGE = 3_000.0  # on pixels scaled to 0-1: smooth templates, whose int8 export agrees with float on ~99.7%
TEMPERATURE = 10.0  # softmax over 10× the regressed scores: confident, not saturated, probabilities


def ridge_classifier(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closed-form linear classifier of MNIST: one-hot labels regressed on pixels / 255 (ridge, the bias not
    shrunk), scaled by TEMPERATURE. Returns (kernel [784, 10], bias [10]) as float32."""
    x = np.hstack([images.reshape(len(images), -1) / np.float32(255), np.ones((len(images), 1), np.float32)])
    gram = (x.T @ x).astype(np.float64)  # float32 products (6x faster than float64; 3e-7 apart), solved in float64
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    targets = (x.T @ np.eye(10, dtype=np.float32)[labels]).astype(np.float64)
    solution = np.linalg.solve(gram + penalty, targets) * TEMPERATURE
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


def tiny_model(mnist: Mnist):
    """A Keras model built in a second and never trained: Input "image" (28, 28, 1) raw pixels -> Rescaling
    (1/255) -> Flatten -> Dense(10, softmax) "probabilities", its weights the ridge classifier of the training
    images (86% on the test set). Returns (model, training record as write_bundle takes it)."""
    from lenet_edge.model import count_macs, count_params
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()  # quietly
    import keras

    fit_x, fit_y = mnist.x_train[:-TINY_VALIDATION], mnist.y_train[:-TINY_VALIDATION]
    kernel, bias = ridge_classifier(fit_x, fit_y)
    image = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale_0_1")(image)
    x = keras.layers.Flatten(name="flatten")(x)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(image, probabilities, name="ridge_linear")
    model.get_layer("probabilities").set_weights([kernel, bias])

    def measured(images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        probs = np.asarray(model.predict_on_batch(images.reshape(-1, 28, 28, 1).astype(np.float32)), np.float64)
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))
        return loss, float(np.mean(probs.argmax(1) == labels))

    loss, accuracy = measured(fit_x, fit_y)
    val_loss, val_accuracy = measured(mnist.x_train[-TINY_VALIDATION:], mnist.y_train[-TINY_VALIDATION:])
    _, test_accuracy = measured(mnist.x_test, mnist.y_test)
    training = {
        "config": {"arch": "ridge-linear", "activation": None, "seed": TINY_SEED, "validation": TINY_VALIDATION,
                   "ridge": RIDGE, "temperature": TEMPERATURE, "augment": False},
        "deterministic": True,
        "determinism": "closed form (a ridge regression solved exactly): no randomness, no gradient steps",
        "best_epoch": 1,
        "val_accuracy": round(val_accuracy, 6),
        "test_accuracy": round(test_accuracy, 6),
        "history": {"loss": [loss], "accuracy": [accuracy], "val_loss": [val_loss], "val_accuracy": [val_accuracy]},
        "model": {"architecture": "ridge-linear", "activation": None,
                  "summary": "rescale 1/255, flatten, dense 10 softmax: ridge regression in closed form",
                  "params": count_params(model), "macs": count_macs(model)},
    }  # fmt: skip
    return model, training


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, mnist) -> Path:
    """A real bundle of every format, written by the real bundle writer in a few seconds from a model that was
    never trained (see tiny_model): 86% on the test set, every export passing verify's default gates."""
    from lenet_edge.bundle_writer import write_bundle
    from lenet_edge.formats import FORMATS
    from lenet_edge.manifest import read_manifest

    model, training = tiny_model(mnist)
    out = tmp_path_factory.mktemp("tiny") / "export"
    write_bundle(out, model, training, mnist, list(FORMATS), calibration_count=200)
    assert read_manifest(out).failed == []
    return out


@pytest.fixture(scope="session")
def untrained_lenet(tmp_path_factory) -> Path:
    """LeNet-5 (classic) as build_model makes it, seeded and never trained, saved as a .keras file."""
    from lenet_edge.model import build_model
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(TINY_SEED)
    path = tmp_path_factory.mktemp("untrained") / "lenet5.keras"
    build_model("classic").save(path)
    return path


@slow_fixture(scope="session")
def trained_bundle(tmp_path_factory, mnist_dir) -> Path:
    """A real bundle from the default training recipe (3 epochs with augmentation, batch normalization folded after;
    about 20 s on 2 cores): every format, as `make run` writes it, so that the tests can hold it
    to what a user gets (MediaPipe's 99.0%, digits drawn in the browser read right)."""
    out = tmp_path_factory.mktemp("bundle") / "export"
    args = ["run", "--data", str(mnist_dir), "--out", str(out), "--calibration", "200", "--seed", "7"]
    code = main([*args, "--no-bench"])
    assert code == 0
    return out


@slow_fixture(scope="session")
def runtime_only_python() -> Path:
    """A venv with only `pip install .` (numpy, ai-edge-litert, onnxruntime): what a device has.
    Cached under ~/.cache/lenet-edge/ by the dependencies it was built for; the project is reinstalled."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = cache_dir() / f"runtime-venv-{key}"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
    else:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)], check=True
        )
    return python
