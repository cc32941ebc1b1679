"""Bounded, read-only file loading shared by the XPS format readers."""

from __future__ import annotations

from pathlib import Path

from ..errors import XPSError


def read_bounded(path: Path, max_bytes: int, kind: str) -> bytes:
    """The file's bytes; :class:`XPSError` naming the file when it is unreadable or over ``max_bytes``.

    The size is checked before reading, so an absurd file never becomes an absurd allocation.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise XPSError(f"{path}: file of {size} bytes is too large for {kind}")
        return path.read_bytes()
    except OSError as exc:
        raise XPSError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def decode_text(path: Path, data: bytes, kind: str) -> str:
    """UTF-8 (with or without BOM) text, else latin-1; binary content is refused."""
    if b"\x00" in data[:4096]:
        raise XPSError(f"{path}: not {kind} (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Windows instrument software writes cp1252/latin-1 comments (degree signs, micro).
        return data.decode("latin-1")
