"""Atomic output: every file doptrace writes appears whole or not at all.

A writer gets a temporary path in the destination folder (same file system, so the final
``os.replace`` is atomic); on any failure the temporary file is removed and the destination is
left as it was. The file gets the permissions any new file would get (``0666 & ~umask``, so
0644 under the usual umask 022), not ``mkstemp``'s private 0600.

This is the one writer of the project: the technique packages and the report all use it.
:func:`save_figure` only calls the figure's own ``savefig``, so this layer never imports matplotlib.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The destination; missing parent folders are created.
    write : callable
        Called with the temporary path; it writes the whole file there.
    suffix : str
        Suffix of the temporary name, for writers that choose the format by it (e.g. ``".hspy"``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "out.txt", lambda p: p.write_text("hello")).read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        _publish(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only if the block succeeds.

    Text modes write UTF-8. The data is flushed to disk (``fsync``) before the rename.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.csv"
    >>> with atomic_open(target) as out:
    ...     _ = out.write("x,y\\n")
    >>> target.read_text()
    'x,y\\n'
    """
    if not any(flag in mode for flag in "wx") or "+" in mode:
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} is not a write mode")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": newline}
    try:
        with os.fdopen(fd, mode.replace("x", "w"), **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, *, newline: str | None = None) -> Path:
    """Write UTF-8 text atomically; ``newline`` as for :func:`open` (``""``: no translation)."""
    with atomic_open(path, "w", newline=newline) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the destination's suffix (png if none)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda p: fig.savefig(p, format=fmt, **kwargs))


def _publish(tmp: Path, path: Path) -> None:
    # mkstemp creates 0600; a result file gets the permissions any new file would (umask)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
