"""lenet_edge.files: every file the package writes goes through one temp file and one rename. A reader never sees
half a file, a failure leaves the previous file and no temp file, a symlink planted where the temp file goes is
never followed, and the file gets the usual permissions."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from lenet_edge.files import atomic_output, sha256_file, write_json


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_names(monkeypatch, *names: str) -> None:
    """The random parts mkstemp tries, in order (it takes the first that does not exist yet)."""
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: iter(names))


def _temp_path_for(target: Path, monkeypatch, name: str) -> Path:
    """Where atomic_output puts its temp file for ``target`` when mkstemp draws ``name``: found by writing once."""
    _temp_names(monkeypatch, f"probe{name}")
    with atomic_output(target) as tmp:
        seen = tmp
        tmp.write_text("probe")
    target.unlink()
    return seen.with_name(seen.name.replace(f"probe{name}", name))


def test_success_replaces_the_target_in_one_rename(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    other_link = tmp_path / "hard-link"
    os.link(target, other_link)  # a second name of the old file: a write in place would change it too
    with open(target) as reader, atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        inode = tmp.stat().st_ino
        assert target.read_text() == "old"  # nothing of the new file shows before the block ends
        assert reader.read() == "old"
    assert target.read_text() == "new" and target.stat().st_ino == inode  # the temp file itself, renamed
    assert other_link.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard-link", "report.json"]  # no temp file left


def test_failure_leaves_the_previous_file_and_no_temp_file(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="converter exploded"), atomic_output(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("converter exploded")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "new.json") as tmp:
        tmp.write_text("{")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no new file, no temp file


def test_a_planted_symlink_is_never_followed(tmp_path, monkeypatch):
    """Someone who can write to the folder plants symlinks at the temp file's name (and at the target): the
    victims they point at stay untouched, and the target becomes a regular file of ours."""
    target = tmp_path / "bench.json"
    planted = _temp_path_for(target, monkeypatch, "planted")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted.symlink_to(victim)
    dangling = planted.with_name(planted.name.replace("planted", "dangles"))
    dangling.symlink_to(tmp_path / "created-through-a-link")
    _temp_names(monkeypatch, "planted", "dangles", "fresh")
    write_json(target, {"rows": []})
    assert victim.read_text() == "precious" and not (tmp_path / "created-through-a-link").exists()
    assert json.loads(target.read_text()) == {"rows": []} and not target.is_symlink()
    assert planted.is_symlink() and dangling.is_symlink()  # left as they were, not written through
    target.unlink()
    target.symlink_to(victim)  # the target itself a symlink: replaced, not written through
    write_json(target, [1, 2])
    assert victim.read_text() == "precious" and not target.is_symlink() and json.loads(target.read_text()) == [1, 2]


def test_files_get_the_usual_permissions(tmp_path):
    """0666 less the umask: 0644 under the usual 022 (mkstemp's 0600 would hide a bundle from its users)."""
    expected = 0o666 & ~_umask()
    write_json(tmp_path / "manifest.json", {})
    with atomic_output(tmp_path / "model.onnx") as tmp:
        tmp.write_bytes(b"\x08\x07")
    for name in ("manifest.json", "model.onnx"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected
    if _umask() == 0o022:
        assert expected == 0o644


def test_write_json_is_the_json_and_a_newline(tmp_path):
    target = tmp_path / "rows.json"
    rows = [{"format": "tflite-int8", "accuracy": 0.9871, "reason": "µ ✅"}]
    write_json(target, rows)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == rows and text.endswith("]\n") and text.count("\n") > 1  # indented
    with pytest.raises(TypeError):
        write_json(target, {"not json": object()})
    assert json.loads(target.read_text()) == rows  # the previous file stays
    assert [p.name for p in tmp_path.iterdir()] == ["rows.json"]


def test_a_missing_folder_is_an_oserror_naming_the_file(tmp_path):
    target = tmp_path / "gone" / "report.json"
    with pytest.raises(OSError) as raised:
        write_json(target, {})
    assert raised.value.filename == str(target)  # what the CLI's one-line error names
    assert not (tmp_path / "gone").exists()


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"lenet-edge" * 300_000)  # over the 1 MiB read block
    assert sha256_file(path) == hashlib.sha256(b"lenet-edge" * 300_000).hexdigest()
