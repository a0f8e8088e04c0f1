"""A brought model's int8 file that misses its verify gate at export is remedied by export itself: more
calibration digits, then the layer the quantization-error report names left in float, then the next; the
first that passes is shipped and recorded in the manifest and report.md; exit 1 only when none passes. A model
trained here is exported exactly as asked.

The ridge classifier (no training) is in the fast tier; the lightly trained LeNet in the slow one."""

from __future__ import annotations

import json

import pytest
from conftest import manifest_json, ridge_classifier

from lenet_edge.cli import main


@pytest.fixture(scope="module")
def ridge_file(mnist, tmp_path_factory):
    """The ridge classifier of pixels / 255 as a brought Keras file (Flatten -> Dense(10, softmax))."""
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    kernel, bias = ridge_classifier(mnist.x_train[:20_000], mnist.y_train[:20_000])
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax", name="D")],
        name="ridge",
    )
    model.layers[-1].set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("ridge") / "ridge.keras"
    model.save(path)
    return path


def _export(path, out, data, *options):
    args = ["export", str(path), "--out", str(out), "--formats", "onnx-int8", "--no-bench", "--data", str(data)]
    return main([*args, *options])


def test_an_int8_calibrated_on_one_digit_gets_more_digits_and_passes(ridge_file, raw_mnist_dir, tmp_path, capsys):
    """One calibration digit leaves the int8 ranges too narrow to pass; the first remedy (2,000 digits) passes:
    exit 0, the manifest says what was tried and shipped, and report.md says it."""
    out = tmp_path / "bundle"
    assert _export(ridge_file, out, raw_mnist_dir, "--calibration", "1") == 0
    printed = capsys.readouterr().out
    assert "misses its gate" in printed and "remedy: 2,000 calibration digits (not 1): passes" in printed
    artifact = next(a for a in manifest_json(out)["artifacts"] if a["format"] == "onnx-int8")
    remedy = artifact["remedy"]
    assert remedy["passes"] and remedy["calibration_images"] == 2000 and remedy["keep_float"] == []
    assert remedy["tried"][0]["verdict"] != "pass" and remedy["tried"][-1]["verdict"] == "pass"
    report = json.loads((out / "report.json").read_text())
    assert all(row["status"] == "pass" for row in report["verify"])
    assert "`onnx-int8` missed its gate" in (out / "report.md").read_text()


def test_an_int8_that_passes_as_asked_is_shipped_as_asked(ridge_file, raw_mnist_dir, tmp_path):
    out = tmp_path / "bundle"
    assert _export(ridge_file, out, raw_mnist_dir) == 0
    artifact = next(a for a in manifest_json(out)["artifacts"] if a["format"] == "onnx-int8")
    assert "remedy" not in artifact


def test_when_no_remedy_passes_the_first_file_is_shipped_and_export_exits_1(ridge_file, raw_mnist_dir, tmp_path):
    """A gate no int8 file can meet (100% agreement and no drop): more digits tried, no layer left in float (the
    model's one layer with weights must stay int8, or the file is no int8 file), the file as first exported
    shipped, verify fails it (exit 1)."""
    out = tmp_path / "bundle"
    gate = ["--quant-min-agreement", "100", "--quant-max-drop", "0"]
    assert _export(ridge_file, out, raw_mnist_dir, *gate) == 1
    artifact = next(a for a in manifest_json(out)["artifacts"] if a["format"] == "onnx-int8")
    remedy = artifact["remedy"]
    assert not remedy["passes"] and remedy["calibration_images"] == 500 and remedy["keep_float"] == []
    assert [step["what"].split(" ")[0] for step in remedy["tried"]] == ["as", "2,000"]


@pytest.mark.slow
def test_a_lightly_trained_lenet_whose_int8_misses_its_gate_gets_a_passing_int8_by_itself(
    mnist, raw_mnist_dir, tmp_path
):
    """A tutorial LeNet (3x3 convolutions, batch norm, dropout) fitted one epoch on 3,000 digits, calibrated on
    200: as first exported, its int8 TFLite file misses the default gate (measured: 99.3% agreement with 2,000
    digits too; it passed with the batch norm left in float). export remedies it by itself: exit 0, every
    verify row passing (TFLite Micro's too), and what it took in the manifest."""
    import test_tutorial_models as tutorials

    model, _, _ = tutorials.train_tutorial("3x3-dense128-relu-maxpool-batchnorm-dropout", mnist, seed=1, images=3000)
    path = tmp_path / "lenet.keras"
    model.save(path)
    out = tmp_path / "bundle"
    args = ["--formats", "tflite-int8", "--calibration", "200", "--no-bench", "--data", str(raw_mnist_dir)]
    assert main(["export", str(path), "--out", str(out), *args]) == 0
    remedies = {a["format"]: a["remedy"] for a in manifest_json(out)["artifacts"] if a.get("remedy")}
    assert remedies, "the int8 file did not miss its gate as first exported: this model no longer tests remedies"
    for remedy in remedies.values():
        assert remedy["passes"] and remedy["tried"][0]["verdict"] != "pass"
    report = json.loads((out / "report.json").read_text())
    assert all(row["status"] == "pass" for row in report["verify"])
