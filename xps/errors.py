"""The xps package's one exception family."""

from doptrace.core.errors import DoptraceError


class XPSError(DoptraceError):
    """A XPS input problem; the message names the file and the problem."""
