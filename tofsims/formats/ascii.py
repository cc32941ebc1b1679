"""IONTOF SurfaceLab ASCII exports: spectra, depth profiles, image/3D exports (read and write).

Layouts
-------
spectrum
    ``#`` header lines (``# Binning: 200 channels``, ``# Deadtime Correction: on``), a tab-separated
    column header ``Channel  m/z  Intensity``, then one row per (binned) channel; CRLF line ends.
    ``Channel`` is the bin centre in unbinned channels. The ``m/z`` column is kept as the
    coordinate ``mz_file`` only to check a calibration; nothing here uses it.
depth profile
    tab-separated: a title line, a line of fragment names (one per intensity column), two
    sub-header lines, then rows ``sputter time (s), intensity per fragment``.
image / 3D
    one file per fragment, ``#`` comment lines, then whitespace-separated integer columns
    ``x y scan counts``; the fragment comes from a ``# Fragment:`` comment or the file name
    (``name - BO-.txt``).

Every reader checks rows for equal length, numbers for finiteness, and names the file and line
of the first problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .._files import atomic_output, existing_file
from ..errors import ToFSIMSError

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


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _numeric_rows(path: Path, lines: list[str], start: int, sep: str | None) -> np.ndarray:
    """Parse ``lines[start:]`` as a rectangular table of finite numbers (blank lines skipped)."""
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
    if bad.any():
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
        if len(fields) == 4 and all(f.lstrip("-").isdigit() for f in fields):
            return "image"
        break
    if len(lines) > 4 and any(_is_number(f) for f in lines[min(4, len(lines) - 1)].split("\t")[:1]):
        return "profile"
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
    if np.any(intensity < 0):
        raise ToFSIMSError(f"{path}: negative intensities")
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
        },
    )


def write_spectrum(path, ds: xr.Dataset) -> None:
    """Write ``intensity`` over ``channel`` in the SurfaceLab layout (CRLF, integer counts)."""
    channel = ds["channel"].values
    sf, k0 = float(ds.attrs.get("sf", np.nan)), float(ds.attrs.get("k0", np.nan))
    mz = ds["mz_file"].values if "mz_file" in ds.coords else ((channel - k0) / sf) ** 2
    dead = "on" if int(ds.attrs.get("dead_time_corrected", 0)) else "off"
    with atomic_output(path, "w") as out:
        out.write(f"# Binning: {int(ds.attrs.get('binning', 1))} channels\r\n# Deadtime Correction: {dead}\r\n")
        out.write("Channel\tm/z\tIntensity\r\n")
        out.writelines(
            f"{c:.0f}\t{m:.6f}\t{int(round(v))}\r\n" for c, m, v in zip(channel, mz, ds["intensity"].values)
        )


# -- depth profiles -----------------------------------------------------------------------------
def read_depth_profile(path) -> xr.Dataset:
    """A depth-profile export as ``intensity`` over (``sputter_time``, ``fragment``)."""
    path = existing_file(path)
    lines = _lines(path)
    first_data = next(
        (i for i, ln in enumerate(lines) if ln.strip() and all(_is_number(f) for f in ln.split("\t") if f.strip())),
        None,
    )
    if first_data is None or first_data < 2:
        raise ToFSIMSError(f"{path}: no depth-profile header (title, fragment names, sub-headers) before the data")
    table = _numeric_rows(path, lines, first_data, "\t")
    n_frag = table.shape[1] - 1
    if n_frag < 1:
        raise ToFSIMSError(f"{path}: depth profile needs a time column and at least one fragment column")
    names = None
    for line in lines[1:first_data]:
        fields = [f.strip() for f in line.split("\t")]
        nonempty = [f for f in fields if f]
        if len(nonempty) == n_frag and not any(_is_number(f) for f in nonempty):
            names = nonempty
            break
        if len(nonempty) == n_frag + 1 and not any(_is_number(f) for f in nonempty):
            names = nonempty[1:]
            break
    if names is None:
        raise ToFSIMSError(f"{path}: no line of {n_frag} fragment names in the header")
    time = table[:, 0]
    if np.any(np.diff(time) < 0):
        raise ToFSIMSError(f"{path}: sputter times decrease")
    return xr.Dataset(
        {"intensity": (("sputter_time", "fragment"), table[:, 1:], {"units": "counts"})},
        coords={"sputter_time": ("sputter_time", time, {"units": "s"}), "fragment": ("fragment", names)},
        attrs={
            "source": os.fspath(path),
            "technique": "ToF-SIMS",
            "format": "IONTOF ASCII depth profile",
            "title": lines[0].strip(),
        },
    )


def write_depth_profile(path, truth: xr.Dataset) -> None:
    """Write summed counts per scan and fragment as a SurfaceLab-style depth-profile export."""
    counts = truth["counts"].sum(("y", "x")).transpose("scan", "fragment").values
    names = [str(n) for n in truth["fragment"].values]
    time = truth["sputter_time"].values
    with atomic_output(path, "w") as out:
        out.write(f"Depth profile {truth.attrs.get('sample', '')}\r\n")
        out.write("\t" + "\t".join(names) + "\r\n")
        out.write("Sputter Time\t" + "\t".join(["Intensity"] * len(names)) + "\r\n")
        out.write("[s]\t" + "\t".join(["[counts]"] * len(names)) + "\r\n")
        for t, row in zip(time, counts):
            out.write(f"{t:.4f}\t" + "\t".join(str(int(v)) for v in row) + "\r\n")


# -- image / 3D exports -------------------------------------------------------------------------
def _image_table(path: Path):
    meta, start = {}, 0
    with open(path, encoding="latin-1") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                key, _, value = line.lstrip("#").partition(":")
                if value:
                    meta[key.strip().lower()] = value.strip()
                start += 1
                continue
            break
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, skiprows=start, comment="#", dtype=float, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f"line {match.group(1)}" if match else "a data row"
        raise ToFSIMSError(f"{path}: ragged rows or non-numeric field at {where} (expected x y scan counts)") from None
    except pd.errors.EmptyDataError:
        raise ToFSIMSError(f"{path}: no data rows") from None
    table = frame.to_numpy()
    if table.shape[1] != 4:
        raise ToFSIMSError(f"{path}: {table.shape[1]} columns, expected 4 (x y scan counts)")
    if np.isnan(table).any():
        row = int(np.argwhere(np.isnan(table))[0][0])
        raise ToFSIMSError(f"{path}: ragged rows: data row {row + 1} has fewer than 4 columns")
    if np.any(table < 0) or np.any(table != np.round(table)):
        raise ToFSIMSError(f"{path}: x, y, scan and counts must be non-negative integers")
    return table.astype(np.int64), meta


def read_image(paths, fragments=None, shape=None) -> xr.Dataset:
    """Image/3D exports (one file per fragment) as ``counts`` (fragment, scan, y, x).

    Parameters
    ----------
    paths : path or list of paths
    fragments : list of str, optional
        Names in the order of ``paths`` (default: ``# Fragment:`` comment or ``name - BO-.txt``).
    shape : (n_scans, ny, nx), optional
        Cube shape (default: from ``# Size:`` comments or the largest indices).
    """
    paths = [existing_file(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    tables, names, fov = [], [], None
    for k, path in enumerate(paths):
        table, meta = _image_table(path)
        tables.append(table)
        name = fragments[k] if fragments else meta.get("fragment") or path.stem.rpartition(" - ")[2] or path.stem
        names.append(name)
        if "field of view" in meta:
            fov = float(re.findall(r"[\d.eE+-]+", meta["field of view"])[0])
        if shape is None and "size" in meta:
            dims = [int(v) for v in re.findall(r"\d+", meta["size"])]
            if len(dims) == 3:
                shape = (dims[2], dims[1], dims[0])  # "nx x ny x scans"
    if shape is None:
        stacked = np.concatenate(tables)
        shape = (int(stacked[:, 2].max()) + 1, int(stacked[:, 1].max()) + 1, int(stacked[:, 0].max()) + 1)
    n_scans, ny, nx = shape
    if n_scans * ny * nx * len(paths) > 1 << 31:
        raise ToFSIMSError(f"{paths[0]}: absurd cube size {shape} for {len(paths)} fragments")
    counts = np.zeros((len(paths), n_scans, ny, nx), np.uint32)
    for k, (path, table) in enumerate(zip(paths, tables)):
        x, y, s, c = table.T
        if x.max() >= nx or y.max() >= ny or s.max() >= n_scans:
            raise ToFSIMSError(f"{path}: pixel or scan index outside the {nx} x {ny} x {n_scans} cube")
        flat = (s * ny + y) * nx + x  # a voxel listed twice adds up
        summed = np.bincount(flat, weights=c, minlength=n_scans * ny * nx)
        counts[k] += summed.astype(np.uint32).reshape(n_scans, ny, nx)
    pixel = fov / nx if fov else 1.0
    unit = "um" if fov else "pixel"
    return xr.Dataset(
        {"counts": (("fragment", "scan", "y", "x"), counts, {"units": "counts"})},
        coords={
            "fragment": ("fragment", names),
            "scan": ("scan", np.arange(n_scans, dtype=np.int64), {"units": "1"}),
            "y": ("y", (np.arange(ny) + 0.5) * pixel, {"units": unit}),
            "x": ("x", (np.arange(nx) + 0.5) * pixel, {"units": unit}),
        },
        attrs={
            "source": ", ".join(os.fspath(p) for p in paths),
            "technique": "ToF-SIMS",
            "format": "IONTOF ASCII image export",
            "field_of_view_um": float(fov) if fov else float("nan"),
            "dead_time_corrected": 0,
        },
    )


def write_image(path, counts: xr.DataArray, fragment: str, field_of_view_um: float | None = None) -> None:
    """Write one fragment's (scan, y, x) counts as ``x y scan counts`` rows (every voxel)."""
    cube = np.asarray(counts.transpose("scan", "y", "x").values)
    n_scans, ny, nx = cube.shape
    s, y, x = np.meshgrid(np.arange(n_scans), np.arange(ny), np.arange(nx), indexing="ij")
    table = np.column_stack([x.ravel(), y.ravel(), s.ravel(), cube.ravel()]).astype(np.int64)
    fov = field_of_view_um
    if fov is None and "x" in counts.coords and counts["x"].attrs.get("units") == "um":
        fov = float(counts["x"].values[0] * 2 * nx)
    with atomic_output(path, "w") as out:
        out.write(f"# Fragment: {fragment}\n# Size: {nx} x {ny} x {n_scans}\n")
        if fov:
            out.write(f"# Field of view: {fov:g} um\n")
        out.write("# x\ty\tscan\tcounts\n")
        np.savetxt(out, table, fmt="%d", delimiter="\t")
