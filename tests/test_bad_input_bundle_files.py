"""Model files in a bundle swapped, cut, emptied or replaced by pipes and folders, and re-signed as a careless
re-export would (lenet_edge/verify.py, bench.py): each becomes a failed or error row with a one-line reason, or a
one-line refusal; a report that cannot be written is said so. The four checks every case makes are in
tests/bad_input.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from bad_input import Planted, as_param, assert_kept, bundle_of, cli, error_line, resign, snapshot, unblocked
from conftest import manifest_json, row_key

from lenet_edge.files import write_json
from lenet_edge.formats import BY_NAME


def verify_rows(bundle: Path) -> dict[str, dict]:
    return {row_key(row): row for row in json.loads((bundle / "report.json").read_text())["verify"]}


def row_line(out: str, fmt: str) -> str:
    """verify's one log line of ``fmt``'s row."""
    (line,) = [
        line
        for line in out.splitlines()
        if f" {fmt} " in line
        and ("❎" in line or "❌" in line)
        and line.split()[2] not in ("tflm", "c")  # its own runtime's row, not TFLite Micro's or the C model's
    ]
    return line


SWAPS = [
    ("tflite-int8", "lenet5_int8.tflite", "lenet5_fp32.tflite", "fp32", "int8"),
    ("tflite-dynamic", "lenet5_dynamic.tflite", "lenet5_fp32.tflite", "fp32", "dynamic"),
    ("onnx-int8", "lenet5_int8.onnx", "lenet5_fp32.onnx", "fp32", "int8"),
]


@pytest.mark.parametrize("signed", [False, True], ids=["changed", "changed-and-resigned"])
def test_a_c_array_that_is_not_its_model_fails_the_microcontroller_row(
    tiny_bundle, loaded_once, tmp_path, capsys, signed
):
    """One byte of the firmware's array changed: its checksum differs from the manifest's, or, re-signed, its
    array is no longer the .tflite; either way the TFLite Micro row fails and the LiteRT row stays a pass."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-int8",))
    source = bundle / "lenet5_int8_model_data.c"
    text = source.read_text()
    at = text.index("0x", text.index("= {") + 200)
    source.write_text(text[:at] + ("0x00" if text[at : at + 4] != "0x00" else "0x01") + text[at + 4 :])
    if signed:
        manifest = manifest_json(bundle)
        (entry,) = manifest["artifacts"]
        ref = next(ref for ref in entry["micro"]["c_files"] if ref["file"] == source.name)
        ref["bytes"], ref["sha256"] = source.stat().st_size, hashlib.sha256(source.read_bytes()).hexdigest()
        write_json(bundle / "manifest.json", manifest)
    done, out, _ = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert done == 1 and "verify: 1 of 3 did not pass: tflite-int8 in tflm" in out, out
    rows = verify_rows(bundle)
    assert rows["tflite-int8"]["status"] == "pass"
    expected = "its array is not lenet5_int8.tflite byte for byte" if signed else "integrity: sha256 differs"
    assert rows["tflite-int8 in tflm"]["status"] == "fail" and expected in rows["tflite-int8 in tflm"]["reason"]


@pytest.mark.parametrize("signed", [False, True], ids=["changed", "changed-and-resigned"])
def test_a_c_model_that_is_not_its_model_fails_its_row(tiny_bundle, loaded_once, tmp_path, capsys, signed):
    """One weight of the C model changed: its checksum differs from the manifest's, or, re-signed, it no longer
    answers byte for byte as TFLite Micro on the same file; either way the `c` row fails, the others pass."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-int8",))
    source = bundle / "lenet5_int8.c"
    text = source.read_text()
    start = text.index("{", text.index("static const int8_t node2_w[")) + 1  # the dense layer's weights
    end = text.index("}", start)
    weights = [int(value) for value in text[start:end].split(",")]
    centre = 14 * 28 + 14  # digit 0's weight of the centre pixel, which most digits light
    weights[centre] += 100 if weights[centre] < 0 else -100
    source.write_text(text[:start] + ", ".join(map(str, weights)) + text[end:])
    if signed:
        manifest = manifest_json(bundle)
        (entry,) = manifest["artifacts"]
        ref = next(ref for ref in entry["micro"]["c_model"]["files"] if ref["file"] == source.name)
        ref["bytes"], ref["sha256"] = source.stat().st_size, hashlib.sha256(source.read_bytes()).hexdigest()
        write_json(bundle / "manifest.json", manifest)
    done, out, _ = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert done == 1 and "verify: 1 of 3 did not pass: tflite-int8 in c" in out, out
    rows = verify_rows(bundle)
    assert rows["tflite-int8"]["status"] == rows["tflite-int8 in tflm"]["status"] == "pass"
    expected = "not TFLite Micro's answers on" if signed else "lenet5_int8.c: integrity: "
    assert rows["tflite-int8 in c"]["status"] == "fail" and expected in rows["tflite-int8 in c"]["reason"], rows


@pytest.mark.parametrize(("fmt", "slot", "source", "found", "claimed"), SWAPS, ids=[s[0] for s in SWAPS])
def test_a_float_file_in_a_quantized_slot_fails_its_row(
    tiny_bundle, loaded_once, tmp_path, capsys, fmt, slot, source, found, claimed
):
    """The fp32 file copied over a quantized one and the manifest re-signed: the checksum matches, the precision
    read from the file does not. Exit 1, the row fails saying so."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", (fmt,))
    shutil.copy(bundle / source, bundle / slot)
    resign(bundle, fmt)
    before = snapshot(tmp_path)
    code, out, err = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert code == 1 and err == ""
    reason = f"the file is {found}, not the {claimed} its row ({fmt}) claims"
    assert reason in row_line(out, fmt)
    row = verify_rows(bundle)[fmt]
    assert row["status"] == "fail" and reason in row["reason"] and "\n" not in row["reason"]
    assert_kept(before, snapshot(tmp_path))


def _cut(path: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


BROKEN = [
    ("tflite-fp32", "lenet5_fp32.tflite", "cut", _cut, "not a valid Flatbuffer"),
    ("onnx-int8", "lenet5_int8.onnx", "cut", _cut, "INVALID_PROTOBUF"),
    ("tflite-fp16", "lenet5_fp16.tflite", "empty", lambda p: p.write_bytes(b""), "ValueError"),
    ("tflite-dynamic", "lenet5_dynamic.tflite", "pipe", lambda p: p.unlink() or os.mkfifo(p), "not a regular file"),
    ("onnx-fp32", "lenet5_fp32.onnx", "folder", lambda p: p.unlink() or p.mkdir(), "not a regular file"),
]


@pytest.mark.parametrize(
    ("broken", "good"),
    [
        pytest.param(BROKEN, "tflite-int8", id="five-kinds-beside-a-good-one"),
        pytest.param(BROKEN[:1], None, id="the-only-one-cut"),  # no row to draw a confusion matrix of
    ],
)
def test_broken_model_files_are_error_rows(tiny_bundle, loaded_once, tmp_path, capsys, broken, good):
    """Half a file, an empty one (both re-signed), a pipe or a folder in a model's place: each row is an error with
    a one-line reason naming what is wrong, the good model passes, exit 1; nothing opens the pipe."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", tuple(case[0] for case in broken) + ((good,) if good else ()))
    for fmt, file, how, spoil, _ in broken:
        spoil(bundle / file)
        if how in ("cut", "empty"):
            resign(bundle, fmt)
    before = snapshot(tmp_path)
    with contextlib.ExitStack() as guards:
        for _, file, how, _, _ in broken:
            if how == "pipe":
                guards.enter_context(unblocked(bundle / file))
        code, out, err = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert code == 1 and err == ""
    rows = verify_rows(bundle)
    for fmt, _, _, _, fragment in broken:
        assert fragment in row_line(out, fmt)
        assert rows[fmt]["status"] == "error" and fragment in rows[fmt]["reason"] and "\n" not in rows[fmt]["reason"]
    assert good is None or rows[good]["status"] == "pass"
    assert_kept(before, snapshot(tmp_path))


def _pickled_reference(path: Path) -> list[str]:
    np.save(path, np.array([Planted(path.parent.parent / "UNPICKLED")] * 10, dtype=object), allow_pickle=True)
    return ["keras_test_probabilities.npy: not a plain array file"]


def _reference_as(values: np.ndarray):
    def make(path: Path) -> list[str]:
        np.save(path, values)
        return ["keras_test_probabilities.npy"]

    return make


REFERENCE_CASES = [
    ("pickled", _pickled_reference),
    ("wrong-shape", lambda p: np.save(p, np.full((100, 10), 0.1, np.float32)) or
     ["keras_test_probabilities.npy holds (100, 10), not 10000 test images"]),
    ("cut", lambda p: _cut(p) or ["keras_test_probabilities.npy: not a plain array file"]),
    ("pipe", lambda p: p.unlink() or os.mkfifo(p) or
     ["no trustworthy Keras reference (keras_test_probabilities.npy missing or altered)"]),
    ("text", _reference_as(np.full((10_000, 10), "0.1"))),
    ("nan", _reference_as(np.full((10_000, 10), np.nan, np.float32))),
]  # fmt: skip


@pytest.mark.parametrize("spoil", [as_param(case) for case in REFERENCE_CASES])
def test_a_bad_reference_is_refused_in_one_line(tiny_bundle, loaded_once, tmp_path, capsys, spoil):
    """keras_test_probabilities.npy replaced (and re-signed, but for the pipe): a pickle is refused, never
    unpickled; exit 2 and one line naming the file; no report written."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-fp32",))
    path = bundle / "keras_test_probabilities.npy"
    expected = spoil(path)
    if path.is_file():
        resign(bundle, "reference")
    before = snapshot(tmp_path)
    with unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext():
        code, _, err = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert code == 2
    line = error_line(err)
    assert all(fragment in line for fragment in expected), line
    assert snapshot(tmp_path) == before and not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("how", ["missing", "cut"])
def test_verify_layers_of_a_missing_or_cut_int8_onnx(tiny_bundle, loaded_once, tmp_path, capsys, how):
    """verify --layers, the int8 ONNX gone or cut in half (re-signed): its row is an error, its layer report a
    one-line 'could not be measured', exit 1, no traceback; the float ONNX still passes."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("onnx-fp32", "onnx-int8"))
    path = bundle / "lenet5_int8.onnx"
    if how == "missing":
        path.unlink()
    else:
        _cut(path)
        resign(bundle, "onnx-int8")
    before = snapshot(tmp_path)
    code, out, err = cli(capsys, "verify", bundle, "--data", loaded_once, "--layers")
    assert code == 1 and err == ""
    assert ("missing file" if how == "missing" else "INVALID_PROTOBUF") in row_line(out, "onnx-int8")
    rows = verify_rows(bundle)
    assert rows["onnx-int8"]["status"] == "error" and rows["onnx-fp32"]["status"] == "pass"
    skipped = json.loads((bundle / "report.json").read_text())["layers"]["onnx-int8"]["skipped"]
    expected = "lenet5_int8.onnx is missing or not a regular file" if how == "missing" else "could not be measured ("
    assert skipped.startswith(expected) and "\n" not in skipped
    assert_kept(before, snapshot(tmp_path))


@pytest.mark.parametrize(
    ("formats", "spoilt"),
    [
        pytest.param(("onnx-fp32", "tflite-fp32"), "missing", id="one-of-two-missing"),
        pytest.param(("onnx-fp32",), "cut", id="the-only-one-cut"),  # no row to draw a chart of
    ],
)  # fmt: skip
def test_bench_of_a_missing_or_cut_artifact(tiny_bundle, loaded_once, tmp_path, capsys, formats, spoilt):
    """bench, one artifact gone or cut in half (re-signed): exit 1, its failure one line naming the combination,
    no traceback; what can be measured is."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", formats)
    fmt = formats[-1]
    path = bundle / BY_NAME[fmt].file
    if spoilt == "missing":
        path.unlink()
    else:
        _cut(path)
        resign(bundle, fmt)
    before = snapshot(tmp_path)
    args = ["--profile", "mobile", "--seconds", "0.001", "--no-browser"]
    code, out, err = cli(capsys, "bench", bundle, "--data", loaded_once, *args)
    assert code == 1
    (failure,) = [line for line in out.splitlines() if line.startswith("bench: ") and " failed: " in line]
    assert failure.startswith(f"bench: {fmt} ") and path.name in failure, failure
    assert all(line.startswith("[") for line in err.splitlines()), err  # stderr: the progress bar only
    rows = json.loads((bundle / "bench.json").read_text())["rows"]
    assert {row["format"] for row in rows} == set(formats) - {fmt}
    assert_kept(before, snapshot(tmp_path))


NO_REPORT = [
    pytest.param(("onnx-fp32",), 3, "verify: all passed", id="all-pass"),
    pytest.param(
        ("onnx-fp32", "tflite-fp32"), 4, "verify: 2 of 3 did not pass: tflite-fp32, tflite-fp32 in tflm", id="one-fails"
    ),
]


@pytest.mark.parametrize(("formats", "code", "verdict"), NO_REPORT)
def test_verify_says_when_its_report_cannot_be_written(
    tiny_bundle, loaded_once, tmp_path, capsys, formats, code, verdict
):
    """report.md is a folder: the verdict is still printed, then that the report was NOT written, naming
    report.md; exit 3 (all passed) or 4 (one did not); the folder is left as it was."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", formats)
    (bundle / "report.md").mkdir()
    (bundle / "report.md" / "mine.txt").write_text("the user's")
    if len(formats) > 1:
        _cut(bundle / "lenet5_fp32.tflite")
        resign(bundle, "tflite-fp32")
    before = snapshot(tmp_path)
    done, out, err = cli(capsys, "verify", bundle, "--data", loaded_once)
    assert done == code and err == ""
    lines = out.splitlines()
    assert any(line.startswith(verdict) for line in lines), out
    (note,) = [line for line in lines if "the report was NOT written" in line]
    assert f"({bundle / 'report.md'}: " in note, note
    assert_kept(before, snapshot(tmp_path))


@pytest.mark.parametrize("command", ["verify", "bench", "predict"])
def test_json_into_a_folder_is_refused_before_any_work(tiny_bundle, good_picture, tmp_path, capsys, command):
    """--json naming a folder (the bundle itself, for verify and bench): exit 2, one line naming the flag, before
    MNIST is even looked for; nothing written."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("onnx-fp32",))
    given = {
        "verify": ["verify", bundle, "--data", tmp_path / "no-mnist-here"],
        "bench": ["bench", bundle, "--data", tmp_path / "no-mnist-here", "--no-browser"],
        "predict": ["predict", good_picture, "--model", bundle / "lenet5_fp32.onnx"],
    }[command]
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, *given, "--json", tmp_path if command == "predict" else bundle)
    assert code == 2
    assert f"--json {tmp_path if command == 'predict' else bundle}: is a folder or a link" in error_line(err)
    assert snapshot(tmp_path) == before
