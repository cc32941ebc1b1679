"""Thermo Avantage (and KherveFitting) Excel exports: one worksheet per region.

A region sheet has a column-label row whose first cell is ``Binding Energy (E)`` (or ``Binding
Energy`` / ``Kinetic Energy``), optionally a units row (``eV``, ``Counts / s``), then rows of
numbers: energy in the first column, the measured intensity in the first numeric column after it
(Avantage puts fitted components, ``Backgnd.`` and ``Envelope`` further right). Sheets without
such a row ("Peak Table", "Titles", "Quantifications", "Results Table") are skipped.

The workbook is opened with openpyxl in read-only mode after checking its zip members, so a
zip bomb or a non-zip file fails with a clear error instead of exhausting memory.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import XPSError
from ._spectrum import make_spectrum

EXTENSIONS = (".xlsx", ".xlsm")
ACCEPTS_BY_EXTENSION = True
#: Limits for the workbook zip, checked on the declared sizes before openpyxl inflates anything
#: (Python's zipfile never inflates a member past its declared size). Real Avantage/KherveFitting
#: exports: largest member 0.32 MB, compression 1-7x. openpyxl streams worksheets in read-only
#: mode but reads the shared-strings table whole, so that part has its own, lower limit (a
#: 1.4 MB workbook with an inflated shared-strings part took > 90 s and 1.3 GB before).
MAX_UNCOMPRESSED = 256 * 1024 * 1024
MAX_MEMBER_BYTES = 32 * 1024 * 1024
MAX_SHARED_STRINGS_BYTES = 8 * 1024 * 1024
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024
MAX_MEMBERS = 10_000
MAX_ROWS = 2_000_000
SKIPPED_SHEETS = ("peak table", "titles", "quantification", "results table")
_HEADER = re.compile(r"^\s*(binding|kinetic)\s+energy", re.IGNORECASE)


def sniff(head: bytes) -> bool:
    """Never claims by content alone: any Office zip starts with PK; the extension decides."""
    return False


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise XPSError(f"{path}: not an Excel .xlsx workbook (not a zip archive)") from None
    except OSError as exc:
        raise XPSError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    except (zipfile.LargeZipFile, ValueError, EOFError, RuntimeError) as exc:
        raise XPSError(f"{path}: not a readable Excel .xlsx workbook (zip: {exc})") from None
    if len(members) > MAX_MEMBERS:
        raise XPSError(f"{path}: workbook has {len(members)} zip members (limit {MAX_MEMBERS})")
    for member in members:
        name = member.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
            raise XPSError(f"{path}: workbook zip member {name[:80]!r} has an unsafe path")
        limit = MAX_SHARED_STRINGS_BYTES if name.lower().endswith("sharedstrings.xml") else MAX_MEMBER_BYTES
        if member.file_size > limit:
            raise XPSError(f"{path}: workbook member {name[:80]!r} declares {member.file_size} bytes uncompressed "
                           f"(limit {limit}); refusing a zip bomb")
        if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise XPSError(f"{path}: workbook member {name[:80]!r} expands {ratio:.0f}x (limit {MAX_RATIO}x); "
                           "refusing a zip bomb")
    names = [m.filename for m in members]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise XPSError(f"{path}: workbook zip holds member(s) {', '.join(map(repr, twice[:3]))} twice (ambiguous)")
    total = sum(m.file_size for m in members)
    if total > MAX_UNCOMPRESSED:
        raise XPSError(f"{path}: workbook expands to {total} bytes (limit {MAX_UNCOMPRESSED}); refusing a zip bomb")
    _refuse_dtd(path, members)
    _check_sheet_parts(path, set(names))


def _refuse_dtd(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Office parts never carry a DTD; one that does (XXE, entity expansion, external DTD) is refused.

    A DOCTYPE must precede the root element, so the first 64 KiB of each XML part are enough (their
    declared sizes are already checked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in members:
                if not member.filename.lower().endswith((".xml", ".rels", ".vml")):
                    continue
                with archive.open(member) as handle:
                    head = handle.read(64 * 1024).upper()
                if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                    raise XPSError(f"{path}: workbook member {member.filename[:80]!r} declares a DTD or entities "
                                   "(never in Excel files): refused")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        if isinstance(exc, XPSError):
            raise
        raise XPSError(f"{path}: workbook zip cannot be read ({_short(exc)})") from None


_RELS = "xl/_rels/workbook.xml.rels"


def _check_sheet_parts(path: Path, names: set[str]) -> None:
    """Every worksheet the workbook lists must be in the zip: openpyxl skips a missing one silently."""
    if _RELS not in names:
        return
    from defusedxml import ElementTree

    try:
        with zipfile.ZipFile(path) as archive:
            root = ElementTree.fromstring(archive.read(_RELS))
    except XPSError:
        raise
    except Exception as exc:  # zip, zlib, ParseError, defusedxml refusals
        raise XPSError(f"{path}: workbook part {_RELS} cannot be read ({type(exc).__name__}: {_short(exc)})") from None
    for rel in root:
        if str(rel.get("Type", "")).endswith("/worksheet"):
            target = str(rel.get("Target", ""))
            part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            if part not in names:
                raise XPSError(f"{path}: the workbook lists worksheet {part!r}, which is missing from the file")


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def region_from_sheet(title: str) -> str:
    """'O1s Scan' -> 'O1s' (made 'O 1s' by the spectrum builder); 'Survey' stays."""
    return re.sub(r"\s+scan\s*$", "", title.strip(), flags=re.IGNORECASE)


def _read_sheet(path: Path, sheet, index: int, hv: float | None) -> xr.DataArray | None:
    rows = sheet.iter_rows(values_only=True)
    header = None
    for number, row in enumerate(rows, start=1):
        if row and isinstance(row[0], str) and _HEADER.match(row[0]):
            header = (number, row)
            break
        if number > 200:
            return None
    if header is None:
        return None
    number, labels = header
    kinetic = labels[0].strip().lower().startswith("kinetic")
    if kinetic and hv is None:
        raise XPSError(f"{path}: sheet {sheet.title!r}: kinetic-energy column but no photon energy; "
                       "pass excitation_energy=")
    first = next(rows, None)
    number += 1
    units_row = None
    if first is not None and _number(first[0]) is None:
        units_row, first = first, next(rows, None)
        number += 1
    if first is None or _number(first[0]) is None:
        raise XPSError(f"{path}: sheet {sheet.title!r}: empty block (no data rows after row {number - 1})")
    column = next((i for i in range(1, len(first)) if _number(first[i]) is not None), None)
    if column is None:
        raise XPSError(f"{path}: sheet {sheet.title!r}: row {number}: no intensity column")
    unit_text = " ".join(str(c) for c in (units_row or ()) if c is not None) + " " + str(labels[column] or "")
    per_second = bool(re.search(r"/\s*s\b|cps|per second", unit_text, re.IGNORECASE))
    energies, values = [], []
    row = first
    while row is not None:
        x = _number(row[0]) if row else None
        if x is None:
            if row and row[0] not in (None, ""):
                raise XPSError(f"{path}: sheet {sheet.title!r}: row {number}: non-numeric energy {str(row[0])[:30]!r}")
            break
        y = _number(row[column]) if len(row) > column else None
        if y is None:
            raise XPSError(f"{path}: sheet {sheet.title!r}: row {number}: missing or non-numeric intensity")
        energies.append(x)
        values.append(y)
        if len(energies) > MAX_ROWS:
            raise XPSError(f"{path}: sheet {sheet.title!r}: more than {MAX_ROWS} rows")
        row = next(rows, None)
        number += 1
    return make_spectrum(
        str(path), np.array(energies), np.array(values),
        abscissa="kinetic energy" if kinetic else "binding energy", excitation_energy=math.nan if hv is None else hv,
        region=region_from_sheet(sheet.title), sample=path.stem, block_index=index, already_per_second=per_second,
        extra_attrs={"block_id": sheet.title, "sheet": sheet.title},
    )


def read(path: str | os.PathLike, *, excitation_energy: float | None = None) -> list[xr.DataArray]:
    """Read every region sheet of an Avantage/KherveFitting ``.xlsx`` workbook.

    Examples
    --------
    >>> [b.attrs["region"] for b in read("Hard_carbon_Thermo.xlsx")]  # doctest: +SKIP
    ['Survey', 'O 1s', 'Na 1s', 'C 1s', 'CKLL']
    """
    path = Path(path)
    workbook = _open(path)
    try:
        spectra = []
        for sheet in workbook.worksheets:
            if sheet.title.strip().lower().startswith(SKIPPED_SHEETS):
                continue
            with _corrupt_sheet(path, sheet.title):
                spectrum = _read_sheet(path, sheet, len(spectra), excitation_energy)
            if spectrum is not None:
                spectra.append(spectrum)
    finally:
        workbook.close()
    if not spectra:
        raise XPSError(f"{path}: no region sheet with a 'Binding Energy' column")
    return spectra


def _open(path: Path):
    from openpyxl import load_workbook

    _check_zip(path)
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except XPSError:
        raise
    except Exception as exc:  # openpyxl raises many types for a corrupt workbook
        raise XPSError(f"{path}: cannot open the Excel workbook ({type(exc).__name__}: {_short(exc)})") from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


@contextmanager
def _corrupt_sheet(path: Path, title: str):
    """Worksheets are parsed lazily while rows are read (read-only openpyxl): a corrupt sheet
    surfaces there as XML ParseError, defusedxml's entity/DTD refusals (ValueError subclasses),
    zip/zlib errors, or ValueError/TypeError/KeyError from openpyxl's cell conversion. Each
    becomes one XPSError naming the file and the sheet."""
    try:
        yield
    except XPSError:
        raise
    except Exception as exc:  # openpyxl/defusedxml/zipfile raise many types for a corrupt sheet
        raise XPSError(f"{path}: sheet {title!r}: corrupt worksheet ({type(exc).__name__}: {_short(exc)})") from None


def read_fit(path: str | os.PathLike) -> dict[str, xr.Dataset]:
    """Avantage's own fit stored beside each region's data: component curves, background, envelope.

    Avantage draws each component on top of the background and writes 0 outside the fitted
    range; the returned ``component_curve`` is the peak alone (curve - background inside the
    range, 0 outside), so ``background + component_curve.sum("component") == envelope``.

    Returns
    -------
    dict
        region -> Dataset over ``binding_energy`` (eV, ascending) and ``component`` with
        ``data``, ``background``, ``envelope`` (counts/s) and ``component_curve``; regions
        without a fit are left out.

    Examples
    --------
    >>> fits = read_fit("Hard_carbon_Thermo.xlsx")  # doctest: +SKIP
    >>> fits["C 1s"].component.values.tolist()[:2]  # doctest: +SKIP
    ['C1s sp2 C', 'C1s Shake up']
    """
    path = Path(path)
    workbook = _open(path)
    out = {}
    try:
        for sheet in workbook.worksheets:
            if sheet.title.strip().lower().startswith(SKIPPED_SHEETS):
                continue
            with _corrupt_sheet(path, sheet.title):
                fit = _read_fit_sheet(path, sheet)
            if fit is not None:
                out[fit[0]] = fit[1]
    finally:
        workbook.close()
    return out


def _read_fit_sheet(path: Path, sheet):
    """(region, Dataset) of one sheet's stored fit, or None when the sheet has none."""
    from ._spectrum import canonical_region

    rows = sheet.iter_rows(values_only=True)
    labels = next((r for _, r in zip(range(200), rows) if r and isinstance(r[0], str) and _HEADER.match(r[0])), None)
    if labels is None or "Backgnd." not in labels or "Envelope" not in labels:
        return None
    names = [str(label).strip() for label in labels]
    table = []
    for row in rows:
        if not row or _number(row[0]) is None:
            if table:
                break
            continue
        table.append([math.nan if _number(v) is None else _number(v) for v in row[: len(names)]]
                     + [math.nan] * (len(names) - len(row)))
        if len(table) > MAX_ROWS:
            raise XPSError(f"{path}: sheet {sheet.title!r}: more than {MAX_ROWS} rows")
    if not table:
        raise XPSError(f"{path}: sheet {sheet.title!r}: fit columns but no data rows")
    data = np.array(table, dtype=float)
    bg_col, env_col = names.index("Backgnd."), names.index("Envelope")
    y_col = next((i for i in range(1, len(names)) if np.isfinite(data[0, i])), None)
    if y_col is None:
        raise XPSError(f"{path}: sheet {sheet.title!r}: no intensity column in the fit table")
    comp_cols = [i for i in range(y_col + 1, len(names))
                 if names[i] and names[i] not in ("Backgnd.", "Envelope", "Residuals", "None")]
    order = np.argsort(data[:, 0])
    data = data[order]
    bg = data[:, bg_col]
    inside = bg != 0
    curves = np.where(inside[:, None], data[:, comp_cols] - bg[:, None], 0.0)
    units = {"units": "counts/s"}
    dataset = xr.Dataset(
        {
            "data": ("binding_energy", data[:, y_col], units),
            "background": ("binding_energy", bg, units),
            "envelope": ("binding_energy", data[:, env_col], units),
            "component_curve": (("binding_energy", "component"), curves, units),
        },
        coords={"binding_energy": ("binding_energy", data[:, 0], {"units": "eV"}),
                "component": [names[i] for i in comp_cols]},
        attrs={"source": str(path), "sheet": sheet.title, "technique": "XPS"},
    )
    return canonical_region(region_from_sheet(sheet.title)), dataset


def read_quantification(path: str | os.PathLike) -> xr.Dataset:
    """Avantage's "Quantifications" sheet: peak BE, FWHM, area and atomic % per component.

    Returns
    -------
    Dataset
        Over ``component`` (the sheet's names): ``peak_binding_energy`` (eV), ``fwhm`` (eV),
        ``area`` (counts/s eV), ``atomic_percent`` (%).
    """
    path = Path(path)
    workbook = _open(path)
    try:
        sheet = next((s for s in workbook.worksheets if s.title.strip().lower().startswith("quantification")), None)
        if sheet is None:
            raise XPSError(f"{path}: no 'Quantifications' sheet")
        with _corrupt_sheet(path, sheet.title):
            rows = [r for _, r in zip(range(MAX_ROWS), sheet.iter_rows(values_only=True))
                    if r and any(v is not None for v in r)]
    finally:
        workbook.close()
    header_at = next((i for i, r in enumerate(rows) if any(str(v).strip() == "Peak BE" for v in r if v is not None)),
                     None)
    if header_at is None:
        raise XPSError(f"{path}: 'Quantifications' sheet has no 'Peak BE' column row")
    header = [str(v).strip() if v is not None else "" for v in rows[header_at]]
    wanted = {"Peak BE": "peak_binding_energy", "FWHM eV": "fwhm", "Atomic %": "atomic_percent"}
    columns = {key: header.index(label) for label, key in wanted.items() if label in header}
    area_col = next((i for i, h in enumerate(header) if h.startswith("Area")), None)
    name_col = header.index("Name") if "Name" in header else 0
    if area_col is None or len(columns) < 3:
        raise XPSError(f"{path}: 'Quantifications' sheet lacks Peak BE / FWHM eV / Area / Atomic % columns")
    names, values = [], []
    for row in rows[header_at + 1 :]:
        cells = list(row) + [None] * (len(header) - len(row))
        # The names sit one column left of the header's "Name" label in Avantage exports.
        name = next((str(cells[i]).strip() for i in (name_col - 1, name_col) if isinstance(cells[i], str)), None)
        numbers = {key: _number(cells[col]) for key, col in columns.items()}
        area = _number(cells[area_col])
        if name is None or area is None or any(v is None for v in numbers.values()):
            continue
        names.append(name)
        values.append({**numbers, "area": area})
    if not names:
        raise XPSError(f"{path}: 'Quantifications' sheet has no component rows")
    units = {"peak_binding_energy": "eV", "fwhm": "eV", "area": "counts/s eV", "atomic_percent": "%"}
    return xr.Dataset(
        {key: ("component", np.array([v[key] for v in values]), {"units": unit}) for key, unit in units.items()},
        coords={"component": names}, attrs={"source": str(path), "technique": "XPS"},
    )
