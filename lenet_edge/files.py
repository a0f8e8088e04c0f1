"""Safe file writes and checksums. Every file the package writes goes through ``atomic_output``: a uniquely
named temp file in the target folder (created exclusively, so it never follows a symlink), fsync, then one
rename, so a reader never sees half a file and a crash leaves the previous file as it was."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = "lenet-edge-"  # in every temp file's name: one a killed run left is recognisably ours
UMASK = os.umask(0)  # read once: files and folders get the usual 0666/0777 less it
os.umask(UMASK)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plain_file_problem(path: Path, limit: int, too_large: str = "too large") -> str:
    """What stops ``path`` from being read as an input of at most ``limit`` bytes ('' when nothing does),
    checked before it is opened: a pipe would hang the read, a device or a huge file would exhaust memory.
    ``too_large`` says why the limit is what it is."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, device or folder)"
    if info.st_size > limit:
        return f"{info.st_size:,} bytes, {too_large} ({limit:,} at most)"
    return ""


def is_regular_file(path: Path) -> bool:
    """A plain file, not a link, pipe, device or folder: the only kind a model is read from (a pipe would hang
    the runtime that opens it)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a fresh temp path beside ``path`` to write to; renamed onto ``path`` when the block completes,
    removed when it fails. The file gets the usual permissions (0666 less the umask)."""
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.{TEMP_MARK}", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named after the file the caller asked for, not the temp file
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
