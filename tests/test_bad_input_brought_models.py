"""Bad brought models for `lenet-edge export` (lenet_edge/user_model/): files far too large, pipes, HDF5 files
whose attributes lie or are broken, JSON that is not, SavedModel folders with broken protobufs or links out;
each refused in one line naming it (exit 2), before any data is read, nothing written, nothing read that must
not be. The four checks every case makes are in tests/bad_input.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bad_input import HANG_S, as_param, cli, error_line, snapshot, sparse, unblocked


@pytest.fixture(scope="module")
def tensorflow_loaded():
    """TensorFlow imported once (set-up time): the loaders import it lazily."""
    from lenet_edge.tensorflow_loader import import_tensorflow

    import_tensorflow()


def _h5(path: Path, attrs: dict) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in attrs.items():
            handle.attrs[key] = value


def _huge(path: Path) -> list[str]:
    sparse(path, (1 << 30) + 1)
    return ["bytes, too large for a digit classifier"]


def _truncated_h5(path: Path) -> list[str]:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    return ["an unreadable HDF5 file"]


def _config_not_json(path: Path) -> list[str]:
    _h5(path, {"keras_version": b"2.2.4", "backend": b"tensorflow", "model_config": b"{not json"})
    return ["its model_config is not JSON"]


def _config_of_a_layer(path: Path) -> list[str]:
    config = {"class_name": "Dense", "config": {"name": "dense_1", "units": 10}}
    _h5(path, {"keras_version": b"2.2.4", "backend": b"tensorflow", "model_config": json.dumps(config).encode()})
    return ["holds a Dense model, a subclassed model Keras cannot rebuild without its code"]


def _config_without_weights(path: Path) -> list[str]:
    layers = [{"class_name": "Dense", "config": {"name": "d", "units": 10, "batch_input_shape": [None, 28, 28]}}]
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    _h5(path, {"keras_version": b"2.2.4", "backend": b"tensorflow", "model_config": json.dumps(config).encode()})
    return ["Keras 2 cannot load it"]


def _json_not_json(path: Path) -> list[str]:
    path.write_text("model = Sequential()\n")
    (path.parent / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    return ["not a JSON file (an architecture saved with model.to_json())"]


def _json_huge(path: Path) -> list[str]:
    sparse(path, (16 << 20) + 1)
    (path.parent / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    return ["too large for a model's architecture"]


def _broken_metadata(path: Path) -> list[str]:
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"")
    (path / "keras_metadata.pb").write_bytes(b"\xff\xff\xff garbage")
    return ["an unreadable SavedModel"]


def _link_out(path: Path) -> list[str]:
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"")
    (path / "variables").symlink_to("/etc")
    return ["holds a symbolic link (variables); not a SavedModel folder"]


CASES = [
    ("1-GB-h5", "m.h5", _huge),
    ("1-GB-keras", "m.keras", _huge),
    ("truncated-h5", "m.h5", _truncated_h5),
    ("model-config-not-json", "m.h5", _config_not_json),
    ("model-config-of-a-layer", "m.h5", _config_of_a_layer),
    ("keras2-config-without-weights", "m.h5", _config_without_weights),
    ("json-not-json", "m.json", _json_not_json),
    ("16-MB-json", "m.json", _json_huge),
    ("savedmodel-broken-metadata", "lenet", _broken_metadata),
    ("savedmodel-link-out", "lenet", _link_out),
]


@pytest.mark.parametrize(("name", "make"), [as_param(case) for case in CASES])
def test_bad_brought_models_are_refused_in_one_line(tensorflow_loaded, tmp_path, capsys, name, make):
    path = tmp_path / name
    fragments = make(path)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "export", path, "--out", tmp_path / "out", "--data", tmp_path / "no-data")
    line = error_line(err)
    assert code == 2 and str(path) in line, line
    for fragment in fragments:
        assert fragment in line, line
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_pipe_named_like_a_model_is_refused_without_being_read(tmp_path, capsys):
    pipe = tmp_path / "m.h5"
    os.mkfifo(pipe)
    with unblocked(pipe, HANG_S):
        code, _, err = cli(capsys, "export", pipe, "--out", tmp_path / "out", "--data", tmp_path / "no-data")
    assert code == 2 and "not a regular file" in error_line(err)


def test_weights_and_architecture_options_out_of_place_are_refused(tensorflow_loaded, tmp_path, capsys):
    (tmp_path / "m.keras").write_bytes(b"PK")
    code, _, err = cli(capsys, "export", tmp_path / "m.keras", "--weights", tmp_path / "w.h5", "--out", tmp_path / "o")
    assert code == 2 and "--weights" in error_line(err) and "only for an architecture .json" in err


def test_a_keras2_file_without_keras2_installed_names_the_install(tensorflow_loaded, tmp_path, capsys, monkeypatch):
    """An install without tf-keras (Keras 2) meets a Keras 2 file: one line saying what to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf_keras" else real(name, *a))
    path = tmp_path / "old.h5"
    layers = [{"class_name": "Dense", "config": {"name": "d", "units": 10, "batch_input_shape": [None, 28, 28]}}]
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    _h5(path, {"keras_version": b"2.1.6", "backend": b"tensorflow", "model_config": json.dumps(config).encode()})
    code, _, err = cli(capsys, "export", path, "--out", tmp_path / "out", "--data", tmp_path / "no-data")
    line = error_line(err)
    assert code == 2 and "written by Keras 2.1.6; reading it needs Keras 2" in line
    assert "pip install 'lenet-edge[train]' (it brings tf-keras)" in line
