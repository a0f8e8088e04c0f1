"""The command line: help everywhere, and a user's mistake is one line and a non-zero exit, before any work."""

from __future__ import annotations

import pytest

from lenet_edge.cli import main


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
        (["verify", "export", "--quant-min-agreement", "nan"], "nan is not a number from 0 to 100"),
        (["verify", "export", "--fp32-max-dp", "-1"], "-1 is not a number from 0 to 1"),
        (["verify", "export", "--quant-max-drop", "inf"], "inf is not a number from 0 to 100"),
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
