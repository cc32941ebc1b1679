"""The report package's one exception family."""


class ReportError(ValueError):
    """A project file, result or report problem; the message names the file and the problem."""
