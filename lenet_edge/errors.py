"""Typed errors: each carries the exit code the CLI turns it into, with a one-line message."""


class LenetEdgeError(Exception):
    """A user-facing failure: printed as one line, never as a traceback."""

    exit_code = 1


class DataError(LenetEdgeError):
    """MNIST could not be found, read or trusted."""

    exit_code = 2


class UsageError(LenetEdgeError):
    """A command-line value that cannot work (a path, a name, a number)."""

    exit_code = 2


class ExportError(LenetEdgeError):
    """One format failed to export or failed its post-export check."""


class UnsupportedModelError(LenetEdgeError):
    """A model file whose graph a generator cannot take: the op, option or dtype it does not implement, named."""

    exit_code = 2


class BundleError(LenetEdgeError):
    """A bundle folder that cannot be written or read."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ('' when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def one_line(exc: BaseException) -> str:
    """'TypeName: first line of the message': how a failure is reported in a table or a manifest."""
    line = first_line(exc)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
