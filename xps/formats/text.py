"""Plain-text XPS exports: two/three-column tables and CasaXPS's tabulated text export.

Generic tables (csv / txt / xy / dat): optional header lines (``#`` comments or column labels such
as ``BE/eV``, ``KE/eV``, ``Counts``, ``CPS``), then rows of numbers separated by commas, tabs,
semicolons or spaces. The energy column is binding energy unless a label says kinetic; the
intensity is counts unless a label says per second. LG4X writes ``KE/eV,PE: 600 eV`` where PE is
the photon energy used for the kinetic scale.

CasaXPS text export ("Rows of Tabulated Data"): several blocks, each starting with a
``Cycle n:sample:region`` line, a ``Characteristic Energy eV <hv> Acquisition Time s <t>`` line,
fit-summary rows and a ``K.E. Counts  B.E. CPS [...]`` column row.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import XPSError
from ._text import decode_text, read_bounded
from ._spectrum import make_spectrum

EXTENSIONS = (".csv", ".txt", ".xy", ".dat", ".tsv")
ACCEPTS_BY_EXTENSION = True
MAX_BYTES = 256 * 1024 * 1024

_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_NONFINITE = re.compile(r"(?<![\w.])[-+]?(?:nan|infinity|inf)(?![\w.])", re.IGNORECASE)
_REGION_IN_NAME = re.compile(r"([A-Z][a-z]?)\s*_?(\d[spdf](?:\d/2)?)")
_CASA_BLOCK = re.compile(r"^\s*Characteristic Energy\s+eV\s+(\S+)\s+Acquisition Time\s+s\s+(\S+)", re.IGNORECASE)


def sniff(head: bytes) -> bool:
    """True for a CasaXPS tabulated text export (generic tables are taken by extension)."""
    text = head.decode("latin-1")
    return bool(re.search(r"(?m)^\s*Characteristic Energy eV\t", text) and re.search(r"(?m)^K\.E\.\tCounts", text))


def _load_lines(path: Path) -> list[str]:
    text = decode_text(path, read_bounded(path, MAX_BYTES, "a text spectrum"), "a text spectrum")
    return re.split(r"\r\n|\r|\n", text)


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [cell.strip() for cell in line.split(delimiter)]


def _is_numeric_row(cells: list[str]) -> bool:
    cells = [c for c in cells if c != ""]
    return len(cells) >= 2 and all(_NUMBER.match(c) for c in cells)


def _delimiter(line: str) -> tuple[str | None, bool]:
    """(delimiter, decimal_comma) for a data line; decimal commas occur with tab/semicolon/space."""
    for candidate in ("\t", ",", ";"):
        if candidate in line and _is_numeric_row(_split(line, candidate)):
            return candidate, False
    for candidate in ("\t", ";", None):
        if (candidate is None or candidate in line) and _is_numeric_row(_split(line.replace(",", "."), candidate)):
            return candidate, True
    return None, False


def region_from_name(name: str) -> str:
    """Region guessed from a file name: the last 'C1s' / 'Ni 2p' style token, else ''."""
    matches = _REGION_IN_NAME.findall(name)
    return f"{matches[-1][0]} {matches[-1][1]}" if matches else ""


def read(
    path: str | os.PathLike,
    *,
    excitation_energy: float | None = None,
    abscissa: str | None = None,
    region: str | None = None,
    etch_time: float = math.nan,
) -> list[xr.DataArray]:
    """Read a text export (generic table or CasaXPS tabulated export).

    Parameters
    ----------
    path : path-like
        The file (opened read-only).
    excitation_energy : float, optional
        Photon energy hv (eV); needed when the energy column is kinetic and the file does not
        say hv.
    abscissa : {"binding energy", "kinetic energy"}, optional
        Override the energy-column guess.
    region : str, optional
        Region name (default: from a CasaXPS block header, else guessed from the file name).
    etch_time : float
        Etch time (s) to attach to a single-spectrum table.

    Examples
    --------
    >>> [da] = read("C1s.csv", region="C 1s")  # doctest: +SKIP
    """
    path = Path(path)
    lines = _load_lines(path)
    if not any(line.strip() for line in lines):
        raise XPSError(f"{path}: empty file")
    if sniff("\n".join(lines[:200]).encode("latin-1", "replace")):
        return _read_casa_export(path, lines)
    return [_read_table(path, lines, excitation_energy, abscissa, region, etch_time)]


def _read_table(path, lines, excitation_energy, abscissa, region, etch_time) -> xr.DataArray:
    header: list[str] = []
    start = None
    delimiter, decimal_comma = None, False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            if start is None:
                continue
            break
        if stripped.startswith(("#", "%", "//")):
            if start is None:
                header.append(stripped.lstrip("#%/ "))
                continue
            break
        if start is None:
            delimiter, decimal_comma = _delimiter(stripped)
        cells = _split(stripped.replace(",", ".") if decimal_comma else stripped, delimiter)
        if start is None:
            if _is_numeric_row(cells):
                start = number
            elif _NONFINITE.search(stripped) and _is_numeric_row(
                    _split(_NONFINITE.sub("0", stripped), _delimiter(_NONFINITE.sub("0", stripped))[0])):
                # Looks like the first data row but holds NaN/inf: not a header line.
                raise XPSError(f"{path}: line {number + 1}: NaN or infinite value in a data row ({stripped[:40]!r})")
            else:
                header.append(stripped)
                if len(header) > 200:
                    raise XPSError(f"{path}: no numeric data in the first 200 lines (not a spectrum table)")
    if start is None:
        raise XPSError(f"{path}: no rows of numbers found (empty or not a spectrum table)")
    before = lines[start - 1].strip() if start > 0 else ""
    if before and not before.startswith(("#", "%", "//")):
        cells = _split(before.replace(",", ".") if decimal_comma else before, delimiter)
        width = len(_split(lines[start].strip().replace(",", ".") if decimal_comma else lines[start].strip(), delimiter))
        if len(cells) == width and any(_NUMBER.match(c) for c in cells):
            # Column labels hold no bare numbers; a row of the data's width that does is a damaged data row.
            bad = next(c for c in cells if not _NUMBER.match(c))
            raise XPSError(f"{path}: line {start}: non-numeric value {bad[:30]!r} in a data row")
    rows = []
    width = None
    for number in range(start, len(lines)):
        stripped = lines[number].strip()
        if not stripped:
            if any(line.strip() for line in lines[number:]):
                # A blank line then more text: a second table; only tables of one spectrum are read here.
                rest = next(i for i in range(number, len(lines)) if lines[i].strip())
                raise XPSError(f"{path}: line {rest + 1}: more than one data table (blank line inside the data)")
            break
        cells = [c for c in _split(stripped.replace(",", ".") if decimal_comma else stripped, delimiter) if c != ""]
        if width is None:
            width = len(cells)
        if len(cells) != width:
            raise XPSError(f"{path}: line {number + 1}: {len(cells)} columns where the data has {width}")
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _NUMBER.match(c))
            raise XPSError(f"{path}: line {number + 1}: non-numeric value {bad[:30]!r}") from None
    table = np.array(rows, dtype=float)
    if table.shape[1] < 2:
        raise XPSError(f"{path}: need at least two columns (energy, intensity)")
    labels = _split(header[-1], delimiter) if header else []
    header_text = " ".join(header)
    e_col, y_col, kinetic, per_second = 0, 1, False, False
    lowered = [label.lower() for label in labels]
    # A binding-energy column wins over a kinetic one when a table has both.
    binding_cols = [i for i, label in enumerate(lowered[: table.shape[1]]) if re.search(r"\bb\.?e\b|binding", label)]
    kinetic_cols = [i for i, label in enumerate(lowered[: table.shape[1]]) if re.search(r"\bk\.?e\b|kinetic", label)]
    if binding_cols:
        e_col = binding_cols[0]
    elif kinetic_cols:
        e_col, kinetic = kinetic_cols[0], True
    for i, label in enumerate(lowered[: table.shape[1]]):
        if i != e_col and re.search(r"count|cps|intens|signal", label):
            y_col = i
            per_second = bool(re.search(r"cps|c/s|/\s*s\b|per\s*s", label))
            break
    else:
        y_col = 1 if e_col == 0 else 0
    hv = excitation_energy
    photon = re.search(r"\b(?:PE|hv|photon energy|excitation energy)\s*[:=]\s*([-+0-9.eE]+)", header_text, re.IGNORECASE)
    if kinetic and hv is None and photon:
        try:
            hv = float(photon.group(1))
        except ValueError:
            raise XPSError(f"{path}: photon energy in the header is not a number ({photon.group(0)[:40]!r})") from None
    if abscissa is not None:
        kinetic = abscissa.lower().startswith("kinetic")
    if kinetic and hv is None:
        raise XPSError(f"{path}: kinetic-energy column but no photon energy; pass excitation_energy=")
    name = region if region is not None else region_from_name(path.stem)
    return make_spectrum(
        str(path), table[:, e_col], table[:, y_col],
        abscissa="kinetic energy" if kinetic else "binding energy",
        excitation_energy=math.nan if hv is None else hv, region=name, sample=path.stem,
        already_per_second=per_second, etch_time=etch_time, comment="\n".join(header),
    )


def _read_casa_export(path: Path, lines: list[str]) -> list[xr.DataArray]:
    starts = [i for i, line in enumerate(lines) if _CASA_BLOCK.match(line)]
    blocks = []
    for index, at in enumerate(starts):
        title = lines[at - 1].strip() if at > 0 else ""
        match = _CASA_BLOCK.match(lines[at])
        try:
            hv, acquisition = float(match.group(1)), float(match.group(2))
        except ValueError:
            raise XPSError(f"{path}: line {at + 1}: non-numeric characteristic energy or acquisition time") from None
        head = next((i for i in range(at + 1, min(at + 40, len(lines))) if lines[i].startswith("K.E.\t")), None)
        if head is None:
            raise XPSError(f"{path}: line {at + 1}: block {index} has no 'K.E.  Counts ...' column row")
        labels = [c.strip() for c in lines[head].split("\t")]
        try:
            be_col, counts_col, cps_col = labels.index("B.E."), labels.index("Counts"), labels.index("CPS")
        except ValueError:
            raise XPSError(f"{path}: line {head + 1}: column row lacks B.E., Counts or CPS") from None
        end = starts[index + 1] - 1 if index + 1 < len(starts) else len(lines)
        rows = []
        for number in range(head + 1, end):
            cells = lines[number].split("\t")
            if not lines[number].strip():
                continue
            try:
                rows.append((float(cells[be_col]), float(cells[counts_col]), float(cells[cps_col])))
            except (ValueError, IndexError):
                raise XPSError(f"{path}: line {number + 1}: non-numeric or missing value in block {index}") from None
        table = np.array(rows, dtype=float).reshape(-1, 3)
        if not np.all(np.isfinite(table)):
            bad = head + 2 + int(np.argmax(~np.all(np.isfinite(table), axis=1)))
            raise XPSError(f"{path}: block {index}: NaN or infinite value in the B.E./Counts/CPS columns "
                           f"(data row near line {bad})")
        parts = title.split(":")
        name = parts[-1].strip() if parts else ""
        sample = parts[-2].strip() if len(parts) >= 2 else ""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = table[:, 1] / table[:, 2]
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        counts_per_unit = float(np.median(ratio)) if ratio.size else acquisition
        scans = max(1, round(counts_per_unit / acquisition)) if acquisition > 0 else 1
        blocks.append(make_spectrum(
            str(path), table[:, 0], table[:, 2], abscissa="binding energy", excitation_energy=hv,
            region=name, sample=sample, block_index=index, dwell_time=acquisition, scans=scans,
            already_per_second=True, comment=title, extra_attrs={"block_id": title},
        ))
    if not blocks:
        raise XPSError(f"{path}: CasaXPS text export without any data block")
    return blocks
