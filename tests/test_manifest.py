"""manifest.json, the bundle contract: read_manifest reads tiny_bundle's as written, and refuses every kind of
bad manifest with a BundleError (exit code 2) of one line naming the bad field; the CLI turns each into exit
code 2 and that one line on stderr, no traceback."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from conftest import manifest_json

from lenet_edge.cli import main
from lenet_edge.errors import BundleError
from lenet_edge.formats import BY_NAME, FORMATS
from lenet_edge.manifest import MAX_MANIFEST_BYTES, is_bundle, parse_manifest, read_manifest


def _index(manifest: dict, fmt: str) -> int:
    return next(i for i, entry in enumerate(manifest["artifacts"]) if entry["format"] == fmt)


def _set(fmt: str, key: str, value):
    """An edit of one artifact's field: (the edit, the field's path in the manifest)."""

    def edit(manifest: dict) -> None:
        manifest["artifacts"][_index(manifest, fmt)][key] = value

    return edit


def _without(key: str, fmt: str | None = None):
    """An edit removing a field of the manifest, or of one artifact."""

    def edit(manifest: dict) -> None:
        del (manifest if fmt is None else manifest["artifacts"][_index(manifest, fmt)])[key]

    return edit


# (id, how the manifest is broken: its bytes, or an edit of the parsed JSON (in place, or returning what
# replaces it); what the one-line error must say,
# 'fmt@key' standing for the path the error names, artifacts[i].key, i being fmt's place in the manifest)
CORPUS = [
    ("a-list", lambda m: [m], ["the manifest is a list, not an object"]),
    ("null", b"null", ["the manifest is null, not an object"]),
    ("a-number", b"42", ["the manifest is a number, not an object"]),
    ("not-utf8", b'{"generator": "lenet-edge", "artifacts": [], "note": "\xff\xfe"}', ["not UTF-8"]),
    ("latin1", '{"generator": "lenet-edge", "artifacts": [], "by": "Sébastien"}'.encode("latin-1"), ["not UTF-8"]),
    ("not-json", b'{"generator": "lenet-edge", "artifacts": [', ["unreadable manifest"]),
    ("empty", b"", ["unreadable manifest"]),
    ("too-large", b" " * (MAX_MANIFEST_BYTES + 1), ["too large for a manifest"]),
    ("no-artifacts", _without("artifacts"), ["artifacts is missing"]),
    ("artifacts-a-string", lambda m: m.update(artifacts="lenet5_fp32.tflite"), ["artifacts is text, expected a list"]),
    ("artifacts-an-object", lambda m: m.update(artifacts={}), ["artifacts is an object, expected a list"]),
    ("artifact-a-string", lambda m: m.update(artifacts=["lenet5_fp32.tflite"]), ["artifacts[0]", "not an object"]),
    ("file-a-number", _set("tflite-fp32", "file", 7), ["tflite-fp32@file", "is a number, expected text"]),
    ("file-null", _set("onnx-fp32", "file", None), ["onnx-fp32@file", "is null, expected text"]),
    ("file-up", _set("tflite-int8", "file", "../lenet5_int8.tflite"), ["tflite-int8@file", "not a plain file name"]),
    ("file-absolute", _set("onnx-int8", "file", "/etc/passwd"), ["onnx-int8@file", "not a plain file name"]),
    ("file-in-a-folder", _set("tflite-fp16", "file", "sub/x.tflite"), ["tflite-fp16@file", "not a plain file name"]),
    ("file-dotdot", _set("tflite-fp32", "file", ".."), ["tflite-fp32@file", "not a plain file name"]),
    ("file-dot", _set("tflite-fp32", "file", "."), ["tflite-fp32@file", "not a plain file name"]),
    ("file-empty", _set("tflite-fp32", "file", ""), ["tflite-fp32@file", "not a plain file name"]),
    ("file-backslash", _set("onnx-fp32", "file", "..\\x.onnx"), ["onnx-fp32@file", "not a plain file name"]),
    ("file-nul", _set("onnx-fp32", "file", "x\u0000.onnx"), ["onnx-fp32@file", "not a plain file name"]),
    ("unknown-format", _set("tflite-int8", "format", "tflite-int4"), ["tflite-int8@format", "'tflite-int4'"]),
    ("format-a-number", _set("tflite-int8", "format", 8), ["tflite-int8@format", "is a number, expected text"]),
    ("precision-contradicts", _set("tflite-int8", "precision", "fp32"), ["tflite-int8@precision", "'fp32'", "'int8'"]),
    ("runtime-contradicts", _set("onnx-fp32", "runtime", "litert"), ["onnx-fp32@runtime", "'litert'"]),
    ("runtime-unknown", _set("tflite-fp16", "runtime", "tensorrt"), ["tflite-fp16@runtime", "'tensorrt'"]),
    ("bytes-as-text", _set("tflite-fp32", "bytes", "32980"), ["tflite-fp32@bytes", "expected a whole number"]),
    ("bytes-a-bool", _set("tflite-fp32", "bytes", True), ["tflite-fp32@bytes", "true/false"]),
    ("sha256-missing", _without("sha256", "tflite-fp32"), ["tflite-fp32@sha256 is missing"]),
    ("input-a-list", _set("onnx-int8", "input", [1, 28, 28, 1]), ["onnx-int8@input", "expected an object"]),
    (
        "shape-of-text",
        lambda m: m["artifacts"][_index(m, "tflite-int8")]["input"].update(shape=["batch", 28, 28, 1]),
        ["tflite-int8@input.shape", "whole numbers"],
    ),
    ("duplicate-format", lambda m: m["artifacts"].append(copy.deepcopy(m["artifacts"][-1])), ["format twice"]),
    ("wrong-generator", lambda m: m.update(generator="tf-exporter"), ["written by 'tf-exporter'", "lenet-edge"]),
    ("no-generator", _without("generator"), ["generator is missing"]),
    ("seed-as-text", lambda m: m.update(seed="7"), ["seed is text, expected a whole number"]),
    ("reference-up", lambda m: m["reference"].update(file="../x.npy"), ["reference.file", "not a plain file name"]),
    ("failed-of-text", lambda m: m.update(failed=["tflite-fp16"]), ["failed holds something other than objects"]),
    ("micro-a-list", _set("tflite-int8", "micro", []), ["tflite-int8@micro is a list, expected an object"]),
    (
        "micro-negative-arena",
        lambda m: m["artifacts"][_index(m, "tflite-int8")]["micro"].update(arena_bytes=-1),
        ["tflite-int8@micro.arena_bytes and flash_bytes must be positive"],
    ),
    (
        "micro-c-file-up",
        lambda m: m["artifacts"][_index(m, "tflite-int8")]["micro"]["c_files"][0].update(file="../../main.c"),
        ["tflite-int8@micro.c_files[0].file", "not a plain file name"],
    ),
]


def _expected(fragments: list[str], manifest: dict) -> list[str]:
    """'fmt@key' stands for the field's path, artifacts[i].key, with i that artifact's place in the manifest."""
    out = []
    for fragment in fragments:
        fmt, at, key = fragment.partition("@")
        out.append(f"artifacts[{_index(manifest, fmt)}].{key}" if at else fragment)
    return out


@pytest.fixture
def bad_bundle(tiny_bundle, tmp_path, request) -> tuple[Path, list[str]]:
    """A copy of tiny_bundle whose manifest.json is broken as the case says; (its folder, what the error says)."""
    _, breakage, fragments = request.param
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = manifest_json(bundle)
    expected = _expected(fragments, manifest)
    if isinstance(breakage, bytes):
        (bundle / "manifest.json").write_bytes(breakage)
    else:
        replaced = breakage(manifest)
        (bundle / "manifest.json").write_text(json.dumps(manifest if replaced is None else replaced, indent=2))
    return bundle, expected


def _one_line_naming(message: str, bundle: Path, expected: list[str]) -> None:
    assert "\n" not in message.strip(), message
    assert str(bundle) in message, message  # names the file it is about
    for fragment in expected:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("bad_bundle", CORPUS, ids=[case[0] for case in CORPUS], indirect=True)
def test_a_bad_manifest_is_one_bundle_error_naming_the_field(bad_bundle):
    bundle, expected = bad_bundle
    with pytest.raises(BundleError) as raised:
        read_manifest(bundle)
    assert raised.value.exit_code == 2
    _one_line_naming(str(raised.value), bundle, expected)
    assert not is_bundle(bundle)


@pytest.mark.parametrize("bad_bundle", CORPUS, ids=[case[0] for case in CORPUS], indirect=True)
def test_verify_of_a_bad_manifest_exits_2_in_one_line(bad_bundle, raw_mnist_dir, capsys):
    bundle, expected = bad_bundle
    assert main(["verify", str(bundle), "--data", str(raw_mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet-edge: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    _one_line_naming(err, bundle, expected)
    assert not (bundle / "report.json").exists()  # refused before any work


def test_no_manifest_is_not_a_bundle(tmp_path, raw_mnist_dir, capsys):
    with pytest.raises(BundleError, match="not a lenet-edge bundle"):
        read_manifest(tmp_path)
    assert main(["verify", str(tmp_path), "--data", str(raw_mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert "not a lenet-edge bundle (no manifest.json)" in err and err.count("\n") == 1


def test_the_writers_manifest_reads_back_whole(tiny_bundle):
    """What bundle_writer wrote, read_manifest reads, every artifact with the formats table's runtime and
    precision, and writing it again gives the same JSON."""
    manifest = read_manifest(tiny_bundle)
    data = manifest_json(tiny_bundle)
    assert manifest.to_dict() == data
    assert parse_manifest(copy.deepcopy(data)).to_dict() == data
    assert [a.format for a in manifest.artifacts] == ["keras", *(f.name for f in FORMATS)]
    for artifact in manifest.artifacts:
        assert (artifact.runtime, artifact.precision) == (BY_NAME[artifact.format].runtime, artifact.spec.precision)
        assert (tiny_bundle / artifact.file).is_file()
    assert [a.format for a in manifest.exports] == [f.name for f in FORMATS]  # all but the Keras model
    assert is_bundle(tiny_bundle)
