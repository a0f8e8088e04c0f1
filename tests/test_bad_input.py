"""A corpus of bad input, as a careful user trying to break lenet-edge would make it: MNIST files that are bombs,
pipes, folders or the wrong size; pictures and models that are not what they claim; bundles whose files were
swapped and re-signed; output folders holding someone's notes; signals mid-export; hostile HTTP requests.

Every case checks four things: the exit code (or HTTP status); a one-line reason naming the bad file, flag or
field (`lenet-edge: error: ...` as the only line on stderr; where the command gives a verdict instead, verify's
row or export's attempt, its one log line, stderr empty; for the page, the JSON error); no traceback anywhere;
and that every file that was there before (in the test's tmp tree and the bundle it used) is byte-identical
afterwards, except the files the case expects to change. Cheap by design: bundle copies that list only the
formats a case needs, one export format (or none), MNIST loaded once for the commands that are not about MNIST."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import threading
import time
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import manifest_json, row_key
from PIL import Image

from lenet_edge import bundle_writer, exporters, serve
from lenet_edge.cli import main
from lenet_edge.files import write_json
from lenet_edge.formats import BY_NAME

STEMS = {
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
}
LIMIT = 64 << 20  # data.MAX_FILE_BYTES and preprocess.MAX_FILE_BYTES: no MNIST file, no picture is larger
HANG_S = 5.0  # a read of a pipe that has not returned by then is a hang


# --- the four checks --------------------------------------------------------------------------------------------


def _entry(path: Path):
    """What a path is, without following a link or opening a pipe: a file's size and sha256, a folder, a link's
    target, or the kind of a special file."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return ("folder",)
    if stat.S_ISREG(info.st_mode) and info.st_blocks * 512 < info.st_size // 2:  # sparse: no need to read 64 MB
        return (info.st_size, info.st_blocks, info.st_mtime_ns, info.st_ino)
    if stat.S_ISREG(info.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return (info.st_size, digest.hexdigest())
    return ("special", stat.S_IFMT(info.st_mode))


def snapshot(*roots: Path) -> dict[str, object]:
    """{path: what it is} of everything under ``roots`` (links not followed, pipes not opened)."""
    found = {}
    for root in roots:
        found[str(root)] = _entry(root)
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                found[os.path.join(folder, name)] = _entry(Path(folder) / name)
    return found


def assert_kept(before: dict, after: dict, changed: tuple[Path, ...] = ()) -> None:
    """Every path of ``before`` is there and identical in ``after``, but those in ``changed``."""
    allowed = {str(path) for path in changed}
    lost = {path: (what, after.get(path)) for path, what in before.items() if after.get(path) != what}
    assert set(lost) <= allowed, {path: lost[path] for path in set(lost) - allowed}


def cli(capsys, *args) -> tuple[int, str, str]:
    """`lenet-edge ARGS` in this process: (exit code, stdout, stderr), no traceback in either."""
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out and "Traceback" not in err, out + err
    return code, out, err


def error_line(err: str) -> str:
    """stderr is exactly one line, `lenet-edge: error: ...`; returns it."""
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("lenet-edge: error: "), err
    return err.rstrip("\n")


@contextlib.contextmanager
def no_warnings():
    """A warning shown while a command runs is more lines on the user's stderr: none may be."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    shown = [w for w in caught if not issubclass(w.category, DeprecationWarning | ResourceWarning | ImportWarning)]
    assert not shown, [f"{w.category.__name__}: {w.message}" for w in shown]


@contextlib.contextmanager
def unblocked(pipe: Path, seconds: float = HANG_S):
    """Guard a case against hanging on the pipe ``pipe``: after ``seconds``, open its write end (which releases a
    reader stuck opening it) and close it (EOF for a reader stuck reading), so a hang fails the case instead of
    freezing pytest. Fails the case if it had to."""
    done, rescued = threading.Event(), []

    def rescue():
        if done.wait(seconds):
            return
        while not done.is_set():
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading it (yet)
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                rescued.append(time.monotonic())
            time.sleep(0.05)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    assert not rescued, f"hung on the pipe {pipe} for more than {seconds:.0f} s"


def dead_pid() -> int:
    """A process id no process has now."""
    top = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(top - 1, 300, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid")


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and header of width×height greyscale, and a few bytes of data: small on disk, a bomb
    for whoever decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(bytes(64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def digit_png(mnist, index: int = 0) -> bytes:
    """A real test digit as a user has it: 10× larger, dark ink on white, PNG."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[index]).resize((280, 280), Image.Resampling.BILINEAR).save(buffer, "PNG")
    return buffer.getvalue()


class Planted:
    """An object whose unpickling creates the folder ``marker``: proof, by its absence, that nothing was
    unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


# --- bundles ------------------------------------------------------------------------------------------------------


def bundle_of(tiny_bundle: Path, dest: Path, formats: tuple[str, ...]) -> Path:
    """A copy of tiny_bundle whose manifest lists only ``formats`` (verify and bench then run only those)."""
    shutil.copytree(tiny_bundle, dest)
    manifest = manifest_json(dest)
    manifest["artifacts"] = [entry for entry in manifest["artifacts"] if entry["format"] in formats]
    write_json(dest / "manifest.json", manifest)
    return dest


def resign(bundle: Path, which: str) -> None:
    """Make the manifest's bytes and sha256 of ``which`` (a format, or 'reference') match its file again, as a
    careless re-export would: only a check of the content can then catch it."""
    manifest = manifest_json(bundle)
    entries = [manifest["reference"]] if which == "reference" else manifest["artifacts"]
    for entry in entries:
        if which == "reference" or entry["format"] == which:
            blob = (bundle / entry["file"]).read_bytes()
            entry["bytes"], entry["sha256"] = len(blob), hashlib.sha256(blob).hexdigest()
    write_json(bundle / "manifest.json", manifest)


def verify_rows(bundle: Path) -> dict[str, dict]:
    return {row_key(row): row for row in json.loads((bundle / "report.json").read_text())["verify"]}


def row_line(out: str, fmt: str) -> str:
    """verify's one log line of ``fmt``'s row."""
    (line,) = [
        line
        for line in out.splitlines()
        if f" {fmt} " in line and ("❎" in line or "❌" in line) and " tflm " not in line  # its own runtime's row
    ]
    return line


@pytest.fixture
def loaded_once(monkeypatch, mnist, raw_mnist_dir):
    """The CLI's MNIST load of ``raw_mnist_dir`` answered by the session's copy, loaded and checked once (the
    same four arrays; 0.2 s saved per command). Any other --data path is loaded as usual: the cases about bad
    data never come here."""
    import lenet_edge.cli
    import lenet_edge.data

    real = getattr(lenet_edge.cli, "load_mnist", lenet_edge.data.load_mnist)

    def load_mnist(data=None, download=True, check=True, recorded=None):
        if data is not None and Path(data) == raw_mnist_dir:
            return mnist
        return real(data, download=download, check=check, recorded=recorded)

    monkeypatch.setattr(lenet_edge.cli, "load_mnist", load_mnist, raising=False)  # (where the CLI finds it)
    return raw_mnist_dir


# --- MNIST files (lenet_edge/data.py) -----------------------------------------------------------------------------


def _bomb(path: Path) -> list[str]:
    """A gzip of 1 GB of zeros in 1 MB on disk (100 members of 10 MB each, which gzip readers chain)."""
    member = gzip.compress(bytes(10 << 20), compresslevel=9)
    with open(path, "wb") as handle:
        for _ in range(100):
            handle.write(member)
    return ["decompresses to more than the 10,008 bytes of MNIST's t10k-labels file"]


def _idx(path: Path, dims: tuple[int, ...], payload: bytes) -> None:
    path.write_bytes(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload)


def _npz_bomb(path: Path) -> list[str]:
    """An npz whose one member unpacks to 80 MB (of zeros, 360 KB packed)."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("x_train.npy", "w", force_zip64=True) as member,
    ):
        for _ in range(80):
            member.write(bytes(1 << 20))
    return ["unpacks to 83,886,080 bytes, more than MNIST holds"]


def _pickled_npz(path: Path) -> list[str]:
    marker = path.parent / "UNPICKLED"
    evil = np.array([Planted(marker)], dtype=object)
    np.savez(path, x_train=evil, y_train=evil, x_test=evil, y_test=evil)
    return ["holds pickled objects, which lenet-edge never loads"]


# (id, the file a case spoils, how: writes the bad thing at the path and returns what the error must say,
#  and whether --data names the folder or the file itself). The other three IDX files are links to good ones.
DATA_CASES = [
    ("gzip-bomb", "t10k-labels-idx1-ubyte.gz", _bomb, "folder"),
    ("pipe", "t10k-images-idx3-ubyte", lambda p: os.mkfifo(p) or ["not a regular file"], "folder"),
    ("device", "t10k-images-idx3-ubyte", lambda p: p.symlink_to("/dev/zero") or ["not a regular file"], "folder"),
    ("folder", "t10k-images-idx3-ubyte.gz", lambda p: p.mkdir() or ["not a regular file"], "folder"),
    ("empty-raw", "t10k-images-idx3-ubyte", lambda p: p.touch() or ["not an IDX file"], "folder"),
    ("empty-gz", "t10k-labels-idx1-ubyte.gz", lambda p: p.touch() or ["not an IDX file"], "folder"),
    ("too-large", "t10k-images-idx3-ubyte", lambda p: sparse(p, LIMIT + 1) and ["larger than any MNIST file"],
     "folder"),
    ("padded-raw", "t10k-labels-idx1-ubyte", lambda p: _idx(p, (10_000,), bytes(10_010)) or
     ["truncated or padded IDX file (10018 bytes, header says 10008)"], "folder"),
    ("consistent-but-short", "t10k-labels-idx1-ubyte", lambda p: _idx(p, (9_999,), bytes(9_999)) or
     ["t10k-labels does not match the original MNIST"], "folder"),
    ("dangling-link", "t10k-images-idx3-ubyte", lambda p: p.symlink_to(p.parent / "gone") or ["cannot read"],
     "folder"),
    ("link-loop", "t10k-images-idx3-ubyte", lambda p: p.symlink_to(p) or ["cannot read"], "folder"),
    ("npz-bomb", "mnist.npz", _npz_bomb, "folder"),
    ("npz-pickled", "mnist.npz", _pickled_npz, "file"),
    ("npz-empty", "mnist.npz", lambda p: p.touch() or ["truncated or corrupt npz file"], "file"),
    ("npz-too-large", "mnist.npz", lambda p: sparse(p, LIMIT + 1) and ["larger than any MNIST file"], "file"),
    ("npz-pipe", "mnist.npz", lambda p: os.mkfifo(p) or [], "file"),
    pytest.param(  # 2**31 * 2**31 * 4 once wrapped to 0 in int64 and passed the size check
        "t10k-images-idx3-ubyte", lambda p: _idx(p, (2**31, 2**31, 4), b"") or ["IDX"], "folder",
        id="idx-header-overflow",
    ),
]  # fmt: skip


def _param(case):
    """A case as pytest takes it: a pytest.param as it is, or (id, *values)."""
    return case if hasattr(case, "marks") else pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize(("bad", "make", "given"), [_param(case) for case in DATA_CASES])
def test_bad_mnist_is_refused_in_one_line(tiny_bundle, raw_mnist_dir, tmp_path, capsys, bad, make, given):
    """verify (which loads MNIST) on a good bundle, --data naming MNIST with one file spoilt: exit 2 and one line
    naming the file, at once (no pipe read, no bomb unpacked: the bomb's 1 GB would show in the memory taken),
    nothing written."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("onnx-fp32",))
    folder = tmp_path / "mnist"
    folder.mkdir()
    if not bad.endswith(".npz"):
        spoilt = next(key for key, stem in STEMS.items() if bad.startswith(stem))
        for key, stem in STEMS.items():
            if key != spoilt:
                (folder / stem).symlink_to(raw_mnist_dir / stem)
    path = folder / bad
    expected = make(path)
    before = snapshot(tmp_path)
    start = time.monotonic()
    tracemalloc.start()
    try:
        with unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext():
            code, _, err = cli(capsys, "verify", bundle, "--data", folder if given == "folder" else path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < HANG_S
    assert peak < LIMIT, f"{peak:,} bytes taken"  # 24 MB: t10k-images (7.8 MB), read and checked first
    assert code == 2
    line = error_line(err)
    assert f"error: {path}: " in line and all(fragment in line for fragment in expected), line
    assert snapshot(tmp_path) == before  # nothing written, nothing unpickled


# --- pictures and models for `lenet-edge predict` (lenet_edge/preprocess.py) ---------------------------------------


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


@pytest.fixture
def good_picture(mnist, tmp_path) -> Path:
    path = tmp_path / "good.png"
    path.write_bytes(digit_png(mnist))
    return path


@pytest.mark.parametrize("make", [_param(case) for case in PICTURE_CASES])
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


@pytest.mark.parametrize(("name", "make"), [_param(case) for case in MODEL_CASES])
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


# --- model files in a bundle, re-signed as a careless re-export would (lenet_edge/verify.py, bench.py) ----------

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
    assert done == 1 and "verify: 1 of 2 did not pass: tflite-int8 in tflm" in out, out
    rows = verify_rows(bundle)
    assert rows["tflite-int8"]["status"] == "pass"
    expected = "its array is not lenet5_int8.tflite byte for byte" if signed else "integrity: sha256 differs"
    assert rows["tflite-int8 in tflm"]["status"] == "fail" and expected in rows["tflite-int8 in tflm"]["reason"]


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


@pytest.mark.parametrize("spoil", [_param(case) for case in REFERENCE_CASES])
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


# --- output folders and data loss (lenet_edge/bundle_writer.py) ------------------------------------------------


@pytest.fixture
def keras_model(tiny_bundle, tmp_path) -> Path:
    """tiny_bundle's Keras model alone in a folder (no training.json beside it: no curves to draw)."""
    path = tmp_path / "model" / "lenet5.keras"
    path.parent.mkdir()
    shutil.copy(tiny_bundle / "lenet5.keras", path)
    return path


def export_args(model: Path, out: Path, data: Path) -> list:
    return ["export", model, "--out", out, "--data", data, "--formats", "onnx-fp32", "--no-verify", "--no-bench"]


def _user_readme(out: Path, bundle: Path) -> list[str]:
    out.mkdir()
    (out / "README.md").write_text("# My digit app\n\nNotes I keep here.\n")
    (out / ".gitignore").write_text("*.onnx\n")
    return [f"{out}: is not a lenet-edge bundle (.gitignore, README.md); nothing was touched"]


def _bundle_and_notes(out: Path, bundle: Path) -> list[str]:
    shutil.copytree(bundle, out)
    (out / "notes.txt").write_text("accuracy on my own digits: 9/10\n")
    return [f"{out}: holds files lenet-edge did not write (notes.txt); nothing was touched"]


def _a_link_inside(out: Path, bundle: Path) -> list[str]:
    shutil.copytree(bundle, out)
    (out.parent / "mine.onnx").write_bytes(b"the user's own model")
    (out / "lenet5_fp32.onnx").unlink()
    (out / "lenet5_fp32.onnx").symlink_to(out.parent / "mine.onnx")
    return [f"{out}: holds files lenet-edge did not write (lenet5_fp32.onnx)"]


def _a_link(out: Path, bundle: Path) -> list[str]:
    shutil.copytree(bundle, out.with_name("real-bundle"))
    out.symlink_to(out.with_name("real-bundle"))
    return [f"{out}: exists and is not a folder"]


def _under_a_file(out: Path, bundle: Path) -> list[str]:
    out.parent.write_text("a file where DIR's folder would be\n")
    return [f"{out}: cannot create its folder"]


OUT_CASES = [
    ("user-readme-and-gitignore", "export", _user_readme),
    ("bundle-and-notes", "export", _bundle_and_notes),
    ("a-regular-file", "export", lambda out, _: out.write_text("mine\n") and [f"{out}: exists and is not a folder"]),
    ("a-symlink", "export", _a_link),
    ("a-link-inside-the-bundle", "export", _a_link_inside),
    ("under-a-file", "outs/export", _under_a_file),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make"), [_param(case) for case in OUT_CASES])
def test_export_refuses_an_out_folder_it_cannot_own(
    tiny_bundle, keras_model, loaded_once, tmp_path, capsys, name, make
):
    """export --out DIR, DIR holding what lenet-edge did not write, or not a folder: exit 2, one line naming
    DIR and what is in the way, before any work; everything left as it was."""
    out = tmp_path / name
    expected = make(out, tiny_bundle)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 2
    line = error_line(err)
    assert all(fragment in line for fragment in expected), line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda path: os.mkfifo(path), "not a .keras model file", id="a-pipe"),
        pytest.param(lambda path: path.mkdir(), "not a .keras model file", id="a-folder"),
        pytest.param(lambda path: path.write_bytes(b"PK\x03\x04 not really"), "cannot load as a Keras model",
                     id="not-a-keras-zip"),
    ],
)  # fmt: skip
def test_export_refuses_a_model_that_is_not_one(loaded_once, tmp_path, capsys, make, fragment):
    path = tmp_path / "lenet5.keras"
    make(path)
    before = snapshot(tmp_path)
    with unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext():
        code, _, err = cli(capsys, *export_args(path, tmp_path / "export", loaded_once))
    assert code == 2
    line = error_line(err)
    assert f"error: {path}: {fragment}" in line, line
    assert snapshot(tmp_path) == before


def test_a_readme_like_the_bundles_own_is_no_obstacle(keras_model, loaded_once, tmp_path, capsys):
    """DIR holding only a README.md identical to the one a bundle gets (the checkout's export/ folder): the
    export goes ahead, exit 0, the README the same bytes."""
    from importlib import resources

    out = tmp_path / "export"
    out.mkdir()
    (out / "README.md").write_bytes(resources.files("lenet_edge").joinpath("bundle_README.md").read_bytes())
    before = snapshot(tmp_path)
    code, text, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 0 and err == ""
    assert f"wrote {out}/:" in text
    assert [entry["format"] for entry in manifest_json(out)["artifacts"]] == ["keras", "onnx-fp32"]
    assert_kept(before, snapshot(tmp_path))


def _failing_export(monkeypatch, fmt: str = "onnx-fp32") -> None:
    real = exporters.export_format

    def export_format(spec, *args, **kwargs):
        if spec.name == fmt:
            raise RuntimeError("converter exploded")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(bundle_writer, "export_format", export_format)


def _failed_user_notes(failed: Path) -> None:
    failed.mkdir()
    (failed / "notes.txt").write_text("why my last export failed\n")


def _failed_a_link(failed: Path) -> None:
    (failed.parent / "photos").mkdir()
    (failed.parent / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8 not a model")
    failed.symlink_to(failed.parent / "photos")


@pytest.mark.parametrize(
    "failed_before",
    [
        pytest.param(None, id="no-failed-folder"),
        pytest.param(_failed_user_notes, id="failed-folder-with-user-notes"),
        pytest.param(_failed_a_link, id="failed-folder-a-link"),
    ],
)
def test_a_failed_export_leaves_the_previous_bundle(
    tiny_bundle, keras_model, loaded_once, tmp_path, capsys, monkeypatch, failed_before
):
    """A format fails while exporting over a bundle: exit 1, the bundle byte-identical, the attempt in
    DIR.failed, or, when DIR.failed is not ours (the user's notes, a link), in a new folder beside it: it is
    not replaced."""
    out = tmp_path / "export"
    shutil.copytree(tiny_bundle, out)
    failed = tmp_path / "export.failed"
    if failed_before:
        failed_before(failed)
    _failing_export(monkeypatch)
    before = snapshot(tmp_path)
    code, text, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 1 and err == ""
    assert "FAILED onnx-fp32: RuntimeError: converter exploded" in text.splitlines()
    (note,) = [line for line in text.splitlines() if line.startswith("export failed: ")]
    where = Path(note.split("; this attempt is in ")[1].split(" (")[0])
    assert note.startswith(f"export failed: the previous bundle in {out} is unchanged"), note
    if failed_before is None:
        assert where == failed
    else:
        assert where.parent == tmp_path and where.name.startswith(".export.failed-"), where
    assert [f["format"] for f in manifest_json(where)["failed"]] == ["onnx-fp32"]
    assert_kept(before, snapshot(tmp_path))


# --- signals and killed runs ---------------------------------------------------------------------------------------


def _interrupting(monkeypatch, how: str) -> None:
    def export_format(spec, *args, **kwargs):
        if how == "Ctrl-C":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(50):  # the handler raises in this thread at once; this is only the proof if it does not
            time.sleep(0.1)
        raise AssertionError("SIGTERM did not stop the export")

    monkeypatch.setattr(bundle_writer, "export_format", export_format)


@pytest.mark.parametrize(
    ("how", "code", "previous"),
    [("SIGTERM", 143, True), ("Ctrl-C", 130, True), ("SIGTERM", 143, False)],
    ids=["sigterm-over-a-bundle", "ctrl-c-over-a-bundle", "sigterm-into-a-new-folder"],
)
def test_an_interrupted_export_costs_nothing(
    tiny_bundle, keras_model, loaded_once, tmp_path, capsys, monkeypatch, how, code, previous
):
    """SIGTERM or Ctrl-C in the middle of an export: exit 143 or 130, one line saying what was left (the previous
    bundle as it was, or nothing written), the tree byte-identical, no staging folder left."""
    out = tmp_path / "export"
    if previous:
        shutil.copytree(tiny_bundle, out)
    _interrupting(monkeypatch, how)
    handler = signal.getsignal(signal.SIGTERM)
    before = snapshot(tmp_path)
    done, _, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert done == code
    said = f"{out} was left as it was" if previous else f"nothing was written to {out}"
    assert err == f"lenet-edge: interrupted; {said}\n", err
    assert snapshot(tmp_path) == before  # no .export.staging-* either
    assert signal.getsignal(signal.SIGTERM) == handler  # the CLI's own SIGTERM handler is gone again


def test_a_killed_runs_staging_folder_is_removed_by_the_next_export(
    tiny_bundle, keras_model, loaded_once, tmp_path, capsys, monkeypatch
):
    """A staging folder a killed run left (its pid dead) goes with the next export; one whose pid lives (a run in
    progress) and one that only looks alike stay; the bundle stays (the export fails: its attempt goes to
    DIR.failed)."""
    out = tmp_path / "export"
    shutil.copytree(tiny_bundle, out)
    stale = tmp_path / f".export.staging-{dead_pid()}-k1ll3d"
    live = tmp_path / ".export.staging-1-running"  # pid 1 is alive
    lookalike = tmp_path / ".export.staging-notes"
    for folder in (stale, live, lookalike):
        folder.mkdir()
        (folder / "lenet5.keras").write_bytes(b"half written")
    _failing_export(monkeypatch)
    before = snapshot(tmp_path)
    code, text, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 1 and err == ""
    assert f"removed {stale.name}, left by an interrupted run" in text.splitlines()
    assert not stale.exists()
    assert_kept(before, snapshot(tmp_path), changed=(stale, stale / "lenet5.keras"))


def test_a_bundle_a_killed_swap_left_aside_is_restored(
    tiny_bundle, keras_model, loaded_once, tmp_path, capsys, monkeypatch
):
    """Killed between moving the previous bundle aside and moving the new one in: DIR is missing, the previous
    bundle in .DIR.old-<dead pid>-x/DIR. The next export puts it back before anything else (and, failing,
    leaves it so)."""
    out = tmp_path / "export"
    aside = tmp_path / f".export.old-{dead_pid()}-sw4p" / "export"
    aside.parent.mkdir()
    shutil.copytree(tiny_bundle, aside)
    _failing_export(monkeypatch)
    before = snapshot(tmp_path)
    code, text, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 1 and err == ""
    assert f"restored the previous bundle {out} from an interrupted swap" in text.splitlines()
    assert not aside.parent.exists()
    after = snapshot(tmp_path)
    moved = {key.replace(str(aside), str(out)): what for key, what in before.items() if key.startswith(str(aside))}
    assert {key: after.get(key) for key in moved} == moved  # every file of the previous bundle, byte for byte
    assert_kept(before, after, changed=tuple(key for key in before if key.startswith(str(aside.parent))))


# --- requests to `lenet-edge serve` (lenet_edge/serve.py) --------------------------------------------------------


@contextlib.contextmanager
def served(bundle: Path, mnist=None):
    """The page's server on a free port, as start_in_thread runs it but for the shutdown poll: every 0.05 s, not
    0.5 s (each case would otherwise wait half a second to stop it)."""
    server = serve.make_server(bundle, port=0, mnist=mnist)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of the one response on ``sock`` (the server closes after it); (0, b'') for none at all."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return (int(head.split(b" ", 2)[1]), body) if head else (0, b"")


def ask(server, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(request)
        return _response(sock)


def post(length: bytes, body: bytes = b"") -> bytes:
    return b"POST /api/prepare HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n" + body


def error_of(body: bytes) -> str:
    """The one-line reason of an error response."""
    message = json.loads(body)["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture
def page_bundle(tiny_bundle, tmp_path, capsys):
    """A bundle copy to serve (the case may spoil it, then calls ``settled()``); afterwards every file of the
    tmp tree as it was when settled, and no traceback printed by the server."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = {}

    def settled():
        before.update(snapshot(tmp_path))

    bundle_settled = (bundle, settled)
    yield bundle_settled
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert before and snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def shared_page(tiny_bundle, tmp_path_factory):
    """One server for the cases that only send requests: a bundle copy, the user's secret.txt planted in it."""
    folder = tmp_path_factory.mktemp("page")
    shutil.copytree(tiny_bundle, folder / "bundle")
    (folder / "bundle" / "secret.txt").write_text("SECRET the user's")
    with served(folder / "bundle") as server:
        yield server, folder


@pytest.fixture
def page_server(shared_page, capsys):
    """The shared server; afterwards its bundle byte-identical and no traceback printed by the server."""
    server, folder = shared_page
    before = snapshot(folder)
    yield server
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert snapshot(folder) == before


LENGTHS = [
    ("letters", b"abc", 400, "send a PNG or JPEG with a Content-Length"),
    ("negative", b"-5", 400, "send a PNG or JPEG with a Content-Length"),
    ("zero", b"0", 400, "send a PNG or JPEG with a Content-Length"),
    ("one-over-the-limit", str(serve.MAX_UPLOAD + 1).encode(), 413, "send a PNG or JPEG of at most 8 MB"),
    ("thirty-digits", b"9" * 30, 413, "send a PNG or JPEG of at most 8 MB"),
    ("superscript-two", b"\xb2", 400, "send a PNG or JPEG with a Content-Length"),  # str.isdigit() admits it
]  # fmt: skip


@pytest.mark.parametrize(("length", "status", "message"), [_param(case) for case in LENGTHS])
def test_upload_with_a_content_length_that_cannot_be(page_server, length, status, message):
    code, body = ask(page_server, post(length))
    assert code == status and error_of(body) == message


@pytest.mark.parametrize("drip", [False, True], ids=["stalls", "drips"])
def test_an_upload_that_never_completes_is_408_in_bounded_time(page_bundle, monkeypatch, drip):
    """Content-Length 1000, 10 bytes sent, then silence (the socket's timeout) or a byte every 0.03 s (the whole
    upload's deadline): 408 soon after the limit, not a thread held forever."""
    monkeypatch.setattr(serve, "UPLOAD_SECONDS", 0.3)
    monkeypatch.setattr(serve.Handler, "timeout", 0.15)
    bundle, settled = page_bundle
    settled()
    stop = threading.Event()
    with served(bundle) as server, socket.create_connection(server.server_address[:2], timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(post(b"1000", bytes(10)))

        def dribble():
            while drip and not stop.wait(0.03):
                with contextlib.suppress(OSError):
                    sock.send(b"\0")

        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        code, body = _response(sock)
        elapsed = time.monotonic() - start
        stop.set()
        thread.join()
    assert code == 408 and error_of(body) == "the upload did not arrive within 0.3 s"
    assert (0.3 if drip else 0.15) <= elapsed < 4.0, elapsed


def _link_out(path: Path) -> None:
    (path.parent.parent / "outside.onnx").write_bytes(b"SECRET outside the bundle")
    path.unlink()
    path.symlink_to(path.parent.parent / "outside.onnx")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_link_out, id="a-link-out-of-the-bundle"),
        pytest.param(lambda p: p.unlink() or os.mkfifo(p), id="a-pipe"),
        pytest.param(lambda p: p.unlink() or p.mkdir(), id="a-folder"),
    ],
)
def test_a_listed_model_that_is_not_a_plain_file_of_the_bundle_is_404(page_bundle, spoil):
    """GET /models/F, F listed by the manifest but a link to a file outside the bundle, a pipe or a folder:
    404, never its content, never a read of the pipe."""
    bundle, settled = page_bundle
    path = bundle / "lenet5_fp32.onnx"
    spoil(path)
    settled()
    start = time.monotonic()
    guard = unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext()
    with served(bundle) as server, guard:
        code, body = ask(server, b"GET /models/lenet5_fp32.onnx HTTP/1.1\r\nHost: x\r\n\r\n")
    assert time.monotonic() - start < HANG_S
    assert code == 404 and error_of(body) == "/models/lenet5_fp32.onnx: not served" and b"SECRET" not in body


URLS = [
    "/models/..%2fmanifest.json", "/models/%2e%2e/manifest.json", "/models/..%2F..%2F..%2Fetc%2Fpasswd",
    "/models/lenet5_fp32.onnx/../manifest.json", "/vendor/..%2f..%2fpyproject.toml", "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd", "/models//etc/passwd", "/models/secret.txt", "/models/keras_test_probabilities.npy",
    "/models/lenet5_fp32.onnx%00.txt",
]  # fmt: skip


@pytest.mark.parametrize("url", URLS)
def test_paths_out_of_the_bundle_or_off_the_manifest_are_404(page_server, url):
    code, body = ask(page_server, f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert code == 404 and error_of(body).endswith(": not served") and b"SECRET" not in body and b"root:" not in body


def test_a_url_of_70_kb_is_refused(page_server):
    assert ask(page_server, b"GET /models/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 414


def test_heavy_work_beyond_its_slots_is_503(page_bundle, mnist):
    """Both slots for heavy work taken: a drawing to prepare and a native run are answered 503 at once; freed,
    they are served."""
    picture = digit_png(mnist)
    native = b"GET /api/native?file=lenet5_fp32.onnx&n=5 HTTP/1.1\r\nHost: x\r\n\r\n"
    bundle, settled = page_bundle
    settled()
    with served(bundle, mnist) as server:
        heavy = server.RequestHandlerClass.heavy
        taken = [heavy.acquire(blocking=False) for _ in range(serve.HEAVY_AT_ONCE)]
        try:
            assert all(taken)
            for request in (post(str(len(picture)).encode(), picture), native):
                code, body = ask(server, request)
                assert code == 503 and error_of(body) == "busy: try again in a moment"
        finally:
            for _ in taken:
                heavy.release()
        assert ask(server, post(str(len(picture)).encode(), picture))[0] == 200


def test_connections_beyond_the_limit_are_503_and_closed(page_bundle, monkeypatch):
    monkeypatch.setattr(serve, "CONNECTIONS", 2)
    bundle, settled = page_bundle
    settled()
    with served(bundle) as server:
        idle = [socket.create_connection(server.server_address[:2], timeout=10) for _ in range(2)]
        try:  # accepted in order: the two idle ones hold both slots when the third comes
            assert ask(server, b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n") == (503, b"")
        finally:
            for sock in idle:
                sock.close()
        for _ in range(50):  # the slots come back as their threads see the closed sockets
            if ask(server, b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server never recovered its connection slots")


@pytest.mark.parametrize("side", [8000, 13_000, 20_000])
def test_an_upload_whose_header_is_a_bomb_is_422_undecoded(page_server, side):
    picture = png_header(side, side)
    code, body = ask(page_server, post(str(len(picture)).encode(), picture))
    assert code == 422
    assert error_of(body) == f"the drawing: {side}×{side} pixels, more than 50,000,000 (not decoded)"
