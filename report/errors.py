"""The report package's one exception family."""

from doptrace.core.errors import DoptraceError


class ReportError(DoptraceError):
    """A project file, result or report problem; the message names the file and the problem."""
