"""Plain column files: ``.xy`` (2theta, intensity), ``.xye`` (+ esd), ``.csv``/``.txt``/``.dat``.

Columns are separated by blanks, commas, semicolons or tabs.  Lines starting with ``#``, ``!``,
``;``, ``%``, ``'`` or ``/*`` are comments; a few leading text lines (column titles, instrument
headers) are skipped; any non-numeric line after the data has started is an error that names it.
Two columns: esd = sqrt(counts).  Three or more: the third column is the esd.  A header comment
``# wavelength = 1.5406`` (or ``lambda``) fills the wavelength attribute.

A cut file (copy interrupted, disk full) must not be read as a shorter pattern, so three checks
look for truncation: a last line without its line end whose numbers are shorter than the same
columns in the rows before it (fixed-format writers print every row alike); a header that states
the number of points (``# points = N``) and disagrees with the rows; and, on an equal-step scan,
a step that is a whole multiple of the others (rows lost in the middle).  Negative intensities
are processed data here (the format cannot say they are counts): kept, counted in
``attrs["negative_values"]`` with a note, and they need esds from the file.
"""

from __future__ import annotations

import math
import re

import numpy as np

from doptrace.core.simulated import ATTR, marker_in

from ._pattern import fail, make_pattern, read_text

NAME = "xy"
EXTENSIONS = (".xy", ".xye", ".csv", ".txt", ".dat", ".asc")

_COMMENT = ("#", "!", ";", "%", "'", "/*", "//")
_SPLIT = re.compile(r"[,;\s]+")
_WAVE = re.compile(r"(?:wavelength|lambda|lam1?)\s*[:=]?\s*([0-9]*\.[0-9]+)", re.IGNORECASE)
_WAVE2 = re.compile(r"(?:wavelength2|lam2)\s*[:=]?\s*([0-9]*\.[0-9]+)", re.IGNORECASE)
_MAX_HEADER_LINES = 50
_POINTS = re.compile(r"(?:^|[\s#!;%/*'])(?:points|npoints|n_points|number of points|no\. of points)\s*[:=]\s*(\d+)",
                     re.IGNORECASE)
#: rows of the same layout needed before a short unterminated last line counts as cut
_LAYOUT_ROWS = 5


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
    rows, header, data_lines = [], [], []
    ncols = None
    lines = text.splitlines()
    unterminated = bool(text) and not text.endswith(("\n", "\r"))
    for lineno, line in enumerate(lines, start=1):
        cut = " (the last line has no line end: the file is truncated)" if unterminated and lineno == len(lines) else ""
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
            raise fail(path, f"line {lineno}: {stripped[:40]!r} is not a row of numbers{cut}") from None
        if len(values) < 2:
            raise fail(path, f"line {lineno}: one column; need 2theta and intensity{cut}")
        if ncols is None:
            ncols = min(len(values), 3)
        elif len(values) < ncols:
            raise fail(path, f"line {lineno}: {len(values)} columns where earlier rows had {ncols}{cut}")
        rows.append(values[:ncols])
        data_lines.append(lineno)
    if not rows:
        raise fail(path, "no rows of numbers: not a 2theta/intensity column file")
    _check_last_line(path, text, ncols)
    table = np.array(rows, dtype=float)
    _check_declared_points(path, header, len(rows))
    _check_gaps(path, table[:, 0], data_lines)
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
            extra={"header": "\n".join(header[:20]),
                   # doptrace's simulator heads its files "# doptrace XRD simulation: ..."
                   **({ATTR: marker} if (marker := marker_in(header)) else {})},
        )
    ]


def _decimals(token: str) -> int:
    """Digits printed after the decimal point (mantissa only); -1 without a point."""
    mantissa = re.split(r"[eE]", token, maxsplit=1)[0]
    return len(mantissa.split(".", 1)[1]) if "." in mantissa else -1


def _check_last_line(path, text: str, ncols: int) -> None:
    """Refuse an unterminated last row printed shorter than every row before it (a cut file)."""
    if not text or text.endswith(("\n", "\r")):
        return
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(_COMMENT)]
    if len(lines) <= _LAYOUT_ROWS:
        return
    last = [p for p in _SPLIT.split(lines[-1]) if p]
    before = [[p for p in _SPLIT.split(ln) if p] for ln in lines[-1 - _LAYOUT_ROWS:-1]]
    for column in range(min(ncols, len(last))):
        widths = {_decimals(row[column]) for row in before if len(row) > column}
        if len(widths) == 1:
            expected = widths.pop()
            if _decimals(last[column]) != expected:
                raise fail(path, f"last line {lines[-1][:40]!r} is cut short (column {column + 1} has "
                                 f"{max(_decimals(last[column]), 0)} decimals, every row before it {max(expected, 0)}, "
                                 "and the line has no line end): the file is truncated")


def _check_declared_points(path, header: list[str], n: int) -> None:
    for line in header:
        m = _POINTS.search(line)
        if m and int(m.group(1)) != n:
            raise fail(path, f"the header says {int(m.group(1))} points but the file has {n} rows (truncated or edited)")


def _check_gaps(path, x: np.ndarray, data_lines: list[int]) -> None:
    """On an equal-step scan, a step that is 2, 3, ... times the others means rows were lost."""
    if x.size < 20:
        return
    dx = np.diff(x)
    if not np.all(np.isfinite(dx)) or not np.all(dx > 0) and not np.all(dx < 0):
        return  # make_pattern names non-finite or non-monotonic angles
    dx = np.abs(dx)
    step = float(np.median(dx))
    # tolerance: a few units of the printed precision (rounding of both neighbours)
    tol = max(1e-9, 0.02 * step)
    regular = np.abs(dx - step) <= tol
    if regular.mean() < 0.98:
        return  # not an equal-step scan: nothing to compare against
    ratio = dx / step
    lost = (~regular) & (np.abs(ratio - np.round(ratio)) <= tol / step) & (np.round(ratio) >= 2)
    if lost.any():
        i = int(np.argmax(lost))
        raise fail(path, f"line {data_lines[i + 1]}: 2theta jumps {dx[i]:g} deg from {x[i]:g} to {x[i + 1]:g} on a "
                         f"{step:g}-deg scan: {int(round(ratio[i])) - 1} row(s) missing (file cut or edited)")
