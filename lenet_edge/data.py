"""MNIST from a folder of IDX files (gz or raw), a Keras ``mnist.npz``, the Keras cache or the Keras download.

NumPy only at import time: verify and bench run this on devices without TensorFlow.
Every source is checked against the original MNIST content, whatever its packaging.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError, first_line
from .files import plain_file_problem
from .tensorflow_loader import import_tensorflow

ENV_VAR = "LENET_EDGE_DATA"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

# sha256 of each original IDX file once decompressed (header + payload): the same content check serves
# .gz files, raw files and the arrays of an npz.
IDX_CONTENT_SHA256 = {
    "train-images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# every IDX file's exact size once decompressed: no read ever decompresses more than that
IDX_SIZES = {"train-images": 47_040_016, "train-labels": 60_008, "t10k-images": 7_840_016, "t10k-labels": 10_008}
MAX_FILE_BYTES = 64 << 20  # no MNIST file, packed or not, is larger (the npz is 11 MB, the raw images 45 MB)
NPZ_KEYS = {"train-images": "x_train", "train-labels": "y_train", "t10k-images": "x_test", "t10k-labels": "y_test"}
_IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[.-]idx[13]-ubyte(\.gz)?$")
_IDX_UBYTE = 0x08

DATA_FORMS = "a folder of the four IDX files, .gz or raw, or a Keras mnist.npz"


def not_found_help(download: bool = True, note: str = "") -> str:
    """Why MNIST was not found (``note``: what became of the bundle's own data), and only the remedies that can
    work on this install."""
    where = f" ({note})" if note else ""
    remedies = [
        f"pass --data PATH ({DATA_FORMS})",
        f"set {ENV_VAR}",
        "put mnist.npz in the Keras cache (~/.keras/datasets)",
    ]
    if importlib.util.find_spec("keras") is not None:  # a runtime-only install has no Keras to download with
        remedies.append("go online for the Keras download" if download else "drop --offline for the Keras download")
    return f"MNIST not found{where}: {', '.join(remedies[:-1])} or {remedies[-1]}"


@dataclass
class Mnist:
    """The four MNIST arrays (images uint8 [N, 28, 28], labels uint8 [N]) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the file as read
    path: str = ""  # the folder or npz file it was read from, absolute

    def test_sha256(self) -> str:
        """One checksum of the test images and labels as arrays, whatever file form they came in."""
        return _sha256(self.x_test.tobytes() + self.y_test.tobytes())

    def describe(self) -> dict:
        """What the manifest records about the data: verify and bench find it again by ``path`` when no other
        source is given, if its test set still has ``test_sha256``."""
        return {
            "source": self.source,
            "path": self.path,
            "train_images": len(self.x_train),
            "test_images": len(self.x_test),
            "test_sha256": self.test_sha256(),
            "file_sha256": self.files,
            "content_sha256": IDX_CONTENT_SHA256,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (magic, big-endian dims, payload): the basis of the content check."""
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Decode one IDX file's bytes (already decompressed) into a uint8 array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)  # Python integers: a forged header cannot overflow the check
    if len(raw) != expected:
        raise DataError(f"{name}: truncated or padded IDX file ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _regular_file(path: Path) -> None:
    """A plain MNIST-sized file, checked before anything is read."""
    problem = plain_file_problem(path, MAX_FILE_BYTES, "larger than any MNIST file")
    if problem == "no such file":
        problem = "cannot read (no such file)"  # a dangling link named like an IDX file
    if problem:
        raise DataError(f"{path}: {problem}")


def _read_idx_file(path: Path, key: str) -> tuple[np.ndarray, str]:
    """Read one IDX file, gzip-compressed or not (told by its magic bytes); return the array and file sha256.
    A compressed file is decompressed no further than the size that IDX file has in MNIST."""
    _regular_file(path)
    limit = IDX_SIZES[key]
    try:
        blob = path.read_bytes()
        if blob[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(blob)) as stream:
                raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise DataError(f"{path}: decompresses to more than the {limit:,} bytes of MNIST's {key} file")
        else:
            raw = blob
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_idx(raw, str(path)), _sha256(blob)


def _check_content(key: str, array: np.ndarray, where: str) -> None:
    if _sha256(_idx_bytes(array)) != IDX_CONTENT_SHA256[key]:
        raise DataError(f"{where}: {key} does not match the original MNIST (checksum mismatch: corrupt or altered)")


def load_idx_folder(folder: Path, check: bool = True) -> Mnist:
    """Load the four IDX files from a folder (names like ``train-images-idx3-ubyte.gz``)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = _IDX_NAME.match(path.name)
        if match:
            found.setdefault(f"{match[1]}-{match[2]}", path)
    missing = [key for key in IDX_CONTENT_SHA256 if key not in found]
    if missing:
        raise DataError(f"{folder}: missing MNIST IDX files: {', '.join(k + '-idx?-ubyte[.gz]' for k in missing)}")
    arrays, files = {}, {}
    for key, path in found.items():
        arrays[key], files[path.name] = _read_idx_file(path, key)
        if check:
            _check_content(key, arrays[key], str(path))
    return _assemble(arrays, f"IDX files in {folder}", files)


def load_npz(path: Path, check: bool = True) -> Mnist:
    """Load a Keras-format ``mnist.npz`` (keys x_train, y_train, x_test, y_test). Its members' unpacked sizes
    are checked before any is unpacked."""
    _regular_file(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: truncated or corrupt npz file ({exc})") from None
    if unpacked > MAX_FILE_BYTES:
        raise DataError(f"{path}: unpacks to {unpacked:,} bytes, more than MNIST holds ({MAX_FILE_BYTES:,} at most)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[npz_key], dtype=np.uint8) for key, npz_key in NPZ_KEYS.items()}
    except KeyError as exc:
        raise DataError(f"{path}: not a Keras mnist.npz (missing {exc})") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: holds pickled objects, which lenet-edge never loads") from None
        raise DataError(f"{path}: truncated or corrupt npz file ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, ValueError, EOFError: all mean a broken file
        raise DataError(f"{path}: truncated or corrupt npz file ({type(exc).__name__}: {exc})") from None
    file_sha = _sha256(blob)
    if check and file_sha != KERAS_NPZ_SHA256:  # the Keras original passes by file; a re-packed copy by content
        for key, array in arrays.items():
            _check_content(key, array, str(path))
    return _assemble(arrays, f"npz {path}", {path.name: file_sha})


def _assemble(arrays: dict[str, np.ndarray], source: str, files: dict[str, str]) -> Mnist:
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
            raise DataError(f"{source}: {split} images {images.shape} and labels {labels.shape} are not MNIST-shaped")
    return Mnist(
        arrays["train-images"], arrays["train-labels"], arrays["t10k-images"], arrays["t10k-labels"], source, files
    )


def load_path(path: str | os.PathLike, check: bool = True) -> Mnist:
    """Load MNIST from a folder of IDX files, a folder holding ``mnist.npz``, or an npz file."""
    path = Path(path).expanduser()
    if path.is_file():
        mnist = load_npz(path, check)
    elif path.is_dir():
        if not any(_IDX_NAME.match(p.name) for p in path.iterdir()) and (path / "mnist.npz").is_file():
            mnist = load_npz(path / "mnist.npz", check)
        else:
            mnist = load_idx_folder(path, check)
    else:
        mnist = None
    if mnist is not None:
        mnist.path = str(path.resolve())
        return mnist
    if path.exists():
        raise DataError(f"{path}: not a regular file or folder (expected MNIST IDX files or a Keras mnist.npz)")
    raise DataError(f"{path}: no such file or folder (expected MNIST IDX files or a Keras mnist.npz)")


def keras_cache_path() -> Path:
    """Where Keras keeps its downloaded ``mnist.npz`` (honours KERAS_HOME)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


def _keras_download() -> Path:
    """Let Keras download ``mnist.npz`` into its cache; return the cached path."""
    import_tensorflow()
    import keras

    try:
        keras.datasets.mnist.load_data()
    except Exception as exc:  # URL errors, DNS failures, hash mismatch: Keras raises plain Exceptions
        raise DataError(f"{not_found_help()} (download failed: {first_line(exc)[:160]})") from None
    return keras_cache_path()


def _recorded_data(recorded: dict, check: bool) -> Mnist | str:
    """The data a bundle was made from, read again from its recorded path, or why it cannot be."""
    path = Path(recorded["path"])
    if not path.exists():
        return "is gone"
    try:
        mnist = load_path(path, check)
    except DataError as exc:
        return f"cannot be read now ({exc})"
    if recorded.get("test_sha256") and mnist.test_sha256() != recorded["test_sha256"]:
        return f"holds other test images now (sha256 {mnist.test_sha256()[:12]}…, not {recorded['test_sha256'][:12]}…)"
    mnist.source += " (the data this bundle was made from)"
    return mnist


def load_mnist(
    data: str | os.PathLike | None = None, download: bool = True, check: bool = True, recorded: dict | None = None
) -> Mnist:
    """Find and load MNIST: ``data``, then $LENET_EDGE_DATA, then the data a bundle was made from (``recorded``,
    its manifest's dataset record), then the Keras cache, then the Keras download."""
    if data:
        return load_path(data, check)
    if os.environ.get(ENV_VAR):
        return load_path(os.environ[ENV_VAR], check)
    note = ""
    if recorded and recorded.get("path"):
        found = _recorded_data(recorded, check)
        if isinstance(found, Mnist):
            return found
        note = f"this bundle was made from {recorded['path']}, which {found}"
    if keras_cache_path().is_file():
        return load_path(keras_cache_path(), check)
    if not download or importlib.util.find_spec("keras") is None:
        raise DataError(not_found_help(download, note))
    mnist = load_path(_keras_download(), check)
    mnist.source = f"Keras download ({mnist.source})"
    return mnist


def split_validation(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a seeded random validation split out of the training images: (x_train, y_train, x_val, y_val)."""
    if not 0 < count < len(images):
        raise DataError(f"validation split of {count} images impossible with {len(images)} training images")
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = order[:count], order[count:]
    return images[train], labels[train], images[val], labels[val]


def calibration_images(mnist: Mnist, count: int, seed: int) -> np.ndarray:
    """The seeded pick of training images that calibrates the int8 models (the manifest records count and seed)."""
    if not 1 <= count <= len(mnist.x_train):
        raise UsageError(f"calibration needs 1 to {len(mnist.x_train)} images, not {count}")
    pick = np.random.default_rng(seed).choice(len(mnist.x_train), count, replace=False)
    return mnist.x_train[np.sort(pick)]


def calibration_batches(images: np.ndarray, batch_size: int = 1):
    """Calibration inputs as the graphs take them: float32 raw pixels [n, 28, 28, 1], 0-255."""
    images = images.reshape(-1, 28, 28, 1).astype(np.float32)
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
