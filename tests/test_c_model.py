"""The C model: an int8 .tflite as dependency-free C99 (lenet_edge.exporters.c_model), written into the bundle
beside the C array, built with the host's cc and run through ctypes (the `c` runtime). It answers byte for byte as
TensorFlow Lite Micro on the same file, compiles warning-free, gives the same bytes for the same file, and refuses
an op or an option it does not implement by name. Needs tflite-micro and a C compiler: under CI=true a missing one
fails."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json, require

from lenet_edge.errors import UnsupportedModelError
from lenet_edge.exporters.c_model import SUPPORTED_OPS, file_names, generate
from lenet_edge.runtimes import open_runner

INT8 = "lenet5_int8.tflite"
DIGITS = 2000


@pytest.fixture(scope="module")
def tools() -> None:
    require(
        importlib.util.find_spec("tflite_micro") is not None, "tflite-micro is not installed: pip install tflite-micro"
    )
    require(shutil.which("cc") is not None, "no C compiler: apt-get install gcc")


def _edited(model: bytes, edit) -> bytes:
    """``model`` with its flatbuffer changed by ``edit(schema, model_t)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromPackedBuf(model, 0)
    edit(schema, parsed)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op_code(schema, parsed, name: str):
    return next(c for c in parsed.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == getattr(
        schema.BuiltinOperator, name))  # fmt: skip


def test_the_bundle_holds_the_c_model_with_its_sizes(tools, tiny_bundle):
    """Export wrote <stem>.c and <stem>.h beside the C array; the manifest lists them with their checksums, the
    flash and RAM the generator states, and the header is the app contract (raw uint8 pixels in, uint8 out)."""
    micro = next(e for e in manifest_json(tiny_bundle)["artifacts"] if e["format"] == "tflite-int8")["micro"]
    made = generate((tiny_bundle / INT8).read_bytes(), "lenet5_int8")
    record = micro["c_model"]
    assert {ref["file"] for ref in record["files"]} == set(file_names("lenet5_int8")) and record["refused"] == ""
    for ref in record["files"]:
        blob = (tiny_bundle / ref["file"]).read_bytes()
        assert (ref["bytes"], ref["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest())
        assert blob.decode() == made.files[ref["file"]]  # the same file gives the same bytes
    assert (record["scratch_bytes"], record["weight_bytes"]) == (made.scratch_bytes, made.weight_bytes)
    assert record["ops"] == ["QUANTIZE", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"]
    # the planner: the uint8->int8 pixels (784) and the logits (10, word-aligned after them) are alive together;
    # the reshape is the same bytes, the softmax runs in place, the last requantization writes the caller's array
    assert made.scratch_bytes == 784 + 12
    assert made.weight_bytes == 784 * 10 + 10 * 4 + 10 * 4 + 10  # weights, bias, multipliers, shifts
    assert made.scratch_bytes < micro["arena_bytes"] and made.weight_bytes < micro["flash_bytes"]
    header = made.header
    assert "void lenet5_int8_predict(const uint8_t pixels[784], uint8_t probabilities[10]);" in header
    for macro in ("INPUT_SCALE 1.0f", "INPUT_ZERO_POINT 0", "OUTPUT_SIZE 10", "OUTPUT_SCALE 0.00390625f",
                  f"SCRATCH_BYTES {made.scratch_bytes}", f"WEIGHT_BYTES {made.weight_bytes}"):  # fmt: skip
        assert f"#define LENET5_INT8_{macro}" in header


def test_the_c_model_answers_byte_for_byte_as_tflite_micro(tools, tiny_bundle, mnist):
    c, tflm = open_runner("c", tiny_bundle / INT8), open_runner("tflm", tiny_bundle / INT8)
    assert c.runtime == "c" and c.precision() == "int8" and c.delegate == "cc"
    for ours, theirs in ((c.input, tflm.input), (c.output, tflm.output)):
        assert (ours.dtype, ours.shape, ours.scale, ours.zero_point) == (
            theirs.dtype,
            theirs.shape,
            theirs.scale,
            theirs.zero_point,
        )
    digits = mnist.x_test[:DIGITS]
    ours, theirs = c.predict(digits, raw=True), tflm.predict(digits, raw=True)
    assert ours.dtype == theirs.dtype == np.uint8
    np.testing.assert_array_equal(ours, theirs)
    assert np.mean(ours.argmax(1) == mnist.y_test[:DIGITS]) > 0.8  # real answers, not a constant


def test_the_c_model_compiles_warning_free_as_c99_and_links_from_cxx(tools, tiny_bundle, tmp_path):
    """Strict C99 (-pedantic, -Wconversion off as TFLite's own kernels), and the header from C++ (extern "C")."""
    for name in file_names("lenet5_int8"):
        shutil.copy(tiny_bundle / name, tmp_path / name)
    strict = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wstrict-prototypes"]
    done = subprocess.run(["cc", *strict, "-c", "lenet5_int8.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    nm = subprocess.run(["nm", "lenet5_int8.o"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert re.findall(r" [A-Z] (\w+)$", nm, re.MULTILINE) == ["lenet5_int8_predict"]  # no libc, one symbol out
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx:
        (tmp_path / "app.cc").write_text(
            '#include "lenet5_int8.h"\nint main() { uint8_t in[LENET5_INT8_INPUT_SIZE] = {0};\n'
            "  uint8_t out[LENET5_INT8_OUTPUT_SIZE]; lenet5_int8_predict(in, out); return out[0] > 255; }\n"
        )
        link = [gxx, "-Wall", "-Werror", "app.cc", "lenet5_int8.o", "-o", "app"]
        done = subprocess.run(link, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert subprocess.run([str(tmp_path / "app")]).returncode == 0


def test_the_same_file_gives_the_same_bytes(tiny_bundle):
    model = (tiny_bundle / INT8).read_bytes()
    first, second = generate(model), generate(bytes(bytearray(model)))
    assert (first.header, first.source) == (second.header, second.source)
    assert generate(model, "other_stem").source.count("other_stem_predict") == 1
    with pytest.raises(ValueError, match="cannot name C symbols"):
        generate(model, "bad-stem")


@pytest.mark.parametrize("activation", ["TANH", "LOGISTIC", "RELU", "RELU6"])
def test_each_activation_kernel_answers_as_tflite_micro(tools, tiny_bundle, mnist, tmp_path, activation):
    """tiny_bundle's SOFTMAX swapped for an activation op (its int8 logits in, the int8 tensor of scale 1/256 and
    zero point -128 out): the C kernel gives TFLite Micro's bytes on every digit."""

    def swap(schema, parsed):
        code = _op_code(schema, parsed, "SOFTMAX")
        code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, activation)
        for op in parsed.subgraphs[0].operators:
            if op.opcodeIndex == parsed.operatorCodes.index(code):
                op.builtinOptionsType, op.builtinOptions = 0, None

    path = tmp_path / INT8
    path.write_bytes(_edited((tiny_bundle / INT8).read_bytes(), swap))
    made = generate(path.read_bytes())
    assert activation in made.ops and "SOFTMAX" not in made.ops
    for name, text in made.files.items():
        (tmp_path / name).write_text(text)
    digits = mnist.x_test[:DIGITS]
    ours, theirs = open_runner("c", path).predict(digits, raw=True), open_runner("tflm", path).predict(digits, raw=True)
    np.testing.assert_array_equal(ours, theirs)
    assert len(np.unique(ours)) > 10  # the kernel's range is exercised, not a saturated corner


def test_an_op_it_does_not_know_is_refused_by_name(tiny_bundle, tmp_path):
    """The softmax turned into LOG_SOFTMAX: the generator names the op (exit code 2); the bundle writer keeps
    the C array only and records why."""
    from lenet_edge.bundle_writer import write_c_model

    def log_softmax(schema, parsed):
        code = _op_code(schema, parsed, "SOFTMAX")
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LOG_SOFTMAX

    edited = _edited((tiny_bundle / INT8).read_bytes(), log_softmax)
    assert "LOG_SOFTMAX" not in SUPPORTED_OPS
    with pytest.raises(UnsupportedModelError, match=r"^op LOG_SOFTMAX \(node 3\) is not implemented") as caught:
        generate(edited)
    assert caught.value.exit_code == 2
    path = tmp_path / INT8
    path.write_bytes(edited)
    record = write_c_model(path)
    assert record.files == [] and "LOG_SOFTMAX" in record.refused
    assert sorted(p.name for p in tmp_path.iterdir()) == [INT8]


def test_a_refused_c_model_is_recorded_in_the_manifest_and_said_in_the_report(tiny_bundle, tmp_path):
    from lenet_edge.manifest import CModelFiles, read_manifest, write_manifest
    from lenet_edge.report.markdown import render_markdown

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = read_manifest(bundle)
    entry = next(a for a in manifest.artifacts if a.format == "tflite-int8")
    assert entry.micro is not None
    entry.micro.c_model = CModelFiles(refused="op LOG_SOFTMAX (node 3) is not implemented by the C model")
    write_manifest(bundle, manifest)
    again = next(a for a in read_manifest(bundle).artifacts if a.format == "tflite-int8")
    assert again.micro is not None and again.micro.c_model == entry.micro.c_model
    text = render_markdown({"verify": []}, read_manifest(bundle))
    assert "No C model for **tflite-int8** (the bundle holds its C array only): op LOG_SOFTMAX (node 3)" in text


@pytest.mark.parametrize(
    ("what", "edit", "named"),
    [
        ("fused activation", lambda op: setattr(op.builtinOptions, "fusedActivationFunction", 4), "TANH"),
        ("weights format", lambda op: setattr(op.builtinOptions, "weightsFormat", 1), "weights format 1"),
    ],
)
def test_an_option_it_does_not_implement_is_refused_by_name(tiny_bundle, what, edit, named):
    def change(schema, parsed):
        code = parsed.operatorCodes.index(_op_code(schema, parsed, "FULLY_CONNECTED"))
        edit(next(op for op in parsed.subgraphs[0].operators if op.opcodeIndex == code))

    with pytest.raises(UnsupportedModelError, match=f"FULLY_CONNECTED: .*{named}"):
        generate(_edited((tiny_bundle / INT8).read_bytes(), change))


def test_the_runner_refuses_a_c_model_of_another_file(tools, tiny_bundle, tmp_path):
    """A .tflite beside a C model generated from other bytes (or none): one line, no answers from the wrong model."""
    for name in (INT8, *file_names("lenet5_int8")):
        shutil.copy(tiny_bundle / name, tmp_path / name)
    model = tmp_path / INT8
    model.write_bytes(model.read_bytes() + b"\0")  # a file the C source was not generated from
    with pytest.raises(ValueError, match=r"lenet5_int8\.c was not generated from this lenet5_int8\.tflite"):
        open_runner("c", model)
    (tmp_path / "lenet5_int8.c").unlink()
    with pytest.raises(FileNotFoundError, match=r"no C model beside lenet5_int8\.tflite"):
        open_runner("c", model)


def test_verify_judges_the_c_model_against_keras_and_tflite_micro(tools, tiny_bundle, mnist):
    from lenet_edge.verify import verify_bundle

    rows = {(row.format, row.runtime): row for row in verify_bundle(tiny_bundle, mnist, use_keras=False)["rows"]}
    row = rows[("tflite-int8", "c")]
    assert row.status == "pass" and row.identical_share == 1.0 and row.max_steps == 0, row
    assert row.agreement == rows[("tflite-int8", "tflm")].agreement and row.precision == "int8"
    assert ("tflite-fp32", "c") not in rows  # a C model of the int8 file only


@pytest.mark.slow  # the trained bundle (a minute of training) and its verify
def test_the_trained_c_model_is_tflite_micro_on_every_test_digit_in_less_flash_and_ram(trained_bundle):
    import json

    report = json.loads((trained_bundle / "report.json").read_text())
    (row,) = [row for row in report["verify"] if row["runtime"] == "c"]
    assert row["status"] == "pass" and row["identical_share"] == 1.0 and row["max_steps"] == 0, row
    micro = next(e for e in manifest_json(trained_bundle)["artifacts"] if e["format"] == "tflite-int8")["micro"]
    record = micro["c_model"]
    assert record["ops"].count("CONV_2D") == 3 and "TANH" in record["ops"]
    assert record["weight_bytes"] < micro["flash_bytes"] and record["scratch_bytes"] < micro["arena_bytes"]


def _lenet_variants():
    """Small LeNet-class graphs as the exporters emit them, one op or option each beside the bundle's."""
    import keras

    layers = keras.layers

    def chain(name, body, rewrite=True):
        image = keras.Input((28, 28, 1), name="image")
        x = layers.Rescaling(1 / 255.0)(image)
        for layer in body:
            x = layer(x)
        model = keras.Model(image, layers.Dense(10, activation="softmax", name="probabilities")(x), name=name)
        return model, rewrite

    return {
        "relu-maxpool-same": lambda: chain("a", [
            layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2, padding="same"), layers.Flatten(),
            layers.Dense(24, activation="relu")]),
        "sigmoid-avgpool-same-stride": lambda: chain("b", [
            layers.Conv2D(4, 3, strides=2, activation="sigmoid"),
            layers.AveragePooling2D(3, strides=2, padding="same"), layers.Flatten(),
            layers.Dense(20, activation="sigmoid")]),
        "relu6-depthwise": lambda: chain("c", [
            layers.Conv2D(8, 3, activation="relu6"), layers.AveragePooling2D(2),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"), layers.Flatten(), layers.Dense(16),
            layers.Activation("tanh")]),
        "classic-as-is": lambda: chain("d", [
            layers.ZeroPadding2D(2), layers.Conv2D(6, 5, activation="tanh"), layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"), layers.AveragePooling2D(2), layers.Flatten()], rewrite=False),
    }  # fmt: skip


@pytest.mark.slow  # four int8 conversions: about 20 s
@pytest.mark.parametrize("variant", ["relu-maxpool-same", "sigmoid-avgpool-same-stride", "relu6-depthwise",
                                     "classic-as-is"])  # fmt: skip
def test_lenet_class_graphs_answer_as_tflite_micro(tools, mnist, tmp_path, variant):
    """Max and average pools with 'same' padding and strides, relu/relu6/sigmoid/tanh, depthwise convolutions and
    a graph exported as it is (Flatten's SHAPE, STRIDED_SLICE and PACK): byte for byte TFLite Micro's answers."""
    from lenet_edge.data import calibration_images
    from lenet_edge.exporters.tflite import export
    from lenet_edge.model import deployment
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(5)
    model, rewrite = _lenet_variants()[variant]()
    graph = deployment(model)[0] if rewrite else model
    path = tmp_path / "variant.tflite"
    export(graph, path, calibration_images(mnist, 64, 0), quantization="int8")
    made = generate(path.read_bytes(), "variant")
    for name, text in made.files.items():
        (tmp_path / name).write_text(text)
    digits = mnist.x_test[:300]
    ours = open_runner("c", path).predict(digits, raw=True)
    np.testing.assert_array_equal(ours, open_runner("tflm", path).predict(digits, raw=True))
    assert Path(path).with_suffix(".c").exists() and made.ops[-1] == "QUANTIZE"
