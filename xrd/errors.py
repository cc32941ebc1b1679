"""The xrd package's one exception family."""


class XRDError(ValueError):
    """A XRD input problem; the message names the file and the problem."""
