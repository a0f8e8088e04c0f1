"""Fresh processes without the start-up: one server process imports what every job needs once (NumPy, the
runtimes), then runs each job in a child forked from it, so each job still gets a process of its own (its own
load, first call and memory) for a fork's cost rather than an interpreter's start and imports (about 0.3 s).

A child starts with its server's resident pages mapped, as a fresh process that ran the same imports would be:
Linux does not copy the page tables of file mappings on fork, so without this the child's first touches of
Python's, NumPy's and the runtimes' code would count as the job's memory (a runtime's footprint read 60% high).

Jobs and results are JSON; a child's output (what native libraries print) goes to a log file whose last line
says why a job failed. Standard library only: the caller names the module whose ``serve`` loop runs the jobs."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import importlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Forks:
    """The parent's side: ``python -m MODULE PRELOAD...`` started once; ``run`` sends a job and waits for its
    child. Use as a context manager (the server ends when its input closes). Job files go into a folder of its
    own inside ``folder``, which the caller removes."""

    def __init__(self, module: str, preload: list[str], folder: Path):
        self.folder, self.jobs = Path(tempfile.mkdtemp(prefix="forks-", dir=folder)), 0  # job files of its own
        self.server = subprocess.Popen(
            [sys.executable, "-m", module, *preload], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def run(self, job: dict) -> tuple[Any, str]:
        """(the job's result, '') or (None, why it failed: the last line its child printed, or its exit)."""
        self.jobs += 1
        result, log = self.folder / f"job-{self.jobs}.json", self.folder / f"job-{self.jobs}.log"
        assert self.server.stdin and self.server.stdout
        try:
            self.server.stdin.write(json.dumps({"job": job, "result": str(result), "log": str(log)}) + "\n")
            self.server.stdin.flush()
            reply = self.server.stdout.readline()
        except (BrokenPipeError, OSError):
            reply = ""
        if not reply:
            return None, f"the fork server ended (exit code {self.server.poll()})"
        code = json.loads(reply)["exit"]
        if code == 0 and result.is_file():
            return json.loads(result.read_text()), ""
        lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
        return None, (lines or [f"no output (exit code {code})"])[-1][:300]

    def __enter__(self) -> Forks:
        return self

    def __exit__(self, *exc) -> None:
        if self.server.stdin:
            self.server.stdin.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def serve(work: Callable[[dict], Any], preload: list[str]) -> None:
    """The server's loop: import ``preload`` (those this install has), then for each job on stdin fork a child
    that runs ``work`` on it, and answer its exit code on stdout, one JSON line per job."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing else reaches the replies
    for name in preload:
        with contextlib.suppress(ImportError):  # the job that needs it fails with its own message
            importlib.import_module(name)
    resident = _resident_file_pages()
    for line in sys.stdin:
        job = json.loads(line)
        child = os.fork()
        if child == 0:
            _touch(resident)
            _child(work, job)
        _, status = os.waitpid(child, 0)
        replies.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def _child(work: Callable[[dict], Any], job: dict) -> None:
    """In the forked child: output to the job's log, the result to its file; never returns."""
    code = 1
    try:
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        result = work(job["job"])
        Path(job["result"]).write_text(json.dumps(result))
        code = 0
    except BaseException:  # the child's traceback is the parent's reason
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _resident_file_pages() -> list[int]:
    """The addresses of this process's resident pages of readable file mappings (Linux's pagemap; none where it
    cannot be read)."""
    page, pages = os.sysconf("SC_PAGE_SIZE"), []
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split()
                if len(fields) < 6 or not fields[5].startswith("/") or not fields[1].startswith("r"):
                    continue
                start, end = (int(bound, 16) for bound in fields[0].split("-"))
                pagemap.seek(start // page * 8)
                entries = struct.iter_unpack("<Q", pagemap.read((end - start) // page * 8))
                pages += [start + index * page for index, (entry,) in enumerate(entries) if entry >> 63]
    except OSError:
        return []
    return pages


def _touch(pages: list[int]) -> None:
    """Map each page again in this (forked) process by reading a byte of it."""
    for address in pages:
        ctypes.string_at(address, 1)


def share_work(
    jobs: list[dict],
    here: Callable[[dict], Any],
    helper: Callable[[], Forks] | None,
    first: Callable[[], Any] | None = None,
) -> tuple[list[tuple[Any, str]], Any]:
    """Each job run once, by ``here`` in this process or in a child of the ``helper`` server (started in a thread
    of its own), both lanes pulling from one queue in order; ``first``, work only this process can do, runs here
    before this lane pulls. Without a helper, or with one job, everything runs here. Returns, in job order, (the
    result, '') or (None, why the job failed in its child), and what ``first`` returned."""
    results: list[tuple[Any, str]] = [(None, "not run")] * len(jobs)
    queue = collections.deque(range(len(jobs)))

    def pull(run: Callable[[dict], tuple[Any, str]]) -> None:
        while True:
            try:
                index = queue.popleft()
            except IndexError:
                return
            results[index] = run(jobs[index])

    def helper_lane() -> None:
        assert helper is not None
        try:
            with helper() as forks:
                pull(forks.run)
        except OSError:  # the helper could not start: the jobs fall to this process's lane
            return

    lane = threading.Thread(target=helper_lane, daemon=True) if helper and len(jobs) > 1 else None
    if lane:
        lane.start()
    try:
        value = first() if first else None
        pull(lambda job: (here(job), ""))
    except BaseException:
        queue.clear()  # the helper finishes the job it holds and stops
        raise
    finally:
        if lane:
            lane.join()
    return results[: len(jobs)], value
