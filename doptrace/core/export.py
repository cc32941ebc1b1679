"""Export of map and profile results as TIFF or CSV files, with a JSON sidecar of the axes.

What is exported from a result Dataset:

- *maps*: every numeric data variable whose last two dims are ``(y, x)``, with at most one more
  dim before them (``fragment``, ``element``, ``component`` ...): one 2-D file per label, e.g.
  ``maps_counts_BO-.tif``;
- *profiles*: every numeric data variable over ``scan`` with at most one more dim: one 2-D TIFF
  per variable (labels x scans) or, as CSV, one table ``<stem>_profile.csv`` with the scan
  coordinates (scan, sputter time, depth ...) and one column per variable and label.

TIFF files keep the array's own dtype (uint32 counts, float64 ratios), so reading one back with
``tifffile.imread`` gives the result's array exactly; CSV values are written with 17 significant
digits (``repr``), which reads back to the same float64. ``<stem>_axes.json`` names every file and
gives the variable, label, units, dims, the ``x``/``y`` coordinates with their units and pixel
size, and the per-label coordinates (masses ``fragment_mass``/``mass_low``/``mass_high``, line
energies ...). Files are written atomically; nothing is modified in the Dataset.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_open, atomic_write, write_text
from .errors import DoptraceError

FORMATS = ("tiff", "csv")


class ExportError(DoptraceError):
    """A result that cannot be exported as asked."""


def _safe(text) -> str:
    return re.sub(r"[^A-Za-z0-9+\-._]+", "_", str(text)).strip("_") or "x"


def _label_dim(var, axis_dims) -> str | None:
    extra = [d for d in var.dims if d not in axis_dims]
    return extra[0] if extra else None


def _kind(var) -> str | None:
    if not np.issubdtype(var.dtype, np.number):
        return None
    dims = tuple(var.dims)
    if len(dims) >= 2 and dims[-2:] == ("y", "x") and len(dims) <= 3:
        return "map"
    if "scan" in dims and len(dims) <= 2 and "y" not in dims and "x" not in dims:
        return "profile"
    return None


def _number(value) -> str:
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    value = float(value)
    return repr(value) if np.isfinite(value) else ("nan" if np.isnan(value) else ("inf" if value > 0 else "-inf"))


def _jsonable(values) -> list:
    out = []
    for v in np.asarray(values).ravel().tolist():
        out.append(None if isinstance(v, float) and not np.isfinite(v) else v)
    return out


def _coord_info(ds, name) -> dict:
    coord = ds[name]
    info = {"units": str(coord.attrs.get("units", "")), "values": _jsonable(coord.values)}
    if name in ("x", "y") and coord.size > 1:
        info["pixel_size"] = float(np.median(np.diff(np.asarray(coord.values, float))))
    return info


def _label_coords(ds, dim) -> dict:
    return {str(name): _coord_info(ds, name) for name, c in ds.coords.items() if c.dims == (dim,)}


def export(ds, directory, fmt: str = "tiff", stem: str = "result", variables=None) -> list[Path]:
    """Write the maps and profiles of ``ds`` into ``directory`` as TIFF or CSV, plus the axes sidecar.

    Parameters
    ----------
    ds : xarray.Dataset
        A result (maps over y, x or profiles over scan).
    directory : path-like
        Created when missing.
    fmt : {"tiff", "csv"}
    stem : str
        Start of every file name (e.g. the input file's stem and the command).
    variables : list of str, optional
        Data variables to export (default: every numeric map or profile variable).

    Returns
    -------
    list of pathlib.Path
        The files written, the sidecar ``<stem>_axes.json`` last.

    Raises
    ------
    ExportError
        Unknown format, or nothing in ``ds`` is a map or a profile.
    """
    fmt = str(fmt).lower().replace("tif", "tiff").replace("tifff", "tiff")
    if fmt not in FORMATS:
        raise ExportError(f"export format {fmt!r}: expected tiff or csv")
    directory = Path(directory)
    source = str(ds.attrs.get("source", "result"))
    names = list(variables) if variables else [str(n) for n in ds.data_vars]
    chosen = [(n, _kind(ds[n])) for n in names if n in ds.data_vars]
    chosen = [(n, k) for n, k in chosen if k]
    if not chosen:
        raise ExportError(f"{source}: nothing to export (no map over y, x and no profile over scan)")
    written: list[Path] = []
    entries = []
    profile_columns = []
    for name, kind in chosen:
        var = ds[name]
        axis_dims = ("y", "x") if kind == "map" else ("scan",)
        label_dim = _label_dim(var, axis_dims)
        labels = [str(v) for v in ds[label_dim].values] if label_dim else [None]
        if kind == "profile" and fmt == "csv":
            for k, label in enumerate(labels):
                values = var.isel({label_dim: k}) if label_dim else var
                profile_columns.append((f"{name}[{label}]" if label else name, np.asarray(values.values), var))
            entries.append({"variable": name, "kind": kind, "units": str(var.attrs.get("units", "")),
                            "label_dim": label_dim, "labels": labels, "file": f"{stem}_profile.csv"})
            continue
        if kind == "profile":  # one 2-D TIFF (labels x scans) per variable
            array = np.asarray(var.transpose(*([label_dim] if label_dim else []), "scan").values)
            array = array if array.ndim == 2 else array[None, :]
            path = directory / f"{_safe(stem)}_{_safe(name)}.tif"
            _write_tiff(path, array)
            written.append(path)
            entries.append({"variable": name, "kind": kind, "units": str(var.attrs.get("units", "")),
                            "label_dim": label_dim, "labels": labels, "file": path.name,
                            "dims": [label_dim or "label", "scan"]})
            continue
        for k, label in enumerate(labels):
            image = np.asarray((var.isel({label_dim: k}) if label_dim else var).transpose("y", "x").values)
            suffix = f"_{_safe(label)}" if label else ""
            path = directory / f"{_safe(stem)}_{_safe(name)}{suffix}.{'tif' if fmt == 'tiff' else 'csv'}"
            if fmt == "tiff":
                _write_tiff(path, image)
            else:
                with atomic_open(path, newline="") as handle:
                    writer = csv.writer(handle)
                    for row in image:
                        writer.writerow([_number(v) for v in row])
            written.append(path)
            entries.append({"variable": name, "kind": kind, "label_dim": label_dim, "label": label,
                            "units": str(var.attrs.get("units", "")), "file": path.name, "dims": ["y", "x"],
                            "dtype": str(image.dtype)})
    if profile_columns:
        path = directory / f"{_safe(stem)}_profile.csv"
        scan_coords = [c for c, v in ds.coords.items() if v.dims == ("scan",) and np.issubdtype(v.dtype, np.number)]
        with atomic_open(path, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([f"{c} ({ds[c].attrs.get('units', '')})" for c in scan_coords]
                            + [f"{label} ({var.attrs.get('units', '')})" for label, _, var in profile_columns])
            for i in range(ds.sizes["scan"]):
                writer.writerow([_number(ds[c].values[i]) for c in scan_coords]
                                + [_number(values[i]) for _, values, _ in profile_columns])
        written.append(path)
    axes = {d: _coord_info(ds, d) for d in ("y", "x", "scan") if d in ds.coords}
    for name, c in ds.coords.items():
        if c.dims == ("scan",) and name != "scan" and np.issubdtype(c.dtype, np.number):
            axes[str(name)] = _coord_info(ds, name)
    labels = {}
    for entry in entries:
        dim = entry.get("label_dim")
        if dim and dim not in labels:
            labels[dim] = {"values": [str(v) for v in ds[dim].values], **_label_coords(ds, dim)}
    sidecar = {"source": source, "technique": str(ds.attrs.get("technique", "")), "format": fmt,
               "files": entries, "axes": axes, "labels": labels,
               "note": "TIFF arrays keep the result's dtype; CSV values are written with 17 significant digits"}
    path = directory / f"{_safe(stem)}_axes.json"
    write_text(path, json.dumps(sidecar, indent=1, default=str) + "\n")
    written.append(path)
    return written


def _write_tiff(path: Path, array: np.ndarray) -> None:
    import tifffile

    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, np.ascontiguousarray(array)), suffix=".tif")
