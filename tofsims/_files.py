"""Private file helper: an input path checked to be a readable, non-empty regular file.

(Atomic writes come from :mod:`doptrace.core.atomic`.)
"""

from __future__ import annotations

from pathlib import Path

from .errors import ToFSIMSError


def existing_file(path) -> Path:
    """``Path(path)`` after checking it is a readable, non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise ToFSIMSError(f"{path}: no such file")
    if not path.is_file():
        raise ToFSIMSError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ToFSIMSError(f"{path}: file is empty")
    return path
