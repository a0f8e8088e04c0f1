"""Bad MNIST files (lenet_edge/data.py): bombs, pipes, folders, devices, links, files of the wrong size, pickles;
each refused in one line naming the file, at once and without unpacking or reading what it must not. The four
checks every case makes are in tests/bad_input.py."""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bad_input import HANG_S, LIMIT, Planted, as_param, bundle_of, cli, error_line, snapshot, sparse, unblocked

STEMS = {
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
}


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


@pytest.mark.parametrize(("bad", "make", "given"), [as_param(case) for case in DATA_CASES])
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
