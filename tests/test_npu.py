"""`lenet-edge npu`: the bundle's int8 model compiled for Snapdragon NPUs by LiteRT's Qualcomm plugin, proven whole
on the NPU, judged and counted in Qualcomm's HTP simulator; and its bad input (unknown SoCs, a missing install, an
altered model, a graph the NPU does not take whole).

The tests that compile and simulate need the NPU tools' own Python (lenet_edge/npu/env.py), made at first use;
`make npu-tools` (and .ci/run) make it ahead. Without it they skip, except under CI=true, where they fail. They run
a simulator, so they are in the slow tier (``npu_tools`` is a slow fixture); the bad input before any work is not."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_VALIDATION, manifest_json, require, ridge_classifier, slow_fixture, tiny_model

from lenet_edge.cli import main
from lenet_edge.files import sha256_file, write_json
from lenet_edge.manifest import parse_manifest, read_manifest
from lenet_edge.npu import env, graph
from lenet_edge.npu.rewrite import GRAPH_SHIPPED, GRAPH_UNSPLIT, unsplit_first_conv
from lenet_edge.npu.socs import SOCS
from lenet_edge.report.npu import npu_section

DIGITS = 200  # the tests judge a few hundred digits per SoC in the simulator


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    return out


def _error(capsys) -> str:
    """The one line on stderr, checked to be exactly one `lenet-edge: error:` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lenet-edge: error: "), err
    return err[0]


@slow_fixture(scope="session")
def npu_tools() -> Path:
    """The NPU tools' Python as lenet-edge finds it (made ahead by `make npu-tools`; CI makes it in .ci/run)."""
    try:
        python = env.npu_python(install=False)
    except env.NpuNotInstalled as exc:
        require(False, f"the NPU tools are not installed (make npu-tools): {exc}")
        raise
    env.glue_dir()
    return python


# --- bad input, before any work -------------------------------------------------------------------------------


def test_an_unknown_soc_is_exit_2_listing_the_known_ones(tiny_bundle, capsys):
    assert main(["npu", str(tiny_bundle), "--soc", "SM9999"]) == 2
    line = _error(capsys)
    assert "SM9999" in line and all(model in line for model in SOCS)
    assert "Snapdragon 8 Gen 2" in line


@pytest.mark.parametrize(
    ("args", "said"), [([], "--soc"), (["--all", "--soc", "SM8550"], "--all and --soc")], ids=["none", "both"]
)
def test_the_socs_must_be_named_once_one_way(tiny_bundle, capsys, args, said):
    assert main(["npu", str(tiny_bundle), *args]) == 2
    assert said in _error(capsys)


def test_an_altered_int8_model_is_refused_before_any_compile(tiny_bundle, tmp_path, capsys):
    bundle = _copy(tiny_bundle, tmp_path)
    model = bundle / "lenet5_int8.tflite"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    assert main(["npu", str(bundle), "--soc", "SM8550"]) == 2
    assert "lenet5_int8.tflite" in _error(capsys)
    assert not (bundle / "npu").exists()


@pytest.mark.slow  # a venv made and pip refused: 15-25 s
def test_a_missing_install_is_one_line_with_the_command(tiny_bundle, tmp_path, monkeypatch, capsys):
    """Where PyPI cannot be reached, first use says so in one line with the command that installs the tools."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds nothing, as behind a firewall
    monkeypatch.delenv("LENET_EDGE_NPU_PYTHON", raising=False)
    monkeypatch.setattr(env, "_here_has_them", lambda: False)
    assert main(["npu", str(tiny_bundle), "--soc", "SM8550", "--limit", "10"]) == 2
    line = _error(capsys)
    assert "onnxruntime-qnn" in line and "pip install onnxruntime-qnn==" in line and " -m venv " in line
    assert not list((tmp_path / "cache" / "lenet-edge").glob("npu-venv-*"))  # nothing half-made is left


# --- the manifest and the report ---------------------------------------------------------------------------------


def test_a_manifest_with_npu_files_still_reads_and_keeps_them(tiny_bundle):
    data = manifest_json(tiny_bundle)
    entry = {"soc": "SM8550", "form": "litert", "file": "npu/lenet5_int8_SM8550.tflite", "sha256": "0" * 64}
    manifest = parse_manifest(data | {"npu": [entry]})
    assert manifest.npu == [entry] and manifest.to_dict()["npu"] == [entry]
    assert "npu" not in parse_manifest(data).to_dict()  # a bundle never compiled says nothing of it


def test_a_bundle_with_its_npu_files_can_be_exported_over_but_not_one_with_foreign_files_in_npu(tiny_bundle, tmp_path):
    from lenet_edge.bundle_writer import check_output_folder
    from lenet_edge.errors import BundleError

    bundle = _copy(tiny_bundle, tmp_path)
    (bundle / "npu").mkdir()
    (bundle / "npu" / "lenet5_int8_SM8550.tflite").write_bytes(b"compiled")
    entry = {"soc": "SM8550", "form": "litert", "file": "npu/lenet5_int8_SM8550.tflite", "sha256": "0" * 64}
    write_json(bundle / "manifest.json", manifest_json(bundle) | {"npu": [entry]})
    assert check_output_folder(bundle) == bundle.absolute()
    (bundle / "npu" / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="npu"):
        check_output_folder(bundle)


def test_a_manifest_whose_npu_list_holds_junk_is_refused(tiny_bundle):
    from lenet_edge.errors import BundleError

    with pytest.raises(BundleError, match="npu"):
        parse_manifest(manifest_json(tiny_bundle) | {"npu": ["lenet5_int8_SM8550.tflite"]})


def test_the_report_section_is_empty_without_npu_results():
    assert npu_section({}) == []


def test_every_soc_has_a_marketing_name_an_htp_architecture_and_a_source():
    for soc in SOCS.values():
        assert soc.name and soc.htp_arch.startswith("v") and soc.sources
    assert SOCS["SM8550"].htp_arch == "v73" and SOCS["SM8650"].htp_arch == "v75"


# --- compile, prove, judge, count (the NPU tools' Python) --------------------------------------------------------


def compiled_copy(source: Path, folder: Path) -> tuple[Path, dict, int]:
    """A copy of ``source`` compiled for SM8550 and judged on a few hundred digits: (bundle, --json, exit code)."""
    bundle = folder / "bundle"
    shutil.copytree(source, bundle)
    result = bundle / "npu.json"
    code = main(["npu", str(bundle), "--soc", "SM8550", "--limit", str(DIGITS), "--json", str(result)])
    return bundle, json.loads(result.read_text()), code


@pytest.fixture(scope="module")
def compiled_tiny(tiny_bundle, tmp_path_factory, npu_tools) -> tuple[Path, dict, int]:
    """The tiny bundle compiled for one SoC and judged on a few hundred digits."""
    return compiled_copy(tiny_bundle, tmp_path_factory.mktemp("npu"))


def test_the_npu_takes_the_whole_graph_and_both_forms_are_written(compiled_tiny):
    bundle, result, code = compiled_tiny
    assert code == 0
    (row,) = result["socs"]
    proof = row["compile"]["proof"]
    source_ops = graph.nodes(bundle / "lenet5_int8.tflite")  # no convolution: compiled as it is
    assert row["graph"] == GRAPH_SHIPPED and "shipped" not in row
    assert proof["ops_offloaded"] == proof["ops_total"] == len(source_ops) and proof["partitions"] == 1
    assert proof["left_on_cpu"] == []
    compiled = bundle / "npu" / "lenet5_int8_SM8550.tflite"
    assert [node.op for node in graph.nodes(compiled)] == [graph.DISPATCH_OP]
    assert (bundle / "npu" / "lenet5_int8_SM8550_ctx.onnx").is_file()


def test_the_manifest_records_both_compiled_files_with_their_source(compiled_tiny):
    bundle, _, _ = compiled_tiny
    manifest = read_manifest(bundle)
    source = manifest.artifact("tflite-int8")
    assert source is not None
    forms = {entry["form"]: entry for entry in manifest.npu}
    assert set(forms) == {"litert", "onnxruntime-qnn"}
    for entry in forms.values():
        assert entry["sha256"] == sha256_file(bundle / entry["file"])
        assert entry["source"]["sha256"] == source.sha256 and entry["soc"] == "SM8550"
        assert entry["source"]["graph"] == GRAPH_SHIPPED and entry["source"]["compiled_sha256"] == source.sha256
        assert entry["name"] == "Snapdragon 8 Gen 2" and entry["htp_arch"] == "v73"
        assert entry["tools"]["qnn_sdk"] and entry["tools"]["onnxruntime-qnn"] and entry["tools"]["ai-edge-litert"]
    # one context binary in both forms: the one the simulator judged is the one the LiteRT file carries
    assert forms["litert"]["context"]["context_sha256"] == forms["onnxruntime-qnn"]["context"]["context_sha256"]
    (dispatch,) = graph.dispatches(bundle / forms["litert"]["file"])
    blob = (bundle / forms["litert"]["file"]).read_bytes()[dispatch.offset : dispatch.offset + dispatch.size]
    import hashlib

    assert hashlib.sha256(blob).hexdigest() == forms["litert"]["context"]["context_sha256"]


def test_the_simulator_answers_like_keras_and_litert_on_the_cpu(compiled_tiny):
    _, result, _ = compiled_tiny
    judged = result["socs"][0]["judge"]
    assert judged["status"] == "pass" and judged["images"] == DIGITS
    assert judged["agreement_keras"] >= 0.995 and judged["agreement_cpu"] >= 0.99
    assert judged["max_step_diff_cpu"] <= 64  # quantization steps of the uint8 output, out of 255
    assert abs(judged["accuracy"] - judged["keras_accuracy"]) <= 0.003


def test_the_compiled_context_states_the_socs_own_htp_architecture(compiled_tiny):
    _, result, _ = compiled_tiny
    assert result["socs"][0]["compile"]["proof"]["compiled_for"] == [{"soc": "SM8550", "htp_arch": "v73"}]


def test_the_int8_onnx_runs_whole_on_the_qnn_execution_provider_with_a_batch_of_one(compiled_tiny):
    _, result, _ = compiled_tiny
    onnx = result["socs"][0]["onnx"]
    assert onnx["file"] == "lenet5_int8.onnx" and onnx["status"] == "pass", onnx
    assert onnx["provider"] == {"soc_model": "43", "htp_arch": "73"}
    assert onnx["judge"]["agreement_keras"] >= 0.995 and onnx["judge"]["agreement_cpu"] >= 0.99
    assert onnx["cycles"]["median_per_image"] > 0


def test_the_simulator_runs_the_compiled_bytes_themselves(compiled_tiny, npu_tools, mnist, tmp_path):
    """4 KB of the context binary zeroed: the simulator answers otherwise (or refuses the file); it is not
    answering from anything but the compiled file."""
    import onnx

    from lenet_edge.npu.command import Agent, NpuError, simulate

    bundle, _, _ = compiled_tiny
    model = onnx.load(bundle / "npu" / "lenet5_int8_SM8550_ctx.onnx")
    (attribute,) = [a for a in model.graph.node[0].attribute if a.name == "ep_cache_context"]
    blob = bytearray(attribute.s)
    middle = len(blob) // 2
    blob[middle : middle + 4096] = bytes(4096)
    attribute.s = bytes(blob)
    tampered = tmp_path / "tampered_ctx.onnx"
    onnx.save(model, tampered)
    digits = mnist.x_test[:100].reshape(-1, 28, 28, 1)
    agent = Agent(npu_tools)
    try:
        honest = simulate(agent, bundle / "npu" / "lenet5_int8_SM8550_ctx.onnx", digits, 1, 0, "honest")["raw"]
        try:
            altered = simulate(agent, tampered, digits, 1, 0, "tampered")["raw"]
        except NpuError:
            return  # refused: as good as answering otherwise
    finally:
        agent.close()
    assert not np.array_equal(altered, honest)


def test_cycles_are_counted_per_image_and_per_op(compiled_tiny):
    _, result, _ = compiled_tiny
    counted = result["socs"][0]["cycles"]
    assert counted["median_per_image"] > 0 and counted["images"] >= 10
    busy = [op for op in counted["ops"] if op["median_cycles"] > 0]
    assert any(op["tflite_op"] == "FULLY_CONNECTED" for op in busy)


def test_the_report_shows_the_npu_rows(compiled_tiny):
    bundle, _, _ = compiled_tiny
    report = (bundle / "report.md").read_text()
    assert "## Phone NPU" in report and "SM8550 (Snapdragon 8 Gen 2)" in report and "cycles" in report
    assert "![simulated HTP cycles per image by layer](npu_cycles.png)" in report
    assert (bundle / "npu_cycles.png").read_bytes().startswith(b"\x89PNG")
    assert "npu" in json.loads((bundle / "report.json").read_text())


def test_a_second_run_recompiles_nothing_that_has_not_changed(compiled_tiny, capsys):
    bundle, _, _ = compiled_tiny
    before = {p.name: sha256_file(p) for p in (bundle / "npu").iterdir()}
    assert main(["npu", str(bundle), "--soc", "SM8550", "--limit", "20"]) == 0
    assert "not recompiled" in capsys.readouterr().out
    assert {p.name: sha256_file(p) for p in (bundle / "npu").iterdir()} == before


def test_verify_re_judges_the_compiled_files_without_compiling(compiled_tiny, capsys):
    bundle, _, _ = compiled_tiny
    manifest_before = (bundle / "manifest.json").read_bytes()
    assert main(["npu", str(bundle), "--verify", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "simulator on 20 digits" in out
    assert (bundle / "manifest.json").read_bytes() == manifest_before


def test_lenet_edge_verify_judges_the_npu_files_on_a_sample_and_prints_its_whole_time(
    compiled_tiny, mnist_dir, tmp_path, capsys
):
    """verify of a bundle compiled for an NPU re-judges the compiled files on the first N digits (1,000 unless
    --npu-digits says otherwise) and the time it prints is the whole command's, the simulator's included."""
    bundle = _copy(compiled_tiny[0], tmp_path)
    started = time.perf_counter()
    assert main(["verify", str(bundle), "--data", str(mnist_dir), "--npu-digits", "30"]) == 0
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert "HTP simulator, the first 30 test digits" in out and "simulator on 30 digits" in out
    printed = float(re.search(r"verify: all passed \(([\d.]+) s\)", out).group(1))
    assert 0.9 * elapsed - 0.2 <= printed <= elapsed + 0.1


def test_a_compiled_file_whose_checksum_changed_fails_verify(compiled_tiny, tmp_path, capsys):
    bundle = _copy(compiled_tiny[0], tmp_path)
    ctx = bundle / "npu" / "lenet5_int8_SM8550_ctx.onnx"
    data = bytearray(ctx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ctx.write_bytes(bytes(data))
    assert main(["npu", str(bundle), "--verify", "--limit", "10"]) == 1
    out = capsys.readouterr().out
    assert (
        "SM8550 (Snapdragon 8 Gen 2): ❎ npu/lenet5_int8_SM8550_ctx.onnx: its sha256 differs from the manifest's" in out
    )
    assert ctx.read_bytes() == bytes(data)  # verify recompiles nothing


def test_verify_with_nothing_compiled_is_exit_2(tiny_bundle, capsys):
    assert main(["npu", str(tiny_bundle), "--verify"]) == 2
    assert "nothing compiled for an NPU" in _error(capsys)


def test_a_soc_that_fails_leaves_the_others_done_and_exits_1(tiny_bundle, compiled_tiny, tmp_path, capsys):
    """QNN 2.51 compiles SM8475 (Snapdragon 8+ Gen 1, HTP v69) for v68: a file for the wrong NPU is a failure
    of that SoC, said in one line; the SoC after it is compiled and judged all the same."""
    bundle = _copy(tiny_bundle, tmp_path)
    assert main(["npu", str(bundle), "--soc", "SM8475", "--soc", "SM8550", "--limit", "20"]) == 1
    out = capsys.readouterr().out
    assert "SM8475 (Snapdragon 8+ Gen 1): ❎ the HTP compiler compiled for SM8475 v68, not for SM8475's HTP v69" in out
    assert sorted(p.name for p in (bundle / "npu").iterdir()) == [
        "lenet5_int8_SM8550.tflite",
        "lenet5_int8_SM8550_ctx.onnx",
    ]
    for name in ("lenet5_int8_SM8550.tflite", "lenet5_int8_SM8550_ctx.onnx"):  # the same bundle: the same bytes
        assert (bundle / "npu" / name).read_bytes() == (compiled_tiny[0] / "npu" / name).read_bytes()
    rows = {row["soc"]["model"]: row for row in json.loads((bundle / "report.json").read_text())["npu"]["socs"]}
    assert rows["SM8475"]["status"] == "fail" and rows["SM8550"]["status"] == "pass"
    assert "SM8475 (Snapdragon 8+ Gen 1)" in (bundle / "report.md").read_text()


# --- the cheaper graph: C1 whole again, as the NPU compiles it ----------------------------------------------------


def _conv_model(mnist):
    """A model with a first convolution the int8 export splits in row shifts, built in seconds and never trained:
    raw pixels -> rescale -> C1 (5×5, valid, two filters: the image shifted by (1, 3) and by (3, 1), asymmetric
    so that a transposed kernel would answer otherwise) -> flatten -> the ridge classifier of those features."""
    import keras

    _, training = tiny_model(mnist)  # its record, with this model's own accuracy below
    fit_x, fit_y = mnist.x_train[: 20_000 - TINY_VALIDATION], mnist.y_train[: 20_000 - TINY_VALIDATION]
    shifts = ((1, 3), (3, 1))
    features = np.stack([fit_x[:, r : r + 24, c : c + 24] for r, c in shifts], -1)
    kernel, bias = ridge_classifier(features, fit_y)
    image = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale_0_1")(image)
    conv = keras.layers.Conv2D(len(shifts), 5, name="C1")
    x = conv(x)
    x = keras.layers.Flatten(name="flatten")(x)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    made = keras.Model(image, probabilities, name="ridge_conv")
    deltas = np.zeros((5, 5, 1, len(shifts)), np.float32)
    for k, (r, c) in enumerate(shifts):
        deltas[r, c, 0, k] = 1.0
    conv.set_weights([deltas, np.zeros(len(shifts), np.float32)])
    made.get_layer("probabilities").set_weights([kernel, bias])
    probs = made.predict_on_batch(mnist.x_test.reshape(-1, 28, 28, 1).astype(np.float32))
    accuracy = round(float(np.mean(np.argmax(probs, 1) == mnist.y_test)), 6)
    return made, training | {"test_accuracy": accuracy, "model": training["model"] | {"architecture": "ridge-conv"}}


@pytest.fixture(scope="module")
def conv_bundle(tmp_path_factory, mnist) -> Path:
    """A bundle of the int8 .tflite (and Keras) of ``_conv_model``, by the real bundle writer."""
    from lenet_edge.bundle_writer import write_bundle
    from lenet_edge.formats import BY_NAME

    model, training = _conv_model(mnist)
    out = tmp_path_factory.mktemp("conv") / "export"
    write_bundle(out, model, training, mnist, [BY_NAME["tflite-int8"]], calibration_count=200)
    assert read_manifest(out).failed == []
    return out


def test_the_npu_source_is_the_int8_file_with_c1_whole_answering_bit_for_bit(conv_bundle, mnist, tmp_path):
    """The row-shift split (a one-hot depthwise 5×1 and a 1×5 convolution) undone in the int8 file itself: one
    5×5 convolution over the image, the same answers to the bit in LiteRT; the same bytes every time; a file
    with no split is left alone."""
    from lenet_edge.runtimes import open_runner

    shipped = conv_bundle / "lenet5_int8.tflite"
    made = unsplit_first_conv(shipped.read_bytes())
    assert made is not None and made == unsplit_first_conv(shipped.read_bytes())
    whole = tmp_path / "whole.tflite"
    whole.write_bytes(made)
    before, after = [n.op for n in graph.nodes(shipped)], [n.op for n in graph.nodes(whole)]
    assert before[:3] == ["QUANTIZE", "DEPTHWISE_CONV_2D", "CONV_2D"] and after == before[:1] + before[2:]
    from lenet_edge.runtimes.litert import _interpreter

    interpreter = _interpreter(whole, xnnpack=False)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    conv = interpreter._get_ops_details()[1]
    assert tuple(details[conv["inputs"][0]]["shape"]) == (1, 28, 28, 1)  # the image itself
    assert tuple(details[conv["inputs"][1]]["shape"]) == (2, 5, 5, 1)  # 2 filters, 5×5 over one channel
    digits = mnist.x_test[:500]
    np.testing.assert_array_equal(
        open_runner("litert", whole).predict(digits, raw=True), open_runner("litert", shipped).predict(digits, raw=True)
    )
    assert unsplit_first_conv(made) is None  # nothing left to undo


@pytest.fixture(scope="module")
def compiled_conv(conv_bundle, tmp_path_factory, npu_tools) -> tuple[Path, dict, int]:
    return compiled_copy(conv_bundle, tmp_path_factory.mktemp("npu-conv"))


def test_the_npu_compiles_c1_whole_and_the_manifest_says_so(compiled_conv):
    bundle, result, code = compiled_conv
    assert code == 0
    (row,) = result["socs"]
    shipped = bundle / "lenet5_int8.tflite"
    made = unsplit_first_conv(shipped.read_bytes())
    assert made is not None
    assert row["graph"] == GRAPH_UNSPLIT and row["compile"]["proof"]["ops_total"] == len(graph.nodes(shipped)) - 1
    for entry in read_manifest(bundle).npu:
        assert entry["source"]["file"] == "lenet5_int8.tflite" and entry["source"]["sha256"] == sha256_file(shipped)
        assert entry["source"]["graph"] == GRAPH_UNSPLIT
        import hashlib

        assert entry["source"]["compiled_sha256"] == hashlib.sha256(made).hexdigest()
    judged = row["judge"]
    assert judged["status"] == "pass" and judged["agreement_cpu"] >= 0.99 and judged["agreement_keras"] >= 0.995


def test_the_file_as_shipped_is_compiled_and_profiled_beside_it(compiled_conv):
    """The side-by-side: the int8 file as it is, compiled for the same SoC and profiled in the same run; its
    profile holds the row copies (C1_rows), the compiled file's does not."""
    bundle, result, _ = compiled_conv
    (row,) = result["socs"]
    shipped = row["shipped"]
    assert shipped["status"] == "pass" and shipped["graph"] == GRAPH_SHIPPED
    assert shipped["cycles"]["median_per_image"] > 0 and row["cycles"]["median_per_image"] > 0
    assert any("C1_rows" in op["op"] and op["median_cycles"] > 0 for op in shipped["cycles"]["ops"])
    assert not any("C1_rows" in op["op"] for op in row["cycles"]["ops"])
    assert 0 < shipped["ratio_same_layers"] < 1  # cheaper, in units of the layers both files compute alike
    report = (bundle / "report.md").read_text()
    assert "### What the NPU pays for `lenet5_int8.tflite` as it is" in report
    assert re.search(r"\| SM8550 \| [\d,]+ \| [\d,]+ \| \d\.\d\d× \|", report)
    assert "row shifts" in report and "x86" in report


def test_a_second_run_recompiles_nothing_with_c1_whole(compiled_conv, capsys):
    bundle, _, _ = compiled_conv
    before = {p.name: sha256_file(p) for p in (bundle / "npu").iterdir()}
    assert main(["npu", str(bundle), "--soc", "SM8550", "--limit", "20"]) == 0
    assert "not recompiled" in capsys.readouterr().out
    assert {p.name: sha256_file(p) for p in (bundle / "npu").iterdir()} == before


def test_verify_re_judges_the_file_compiled_with_c1_whole(compiled_conv, capsys):
    assert main(["npu", str(compiled_conv[0]), "--verify", "--limit", "20"]) == 0
    assert "C1 as trained" in capsys.readouterr().out


def test_the_same_bundle_compiles_to_the_same_bytes_with_c1_whole(conv_bundle, compiled_conv, tmp_path):
    bundle = _copy(conv_bundle, tmp_path)
    assert main(["npu", str(bundle), "--soc", "SM8550", "--limit", "20"]) == 0
    for name in ("lenet5_int8_SM8550.tflite", "lenet5_int8_SM8550_ctx.onnx"):
        assert (bundle / "npu" / name).read_bytes() == (compiled_conv[0] / "npu" / name).read_bytes()
    assert read_manifest(bundle).npu[0]["source"] == read_manifest(compiled_conv[0]).npu[0]["source"]


def test_a_file_compiled_from_another_graph_fails_verify(compiled_conv, tmp_path, capsys):
    bundle = _copy(compiled_conv[0], tmp_path)
    data = manifest_json(bundle)
    for entry in data["npu"]:
        entry["source"]["compiled_sha256"] = "0" * 64
    write_json(bundle / "manifest.json", data)
    assert main(["npu", str(bundle), "--verify", "--limit", "10"]) == 1
    assert "compiled from a .tflite that is neither lenet5_int8.tflite nor" in capsys.readouterr().out


def _hybrid_conv_model(path: Path) -> None:
    """A convolution quantized dynamic-range (int8 weights, float activations): an op the HTP does not run."""
    from lenet_edge.tensorflow_loader import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(7)
    image = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(4, 5, name="C1")(keras.layers.Rescaling(1 / 255)(image))
    x = keras.layers.Dense(10, activation="softmax", name="probabilities")(keras.layers.Flatten()(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(image, x))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path.write_bytes(converter.convert())


def test_an_op_left_on_the_cpu_fails_the_soc_naming_the_op(tiny_bundle, tmp_path, npu_tools, capsys):
    """A bundle whose "int8" model is a float graph with a hybrid convolution and a dynamic batch: the NPU
    leaves some of its ops to the CPU, and the SoC fails naming them; nothing is written for it."""
    bundle = _copy(tiny_bundle, tmp_path)
    data = manifest_json(bundle)
    hybrid = bundle / "lenet5_int8.tflite"
    _hybrid_conv_model(hybrid)
    for artifact in data["artifacts"]:
        if artifact["format"] == "tflite-int8":
            artifact |= {"sha256": sha256_file(hybrid), "bytes": hybrid.stat().st_size}
    write_json(bundle / "manifest.json", data)
    assert main(["npu", str(bundle), "--soc", "SM8550", "--limit", "10"]) == 1
    out = capsys.readouterr().out
    assert re.search(
        r"SM8550 .*: ❎ the NPU does not take the whole graph: \d+ of \d+ ops .*; left on the CPU: [A-Z_0-9]+ \(", out
    )
    assert not list((bundle / "npu").glob("*SM8550*"))
    assert "npu" not in manifest_json(bundle)


def test_the_trained_model_runs_whole_and_within_the_int8_gates_on_two_socs(trained_bundle, tmp_path, npu_tools):
    """The slow tier: the trained bundle, two SoCs, 2,000 digits (all 10,000 take about 4 minutes a SoC here)."""
    bundle = _copy(trained_bundle, tmp_path)
    result = tmp_path / "npu.json"
    args = ["npu", str(bundle), "--soc", "SM8550", "--soc", "SM8650", "--limit", "2000", "--json", str(result)]
    assert main(args) == 0
    for row in json.loads(result.read_text())["socs"]:
        assert row["compile"]["proof"]["whole"] and row["compile"]["proof"]["left_on_cpu"] == []
        judged = row["judge"]
        assert judged["status"] == "pass" and judged["accuracy"] >= 0.985 and judged["agreement_keras"] >= 0.995
        assert judged["agreement_cpu"] >= 0.995
        assert row["onnx"]["status"] == "pass"
        assert row["cycles"]["median_per_image"] > 0


def test_cost_for_a_snapdragon_phone_puts_the_npus_simulated_cycles_beside_its_cores(compiled_tiny, tmp_path, capsys):
    """The NPU row of `cost --device` comes from what `lenet-edge npu` recorded; the cores' cycles here are report
    rows as the emulated count leaves them (counting them is test_cycles.py's slow test), so nothing is counted."""
    from lenet_edge.cycle_cost import models_for

    bundle = tmp_path / "bundle"
    shutil.copytree(compiled_tiny[0], bundle)
    report = json.loads((bundle / "report.json").read_text())
    rows = [{"format": fmt, "runtime": "litert", "instructions_per_image": 2 * n, "vs_fp32": None,
             "cycles_per_image": dict.fromkeys(models_for("cortex-a76"), n), "unpriced_share": 0.0,
             "unpriced_blocks": 0} for fmt, n in (("tflite-fp32", 600_000), ("tflite-int8", 240_000))]  # fmt: skip
    identity = {"kind": "emulated", "machine": "aarch64", "cpu": "cortex-a76", "python": "3.11", "versions": {}}
    cost = {"calls": 5, "cycles_method": "as the count records it", "rows": rows, "identity": {"core": "cortex-a76"}}
    report.setdefault("targets", {})["arm64-emu:cortex-a76"] = {"identity": identity, "cost": cost}
    write_json(bundle / "report.json", report)
    counted = report["npu"]["socs"][0]["cycles"]["median_per_image"]
    assert main(["cost", str(bundle), "--device", "Snapdragon 8 Gen 2 phone"]) == 0
    out = capsys.readouterr().out
    assert f"{counted:,} HTP cycles" in out and "no public HTP clock: cycles only" in out
    assert "deploy: tflite-int8 (fewest cycles per image on the prime core (cortex-x3): 75.2 µs" in out
    npu = json.loads((bundle / "report.json").read_text())["devices"]["Snapdragon 8 Gen 2 phone"]["npu"]
    assert npu["files"][0]["cycles_per_image"] == counted and npu["us_per_image"] is None
    assert f"{counted:,} HTP cycles |" in (bundle / "report.md").read_text()
    assert main(["cost", str(bundle), "--device", "Snapdragon 8 Gen 3 phone"]) == 0
    assert f"measure it: lenet-edge npu {bundle} --soc SM8650" in capsys.readouterr().out
