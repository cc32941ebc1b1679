"""Plain column files: ``.xy`` (2theta, intensity), ``.xye`` (+ esd), ``.csv``/``.txt``/``.dat``.

Columns are separated by blanks, commas, semicolons or tabs.  Lines starting with ``#``, ``!``,
``;``, ``%``, ``'`` or ``/*`` are comments; a few leading text lines (column titles, instrument
headers) are skipped; any non-numeric line after the data has started is an error that names it.
Two columns: esd = sqrt(counts).  Three or more: the third column is the esd.  A header comment
``# wavelength = 1.5406`` (or ``lambda``) fills the wavelength attribute.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ._pattern import fail, make_pattern, read_text

NAME = "xy"
EXTENSIONS = (".xy", ".xye", ".csv", ".txt", ".dat", ".asc")

_COMMENT = ("#", "!", ";", "%", "'", "/*", "//")
_SPLIT = re.compile(r"[,;\s]+")
_WAVE = re.compile(r"(?:wavelength|lambda|lam1?)\s*[:=]?\s*([0-9]*\.[0-9]+)", re.IGNORECASE)
_WAVE2 = re.compile(r"(?:wavelength2|lam2)\s*[:=]?\s*([0-9]*\.[0-9]+)", re.IGNORECASE)
_MAX_HEADER_LINES = 50


def sniff(head: bytes) -> bool:
    """True when the first non-comment lines are rows of 2+ numbers."""
    if b"\x00" in head[:512]:
        return False
    rows = 0
    for line in head.decode("latin-1").splitlines()[:60]:
        text = line.strip()
        if not text or text.startswith(_COMMENT):
            continue
        try:
            values = [float(v) for v in _SPLIT.split(text) if v]
        except ValueError:
            if rows:
                return False
            continue
        if len(values) < 2:
            return False
        rows += 1
        if rows >= 3:
            return True
    return rows > 0


def read_all(path, **kw):
    """The one pattern of a column file, as a one-element list."""
    text = read_text(path)
    rows, header = [], []
    ncols = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(_COMMENT):
            header.append(stripped)
            continue
        parts = [p for p in _SPLIT.split(stripped) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if not rows and len(header) < _MAX_HEADER_LINES:
                header.append(stripped)
                continue
            raise fail(path, f"line {lineno}: {stripped[:40]!r} is not a row of numbers") from None
        if len(values) < 2:
            raise fail(path, f"line {lineno}: one column; need 2theta and intensity")
        if ncols is None:
            ncols = min(len(values), 3)
        elif len(values) < ncols:
            raise fail(path, f"line {lineno}: {len(values)} columns where earlier rows had {ncols}")
        rows.append(values[:ncols])
    if not rows:
        raise fail(path, "no rows of numbers: not a 2theta/intensity column file")
    table = np.array(rows, dtype=float)
    wavelength = wavelength2 = math.nan
    for line in header:
        m2 = _WAVE2.search(line)
        if m2:
            wavelength2 = float(m2.group(1))
            line = _WAVE2.sub("", line)
        m = _WAVE.search(line)
        if m and math.isnan(wavelength):
            wavelength = float(m.group(1))
    esd = table[:, 2] if ncols == 3 else None
    return [
        make_pattern(
            table[:, 0], table[:, 1], esd, path=path, fmt="xye" if ncols == 3 else "xy",
            wavelength=wavelength, wavelength2=wavelength2,
            counts_kind="intensity",
            extra={"header": "\n".join(header[:20])},
        )
    ]
