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


class BundleError(LenetEdgeError):
    """A bundle folder that cannot be written or read."""

    exit_code = 2
