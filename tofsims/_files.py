"""Private file helpers: read-only opening with clear errors, atomic writes for the simulators.

The tofsims package cannot import ``report`` (technique packages are independent), so the two
atomic-write lines live here too: write a temporary file in the target folder, then ``os.replace``
it, so a failure never leaves a half-written instrument file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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


@contextlib.contextmanager
def atomic_output(path, mode: str = "wb"):
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would have (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
