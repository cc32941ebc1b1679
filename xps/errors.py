"""The xps package's one exception family."""


class XPSError(ValueError):
    """A XPS input problem; the message names the file and the problem."""
