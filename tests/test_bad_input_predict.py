"""Bad pictures and models for `lenet-edge predict` (lenet_edge/preprocess.py): picture bombs, pipes, half
files, foreign or renamed models; each refused in one line naming it, before decoding a bomb or reading a pipe.
The four checks every case makes are in tests/bad_input.py."""

from __future__ import annotations

import contextlib
import os
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bad_input import (
    HANG_S,
    LIMIT,
    as_param,
    cli,
    error_line,
    no_warnings,
    png_header,
    snapshot,
    sparse,
    unblocked,
)


def _picture_bomb(side: int):
    def make(path: Path) -> list[str]:
        path.write_bytes(png_header(side, side))
        return [f"{side}×{side} pixels, more than 50,000,000 (not decoded)"]

    return make


def _cut_png(path: Path) -> list[str]:
    blob = (path.parent / "good.png").read_bytes()  # the good_picture fixture's
    path.write_bytes(blob[: len(blob) // 2])
    return ["not a readable image"]


PICTURE_CASES = [
    ("8000x8000-header", _picture_bomb(8000)),
    ("13000x13000-header", _picture_bomb(13_000)),  # over Pillow's own warning limit (89 MP)
    ("20000x20000-header", _picture_bomb(20_000)),  # over Pillow's own error limit (179 MP)
    ("pipe", lambda p: os.mkfifo(p) or ["not a regular file"]),
    ("device", lambda p: p.symlink_to("/dev/zero") or ["not a regular file"]),
    ("folder", lambda p: p.mkdir() or ["not a regular file"]),
    ("empty", lambda p: p.touch() or ["not a readable image"]),
    ("cut-in-half", _cut_png),
    ("a-zip-named-png", lambda p: zipfile.ZipFile(p, "w").close() or ["not a readable image"]),
    ("too-large", lambda p: sparse(p, LIMIT + 1) and ["bytes, more than a picture of a digit needs"]),
    ("dangling-link", lambda p: p.symlink_to(p.parent / "gone.png") or ["no such file"]),
]  # fmt: skip


@pytest.mark.parametrize("make", [as_param(case) for case in PICTURE_CASES])
def test_bad_pictures_are_refused_in_one_line(tiny_bundle, good_picture, tmp_path, capsys, make):
    """predict GOOD BAD: exit 2, one line naming BAD (the second picture), before any decoding of a bomb or a
    read of a pipe; nothing written."""
    path = tmp_path / "digit.png"
    expected = make(path)
    before = snapshot(tmp_path, tiny_bundle)
    start = time.monotonic()
    with unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext(), no_warnings():
        code, _, err = cli(capsys, "predict", good_picture, path, "--model", tiny_bundle / "lenet5_fp32.onnx")
    assert time.monotonic() - start < HANG_S
    assert code == 2
    line = error_line(err)
    assert f"error: {path}: " in line and all(fragment in line for fragment in expected), line
    assert snapshot(tmp_path, tiny_bundle) == before


def _onnx(path: Path, inputs: list[tuple[str, list]], nodes, output: list, initializers=()) -> None:
    """A small foreign ONNX model, built by hand."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def _rgb_model(path: Path) -> list[str]:
    from onnx import helper

    _onnx(path, [("x", ["N", 32, 32, 3])], [helper.make_node("Flatten", ["x"], ["y"])], ["N", 3072])
    return ["does not answer 28×28 raw-pixel digits with 10 probabilities"]


def _five_classes(path: Path) -> list[str]:
    from onnx import helper, numpy_helper

    weights = numpy_helper.from_array(np.full((784, 5), 1e-3, np.float32), "w")
    nodes = [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["y"])]  # fmt: skip
    _onnx(path, [("x", ["N", 28, 28, 1])], nodes, ["N", 5], [weights])
    return ["answers (5,), not 10 probabilities"]


def _two_inputs(path: Path) -> list[str]:
    from onnx import helper

    _onnx(path, [("a", ["N", 28, 28, 1]), ("b", ["N", 28, 28, 1])], [helper.make_node("Add", ["a", "b"], ["y"])],
          ["N", 28, 28, 1])  # fmt: skip
    return ["cannot be loaded by onnxruntime"]


def _copy_of(name: str, fragments: list[str], cut: bool = False):
    def make(path: Path, bundle: Path) -> list[str]:
        blob = (bundle / name).read_bytes()
        path.write_bytes(blob[: len(blob) // 2] if cut else blob)
        return fragments

    return make


MODEL_CASES = [
    ("keras-model", "m.keras", _copy_of("lenet5.keras", ["not a .tflite or .onnx file"])),
    ("keras-renamed-onnx", "m.onnx", _copy_of("lenet5.keras", ["cannot be loaded by onnxruntime"])),
    ("onnx-renamed-tflite", "m.tflite", _copy_of("lenet5_fp32.onnx", ["cannot be loaded by litert"])),
    ("tflite-cut-in-half", "m.tflite", _copy_of("lenet5_fp32.tflite", ["cannot be loaded by litert"], cut=True)),
    ("rgb-32x32-onnx", "m.onnx", lambda path, bundle: _rgb_model(path)),
    ("five-class-onnx", "m.onnx", lambda path, bundle: _five_classes(path)),
    ("two-input-onnx", "m.onnx", lambda path, bundle: _two_inputs(path)),
    ("pipe", "m.tflite", lambda path, bundle: os.mkfifo(path) or ["not a .tflite or .onnx file"]),
    ("folder", "m.onnx", lambda path, bundle: path.mkdir() or ["not a .tflite or .onnx file"]),
]


@pytest.mark.parametrize(("name", "make"), [as_param(case) for case in MODEL_CASES])
def test_foreign_or_broken_models_are_refused_in_one_line(tiny_bundle, good_picture, tmp_path, capsys, name, make):
    """predict PICTURE --model M, M not a model of a bundle (a foreign model, another format renamed, half a file,
    a pipe): exit 2, one line naming M; nothing written."""
    path = tmp_path / name
    expected = make(path, tiny_bundle)
    before = snapshot(tmp_path, tiny_bundle)
    with unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext():
        code, _, err = cli(capsys, "predict", good_picture, "--model", path)
    assert code == 2
    line = error_line(err)
    assert f"error: {path}: " in line and all(fragment in line for fragment in expected), line
    assert snapshot(tmp_path, tiny_bundle) == before
