"""IONTOF SurfaceLab ASCII exports: spectra, depth profiles, image/3D exports (read and write).

Layouts
-------
spectrum
    ``#`` header lines (``# Binning: 200 channels``, ``# Deadtime Correction: on``), a tab-separated
    column header ``Channel  m/z  Intensity``, then one row per (binned) channel; CRLF line ends.
    ``Channel`` is the bin centre in unbinned channels. The ``m/z`` column is kept as the
    coordinate ``mz_file`` only to check a calibration; nothing here uses it.
depth profile
    tab-separated header lines, then one row per data point. SurfaceLab 7.3 (verified on real
    exports): ``# Profile Smoothing is Disabled``; ``#``, empty cells, the peak names aligned
    with their columns; the same with the peak centre masses (``N/A`` for ``total``, grouped
    peaks and ratios); ``#Data Point #  Sputter Time (s)  Dose (ions)  Fluence (ions/cm^2)
    Intensity ...``; every line ends in a tab. Older exports: a title, the names, two
    sub-header lines, rows ``sputter time, intensity per fragment``. Axis columns are known by
    their header text; ratio columns ``A / ( B )`` are kept apart.
image / 3D
    one file per fragment, ``#`` comment lines, then whitespace-separated columns
    ``x y scan counts`` (counts non-integer in corrected SurfaceLab 7 exports); the fragment
    comes from a ``# Fragment:`` comment or the file name (``name - BO-.txt``).

Every reader checks rows for equal length, numbers for finiteness (NaN/inf are refused, except
in SurfaceLab's ratio columns) and names the file and line of the first problem. Negative
intensities follow the project policy for export formats (``/work/agents/NEGATIVE_COUNTS.md``):
SurfaceLab may write processed data, so they are kept, counted in ``attrs["negative_values"]``
and noted in ``attrs["notes"]``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.atomic import atomic_open
from doptrace.core.simulated import marker_in

from .._files import existing_file
from ..errors import ToFSIMSError
from ._cube import make_cube

MAX_LINES = 50_000_000


def _lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="strict", newline=None) as handle:
            text = handle.read()
    except UnicodeDecodeError:
        try:
            text = path.read_text(encoding="latin-1")
        except OSError as exc:
            raise ToFSIMSError(f"{path}: cannot read ({exc})") from None
    except OSError as exc:
        raise ToFSIMSError(f"{path}: cannot read ({exc})") from None
    if "\x00" in text[:4096]:
        raise ToFSIMSError(f"{path}: binary content, not an ASCII export")
    return text.splitlines()


def _note_negatives(attrs: dict, values: np.ndarray, what: str = "intensities") -> dict:
    """Record negative values (kept: an export may hold processed data) in ``attrs``."""
    negative = int(np.count_nonzero(values < 0))
    attrs["negative_values"] = negative
    if negative:
        note = (f"{negative} negative {what} (min {float(values.min()):.6g}): processed "
                "(e.g. background-subtracted) data")
        attrs["notes"] = "; ".join(n for n in (attrs.get("notes", ""), note) if n)
    return attrs


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _numeric_rows(path: Path, lines: list[str], start: int, sep: str | None, finite: bool = True) -> np.ndarray:
    """Parse ``lines[start:]`` as a rectangular table of numbers (blank lines skipped); with
    ``finite`` (default) NaN/inf are refused, else the caller checks them per column."""
    rows, width = [], None
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = [f for f in (line.split(sep) if sep else line.split())]
        if sep:
            fields = [f.strip() for f in fields]
            while fields and fields[-1] == "":
                fields.pop()
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ToFSIMSError(f"{path}: ragged rows: line {number} has {len(fields)} columns, expected {width}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ToFSIMSError(f"{path}: line {number}: not a number in {line.strip()[:60]!r}") from None
        rows.append(values)
    if not rows:
        raise ToFSIMSError(f"{path}: no data rows")
    table = np.asarray(rows, dtype=float)
    bad = ~np.isfinite(table)
    if finite and bad.any():
        r = int(np.argwhere(bad)[0][0])
        raise ToFSIMSError(f"{path}: non-finite value (NaN/inf) in data row {r + 1}")
    return table


def sniff(path) -> str:
    """``"spectrum"``, ``"profile"`` or ``"image"`` from the first lines of an ASCII export."""
    path = existing_file(path)
    with open(path, "rb") as handle:
        head = handle.read(8192).decode("latin-1")
    lines = [ln for ln in head.splitlines() if ln.strip()]
    for line in lines[:20]:
        low = line.lower()
        if low.startswith("#") and ("binning" in low or "deadtime" in low):
            return "spectrum"
        if "channel" in low and "intensity" in low:
            return "spectrum"
        if low.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 4 and all(_is_number(f) for f in fields):
            return "image"
        break
    # a depth profile: header lines, then the first row of tab-separated numbers
    for k, line in enumerate(lines[:40]):
        cells = _cells(line)
        if cells and all(_is_number(c) for c in cells):
            if k >= 2 and "\t" in line:
                return "profile"
            break
    raise ToFSIMSError(f"{path}: not a recognised IONTOF ASCII export (spectrum, depth profile or image)")


# -- spectra ------------------------------------------------------------------------------------
def read_spectrum(path, polarity: str | None = None) -> xr.Dataset:
    """An ASCII spectrum export as ``intensity`` over ``channel``.

    Returns
    -------
    xarray.Dataset
        ``intensity`` (counts) over ``channel`` (bin centre, unbinned channel units) with the
        file's m/z column as coordinate ``mz_file`` when present; attrs ``binning``,
        ``dead_time_corrected``, ``polarity`` (the ``polarity`` argument, else "unknown").

    Examples
    --------
    >>> ds = read_spectrum("N_HEA19_Bi1_1.txt", polarity="negative")     # doctest: +SKIP
    >>> int(ds.attrs["binning"])                                          # doctest: +SKIP
    200
    """
    path = existing_file(path)
    lines = _lines(path)
    meta, start = {}, None
    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if marker_in(text):
                meta["simulated"] = marker_in(text)
            key, _, value = text.lstrip("#").partition(":")
            meta[key.strip().lower()] = value.strip()
            continue
        start = i
        break
    if start is None:
        raise ToFSIMSError(f"{path}: no column header or data")
    header = [h.strip().lower() for h in lines[start].split("\t")]
    if _is_number(header[0]):
        raise ToFSIMSError(f"{path}: no column header (expected 'Channel  m/z  Intensity')")
    column = {name: k for k, name in enumerate(header)}
    if "channel" not in column or "intensity" not in column:
        raise ToFSIMSError(f"{path}: column header {lines[start].strip()!r} lacks Channel and Intensity")
    table = _numeric_rows(path, lines, start + 1, "\t")
    if table.shape[1] != len(header):
        raise ToFSIMSError(f"{path}: data rows have {table.shape[1]} columns, the header names {len(header)}")
    channel = table[:, column["channel"]]
    if np.any(np.diff(channel) <= 0):
        raise ToFSIMSError(f"{path}: channels are not strictly increasing")
    intensity = table[:, column["intensity"]]
    binning_text = meta.get("binning", "")
    match = re.search(r"\d+", binning_text)
    binning = int(match.group()) if match else int(round(np.median(np.diff(channel)))) if channel.size > 1 else 1
    dead_time = meta.get("deadtime correction", meta.get("dead time correction", "")).lower()
    coords = {"channel": ("channel", channel, {"units": "1", "long_name": "time-of-flight channel (bin centre)"})}
    if "m/z" in column:
        coords["mz_file"] = ("channel", table[:, column["m/z"]], {"units": "u", "note": "file column, check only"})
    return xr.Dataset(
        {"intensity": (("channel",), intensity, {"units": "counts"})},
        coords=coords,
        attrs={
            "source": os.fspath(path),
            "technique": "ToF-SIMS",
            "format": "IONTOF ASCII spectrum",
            "binning": binning,
            "dead_time_corrected": int(dead_time in ("on", "yes", "true", "1")),
            "polarity": (polarity or "unknown").lower(),
            **_note_negatives({}, intensity),
            **({"simulated": meta["simulated"]} if meta.get("simulated") else {}),
        },
    )


def _comment_line(ds, end: str) -> str:
    """``# <attrs["comment"]>`` and the line end (a simulator's marker), or nothing."""
    comment = " ".join(str(ds.attrs.get("comment", "")).split())
    return f"# {comment}{end}" if comment else ""


def write_spectrum(path, ds: xr.Dataset) -> None:
    """Write ``intensity`` over ``channel`` in the SurfaceLab layout (CRLF, integer counts)."""
    channel = ds["channel"].values
    sf, k0 = float(ds.attrs.get("sf", np.nan)), float(ds.attrs.get("k0", np.nan))
    mz = ds["mz_file"].values if "mz_file" in ds.coords else ((channel - k0) / sf) ** 2
    dead = "on" if int(ds.attrs.get("dead_time_corrected", 0)) else "off"
    with atomic_open(path, "w", newline="") as out:
        out.write(_comment_line(ds, "\r\n"))
        out.write(f"# Binning: {int(ds.attrs.get('binning', 1))} channels\r\n# Deadtime Correction: {dead}\r\n")
        out.write("Channel\tm/z\tIntensity\r\n")
        out.writelines(
            f"{c:.0f}\t{m:.6f}\t{int(round(v))}\r\n" for c, m, v in zip(channel, mz, ds["intensity"].values)
        )


# -- depth profiles -----------------------------------------------------------------------------
#: axis columns of a profile export, by their column-header text; they become coordinates
_PROFILE_AXES = (
    ("point", re.compile(r"data\s*point|^point\b|^index$", re.I)),
    ("sputter_time", re.compile(r"sputter\s*time|^time\b", re.I)),
    ("dose", re.compile(r"\bdose\b", re.I)),
    ("fluence", re.compile(r"\bfluence\b", re.I)),
    ("depth", re.compile(r"\bdepth\b", re.I)),
)
_PROFILE_AXES_BY_KIND = dict(_PROFILE_AXES)
#: SurfaceLab's ratio columns, ``A / ( B )``
_RATIO = re.compile(r"^(?P<num>.*\S)\s*/\s*\(\s*(?P<den>.*\S)\s*\)$")
_MISSING = {"n/a", "na", "-", "--", ""}


def _cells(line: str) -> list[str]:
    """Tab-separated fields, stripped, without the trailing empty ones SurfaceLab writes."""
    fields = [f.strip() for f in line.split("\t")]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _units(label: str) -> str:
    match = re.search(r"[\(\[]([^\)\]]+)[\)\]]\s*$", label)
    return match.group(1).strip() if match else ""


def polarity_from_names(names) -> str:
    """``"negative"``/``"positive"`` when every signed name ends in ``-``/``+``, else ``"unknown"``.

    Ratio columns and unsigned names (``total``) are not counted; mixed signs give "unknown".
    """
    signs = {str(n).strip()[-1] for n in names if str(n).strip()[-1:] in ("+", "-") and not _RATIO.match(str(n))}
    if signs == {"-"}:
        return "negative"
    if signs == {"+"}:
        return "positive"
    return "unknown"


def _unique(names: list[str]) -> list[str]:
    """Repeated peak names (SurfaceLab allows two peaks of one name) made unique: ``SnO+ (2)``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _profile_header(path, header: list[list[str]], width: int):
    """Axis columns, peak names and peak masses from the header lines (see the module doc).

    Returns ``(axes, names, masses)``: ``axes`` a list of (column, name, units); ``names`` one per
    non-axis column; ``masses`` a float array (NaN where the file has none).
    """
    # column labels from the multi-cell header lines (a one-cell line is a title or a comment)
    tabular = [row for row in header if sum(1 for c in row if c.lstrip("#").strip()) >= 2]
    labels = [" ".join(row[j].lstrip("#").strip() for row in tabular if j < len(row)) for j in range(width)]
    axes = []
    for j in range(width):
        kind = next((k for k, rx in _PROFILE_AXES if rx.search(labels[j] or "")), None)
        if kind is None or kind in {a[1] for a in axes}:
            break  # axis columns lead; the first other column starts the peaks
        label = next((row[j] for row in tabular if j < len(row) and _PROFILE_AXES_BY_KIND[kind].search(row[j])), "")
        axes.append((j, kind, _units(label)))
    if not any(a[1] == "sputter_time" for a in axes):
        if axes:
            raise ToFSIMSError(f"{path}: depth-profile columns {[a[1] for a in axes]} lack the sputter time")
        axes = [(0, "sputter_time", "s")]  # older exports: a bare time column first
    first = len(axes)
    n_peaks = width - first
    if n_peaks < 1:
        raise ToFSIMSError(f"{path}: depth profile needs at least one intensity column after its axis columns")

    def peak_cells(row):
        return [row[j] if j < len(row) else "" for j in range(first, width)]

    names = masses = None
    for row in header:
        cells = peak_cells(row)
        filled = [c for c in cells if c]
        if not filled:
            continue
        numeric = [c for c in filled if _is_number(c)]
        if numeric and all(_is_number(c) or c.lower() in _MISSING for c in cells) and masses is None:
            masses = np.array([float(c) if _is_number(c) else np.nan for c in cells])
        elif not numeric and len(filled) == n_peaks and len({c.lower() for c in filled}) > 1 and names is None:
            names = cells
    if names is None:
        # layouts whose name line is not aligned with the data: exactly one name per peak column
        for row in header[1:] or header:
            filled = [c.lstrip("#").strip() for c in row if c.lstrip("#").strip()]
            if len(filled) == n_peaks and not any(_is_number(f) for f in filled) and len(set(filled)) > 1:
                names = filled
                break
    if names is None:
        raise ToFSIMSError(f"{path}: no header line names the {n_peaks} intensity columns")
    if masses is None:
        masses = np.full(n_peaks, np.nan)
    return axes, names, masses


def read_depth_profile(path, ratios: str = "keep") -> xr.Dataset:
    """A depth-profile export as ``intensity`` over (``sputter_time``, ``fragment``).

    Axis columns (data point, sputter time, dose, fluence, depth: recognised by their column
    header) become coordinates along ``sputter_time``; every other column is a peak, named from
    the header line aligned with it, with its centre mass from the header line of numbers
    (coordinate ``fragment_mass``, NaN where SurfaceLab writes ``N/A``). SurfaceLab's ratio
    columns ``A / ( B )`` are kept apart as ``ratio`` over (``sputter_time``, ``ratio_name``); ``inf``
    (zero denominator) is accepted there and only there. The polarity comes from the peak names.

    Parameters
    ----------
    path : path-like
    ratios : {"keep", "skip"}
        ``"skip"`` leaves SurfaceLab's ratio columns out (noted in ``attrs["ratio_note"]``); they
        are derived from other columns and their ``inf`` values are not data.

    Returns
    -------
    xarray.Dataset
        ``intensity`` (fragment columns as written), optionally ``ratio``; attrs ``polarity``,
        ``title``, ``n_points``, ``integer_counts``, ``ratio_note``.
    """
    path = existing_file(path)
    if ratios not in ("keep", "skip"):
        raise ToFSIMSError(f"{path}: ratios must be 'keep' or 'skip', not {ratios!r}")
    lines = _lines(path)
    first_data = None
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and all(_is_number(c) for c in cells):
            first_data = i
            break
    if first_data is None or first_data < 2:
        raise ToFSIMSError(f"{path}: no depth-profile header (title, fragment names, sub-headers) before the data")
    width = len(_cells(lines[first_data]))
    header = [_cells(line) for line in lines[:first_data]]
    for i, cells in enumerate(header):
        # a data row with one unreadable number must not pass for a header line (dropping a row)
        numeric = sum(_is_number(c) for c in cells)
        if i >= 1 and numeric >= max(2, len(cells) // 2) and not lines[i].lstrip().startswith("#"):
            bad = next((c for c in cells if not _is_number(c)), "")
            raise ToFSIMSError(f"{path}: line {i + 1}: not a number: {bad[:40]!r} in a data row")
    axes, names, masses = _profile_header(path, header, width)
    table = _numeric_rows(path, lines, first_data, "\t", finite=False)
    if table.shape[1] != width:
        raise ToFSIMSError(f"{path}: data rows have {table.shape[1]} columns, expected {width}")
    first = len(axes)
    is_ratio = np.array([bool(_RATIO.match(n)) for n in names])
    peak_cols = first + np.flatnonzero(~is_ratio)
    ratio_cols = first + np.flatnonzero(is_ratio)

    def where(bad, columns):
        r, c = np.argwhere(bad)[0]
        return f"line {first_data + 1 + int(r) + _blank_before(lines, first_data, int(r))}, column {int(columns[c]) + 1}"

    for cols, what in ((np.arange(first), "axis"), (peak_cols, "intensity")):
        bad = ~np.isfinite(table[:, cols])
        if bad.any():
            raise ToFSIMSError(f"{path}: non-finite {what} value (NaN/inf) at {where(bad, cols)}")
    coords = {}
    for j, kind, units in axes:
        values = table[:, j]
        if kind == "point":
            expected = values[0] + np.arange(values.size)
            if not np.array_equal(values, expected):
                k = int(np.flatnonzero(values != expected)[0])
                raise ToFSIMSError(f"{path}: data point numbers are not consecutive: row {k + 1} says "
                                   f"{values[k]:g}, expected {expected[k]:g} ({values.size} rows)")
            continue
        if kind in ("dose", "fluence") and np.any(values < 0):
            raise ToFSIMSError(f"{path}: negative {kind} in data row {int(np.argmax(values < 0)) + 1}")
        coords[kind] = values, units or {"sputter_time": "s", "dose": "ions", "fluence": "ions/cm^2",
                                          "depth": "nm"}[kind]
    time = coords["sputter_time"][0]
    if np.any(np.diff(time) < 0):
        k = int(np.argmax(np.diff(time) < 0)) + 1
        raise ToFSIMSError(f"{path}: sputter times decrease at data row {k + 1}")
    peak_names = [n for n, r in zip(names, is_ratio) if not r]
    if not peak_names:
        raise ToFSIMSError(f"{path}: only ratio columns, no intensity column")
    intensity = table[:, peak_cols]
    ds = xr.Dataset(
        {"intensity": (("sputter_time", "fragment"), intensity, {"units": "counts"})},
        coords={
            "sputter_time": ("sputter_time", time, {"units": coords["sputter_time"][1]}),
            "fragment": ("fragment", _unique(peak_names)),
            "fragment_mass": ("fragment", masses[~is_ratio],
                              {"units": "u", "note": "peak centre mass from the export header (NaN: N/A)"}),
        },
        attrs={
            "source": os.fspath(path),
            "technique": "ToF-SIMS",
            "format": "IONTOF ASCII depth profile",
            "title": lines[0].strip().lstrip("#").strip(),
            "polarity": polarity_from_names(peak_names),
            "n_points": int(time.size),
            "integer_counts": int(np.all(intensity == np.round(intensity))),
            **_note_negatives({}, intensity),
            **({"simulated": marker} if (marker := marker_in(lines[:first_data])) else {}),
        },
    )
    for kind, (values, units) in coords.items():
        if kind != "sputter_time":
            ds = ds.assign_coords({kind: ("sputter_time", values, {"units": units})})
    ratio_names = [n for n, r in zip(names, is_ratio) if r]
    if ratio_cols.size and ratios == "skip":
        ds.attrs["ratio_note"] = (f"{len(ratio_names)} ratio column(s) A / ( B ) skipped: "
                                  + ", ".join(ratio_names))
    elif ratio_cols.size:
        n_inf = int(np.count_nonzero(~np.isfinite(table[:, ratio_cols])))
        ds["ratio"] = xr.DataArray(
            table[:, ratio_cols], dims=("sputter_time", "ratio_name"),
            coords={"ratio_name": _unique(ratio_names)},
            attrs={"units": "1", "note": "computed by SurfaceLab; inf where the denominator is 0"},
        )
        ds.attrs["ratio_note"] = (f"{len(ratio_names)} ratio column(s) A / ( B ) kept apart as 'ratio', "
                                  f"not as fragments; {n_inf} non-finite value(s) where SurfaceLab divided by 0")
    return ds


def _blank_before(lines, start, row) -> int:
    """Blank lines skipped before data row ``row`` (so error messages give the file's line)."""
    skipped, seen = 0, -1
    for line in lines[start:]:
        if not line.strip():
            skipped += 1
            continue
        seen += 1
        if seen == row:
            return skipped
    return skipped


def write_depth_profile(path, truth: xr.Dataset) -> None:
    """Write summed counts per scan and fragment as a SurfaceLab-style depth-profile export."""
    counts = truth["counts"].sum(("y", "x")).transpose("scan", "fragment").values
    names = [str(n) for n in truth["fragment"].values]
    time = truth["sputter_time"].values
    with atomic_open(path, "w", newline="") as out:
        out.write(f"Depth profile {truth.attrs.get('sample', '')}\r\n")
        out.write(_comment_line(truth, "\r\n"))
        out.write("\t" + "\t".join(names) + "\r\n")
        out.write("Sputter Time\t" + "\t".join(["Intensity"] * len(names)) + "\r\n")
        out.write("[s]\t" + "\t".join(["[counts]"] * len(names)) + "\r\n")
        for t, row in zip(time, counts):
            out.write(f"{t:.4f}\t" + "\t".join(str(int(v)) for v in row) + "\r\n")


# -- image / 3D exports -------------------------------------------------------------------------
#: largest cube (voxels over all fragments) an image export may declare or imply
MAX_VOXELS = 1 << 31


def _image_table(path: Path):
    """``(table, meta, integer)``: the ``x y scan value`` rows and the ``# key: value`` comments.

    Indices must be non-negative integers; values finite: integer counts or (SurfaceLab 7,
    corrected or processed data) non-integer or negative intensities.
    """
    lines = _lines(path)
    meta, start = {}, len(lines)
    for i, line in enumerate(lines):
        if line.startswith("#") or not line.strip():
            if marker_in(line):
                meta["simulated"] = marker_in(line)
            key, _, value = line.lstrip("#").partition(":")
            if value.strip():
                meta[key.strip().lower()] = value.strip()
            continue
        start = i
        break
    # numpy, not pandas: every field is checked and a problem names its line (a hand-written
    # loop over the rows, as for the other exports: the files are at most a few million rows)
    table = _numeric_rows(path, lines, start, None, finite=False) if start < len(lines) else None
    if table is None:
        raise ToFSIMSError(f"{path}: no data rows")
    if table.shape[1] != 4:
        raise ToFSIMSError(f"{path}: {table.shape[1]} columns, expected 4 (x y scan counts)")
    bad = ~np.isfinite(table)
    if bad.any():
        raise ToFSIMSError(f"{path}: non-finite value (NaN/inf) in data row {int(np.argwhere(bad)[0][0]) + 1}")
    index = table[:, :3]
    if np.any(index < 0) or np.any(index != np.round(index)) or np.any(index >= 1 << 31):
        row = int(np.argwhere((index < 0) | (index != np.round(index)) | (index >= 1 << 31))[0][0])
        raise ToFSIMSError(f"{path}: data row {row + 1}: x, y and scan must be non-negative integers")
    integer = bool(np.all(table[:, 3] == np.round(table[:, 3])) and np.all(table[:, 3] >= 0))
    return table, meta, integer


def _meta_number(path, meta, key) -> float | None:
    """The first number of the ``# key:`` comment, or None when the comment is absent."""
    if key not in meta:
        return None
    found = re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", meta[key])
    value = float(found[0]) if found else np.nan
    if not np.isfinite(value) or value <= 0:
        raise ToFSIMSError(f"{path}: '# {key}:' comment {meta[key]!r} is not a positive number")
    return value


def read_image(paths, fragments=None, shape=None) -> xr.Dataset:
    """Image/3D exports (one file per fragment) as ``counts`` (fragment, scan, y, x).

    Parameters
    ----------
    paths : path or list of paths
    fragments : list of str, optional
        Names in the order of ``paths`` (default: ``# Fragment:`` comment or ``name - BO-.txt``).
    shape : (n_scans, ny, nx), optional
        Cube shape (default: from ``# Size:`` comments or the largest indices).

    Returns
    -------
    xarray.Dataset
        ``counts`` (uint32 for integer exports; float64 for SurfaceLab's corrected, non-integer
        or negative intensities, flagged ``integer_counts = 0``), attrs ``polarity`` from the
        fragment names, ``negative_values`` (and ``notes``).
    """
    paths = [existing_file(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if fragments is not None and len(fragments) != len(paths):
        raise ToFSIMSError(f"{paths[0]}: {len(fragments)} fragment names for {len(paths)} image files")
    tables, names, fov, integer, simulated = [], [], None, True, ""
    for k, path in enumerate(paths):
        table, meta, whole = _image_table(path)
        simulated = simulated or meta.get("simulated", "")
        tables.append(table)
        integer &= whole
        name = fragments[k] if fragments else meta.get("fragment") or path.stem.rpartition(" - ")[2] or path.stem
        names.append(str(name))
        fov = _meta_number(path, meta, "field of view") or fov
        if shape is None and "size" in meta:
            dims = [int(v) for v in re.findall(r"\d+", meta["size"])]
            if len(dims) == 3:
                shape = (dims[2], dims[1], dims[0])  # "nx x ny x scans"
    if shape is None:
        stacked = np.concatenate(tables)
        shape = (int(stacked[:, 2].max()) + 1, int(stacked[:, 1].max()) + 1, int(stacked[:, 0].max()) + 1)
    try:
        n_scans, ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ToFSIMSError(f"{paths[0]}: cube shape {shape!r} is not (n_scans, ny, nx)") from None
    if min(n_scans, ny, nx) < 1 or n_scans * ny * nx * len(paths) > MAX_VOXELS:
        raise ToFSIMSError(f"{paths[0]}: absurd cube size {(n_scans, ny, nx)} for {len(paths)} fragment(s)")
    if len(set(names)) != len(names):
        raise ToFSIMSError(f"{paths[0]}: fragment names repeat ({', '.join(names)}); name them with fragments=")
    counts = np.zeros((len(paths), n_scans, ny, nx), np.uint32 if integer else np.float64)
    for k, (path, table) in enumerate(zip(paths, tables)):
        x, y, s = (table[:, i].astype(np.int64) for i in range(3))
        if x.max() >= nx or y.max() >= ny or s.max() >= n_scans:
            raise ToFSIMSError(f"{path}: pixel or scan index outside the {nx} x {ny} x {n_scans} cube")
        flat = (s * ny + y) * nx + x  # a voxel listed twice adds up
        summed = np.bincount(flat, weights=table[:, 3], minlength=n_scans * ny * nx)
        if integer and summed.max(initial=0) >= 1 << 32:
            raise ToFSIMSError(f"{path}: counts beyond the 32-bit range of an image export")
        counts[k] += summed.astype(counts.dtype).reshape(n_scans, ny, nx)
    return make_cube(
        ", ".join(os.fspath(p) for p in paths), counts, names, file_format="IONTOF ASCII image export",
        field_of_view_um=fov or None, polarity=polarity_from_names(names),
        attrs={"integer_counts": int(integer), **_note_negatives({}, counts),
               **({"simulated": simulated} if simulated else {})},
    )


def write_image(path, counts: xr.DataArray, fragment: str, field_of_view_um: float | None = None,
                comment: str = "") -> None:
    """Write one fragment's (scan, y, x) counts as ``x y scan counts`` rows (every voxel), after a
    ``# comment`` line when ``comment`` is given."""
    cube = np.asarray(counts.transpose("scan", "y", "x").values)
    n_scans, ny, nx = cube.shape
    s, y, x = np.meshgrid(np.arange(n_scans), np.arange(ny), np.arange(nx), indexing="ij")
    table = np.column_stack([x.ravel(), y.ravel(), s.ravel(), cube.ravel()]).astype(np.int64)
    fov = field_of_view_um
    if fov is None and "x" in counts.coords and counts["x"].attrs.get("units") == "um":
        fov = float(counts["x"].values[0] * 2 * nx)
    with atomic_open(path, "w", newline="") as out:
        out.write(f"# {' '.join(comment.split())}\n" if comment else "")
        out.write(f"# Fragment: {fragment}\n# Size: {nx} x {ny} x {n_scans}\n")
        if fov:
            out.write(f"# Field of view: {fov:g} um\n")
        out.write("# x\ty\tscan\tcounts\n")
        np.savetxt(out, table, fmt="%d", delimiter="\t")
