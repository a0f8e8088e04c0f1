"""The command line: help everywhere, a user's mistake is one line and a non-zero exit, before any work, and
`--json` means the same in every command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lenet_edge.cli import build_parser, main
from lenet_edge.formats import GATE_FLAGS


@pytest.mark.parametrize("command", [[], ["run"], ["train"], ["export"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: lenet-edge" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--epochs", "0"], "must be at least 1"),
        (["run", "--formats", "tflite-int4"], "unknown format(s) tflite-int4"),
        (["train", "--arch", "alexnet"], "invalid choice"),
        (["run", "--lr", "nan"], "argument --lr: nan is not a number"),
        (["run", "--warmup", "1"], "argument --warmup: 1 is not a number from 0 to 0.99"),
        (["train", "--warmup", "-0.1"], "argument --warmup: -0.1 is not a number from 0 to 0.99"),
        (["verify", "export", "--quant-min-agreement", "nan"], "nan is not a number from 0 to 100"),
        (["verify", "export", "--fp32-max-dp", "-1"], "-1 is not a number from 0 to 1"),
        (["verify", "export", "--quant-max-drop", "inf"], "inf is not a number from 0 to 100"),
        (["verify", "export", "--gpu-digits", "-5"], "-5 must be at least 0"),
        (["run", "--gpu-digits", "many"], "'many' is neither a whole number nor 'all'"),
    ],
)
def test_bad_values_are_argparse_errors(args, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("lenet-edge: error: ") and err.count("\n") == 1, err
    return err


def test_bad_data_path_fails_before_training(tmp_path, capsys):
    assert main(["run", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_unwritable_out_fails_before_loading_anything(mnist_dir, tmp_path, capsys):
    assert main(["train", "--data", str(mnist_dir), "--out", "/proc/lenet-edge/out"]) == 2
    assert "cannot create its folder" in _one_line_error(capsys)


def test_limit_smaller_than_validation_is_a_usage_error(mnist_dir, tmp_path, capsys):
    args = ["train", "--data", str(mnist_dir), "--out", str(tmp_path / "o"), "--limit", "100"]
    assert main(args) == 2
    assert "leaves nothing to train on" in _one_line_error(capsys)


def test_failure_reasons_are_one_line_even_without_a_message():
    from lenet_edge.errors import first_line, one_line

    assert one_line(RuntimeError("converter exploded\n  at line 3")) == "RuntimeError: converter exploded"
    assert one_line(ValueError()) == "ValueError" and first_line(OSError()) == ""


# --- what every command promises: --json, targets each command takes, numbers that cannot work -------------


def _picture(mnist, folder: Path, index: int) -> Path:
    """A real test digit as a user has it: 10× larger, dark ink on white."""
    path = folder / f"digit{index}.png"
    Image.fromarray(255 - mnist.x_test[index]).resize((280, 280), Image.Resampling.BILINEAR).save(path)
    return path


def test_json_path_writes_the_result_and_json_dash_prints_only_json(tiny_bundle, mnist, tmp_path, capsys):
    pictures = [str(_picture(mnist, tmp_path, i)) for i in range(3)]
    model = str(tiny_bundle / "lenet5_fp32.onnx")
    assert main(["predict", *pictures, "--model", model, "--json", str(tmp_path / "answers.json")]) == 0
    logged = capsys.readouterr()
    written = json.loads((tmp_path / "answers.json").read_text())
    assert [row["image"] for row in written] == pictures and all(len(row["probabilities"]) == 10 for row in written)
    assert all(f"{picture}: " in logged.out for picture in pictures)  # without '-', the log stays on stdout
    assert main(["predict", *pictures, "--model", model, "--json", "-"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == written  # stdout is the JSON and nothing else
    assert all(f"{picture}: " in printed.err for picture in pictures)  # the log went to stderr


def test_json_dash_from_a_separate_process_is_pure_json(tiny_bundle, mnist, tmp_path):
    """What a script piping `lenet-edge ... --json -` reads: the whole stdout, the runtime's own chatter
    (LiteRT announces its XNNPACK delegate on stdout or stderr) kept out of it."""
    picture = str(_picture(mnist, tmp_path, 0))
    for model in ("lenet5_int8.tflite", "lenet5_fp32.onnx"):
        done = subprocess.run(
            [sys.executable, "-m", "lenet_edge.cli", "predict", picture, "--model", str(tiny_bundle / model),
             "--json", "-"], capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert [row["image"] for row in rows] == [picture] and rows[0]["label"] == mnist.y_test[0]
        assert f"{picture}: {rows[0]['label']}" in done.stderr


def test_verify_json_dash_prints_the_rows_only(tiny_bundle, raw_mnist_dir, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    assert main(["verify", str(bundle), "--data", str(raw_mnist_dir), "--json", "-"]) == 0
    printed = capsys.readouterr()
    rows = json.loads(printed.out)
    assert rows == json.loads((bundle / "report.json").read_text())["verify"]
    assert "verify: all passed" in printed.err and "verify:" not in printed.out


@pytest.mark.parametrize("where", ["a-folder", "a-link", "in-a-missing-folder"])
def test_a_json_path_that_cannot_be_written_is_refused_before_any_work(tiny_bundle, tmp_path, capsys, where):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    victim = tmp_path / "victim.json"
    victim.write_text("[]")
    target = {"a-folder": tmp_path, "a-link": tmp_path / "link.json", "in-a-missing-folder": tmp_path / "no" / "r.json"}
    if where == "a-link":
        target[where].symlink_to(victim)
    assert main(["verify", str(bundle), "--data", str(tmp_path / "no-mnist-here"), "--json", str(target[where])]) == 2
    assert f"--json {target[where]}: " in _one_line_error(capsys)  # not the missing data: checked first
    assert victim.read_text() == "[]" and not (bundle / "report.json").exists()


@pytest.mark.parametrize("target", ["arm64-emu", "arm64-emu:cortex-a53"])
def test_bench_on_an_emulated_target_points_at_cost(tiny_bundle, raw_mnist_dir, capsys, target):
    core = target.partition(":")[2] or "cortex-a76"
    assert main(["bench", str(tiny_bundle), "--data", str(raw_mnist_dir), "--target", target]) == 2
    err = _one_line_error(capsys)
    assert "not latency" in err and f"lenet-edge cost {tiny_bundle} --target arm64-emu:{core}" in err


@pytest.mark.parametrize("target", ["local", "ssh://pi@raspberrypi.local"])
def test_cost_needs_an_emulated_target(tiny_bundle, raw_mnist_dir, capsys, target):
    assert main(["cost", str(tiny_bundle), "--data", str(raw_mnist_dir), "--target", target]) == 2
    assert "instruction counts need an emulated target (arm64-emu[:CORE])" in _one_line_error(capsys)


LOCAL_ONLY = [[flag, "50" if unit == 100 else "0.5"] for flag, _, _, unit, _ in GATE_FLAGS]
LOCAL_ONLY += [["--threads", "2"], ["--layers"], ["--gpu-digits", "all"]]


@pytest.mark.parametrize("option", LOCAL_ONLY, ids=lambda option: option[0])
def test_local_verify_options_are_refused_with_a_target(tiny_bundle, raw_mnist_dir, tmp_path, capsys, option):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    args = ["verify", str(bundle), "--data", str(raw_mnist_dir), "--target", "arm64-emu", *option]
    assert main(args) == 2
    err = _one_line_error(capsys)
    assert f"{option[0]}: for a local verify; on a target the parity gates judge" in err
    assert not (bundle / "report.json").exists()  # refused before any target work


def test_limit_is_for_target_runs(tiny_bundle, raw_mnist_dir, capsys):
    assert main(["verify", str(tiny_bundle), "--data", str(raw_mnist_dir), "--limit", "10"]) == 2
    assert "--limit is for --target runs" in _one_line_error(capsys)


# (flag, its lowest and highest value as the error states them, values beyond them)
NUMBER_OPTIONS = [
    *(
        (flag, "0", "1", ["1.5", "-0.5"]) if field == "max_abs_dp" else (flag, "0", "100", ["101", "-0.5"])
        for flag, _, field, _, _ in GATE_FLAGS
    ),
    ("--seconds", "0.001", "3600", ["3601", "0.0005", "0", "-1"]),
    ("--lr", "1e-09", "10", ["10.5", "1e-10", "0", "-0.001"]),
]


def _command_for(flag: str) -> list[str]:
    return {"--seconds": ["bench", "export"], "--lr": ["train"]}.get(flag, ["verify", "export"])


@pytest.mark.parametrize(("flag", "low", "high", "beyond"), NUMBER_OPTIONS, ids=[o[0] for o in NUMBER_OPTIONS])
def test_numbers_that_cannot_work_are_refused_and_the_range_is_taken(flag, low, high, beyond, capsys):
    for value in ["nan", "NaN", "inf", "-inf", "1e999", *beyond]:
        with pytest.raises(SystemExit) as done:
            main([*_command_for(flag), f"{flag}={value}"])  # '=': argparse would read "-inf" as an option
        assert done.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: {value} is not a number from {low} to {high}" in err, err
    with pytest.raises(SystemExit) as done:
        main([*_command_for(flag), flag, "many"])
    assert done.value.code == 2 and f"argument {flag}: 'many' is not a number" in capsys.readouterr().err
    for value in (low, high):  # both ends are valid
        args = build_parser().parse_args([*_command_for(flag), flag, value])
        assert getattr(args, flag[2:].replace("-", "_")) == float(value)
