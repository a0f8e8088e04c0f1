"""Output folders and data loss (lenet_edge/bundle_writer.py), signals and killed runs: export never takes over a
folder it did not write, a failed or interrupted export leaves the previous bundle byte-identical, and what a
killed run left is cleaned up or restored by the next. The four checks every case makes are in
tests/bad_input.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest
from bad_input import as_param, assert_kept, cli, dead_pid, error_line, snapshot, unblocked
from conftest import manifest_json

from lenet_edge import bundle_writer, exporters

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


@pytest.mark.parametrize(("name", "make"), [as_param(case) for case in OUT_CASES])
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
        pytest.param(lambda path: os.mkfifo(path), "not a regular file (a pipe, device or folder)", id="a-pipe"),
        pytest.param(lambda path: path.mkdir(), "a folder without saved_model.pb, not a SavedModel", id="a-folder"),
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


def test_a_bundle_the_other_commands_wrote_into_is_replaced_whole(
    keras_model, tiny_bundle, loaded_once, tmp_path, capsys
):
    """A bundle that cost --device, npu, bench and verify --layers wrote into is still the tool's own: an export
    over it goes ahead (exit 0) and replaces it whole, those files included."""
    from lenet_edge.cycle_cost import device_chart
    from lenet_edge.manifest import TARGETS_PNG
    from lenet_edge.npu.chart import NPU_PNG

    out = tmp_path / "export"
    shutil.copytree(tiny_bundle, out)
    written = [device_chart("Raspberry Pi 4"), NPU_PNG, "bench_mobile.png", "layers_tflite-int8.csv", TARGETS_PNG]
    for name in written:
        (out / name).write_bytes(b"written by another lenet-edge command")
    code, _, err = cli(capsys, *export_args(keras_model, out, loaded_once))
    assert code == 0 and err == "", err
    assert not any((out / name).exists() for name in written)
    assert [entry["format"] for entry in manifest_json(out)["artifacts"]] == ["keras", "onnx-fp32"]


def test_a_chart_the_ownership_check_does_not_know_is_never_drawn_into_a_bundle(tiny_bundle, tmp_path):
    """Every chart a command draws into a bundle must be one a later run may replace: a name outside the
    bundle's list is refused before anything is drawn."""
    from lenet_edge.report import draw_chart

    drawn = []
    with pytest.raises(ValueError, match="not a file the bundle's ownership check knows"):
        draw_chart(lambda data, path: drawn.append(path), {}, tmp_path, "my_chart.png")
    assert drawn == [] and draw_chart(lambda data, path: drawn.append(path), {}, tmp_path, "device_x.png")


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
