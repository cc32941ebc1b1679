"""The tofsims package's one exception family."""

from doptrace.core.errors import DoptraceError


class ToFSIMSError(DoptraceError):
    """A ToF-SIMS input problem; the message names the file and the problem."""
