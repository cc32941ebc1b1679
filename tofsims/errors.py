"""The tofsims package's one exception family."""


class ToFSIMSError(ValueError):
    """A ToF-SIMS input problem; the message names the file and the problem."""
