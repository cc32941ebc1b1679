"""``xps.read`` (any supported file -> list of spectra) and ``xps.stack_series`` (etch series)."""

from __future__ import annotations

import inspect
import math
import os

import numpy as np
import xarray as xr

from .errors import XPSError
from .formats import reader_for
from .formats._spectrum import require_binding_energy

_PER_LEVEL_ATTRS = ("etch_time", "block_index", "counts_per_unit", "comment", "experimental_variables",
                    "block_id", "date", "sample", "dwell_time", "scans", "notes", "negative_values")


def read(path: str | os.PathLike, **kwargs) -> list[xr.DataArray]:
    """Read an XPS file into one DataArray per block/region.

    The format is chosen by content sniffing, then by extension (``.vms``, ``.csv``, ``.txt``,
    ``.xy``, ``.xlsx``). Each DataArray has dims ``("binding_energy",)`` (eV, ascending), values
    in counts per second when dwell and scans are known (else counts), and attrs ``region``,
    ``sample``, ``source``, ``block_index``, ``excitation_energy``, ``pass_energy``,
    ``dwell_time``, ``scans``, ``counts_per_unit`` (raw counts = values x counts_per_unit),
    ``etch_time`` (s, NaN if unknown), ``experimental_variables``, ``comment``, ``technique``,
    ``abscissa``, ``negative_values`` (points below zero: accepted, processed data), ``notes``
    (what the reader noticed, sentences joined by "; "); a ``transmission`` coord when the file
    stores one. AES spectra (VAMAS technique AES, or XPS with source energy 0 on a kinetic
    abscissa) keep dims ``("kinetic_energy",)`` and ``technique`` "AES"; fits, series and
    quantification refuse them. The full reader contract is in ``xps/formats/_spectrum.py``.

    Parameters
    ----------
    path : path-like
        The file; opened read-only.
    **kwargs
        Passed to the format's reader: ``progress=True`` (VAMAS; ignored elsewhere),
        ``excitation_energy=`` / ``abscissa=`` / ``region=`` (text and Excel tables).

    Raises
    ------
    XPSError
        "<path>: <problem>" for unreadable, unrecognised or malformed files.

    Returns
    -------
    list of xarray.DataArray
        One spectrum per block, in file order.

    Examples
    --------
    A VAMAS etch series written by the simulator (B 1s and O 1s at three etch levels):

    >>> from doptrace import xps
    >>> truth = xps.simulate_series("series.vms", etch_times=[0.0, 100.0, 200.0], regions=("B 1s", "O 1s"))
    >>> blocks = xps.read("series.vms")
    >>> [(b.attrs["region"], b.attrs["etch_time"]) for b in blocks[:3]]
    [('B 1s', 0.0), ('O 1s', 0.0), ('B 1s', 100.0)]
    >>> blocks[0].dims, blocks[0].attrs["units"], blocks[0].attrs["excitation_energy"]
    (('binding_energy',), 'counts/s', 1486.6)
    """
    module = reader_for(path)
    accepted = inspect.signature(module.read).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted or k != "progress"}  # progress: where supported
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        fmt = module.__name__.rsplit(".", 1)[-1]
        raise XPSError(f"{path}: option(s) {', '.join(unknown)} do not apply to {fmt} files")
    blocks = module.read(path, **kwargs)
    if not blocks:
        raise XPSError(f"{path}: no spectra found")
    return blocks


def _norm(text: str) -> str:
    return " ".join(str(text).split()).lower()


def _level(block: xr.DataArray, by: str) -> float:
    if by == "etch_time":
        return float(block.attrs.get("etch_time", math.nan))
    variables = block.attrs.get("experimental_variables") or {}
    for label, value in variables.items():
        if _norm(label) == _norm(by):
            try:
                return float(value)
            except (TypeError, ValueError):
                return math.nan
    return math.nan


def _by_units(block: xr.DataArray, by: str) -> str:
    if by == "etch_time":
        return "s"
    units = block.attrs.get("experimental_variable_units") or {}
    for label, unit in units.items():
        if _norm(label) == _norm(by):
            unit = str(unit).strip()
            return {"d": "1", "n": "1", "": "1", "degree": "degree"}.get(unit, unit)
    return "1"


def stack_series(blocks: list[xr.DataArray], region: str, by: str = "etch_time") -> xr.DataArray:
    """Stack the blocks of one region into a 2-D series over ``by`` and ``binding_energy``.

    Parameters
    ----------
    blocks : list of DataArray
        As returned by :func:`read` (any mix of regions).
    region : str
        Region name, e.g. ``"B 1s"`` (case and spacing ignored).
    by : str
        ``"etch_time"`` (s, from ``attrs["etch_time"]``) or any experimental-variable label
        (e.g. ``"Angle"``); the new dimension takes this name.

    Returns
    -------
    DataArray
        dims ``(by, "binding_energy")`` sorted by ``by``; coords ``counts_per_unit`` and
        ``block_index`` over ``by``. When energy grids differ, every level is interpolated onto
        the first level's grid restricted to the range all levels cover.

    Examples
    --------
    >>> series = stack_series(xps.read("depth.vms"), "B 1s")  # doctest: +SKIP
    >>> series.dims  # doctest: +SKIP
    ('etch_time', 'binding_energy')
    """
    chosen = [b for b in blocks if _norm(b.attrs.get("region", "")) == _norm(region)]
    source = blocks[0].attrs.get("source", "") if blocks else ""
    if not chosen:
        present = sorted({str(b.attrs.get("region", "")) for b in blocks})
        raise XPSError(f"{source}: no blocks of region {region!r} (regions present: {', '.join(present)})")
    for b in chosen:
        require_binding_energy(b, "an energy series over binding energy")
    levels = np.array([_level(b, by) for b in chosen])
    if np.any(np.isnan(levels)):
        missing = [int(b.attrs.get("block_index", i)) for i, b in enumerate(chosen) if math.isnan(levels[i])]
        raise XPSError(f"{source}: region {region!r}: block(s) {missing} have no {by!r} value")
    order = np.argsort(levels, kind="stable")
    levels = levels[order]
    chosen = [chosen[i] for i in order]
    if np.unique(levels).size != levels.size:
        dup = levels[np.nonzero(np.diff(levels) == 0)[0][0]]
        raise XPSError(f"{source}: region {region!r}: several blocks share {by} = {dup:g}")
    units = {b.attrs.get("units") for b in chosen}
    if len(units) > 1:
        raise XPSError(f"{source}: region {region!r}: blocks mix intensity units {sorted(units)}")
    grids = [np.asarray(b["binding_energy"].values) for b in chosen]
    lo = max(g[0] for g in grids)
    hi = min(g[-1] for g in grids)
    if lo >= hi:
        raise XPSError(f"{source}: region {region!r}: the blocks' energy ranges do not overlap")
    first = grids[0]
    same = all(g.shape == first.shape and np.allclose(g, first, rtol=0, atol=1e-9) for g in grids)
    if same:
        grid = first
        data = np.stack([b.values for b in chosen])
        trans = [b["transmission"].values for b in chosen] if all("transmission" in b.coords for b in chosen) else None
    else:
        grid = first[(first >= lo - 1e-9) & (first <= hi + 1e-9)]
        data = np.stack([np.interp(grid, g, b.values) for g, b in zip(grids, chosen)])
        trans = ([np.interp(grid, g, b["transmission"].values) for g, b in zip(grids, chosen)]
                 if all("transmission" in b.coords for b in chosen) else None)
    attrs = {k: v for k, v in chosen[0].attrs.items() if k not in _PER_LEVEL_ATTRS}
    attrs["series_by"] = by
    attrs["interpolated"] = int(not same)
    coords = {
        by: (by, levels, {"units": _by_units(chosen[0], by)}),
        "binding_energy": ("binding_energy", grid, {"units": "eV", "long_name": "binding energy"}),
        "counts_per_unit": (by, np.array([float(b.attrs.get("counts_per_unit", 1.0)) for b in chosen]),
                            {"units": "s" if chosen[0].attrs.get("units") == "counts/s" else "1"}),
        "block_index": (by, np.array([int(b.attrs.get("block_index", -1)) for b in chosen]), {"units": "1"}),
    }
    if trans is not None:
        coords["transmission"] = ((by, "binding_energy"), np.stack(trans), {"units": "1"})
    return xr.DataArray(data, dims=(by, "binding_energy"), coords=coords, attrs=attrs, name="intensity")
