"""Shared fixtures. MNIST comes from $LENET_EDGE_DATA; without it a test that needs it skips, except under
CI=true, where it fails: CI never passes by skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lenet_edge.cli import main
from lenet_edge.data import Mnist, load_mnist


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = os.environ.get("LENET_EDGE_DATA")
    if folder and Path(folder).is_dir():
        return Path(folder)
    message = "MNIST not found: set LENET_EDGE_DATA to the folder of the four MNIST IDX files"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> Mnist:
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory, mnist_dir) -> Path:
    """A real bundle from a short real training run on a slice of MNIST: all six formats."""
    out = tmp_path_factory.mktemp("bundle") / "export"
    args = ["run", "--data", str(mnist_dir), "--out", str(out), "--limit", "12000", "--validation", "1000"]
    code = main([*args, "--epochs", "3", "--no-augment", "--calibration", "200", "--seed", "7", "--no-bench"])
    assert code == 0
    return out
