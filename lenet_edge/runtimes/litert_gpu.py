"""LiteRT's GPU accelerator Runner for .tflite files: what an Android app gets with ``CompiledModel`` and
``Accelerator.GPU`` (the GPU delegate's successor). ai-edge-litert ships it as WebGPU (Dawn) over Vulkan; it runs
on whatever Vulkan device the machine has, a CPU driver such as Mesa's lavapipe included, so its answers are the
GPU kernels' arithmetic and its times are not a phone's: this Runner never times a call. Two delegates: ``fp16``,
the arithmetic phones run by default, and ``fp32`` (``gpu_options.enforce_f32``). The CPU stays on as the
fallback for ops the GPU refuses, as in an app; whether the whole graph runs on the GPU, and which ops fall back,
is what LiteRT itself says when it compiles the file.

The compiled models live in a worker process (``python -m lenet_edge.runtimes.litert_gpu``), one for every file:
LiteRT's GPU accelerator crashes a process that has loaded TensorFlow (verify's Keras row does), and a driver's
crash then fails a row, not verify (the next file gets a new worker). The digits and answers cross as raw NumPy
bytes behind a JSON header (nothing pickled). Never imports
TensorFlow: the file's tensors and precision are read with LiteRT's own interpreter."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import weakref
from typing import IO

import numpy as np

from ..console import captured_stderr
from .base import Runner, RuntimeNotInstalled, tflite_precision, tflite_tensor

NO_DEVICE = "no Vulkan device for LiteRT's GPU accelerator"
DRIVER = (
    "install Mesa ≥ 25's Vulkan drivers, lavapipe on a machine without a GPU: on Debian bookworm "
    "apt-get install -t bookworm-backports mesa-vulkan-drivers"
)
BATCH = 1  # digits per call: what apps run, and steady; larger batches swing 10x from run to run on lavapipe
_NOT_SUPPORTED = "Following operations are not supported by GPU delegate:"
_ADAPTER = re.compile(r"Selected adapter: (.+)")
_SPLIT = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")
_NO_GPU = ("Failed to initialize WebGPU environment", "No adapters found", "Failed to get or create delegate WebGPU")


class GpuUnavailable(RuntimeNotInstalled):
    """This machine has no Vulkan device the GPU accelerator takes: one line with the packages to install."""


def compile_log(text: str) -> dict:
    """What LiteRT logged while compiling a file for the GPU: the adapter it chose, the ops it left to the CPU
    with its reasons ('ARG_MAX: Tensor type(INT64) is not supported. ArgMax'), and how many ops ran on each side."""
    lines = [line.strip() for line in text.splitlines()]
    fallback: list[str] = []
    header = next((i for i, line in enumerate(lines) if _NOT_SUPPORTED in line), None)
    if header is not None:
        for line in lines[header + 1 :]:
            if _SPLIT.search(line) or not re.match(r"^[A-Z0-9_]+: ", line):
                break
            fallback.append(line)
    adapter = next((m.group(1).strip() for line in lines if (m := _ADAPTER.search(line))), "")
    split = next((m.groups() for line in lines if (m := _SPLIT.search(line))), None)
    return {
        "adapter": adapter,
        "fallback": fallback,
        "ops_on_gpu": int(split[0]) if split else None,
        "ops_on_cpu": int(split[1]) if split else None,
    }


def _compile(path: str, delegate: str, threads: int):
    """The file compiled for the GPU (CPU fallback on), and what LiteRT said; in the worker."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, GpuOptions, Options

    settings = Options(
        HardwareAccelerator.GPU | HardwareAccelerator.CPU,
        cpu_options=CpuOptions(num_threads=threads),
        gpu_options=GpuOptions(enforce_f32=delegate == "fp32"),
    )
    log: list[str] = []
    try:
        with captured_stderr(log):
            model = CompiledModel.from_file(path, options=settings)
    except RuntimeError as error:
        text = "".join(log)
        if any(marker in text for marker in _NO_GPU):
            return None, {"unavailable": f"{NO_DEVICE} ({DRIVER})"}
        logged = [line.strip() for line in text.splitlines() if line.startswith(("ERROR", "E0000", "F0000"))]
        return None, {"error": "; ".join([(str(error).strip().splitlines() or [""])[0], *logged[:3]])}
    return model, {"whole_graph": model.is_fully_accelerated(), **compile_log("".join(log))}


def _send(stream: IO[bytes], array: np.ndarray) -> None:
    """An array on a pipe: one JSON line with its dtype and shape, then its bytes (nothing pickled)."""
    array = np.ascontiguousarray(array)
    stream.write(json.dumps({"dtype": array.dtype.name, "shape": list(array.shape)}).encode() + b"\n")
    stream.write(array.tobytes())
    stream.flush()


def _receive(stream: IO[bytes]) -> np.ndarray | None:
    """The next array _send wrote, or None where the pipe ended."""
    line = stream.readline()
    if not line.strip():
        return None
    header = json.loads(line)
    dtype, shape = np.dtype(header["dtype"]), tuple(int(n) for n in header["shape"])
    if dtype.kind not in "uif" or len(shape) > 4 or np.prod(shape) > 2**26:
        raise ValueError(f"not an array of digits or answers: {header}")
    size = int(np.prod(shape)) * dtype.itemsize
    data = stream.read(size)
    if len(data) != size:
        return None
    return np.frombuffer(data, dtype).reshape(shape)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker: one JSON line per request, until ``requests`` ends. ``compile`` (path, delegate, threads, output:
    its dtype and values per digit) answers what LiteRT said as one JSON line, with the model's id; ``run`` (id),
    followed by a batch of encoded digits, answers the output tensor; ``drop`` (id) forgets a model. One
    process serves every file, so the runtime is imported once."""
    models: dict[int, dict] = {}
    ids = itertools.count(1)
    log: list[str] = []
    with captured_stderr(log):  # what the runtime logs as it runs stays off the console
        while line := requests.readline():
            request = json.loads(line)
            if request["op"] == "compile":
                model, facts = _compile(request["path"], request["delegate"], request["threads"])
                if model is not None:
                    facts["id"] = next(ids)
                    models[facts["id"]] = {"model": model, "batch": 0, "output": request["output"]}
                answers.write(json.dumps(facts).encode() + b"\n")
                answers.flush()
            elif request["op"] == "drop":
                models.pop(request["id"], None)
            elif (digits := _receive(requests)) is not None:  # run
                _send(answers, _run(models[request["id"]], digits))


def _run(held: dict, digits: np.ndarray) -> np.ndarray:
    """One batch through a compiled model; its buffers made anew when the batch size changes."""
    model = held["model"]
    if len(digits) != held["batch"]:
        model.resize_input_tensor(0, list(digits.shape))
        held["inputs"], held["outputs"] = model.create_input_buffers(0), model.create_output_buffers(0)
        held["batch"] = len(digits)
    held["inputs"][0].write(np.ascontiguousarray(digits))
    model.run_by_index(0, held["inputs"], held["outputs"])
    dtype, size = np.dtype(held["output"][0]), int(held["output"][1])
    return held["outputs"][0].read(len(digits) * size, dtype).reshape(len(digits), size)


_VULKAN = ("VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VK_ADD_DRIVER_FILES")  # where Vulkan's loader looks for drivers
_WORKERS: dict[tuple, subprocess.Popen] = {}


def _worker() -> subprocess.Popen:
    """The worker process for this environment's Vulkan settings, started on first use or after it died."""
    key = tuple(os.environ.get(name) for name in _VULKAN)
    worker = _WORKERS.get(key)
    if worker is None or worker.poll() is not None:
        pipe = subprocess.PIPE
        worker = subprocess.Popen([sys.executable, "-m", __name__], stdin=pipe, stdout=pipe, stderr=subprocess.DEVNULL)
        _WORKERS[key] = worker
    return worker


def _request(worker: subprocess.Popen, **request) -> None:
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(request).encode() + b"\n")
    worker.stdin.flush()


def _drop(worker: subprocess.Popen, model: int) -> None:
    if worker.poll() is None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # the worker ended meanwhile
            _request(worker, op="drop", id=model)


class LiteRTGpuRunner(Runner):
    runtime = "litert-gpu"
    library = "ai_edge_litert.compiled_model"
    distribution = install = "ai-edge-litert"

    def _load(self, threads: int | None, **options) -> None:
        """Compile the file for the GPU in the worker (``threads`` is the CPU fallback's); GpuUnavailable where
        this machine has no Vulkan device for it."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # the file's own graph, nothing rewriting it
        self._graph = Interpreter(model_path=str(self.path), experimental_op_resolver_type=resolver)
        (in_detail,), (out_detail,) = self._graph.get_input_details(), self._graph.get_output_details()
        self.input, self.output = tflite_tensor(in_detail), tflite_tensor(out_detail)
        self._worker = _worker()
        output = [self.output.dtype, int(np.prod(self.output.shape[1:]))]
        assert self._worker.stdout is not None
        try:
            _request(self._worker, op="compile", path=str(self.path), delegate=self.delegate, threads=threads or 0,
                     output=output)  # fmt: skip
            line = self._worker.stdout.readline()
        except BrokenPipeError:
            line = b""
        facts = json.loads(line) if line.strip() else {"error": f"the GPU worker died ({self._worker.wait()})"}
        if "unavailable" in facts:
            raise GpuUnavailable(facts["unavailable"])
        if "error" in facts:
            raise RuntimeError(f"LiteRT's GPU accelerator refused {self.path.name}: {facts['error']}")
        self._model = int(facts.pop("id"))
        weakref.finalize(self, _drop, self._worker, self._model)
        self.compiled = facts
        self.whole_graph = bool(facts["whole_graph"])
        return None

    def close(self) -> None:
        _drop(self._worker, self._model)

    def precision(self) -> str:
        """What the file computes in, by base.tflite_precision's rules, read from its own graph (the GPU's own
        arithmetic is the delegate: fp16 or fp32)."""
        dtype = {t["index"]: np.dtype(t["dtype"]).name for t in self._graph.get_tensor_details()}
        computed = {dtype[i] for op in self._graph._get_ops_details() for i in op["outputs"] if i in dtype}
        return tflite_precision(computed, set(dtype.values()))

    def op_profile(self, runs: int = 300) -> dict:
        """Whether the whole graph runs on the GPU and the ops LiteRT left to the CPU, with its reasons."""
        return {"runtime": self.runtime, **self.compiled}

    def predict(self, images: np.ndarray, batch_size: int = BATCH, raw: bool = False) -> np.ndarray:
        """As Runner.predict, BATCH digits per call by default."""
        return super().predict(images, batch_size, raw)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        worker = self._worker
        assert worker.stdin is not None and worker.stdout is not None
        try:
            _request(worker, op="run", id=self._model)
            _send(worker.stdin, batch)
            answer = _receive(worker.stdout)
        except BrokenPipeError:
            answer = None
        if answer is None:
            raise RuntimeError(f"the GPU worker died running {self.path.name} (exit {worker.wait()})")
        return answer

    def time_calls(self, images: np.ndarray, seconds: float) -> np.ndarray:
        raise NotImplementedError("a software Vulkan device's time is not a phone GPU's: lenet-edge never times it")

    def first_call_ms(self, images: np.ndarray) -> float:
        raise NotImplementedError("a software Vulkan device's time is not a phone GPU's: lenet-edge never times it")


if __name__ == "__main__":  # the worker: python -m lenet_edge.runtimes.litert_gpu, requests on stdin
    answers_out = os.fdopen(os.dup(1), "wb")  # the answers' own pipe: what the libraries print to fd 1 goes to fd 2
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers_out)
