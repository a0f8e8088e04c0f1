"""lenet-edge mcu refuses bad input in one line with exit code 2, before any build or emulator run, and leaves the
bundle as it was: an unknown board (the known ones listed), a bundle without an int8 .tflite, --all with --board.
A graph with an op the C model generator does not implement is refused the same way, naming the op. The four
checks every case makes are in tests/bad_input.py."""

from __future__ import annotations

from pathlib import Path

from bad_input import assert_kept, bundle_of, cli, error_line, resign, snapshot
from conftest import manifest_json

from lenet_edge.files import write_json


def with_op_renamed(path: Path, old: str, new: str) -> None:
    """``path`` (a .tflite) rewritten with every ``old`` op code made ``new`` (LiteRT's flatbuffer schema)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    codes = vars(schema.BuiltinOperator)
    renamed = 0
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == codes[old]:
            code.builtinCode, code.deprecatedBuiltinCode = codes[new], min(codes[new], 127)
            renamed += 1
    assert renamed, f"{path.name} has no {old}"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def test_an_unknown_board_is_refused_naming_it_and_listing_the_known_ones(tiny_bundle, tmp_path, capsys):
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-int8",))
    before = snapshot(tmp_path)
    code, _out, err = cli(capsys, "mcu", bundle, "--board", "esp32-s3")
    line = error_line(err)
    assert code == 2 and "unknown board 'esp32-s3'" in line
    assert all(name in line for name in ("microbit", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"))
    assert "nano-33-ble-sense" in line
    assert_kept(before, snapshot(tmp_path))


def test_a_bundle_without_an_int8_tflite_is_refused(tiny_bundle, tmp_path, capsys):
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-fp32", "onnx-int8"))
    before = snapshot(tmp_path)
    code, _out, err = cli(capsys, "mcu", bundle, "--board", "microbit")
    assert code == 2 and "no int8 .tflite (tflite-int8)" in error_line(err)
    assert_kept(before, snapshot(tmp_path))


def test_all_and_a_board_together_are_refused(tiny_bundle, tmp_path, capsys):
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-int8",))
    code, _out, err = cli(capsys, "mcu", bundle, "--all", "--board", "microbit")
    assert code == 2 and "--all and --board" in error_line(err)


def test_a_graph_with_an_op_the_c_model_does_not_implement_is_refused_naming_it(tiny_bundle, tmp_path, capsys):
    """The int8 file's softmax made a LOG_SOFTMAX (the manifest re-signed, the C model gone, as a bundle of a file
    the generator refused holds it): no C model can be made of it, and the command says so before it builds
    anything."""
    bundle = bundle_of(tiny_bundle, tmp_path / "bundle", ("tflite-int8",))
    with_op_renamed(bundle / "lenet5_int8.tflite", "SOFTMAX", "LOG_SOFTMAX")
    manifest = manifest_json(bundle)
    for ref in manifest["artifacts"][0]["micro"].pop("c_model", {}).get("files", []):
        (bundle / ref["file"]).unlink()
    write_json(bundle / "manifest.json", manifest)
    resign(bundle, "tflite-int8")
    before = snapshot(tmp_path)
    code, _out, err = cli(capsys, "mcu", bundle, "--board", "microbit")
    assert code == 2 and "LOG_SOFTMAX" in error_line(err)
    assert_kept(before, snapshot(tmp_path))
