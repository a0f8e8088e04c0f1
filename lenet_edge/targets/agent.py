"""The target agent: what a target runs, in its own workspace, with NumPy and the runtimes only (never
TensorFlow).

``python -m lenet_edge.targets.agent JOB.json`` does one task and prints its answer as one JSON line:
- ``identity``: the machine (``uname -m``, CPU model and features, library versions).
- ``predict``: every listed artifact on the given digits, raw output tensors saved as ``out/FORMAT.npy``.
- ``count``: each artifact's batch-1 inference in a loop, bracketed by marks an instruction counter sees,
  with an empty loop bracketed the same way right after it (the Python loop's own cost).
- ``bench``: the bench of a bundle, as ``lenet-edge bench`` measures it on this machine.
Paths in the job are relative to the workspace (the current folder)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..bench import bench_bundle
from ..errors import one_line
from ..host import machine_info
from ..runtimes import InProcessRunner, open_runner, runtime_missing
from ..runtimes.litert import LiteRTRunner

MARK_MAGIC = 0x4C454E4554000000  # "LENET": the instruction counter's mark, see targets/insn_count.c
XNNPACK_MISSING = (
    "the XNNPACK delegate was not created: LiteRT fell back to its reference kernels, so these are not the "
    "kernels an app gets (an emulated target that hides its CPU topology does this)"
)


def mark(number: int) -> None:
    """A failing ``lseek(-1, MAGIC | number)``: harmless anywhere, a mark for the instruction counter."""
    with contextlib.suppress(OSError):
        os.lseek(-1, MARK_MAGIC | number, os.SEEK_SET)


def progress(message: str) -> None:
    """To stderr, which reaches the user as the job runs (stdout carries the answer)."""
    print(message, file=sys.stderr, flush=True)


def open_artifact(entry: dict, threads: int | None) -> InProcessRunner:
    """A Runner for one job entry; a LiteRT one must have XNNPACK applied, as apps get it."""
    runner = open_runner(entry["runtime"], entry["file"], threads=threads)
    if isinstance(runner, LiteRTRunner) and runner.partitions == 0:
        raise RuntimeError(XNNPACK_MISSING)
    assert isinstance(runner, InProcessRunner)
    return runner


def identity(job: dict) -> dict:
    return machine_info() | {"python": sys.version.split()[0]}


def predict(job: dict) -> dict:
    """Raw outputs of every artifact on the digits: the app's path (pixels cast to the input dtype)."""
    images = np.load(job["images"], allow_pickle=False)
    Path("out").mkdir(exist_ok=True)
    done = []
    for entry in job["artifacts"]:
        missing = runtime_missing(entry["runtime"])
        if missing:  # a device with one runtime: the other's files are said, not failed
            done.append({"format": entry["format"], "not_run": missing})
            progress(f"  {entry['format']:<15} not run on the target: {missing}")
            continue
        start = time.perf_counter()
        runner = open_artifact(entry, job.get("threads"))
        raw = runner.predict(images, raw=True)
        np.save(Path("out") / f"{entry['format']}.npy", raw)
        partitions = runner.partitions if isinstance(runner, LiteRTRunner) else None
        done.append({"format": entry["format"], "xnnpack_partitions": partitions, "output": runner.output.to_dict()})
        progress(f"  {entry['format']:<15} {len(images)} digits on the target in {time.perf_counter() - start:.1f} s")
    return {"artifacts": done}


def count(job: dict) -> dict:
    """For each artifact: marks 4i+1..4i+2 around ``calls`` inferences, 4i+3..4i+4 around an empty loop."""
    digit = np.load(job["images"], allow_pickle=False)[:1]
    calls, plan = job["calls"], []
    for index, entry in enumerate(job["artifacts"]):
        runner = open_artifact(entry, 1)
        call = runner.prepared_call(digit)
        for _ in range(3):  # warm: first-call set-up is not per-image cost
            call()
        first = 4 * index + 1
        mark(first)
        for _ in range(calls):
            call()
        mark(first + 1)

        def empty() -> None:
            return None

        mark(first + 2)
        for _ in range(calls):
            empty()
        mark(first + 3)
        plan.append({"format": entry["format"], "runtime": entry["runtime"], "marks": list(range(first, first + 4))})
    return {"calls": calls, "plan": plan}


def bench(job: dict) -> dict:
    class Digits:
        x_test = np.load(job["images"], allow_pickle=False)

    return bench_bundle(job["bundle"], Digits, job["profile"], job["seconds"])


TASKS = {"identity": lambda job: {}, "predict": predict, "count": count, "bench": bench}


def main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    try:
        answer = TASKS[job["task"]](job) | {"identity": identity(job)}
    except Exception as exc:  # reported to the host as one line, which raises it as a TargetError
        answer = {"error": one_line(exc)}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
