"""Shared fixtures. MNIST comes from $LENET_EDGE_DATA; without it a test that needs it skips, except under
CI=true, where it fails: CI never passes by skipping."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenet_edge.cli import main
from lenet_edge.data import Mnist, load_mnist
from lenet_edge.targets import cache_dir

REPO = Path(__file__).resolve().parents[1]


def require(condition: bool, message: str) -> None:
    """Skip when a system tool is missing, except under CI=true, where it fails: CI never passes by skipping."""
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def manifest_json(bundle: Path) -> dict:
    """manifest.json as the file says it (what an app developer reads), to inspect or to alter in a test."""
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = os.environ.get("LENET_EDGE_DATA", "")
    require(bool(folder) and Path(folder).is_dir(), "MNIST not found: set LENET_EDGE_DATA to the MNIST folder")
    return Path(folder)


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> Mnist:
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory, mnist_dir) -> Path:
    """A real bundle from a short real training run (3 epochs, about 15 s; 97.9% on the test set, good enough
    for digits drawn in the browser test to be read): all six formats."""
    out = tmp_path_factory.mktemp("bundle") / "export"
    args = ["run", "--data", str(mnist_dir), "--out", str(out), "--validation", "1000"]
    code = main([*args, "--epochs", "3", "--no-augment", "--calibration", "200", "--seed", "7", "--no-bench"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def runtime_only_python() -> Path:
    """A venv with only `pip install .` (numpy, ai-edge-litert, onnxruntime): what a device has.
    Cached under ~/.cache/lenet-edge/ by the dependencies it was built for; the project is reinstalled."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = cache_dir() / f"runtime-venv-{key}"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
    else:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)], check=True
        )
    return python
