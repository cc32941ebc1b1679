"""The stem_eds package's one exception family."""


class EDSError(ValueError):
    """A STEM-EDS input problem; the message names the file and the problem."""
