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


class Lanes:
    """Jobs done once each, by a helper lane (a fork server's children, fed by a thread of this process) from
    the moment they are added, and by this process once it joins in (``finish``): whichever lane is free takes
    the next job in order."""

    def __init__(self, helper: Callable[[], Forks] | None):
        self.helper, self.jobs, self.results = helper, [], []  # type: ignore[var-annotated]
        self.queue: collections.deque[int] = collections.deque()
        self.changed = threading.Condition()
        self.closed = False
        self.thread: threading.Thread | None = None

    def add(self, job: dict) -> int:
        """Queue a job; its index in ``finish``'s results."""
        with self.changed:
            self.jobs.append(job)
            self.results.append((None, "not run"))
            self.queue.append(len(self.jobs) - 1)
            self.changed.notify()
        if self.helper and self.thread is None:
            self.thread = threading.Thread(target=self._helper_lane, daemon=True)
            self.thread.start()
        return len(self.jobs) - 1

    def finish(self, here: Callable[[dict], Any], first: Callable[[], Any] | None = None) -> tuple[list, Any]:
        """Run ``first`` (work only this process can do), then take queued jobs with ``here`` until none is left,
        then wait for the helper's last; returns, by index, (the result, '') or (None, why the job failed in its
        child), and what ``first`` returned."""
        try:
            value = first() if first else None
            while (index := self._next(wait=False)) is not None:
                self.results[index] = (here(self.jobs[index]), "")
        except BaseException:
            with self.changed:
                self.queue.clear()  # the helper finishes the job it holds and stops
            raise
        finally:
            self.close()
        return self.results, value

    def close(self) -> None:
        """No more jobs: the helper ends after the one it holds."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        if self.thread:
            self.thread.join()

    def _next(self, wait: bool) -> int | None:
        with self.changed:
            while not self.queue:
                if self.closed or not wait:
                    return None
                self.changed.wait()
            return self.queue.popleft()

    def _helper_lane(self) -> None:
        assert self.helper is not None
        try:
            with self.helper() as forks:
                while (index := self._next(wait=True)) is not None:
                    self.results[index] = forks.run(self.jobs[index])
        except OSError:  # the helper could not start: the jobs fall to this process's lane
            return


def share_work(
    jobs: list[dict],
    here: Callable[[dict], Any],
    helper: Callable[[], Forks] | None,
    first: Callable[[], Any] | None = None,
) -> tuple[list[tuple[Any, str]], Any]:
    """Each job run once, by ``here`` in this process or in a child of the ``helper`` server (``Lanes``); without a
    helper, or with one job, everything runs here. Returns, in job order, (the result, '') or (None, why the job
    failed in its child), and what ``first`` returned."""
    lanes = Lanes(helper if len(jobs) > 1 else None)
    for job in jobs:
        lanes.add(job)
    return lanes.finish(here, first)
