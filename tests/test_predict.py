"""lenet-edge predict: pictures of any size and colour to MNIST-style digits, read by an exported model. The
preparation is judged with tiny_bundle's linear model (a template classifier, less forgiving of a shifted or
rescaled digit than LeNet-5); how thin strokes read needs the trained LeNet-5 (trained_bundle)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lenet_edge.cli import main
from lenet_edge.preprocess import SIZE, to_mnist
from lenet_edge.runtimes import open_runner


def _pictures(mnist, folder, count=10):
    """Real test digits as a user would have them: 10× larger photos, dark ink on white, RGB, JPEG too."""
    paths = []
    for index, digit in enumerate(mnist.x_test[:count]):
        big = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR).convert("RGB")
        path = folder / f"digit{index}.{'jpg' if index % 3 == 0 else 'png'}"
        big.save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("model", ["lenet5_int8.tflite", "lenet5_fp32.onnx"])
def test_predict_reads_pictures_like_the_mnist_digits(tiny_bundle, mnist, tmp_path, capsys, model):
    paths = _pictures(mnist, tmp_path)
    assert main(["predict", *map(str, paths), "--model", str(tiny_bundle / model), "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = open_runner("litert" if model.endswith("tflite") else "onnxruntime", tiny_bundle / model)
    on_mnist = expected.predict(mnist.x_test[: len(paths)]).argmax(1)
    labels = np.array([row["label"] for row in rows])
    assert np.mean(labels == on_mnist) >= 0.9, (labels, on_mnist)
    assert all(len(row["probabilities"]) == 10 and abs(sum(row["probabilities"]) - 1) < 0.02 for row in rows)


def test_mnist_digits_survive_the_preprocessing(tiny_bundle, mnist):
    runner = open_runner("litert", tiny_bundle / "lenet5_fp32.tflite")
    digits = mnist.x_test[:300]
    again = np.stack([to_mnist(d.astype(np.float32)) for d in digits])
    assert again.shape == (300, SIZE, SIZE) and again.dtype == np.uint8
    assert np.mean(runner.predict(again).argmax(1) == runner.predict(digits).argmax(1)) >= 0.98


def test_text_output_and_saved_digits(tiny_bundle, mnist, tmp_path, capsys):
    (path,) = _pictures(mnist, tmp_path, 1)
    out = tmp_path / "seen"
    args = ["predict", str(path), "--model", str(tiny_bundle / "lenet5_fp32.tflite"), "--save-digits", str(out)]
    assert main(args) == 0
    assert f"{path}: " in capsys.readouterr().out
    seen = np.asarray(Image.open(out / "digit0_28x28.png"))
    assert seen.shape == (28, 28) and seen.max() == 255 and seen[:2].max() == 0  # white on black, centred


@pytest.mark.parametrize(
    ("content", "message"),
    [("blank", "no digit in the image"), ("text", "not a readable image"), ("missing", "no such file")],
)
def test_bad_pictures_get_one_line_errors(tiny_bundle, tmp_path, capsys, content, message):
    path = tmp_path / "picture.png"
    if content == "blank":
        Image.new("L", (200, 120), 255).save(path)
    elif content == "text":
        path.write_text("not a picture")
    assert main(["predict", str(path), "--model", str(tiny_bundle / "lenet5_fp32.onnx")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_needs_a_model_file(tiny_bundle, tmp_path, capsys):
    image = tmp_path / "d.png"
    Image.new("L", (28, 28), 0).save(image)
    assert main(["predict", str(image), "--model", str(tiny_bundle / "lenet5.keras")]) == 2
    assert "not a .tflite or .onnx file" in capsys.readouterr().err


def test_thin_strokes_are_read_as_well_as_a_marker(trained_bundle, mnist):
    """Strokes traced from 300 test digits, drawn on a 280×280 pad with a 3 px pen and an MNIST-like 18 px
    marker: the thin ones, thickened by the preparation, are read as often as the marker's."""
    import io

    from strokes import render, strokes

    from lenet_edge.preprocess import load_image

    runner = open_runner("litert", trained_bundle / "lenet5_fp32.tflite")
    digits, labels = mnist.x_test[:300], mnist.y_test[:300]
    lines = [strokes(digit) for digit in digits]
    accuracy = {}
    for pen in (3, 18):
        drawn = np.stack([to_mnist(load_image(io.BytesIO(render(line, pen)))) for line in lines])
        accuracy[pen] = float(np.mean(runner.predict(drawn).argmax(1) == labels))
    on_mnist = float(np.mean(runner.predict(digits).argmax(1) == labels))
    assert accuracy[3] >= accuracy[18] - 0.015, accuracy
    assert accuracy[3] >= on_mnist - 0.04, (accuracy, on_mnist)


def test_predict_reads_every_picture_and_names_each_bad_one(tiny_bundle, mnist, tmp_path, capsys):
    """Bad pictures among good ones: every good one is answered, every bad one named with its reason, in the
    order given, and the exit code is 2."""
    good = _pictures(mnist, tmp_path, 2)
    blank, text, missing = tmp_path / "blank.png", tmp_path / "notes.png", tmp_path / "missing.png"
    Image.new("L", (200, 120), 255).save(blank)
    text.write_text("not a picture")
    given = [blank, good[0], text, missing, good[1]]
    model = str(tiny_bundle / "lenet5_int8.tflite")
    assert main(["predict", *map(str, given), "--model", model]) == 2
    out, err = capsys.readouterr()
    answered = out.strip().splitlines()
    assert [line.split(":")[0] for line in answered] == [str(good[0]), str(good[1])]
    errors = err.strip().splitlines()  # one line for each bad picture, nothing else
    assert len(errors) == 3 and "Traceback" not in err
    assert errors[0].startswith(f"lenet-edge: error: {blank}: ") and "no digit in the image" in errors[0]
    assert errors[1].startswith(f"lenet-edge: error: {text}: ") and "not a readable image" in errors[1]
    assert errors[2].startswith(f"lenet-edge: error: {missing}: ") and "no such file" in errors[2]

    assert main(["predict", *map(str, given), "--model", model, "--json", "-"]) == 2
    rows = json.loads(capsys.readouterr().out)
    assert [row["image"] for row in rows] == list(map(str, given))
    assert [("error" in row) for row in rows] == [True, False, True, True, False]
