"""The NPU tools' own Python: Qualcomm's QNN host libraries come in the ``onnxruntime-qnn`` wheel, LiteRT's
Qualcomm compiler plugin in ``ai-edge-litert``. They live in a venv of their own, made at first use under
``~/.cache/lenet-edge/`` (or this Python when it already has them: ``pip install 'lenet-edge[npu]'``), so that
nothing of theirs can replace a package lenet-edge's own environment relies on. The glue the compiler plugin
needs (an empty ``libQnnLpai.so``: the plugin links a library the wheel lacks and never calls it) is built
there too, with the system's C compiler. Standard library only."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..console import log
from ..errors import LenetEdgeError
from ..targets.base import cache_dir

# pinned: the QNN libraries' version decides what the compiled files hold (onnxruntime-qnn 2.7.0: QNN 2.51)
REQUIREMENTS = ("onnxruntime-qnn==2.7.0", "onnxruntime==1.32.0", "ai-edge-litert==2.3.0", "onnx==1.23.2")
GLUE_LIBRARY = "libQnnLpai.so"


class NpuNotInstalled(LenetEdgeError):
    """The NPU tools are missing and could not be installed here (exit 2: the user's to fix, with the command)."""

    exit_code = 2


def _key() -> str:
    text = "\n".join((*REQUIREMENTS, sys.version.split()[0]))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def venv_dir() -> Path:
    return cache_dir() / f"npu-venv-{_key()}"


def install_command() -> str:
    """The one command that installs the NPU tools into their own venv, as first use does."""
    venv = venv_dir()
    return f"{sys.executable} -m venv {venv} && {venv}/bin/pip install {' '.join(REQUIREMENTS)}"


def _here_has_them() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime_qnn", "onnx", "ai_edge_litert"))


def npu_python(install: bool = True) -> Path:
    """The Python that runs the NPU agent: this one when it has the tools, else the cached venv, made now when
    ``install`` (a few minutes: about 350 MB from PyPI). NpuNotInstalled (one line, the command) otherwise."""
    if os.environ.get("LENET_EDGE_NPU_PYTHON"):
        return Path(os.environ["LENET_EDGE_NPU_PYTHON"])
    if _here_has_them():
        return Path(sys.executable)
    venv = venv_dir()
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file() and python.exists():
        return python
    if not install:
        raise NpuNotInstalled(f"onnxruntime-qnn is not installed; install it with: {install_command()}")
    log(f"first use: installing the NPU tools ({', '.join(REQUIREMENTS)}) into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode == 0:
        made = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
            capture_output=True,
            text=True,
        )
    if made.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        why = (made.stderr.strip().splitlines() or ["pip failed"])[-1][:160]
        raise NpuNotInstalled(f"onnxruntime-qnn could not be installed ({why}); install it with: {install_command()}")
    (venv / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
    return python


def glue_dir() -> Path:
    """A folder holding the empty ``libQnnLpai.so`` the Qualcomm compiler plugin links, built at first use."""
    folder = cache_dir() / "npu-glue"
    library = folder / GLUE_LIBRARY
    if library.is_file():
        return folder
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise NpuNotInstalled(
            f"the Qualcomm compiler plugin needs an empty {GLUE_LIBRARY}, built with a C compiler: none found "
            "(apt-get install gcc)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{GLUE_LIBRARY}.{os.getpid()}.tmp"
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-x", "c", "-o", str(tmp), "-"], input="", capture_output=True, text=True
    )
    if built.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise NpuNotInstalled(f"{compiler} could not build {GLUE_LIBRARY}: {built.stderr.strip()[:160]}")
    os.replace(tmp, library)
    return folder
