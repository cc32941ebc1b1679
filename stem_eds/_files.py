"""Atomic file output for the simulator (the package cannot import ``report``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_into(path: str | os.PathLike, write, suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then ``os.replace`` it onto ``path``.

    ``suffix`` keeps the temporary name's extension for writers that choose the format by it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path
