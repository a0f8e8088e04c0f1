"""The four checks every bad-input case makes, and what the cases share (tests/test_bad_input_*.py).

A corpus of bad input, as a careful user trying to break lenet-edge would make it: MNIST files that are bombs,
pipes, folders or the wrong size; pictures and models that are not what they claim; bundles whose files were
swapped and re-signed; output folders holding someone's notes; signals mid-export; hostile HTTP requests.

Every case checks four things: the exit code (or HTTP status); a one-line reason naming the bad file, flag or
field (`lenet-edge: error: ...` as the only line on stderr; where the command gives a verdict instead, verify's
row or export's attempt, its one log line, stderr empty; for the page, the JSON error); no traceback anywhere;
and that every file that was there before (in the test's tmp tree and the bundle it used) is byte-identical
afterwards, except the files the case expects to change. Cheap by design: bundle copies that list only the
formats a case needs, one export format (or none), MNIST loaded once for the commands that are not about MNIST
(the ``loaded_once`` fixture in conftest.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import struct
import threading
import time
import warnings
import zlib
from pathlib import Path

import pytest
from conftest import manifest_json
from PIL import Image

from lenet_edge.cli import main
from lenet_edge.files import write_json

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


def as_param(case):
    """A case as pytest takes it: a pytest.param as it is, or (id, *values)."""
    return case if hasattr(case, "marks") else pytest.param(*case[1:], id=case[0])


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
