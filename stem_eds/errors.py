"""The stem_eds package's one exception family."""

from doptrace.core.errors import DoptraceError


class EDSError(DoptraceError):
    """A STEM-EDS input problem; the message names the file and the problem."""
