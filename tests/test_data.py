"""The MNIST loader: every source form, the search order, and clear errors for bad data."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lenet_edge.data import IDX_CONTENT_SHA256, load_mnist, load_path, split_validation
from lenet_edge.errors import DataError

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _raw_copy(mnist_dir, folder, stems=STEMS):
    folder.mkdir()
    for stem in stems:
        (folder / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    return folder


def test_idx_gz_folder_is_the_original_mnist(mnist, mnist_dir):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_test.dtype == np.uint8
    assert set(np.unique(mnist.y_train)) == set(range(10))
    published = dict(reversed(line.split()) for line in (mnist_dir / "SHA256SUMS").read_text().splitlines())
    assert mnist.files == published


def test_raw_idx_folder_gives_the_same_arrays(mnist, mnist_dir, tmp_path):
    folder = _raw_copy(mnist_dir, tmp_path / "raw")
    (folder / "t10k-images-idx3-ubyte").rename(folder / "t10k-images.idx3-ubyte")  # the other common spelling
    raw = load_path(folder)
    np.testing.assert_array_equal(raw.x_train, mnist.x_train)
    np.testing.assert_array_equal(raw.x_test, mnist.x_test)
    np.testing.assert_array_equal(raw.y_test, mnist.y_test)


@pytest.fixture(scope="module")
def mnist_npz(mnist, tmp_path_factory):
    """A folder holding only mnist.npz, compressed as the Keras download is (2 s to write: written once)."""
    folder = tmp_path_factory.mktemp("npz")
    path = folder / "mnist.npz"
    np.savez_compressed(path, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test)
    return path


def test_npz_file_and_folder(mnist, mnist_npz):
    path = mnist_npz
    for source in (path, path.parent):
        loaded = load_path(source)
        np.testing.assert_array_equal(loaded.x_train, mnist.x_train)
        np.testing.assert_array_equal(loaded.y_test, mnist.y_test)


def test_search_order_data_then_env_then_keras_cache(mnist, mnist_dir, tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(
        cache / "mnist.npz", x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("LENET_EDGE_DATA", str(mnist_dir))
    assert load_mnist(cache / "mnist.npz").source.startswith("npz")
    assert load_mnist().source.startswith("IDX files")
    monkeypatch.delenv("LENET_EDGE_DATA")
    assert load_mnist(download=False).source == f"npz {cache / 'mnist.npz'}"


def test_missing_files_are_named(mnist_dir, tmp_path):
    folder = tmp_path / "three"
    folder.mkdir()
    for stem in STEMS[1:]:
        shutil.copy(mnist_dir / f"{stem}.gz", folder)
    with pytest.raises(DataError, match="missing MNIST IDX files: train-images"):
        load_path(folder)
    with pytest.raises(DataError, match="no such file or folder"):
        load_path(tmp_path / "nowhere")


def test_truncated_gz_is_a_clear_error(mnist_dir, tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    for stem in STEMS:
        shutil.copy(mnist_dir / f"{stem}.gz", folder)
    blob = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        load_path(folder)


def test_truncated_and_altered_raw_idx(mnist_dir, tmp_path):
    folder = _raw_copy(mnist_dir, tmp_path / "raw")
    labels = folder / "t10k-labels-idx1-ubyte"
    original = labels.read_bytes()
    labels.write_bytes(original[:-10])
    with pytest.raises(DataError, match="truncated or padded IDX"):
        load_path(folder)
    altered = bytearray(original)
    altered[100] = (altered[100] + 1) % 10
    labels.write_bytes(bytes(altered))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_path(folder)
    assert hashlib.sha256(original).hexdigest() == IDX_CONTENT_SHA256["t10k-labels"]


def test_truncated_npz(mnist_npz, tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(mnist_npz.read_bytes()[:100_000])
    with pytest.raises(DataError, match="truncated or corrupt npz"):
        load_path(path)


def test_nothing_found_offline_is_one_line_and_exit_2(tmp_path):
    env = {"HOME": str(tmp_path), "KERAS_HOME": str(tmp_path / "keras"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "lenet_edge.cli", "train", "--offline"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("lenet-edge: error: MNIST not found: pass --data PATH")
    assert "LENET_EDGE_DATA" in done.stderr and "Keras" in done.stderr


def test_validation_split_is_seeded_and_disjoint(mnist):
    x, y = mnist.x_train[:2000], np.arange(2000)
    _, yt, _, yv = split_validation(x, y, 500, seed=3)
    assert len(yv) == 500 and len(yt) == 1500 and not set(yv) & set(yt)
    assert np.array_equal(split_validation(x, y, 500, seed=3)[3], yv)
    assert not np.array_equal(split_validation(x, y, 500, seed=4)[3], yv)


def test_a_bundle_finds_the_data_it_was_made_from(tiny_bundle, mnist_dir, tmp_path, monkeypatch):
    """With no --data, no $LENET_EDGE_DATA and no Keras cache, verify/bench read the MNIST the bundle's manifest
    records (path and test-set checksum): while it is there; when it moved, the error names it and --data."""
    from conftest import manifest_json

    recorded = manifest_json(tiny_bundle)["dataset"]
    assert recorded["path"] == str(mnist_dir.resolve()) and len(recorded["test_sha256"]) == 64
    monkeypatch.delenv("LENET_EDGE_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty Keras cache
    found = load_mnist(download=False, recorded=recorded)
    assert found.path == recorded["path"] and "the data this bundle was made from" in found.source

    moved = {**recorded, "path": str(tmp_path / "moved")}
    with pytest.raises(DataError) as gone:
        load_mnist(download=False, recorded=moved)
    assert f"this bundle was made from {tmp_path / 'moved'}, which is gone" in str(gone.value)
    assert "pass --data PATH" in str(gone.value)

    other = {**recorded, "test_sha256": "0" * 64}  # the folder now holds another test set
    with pytest.raises(DataError, match="holds other test images now"):
        load_mnist(download=False, recorded=other)


def test_the_advice_is_only_what_can_work_on_this_install(tmp_path, monkeypatch):
    """Offline with Keras: drop --offline; without Keras (a runtime-only install): no download is offered."""
    import importlib.util

    monkeypatch.delenv("LENET_EDGE_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DataError, match="drop --offline for the Keras download"):
        load_mnist(download=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real_find_spec(name, *a)
    )
    for download in (True, False):
        with pytest.raises(DataError) as nothing:
            load_mnist(download=download)
        assert "pass --data PATH" in str(nothing.value) and "download" not in str(nothing.value)
