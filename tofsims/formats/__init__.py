"""ToF-SIMS file formats: one module per format, each exposing ``read(path, ...)``.

``REGISTRY`` maps a lower-case file extension to the format name; ``READERS`` maps the format
name to its reader. :func:`detect` trusts the file's first bytes over its extension.
"""

from __future__ import annotations

from pathlib import Path

from .._files import existing_file
from ..errors import ToFSIMSError
from . import ascii, events, imzml, ita
from .itstr import MAGIC

READERS = {
    "ita": ita.read,
    "spectrum": ascii.read_spectrum,
    "profile": ascii.read_depth_profile,
    "image": ascii.read_image,
    "imzml": imzml.read,
    "events": events.read,
}

REGISTRY = {
    ".ita": "ita",
    ".itm": "ita",
    ".its": "ita",
    ".txt": "ascii",
    ".imzml": "imzml",
    ".events": "events",
    ".bin": "events",
}


def detect(path) -> str:
    """The format of ``path``: ``ita``, ``spectrum``, ``profile``, ``image``, ``imzml`` or ``events``."""
    path = existing_file(path)
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(MAGIC):
        return "ita"
    if head.startswith(b"ITStr"):
        raise ToFSIMSError(f"{path}: unsupported ITStr version {head[:8]!r}")
    if head.lstrip().startswith(b"<?xml") and b"mzML" in head:
        return "imzml"
    kind = REGISTRY.get(Path(path).suffix.lower())
    if kind == "ita":
        raise ToFSIMSError(f"{path}: wrong magic {head[:8]!r}, expected {MAGIC!r} (not an IONTOF ITA/ITM file)")
    if kind == "events":
        return "events"
    if kind == "ascii" or (b"\x00" not in head and head.strip()):
        return ascii.sniff(path)
    raise ToFSIMSError(f"{path}: unknown ToF-SIMS file format (extension {Path(path).suffix!r})")
