"""What the commands print for a person (log lines, a progress bar, status marks) and the silencing of what
native libraries print. Standard library only."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

STATUS_ICON = {"pass": "✅", "fail": "❎", "error": "❌"}
_to_stderr = False
_interrupt_note = ""


def log_to_stderr(on: bool = True) -> None:
    """Send log lines to stderr (when stdout carries a command's JSON result)."""
    global _to_stderr
    _to_stderr = on


def interrupt_note(note: str) -> None:
    """What an interruption (Ctrl-C, SIGTERM) at this point leaves behind, said when one comes ('' for nothing)."""
    global _interrupt_note
    _interrupt_note = note


def interrupted_message() -> str:
    return f"interrupted; {_interrupt_note}" if _interrupt_note else "interrupted"


_held: list[str] | None = None


def log(message: str) -> None:
    if _held is not None:
        _held.append(message)
        return
    print(message, file=sys.stderr if _to_stderr else sys.stdout, flush=True)


@contextlib.contextmanager
def held() -> Iterator[list[str]]:
    """Log lines kept back, not printed, while the block runs: the list it yields holds them for the caller to
    print when their turn comes (what ran alongside work whose lines come first)."""
    global _held
    outer, _held = _held, []
    try:
        yield _held
    finally:
        _held = outer


def progress(done: int, total: int, text: str) -> None:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step elsewhere."""
    width = 24
    filled = width * done // max(total, 1)
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {text}"
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def captured_stderr(into: list[str]) -> Iterator[None]:
    """File descriptor 2 (where native libraries log: TFLite Micro's C++, LiteRT, Dawn, the Vulkan driver)
    pointed at a temporary file; what was written there is appended to ``into`` once fd 2 is restored."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            into.append(capture.read().decode(errors="replace"))


@contextlib.contextmanager
def silenced(fds: tuple[int, ...] = (2,)):
    """Point file descriptors (2: stderr, 1: stdout) at /dev/null, C++ logging included, and the matching
    Python streams too (whatever they are: a test harness replaces them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as devnull, contextlib.ExitStack() as python_streams:
            for fd in fds:
                os.dup2(devnull.fileno(), fd)
                redirect = contextlib.redirect_stdout if fd == 1 else contextlib.redirect_stderr
                python_streams.enter_context(redirect(devnull))
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
