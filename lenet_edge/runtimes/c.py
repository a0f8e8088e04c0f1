"""The C model Runner: a bundle's ``<stem>.c`` (the .tflite as dependency-free C99, written at export beside it)
compiled with this host's ``cc`` into a shared library and called through ctypes, one digit per call, as a
microcontroller's firmware calls ``<stem>_predict``. The library is cached under ~/.cache/lenet-edge/ by the
sha256 of the source, the header, the flags and the compiler's version. The Runner is given the .tflite: the C
source must say it was generated from that very file, and its tensors are those the header states. NumPy, ctypes
and the standard library; no runtime library, never TensorFlow."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..manifest import Tensor
from .base import InProcessRunner, RuntimeNotInstalled

CC = "cc"
FLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")
INSTALL = "install a C compiler (Debian: apt-get install gcc)"
_FROM = re.compile(r"\(sha256 ([0-9a-f]{64})\)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lenet-edge" / "c-model"


def compiler_version(cc: str) -> str:
    done = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else cc


def compile_library(source: Path, cc: str = CC) -> Path:
    """``source`` (with its header beside it) built into a shared library, or the cached one for the same bytes,
    flags and compiler. A compiler warning or error raises RuntimeError with the compiler's first lines."""
    header = source.with_suffix(".h")
    version = compiler_version(cc)
    digest = hashlib.sha256()
    for part in (source.read_bytes(), header.read_bytes(), " ".join(FLAGS).encode(), version.encode()):
        digest.update(hashlib.sha256(part).digest())
    library = cache_dir() / digest.hexdigest()[:24] / f"lib{source.stem}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as folder:
        built = Path(folder) / library.name
        done = subprocess.run([cc, *FLAGS, "-o", str(built), str(source)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = "; ".join(line.strip() for line in (done.stderr or done.stdout).splitlines()[:3])
            raise RuntimeError(f"{cc} could not build {source.name}: {first[:300]}")
        os.replace(built, library)
    return library


def header_tensor(header: str, prefix: str, role: str) -> Tensor:
    """The input or output tensor as the C model's header states it (its _TYPE, _DIMS, _SCALE, _ZERO_POINT)."""

    def macro(name: str) -> str:
        found = re.search(rf"^#define {prefix}_{role.upper()}_{name} (.+?)(?: /\*.*)?$", header, re.MULTILINE)
        if found is None:
            raise ValueError(f"the C model's header has no {prefix}_{role.upper()}_{name}")
        return found.group(1).strip()

    dtype = {"uint8_t": "uint8", "int8_t": "int8"}.get(macro("TYPE"))
    if dtype is None:
        raise ValueError(f"the C model's {role} is {macro('TYPE')}, not int8_t or uint8_t")
    shape = [int(d) for d in macro("DIMS").strip("{}").split(",")]
    scale, zero_point = float(macro("SCALE").rstrip("f")), int(macro("ZERO_POINT"))
    return Tensor(f"{prefix.lower()}_predict {role}", dtype, shape, scale, zero_point)


class CRunner(InProcessRunner):
    runtime = "c"
    library = None  # ctypes and the compiler: nothing to import
    distribution = None
    install = None

    @classmethod
    def missing(cls) -> str | None:
        """Why the C model cannot be built here (no C compiler), or None."""
        return None if shutil.which(CC) else f"no C compiler ({CC}) here: {INSTALL}"

    def _load(self, threads: int | None, **options) -> None:
        """Compile ``<stem>.c`` beside the .tflite (``threads`` is ignored: the C model is single-threaded) and
        bind ``<stem>_predict``. A missing source, one generated from another file, or a build with a warning
        raises a one-line error."""
        if reason := self.missing():
            raise RuntimeNotInstalled(reason)
        source = self.path.with_suffix(".c")
        if not source.is_file() or not source.with_suffix(".h").is_file():
            raise FileNotFoundError(f"no C model beside {self.path.name} ({source.name} and {source.stem}.h)")
        model = self.path.read_bytes()
        found = _FROM.search(source.read_text(errors="replace")[:2000])
        if found is None or found.group(1) != hashlib.sha256(model).hexdigest():
            raise ValueError(f"{source.name} was not generated from this {self.path.name} (its sha256 differs)")
        self.library_path = compile_library(source)
        self._library = ctypes.CDLL(str(self.library_path))
        self._predict = getattr(self._library, f"{self.path.stem}_predict")
        self._predict.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._predict.restype = None
        header = source.with_suffix(".h").read_text(errors="replace")
        self.input = header_tensor(header, self.path.stem.upper(), "input")
        self.output = header_tensor(header, self.path.stem.upper(), "output")
        self._shape = tuple(self.input.shape)
        self._out = np.zeros(self.output.shape, np.dtype(self.output.dtype))
        return None

    def precision(self) -> str:
        """int8: the C model computes in integers only (its generator takes full-integer int8 files alone)."""
        return "int8"

    def _prepare(self, batch: np.ndarray) -> Callable[[], object]:
        if batch.shape != self._shape:
            raise ValueError(f"the C model runs a fixed input of shape {list(self._shape)}, not {list(batch.shape)}")
        self._in = np.ascontiguousarray(batch, dtype=np.dtype(self.input.dtype))
        pixels, out = self._in.ctypes.data, self._out.ctypes.data
        predict = self._predict
        return lambda: predict(pixels, out)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._prepare(batch)()
        return self._out.copy()
