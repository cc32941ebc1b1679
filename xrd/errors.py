"""The xrd package's one exception family."""

from doptrace.core.errors import DoptraceError


class XRDError(DoptraceError):
    """A XRD input problem; the message names the file and the problem."""
