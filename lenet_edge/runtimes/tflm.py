"""TensorFlow Lite for Microcontrollers (tflite-micro) Runner for .tflite files, run here on the host: the same C++
reference kernels an MCU build runs, one digit per call (TFLite Micro has a fixed batch of 1), in a tensor arena
of fixed size. Never imports TensorFlow: the file's graph is read with the flatbuffer schema tflite-micro ships."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..console import captured_stderr
from ..host import usable_cores
from ..manifest import Tensor
from .base import InProcessRunner, tflite_precision

ARENA_SIZE = 256 * 1024  # bytes: LeNet-5 int8 uses ~15 KB, fp32 ~42 KB (64-bit host)
PROBE = 200  # digits predict times first, to tell whether the rest is worth splitting across processes
SPLIT_FROM_SECONDS = 3.0  # the rest's expected time from which it is split (a worker process costs ~0.5 s)
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _spec(detail: dict, name: str) -> Tensor:
    scales, zero_points = detail["quantization_parameters"]["scales"], detail["quantization_parameters"]["zero_points"]
    quantized = len(scales) > 0 and float(scales[0]) != 0.0
    return Tensor(
        name=name,
        dtype=np.dtype(detail["dtype"]).name,
        shape=[int(d) for d in detail["shape"]],
        scale=float(scales[0]) if quantized else None,
        zero_point=int(zero_points[0]) if quantized else None,
    )


def _graph(model: bytes):
    """The file's first subgraph and its schema module (tflite-micro's own copy of the TFLite schema)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema.Model.GetRootAs(model, 0).Subgraphs(0), schema


def _tensor_name(subgraph, index: int) -> str:
    name = subgraph.Tensors(index).Name()
    return name.decode() if name else f"tensor {index}"


def _refusal(error: Exception, log: str) -> Exception:
    """The library's error with what TFLite Micro logged (which op refused, and why) on its one line."""
    lines = [re.sub(r"^\S*/(\w+\.cc)", r"\1", line.strip()).rstrip(".") for line in log.splitlines()]
    message = "; ".join([str(error).strip() or type(error).__name__, *filter(None, lines)])
    try:
        return type(error)(message)
    except Exception:  # an exception type that takes other arguments
        return RuntimeError(message)


class TFLMRunner(InProcessRunner):
    runtime = "tflm"
    library = "tflite_micro.python.tflite_micro.runtime"
    distribution, install = "tflite-micro", "'lenet-edge[consumers]'"

    def _load(self, threads: int | None, arena_size: int = ARENA_SIZE, **options) -> None:
        """Load the file into an arena of ``arena_size`` bytes (TFLite Micro is single-threaded: ``threads`` is
        ignored). A file TFLite Micro cannot run (float16 weights, dynamic-range ops) raises the library's error,
        its message one line naming the op that refused."""
        from tflite_micro.python.tflite_micro import runtime

        model = self.path.read_bytes()
        self.arena_size = arena_size
        log: list[str] = []
        try:
            with captured_stderr(log):
                self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
        except Exception as error:
            raise _refusal(error, "".join(log)) from error
        subgraph, _ = _graph(model)
        in_detail, out_detail = self.interpreter.get_input_details(0), self.interpreter.get_output_details(0)
        self.input = _spec(in_detail, _tensor_name(subgraph, subgraph.Inputs(0)))
        self.output = _spec(out_detail, _tensor_name(subgraph, subgraph.Outputs(0)))
        self._shape = tuple(self.input.shape)
        return None

    def arena_bytes(self) -> int:
        """Bytes of the arena the model uses (TFLite Micro's RecordingMicroAllocator total). Everything is planned
        when the file loads, so an invoke changes nothing; a 32-bit MCU needs somewhat less (smaller structs)."""
        log: list[str] = []
        with captured_stderr(log):
            self.interpreter.print_allocations()
        text = "".join(log)
        found = _ARENA_TOTAL.search(text)
        if found is None:
            raise RuntimeError(f"TFLite Micro printed no 'Arena allocation total' line (it printed {text[:200]!r})")
        return int(found.group(1))

    def precision(self) -> str:
        """What the file computes in, by base.tflite_precision's rules, read from the flatbuffer."""
        subgraph, schema = _graph(self.path.read_bytes())
        kinds = {schema.TensorType.INT8: "int8", schema.TensorType.UINT8: "uint8", schema.TensorType.FLOAT16: "float16"}
        dtype = {i: kinds.get(subgraph.Tensors(i).Type(), "") for i in range(subgraph.TensorsLength())}
        computed = {
            dtype[op.Outputs(j)]
            for op in (subgraph.Operators(i) for i in range(subgraph.OperatorsLength()))
            for j in range(op.OutputsLength())
            if op.Outputs(j) in dtype
        }
        return tflite_precision(computed, set(dtype.values()))

    def _prepare(self, batch: np.ndarray) -> Callable[[], object]:
        if batch.shape != self._shape:
            raise ValueError(f"TFLite Micro runs a fixed input of shape {list(self._shape)}, not {list(batch.shape)}")
        self.interpreter.set_input(batch, 0)
        return self.interpreter.invoke

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._prepare(batch)()
        return np.array(self.interpreter.get_output(0), copy=True)

    def predict(self, images: np.ndarray, batch_size: int = 1000, raw: bool = False) -> np.ndarray:
        """As Runner.predict. TFLite Micro runs one digit per call in its reference kernels (about 1 ms for the
        int8 LeNet-5 here) and holds Python's lock meanwhile, so a large set is split across the usable cores:
        when the first digits say the rest takes seconds, this process answers one part and fresh processes with
        interpreters of their own the others."""
        images = np.asarray(images)
        started = time.perf_counter()
        probed = super().predict(images[:PROBE], batch_size, raw)
        rest = images[PROBE:]
        if not len(rest):
            return probed
        expected = (time.perf_counter() - started) / PROBE * len(rest)
        parts = min(usable_cores(), len(rest) // PROBE)
        if parts < 2 or expected < SPLIT_FROM_SECONDS:
            return np.concatenate([probed, super().predict(rest, batch_size, raw)])
        chunks = np.array_split(rest, parts)
        with tempfile.TemporaryDirectory(prefix="lenet-edge-tflm-") as folder:
            workers = []
            for index, chunk in enumerate(chunks[1:]):
                digits, answers = Path(folder) / f"digits{index}.npy", Path(folder) / f"answers{index}.npy"
                np.save(digits, chunk)
                command = [sys.executable, "-m", "lenet_edge.runtimes.tflm", str(self.path), str(self.arena_size),
                           str(digits), str(answers), "raw" if raw else "decoded"]  # fmt: skip
                workers.append((subprocess.Popen(command, stderr=subprocess.PIPE, text=True), answers))
            outputs = [probed, super().predict(chunks[0], batch_size, raw)]
            for worker, answers in workers:
                _, error = worker.communicate()
                if worker.returncode != 0:
                    last = (error.strip().splitlines() or ["no output"])[-1]
                    raise RuntimeError(f"a TFLite Micro worker failed: {last}")
                outputs.append(np.load(answers, allow_pickle=False))
        return np.concatenate(outputs)


if __name__ == "__main__":  # a worker of predict: python -m lenet_edge.runtimes.tflm MODEL ARENA DIGITS ANSWERS MODE
    model, arena, digits, answers, mode = sys.argv[1:6]
    runner = TFLMRunner(model, arena_size=int(arena))
    np.save(answers, InProcessRunner.predict(runner, np.load(digits, allow_pickle=False), raw=mode == "raw"))
