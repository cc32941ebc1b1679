"""Custom mass intervals: maps and profiles of any m/z range, not only the file's peak list.

An interval is given as ``NAME=LOW:HIGH`` (u), ``LOW:HIGH``, ``CENTRE±HALF`` or ``CENTRE+-HALF``
(``NAME=`` optional everywhere; an unnamed interval is called by its range). Where the counts come
from depends on what the file holds:

- an ITM file (``rawdata`` ion streams) or an event list keeps every ion's time of flight, so any
  interval is histogrammed from the raw events with the file's mass calibration
  (:func:`doptrace.tofsims.formats.itm.read`);
- an ITA file holds only the images of the mass intervals SurfaceLab reduced it to (its peak
  list); an interval equal to one of those (to 1e-4 u) is read from its image, any other one is
  refused with an error naming the file: the ions outside the peak list are summed into one
  "rest" image and cannot be split again.

>>> w = parse_intervals(["BO-=26.98:27.03", "27.0048±0.02"])
>>> [str(n) for n in w["fragment"].values], [round(float(v), 4) for v in w["mass_low"].values]
(['BO-', '26.9848-27.0248'], [26.98, 26.9848])
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from .errors import ToFSIMSError

#: a peak-list interval matches a requested one when both bounds agree to this (u)
MATCH_U = 1e-4
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_interval(text: str) -> tuple[str, float, float]:
    """``(name, low, high)`` in u from one ``NAME=LOW:HIGH`` or ``CENTRE±HALF`` text.

    Examples
    --------
    >>> parse_interval("BO-=26.98:27.03")
    ('BO-', 26.98, 27.03)
    >>> parse_interval("27.0+-0.05")
    ('26.95-27.05', 26.95, 27.05)
    """
    raw = str(text).strip()
    name, sep, spec = raw.rpartition("=")
    name = name.strip() if sep else ""
    spec = spec.strip().replace(" ", "")
    ranged = re.fullmatch(rf"({_NUMBER})[:](\s*{_NUMBER})", spec)
    centred = re.fullmatch(rf"({_NUMBER})(?:±|\+-|\+/-)({_NUMBER})", spec)
    if ranged:
        low, high = float(ranged.group(1)), float(ranged.group(2))
    elif centred:
        centre, half = float(centred.group(1)), abs(float(centred.group(2)))
        low, high = centre - half, centre + half
    else:
        raise ToFSIMSError(f"mass interval {raw!r}: expected NAME=LOW:HIGH or CENTRE±HALF in u, "
                           "e.g. BO-=26.98:27.03 or 27.0048±0.02")
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise ToFSIMSError(f"mass interval {raw!r}: needs 0 < low < high (got {low:g}:{high:g} u)")
    return name or f"{low:.6g}-{high:.6g}", low, high


def parse_intervals(items) -> xr.Dataset:
    """Mass windows (``fragment``, ``fragment_mass``, ``mass_low``, ``mass_high``) from interval texts.

    Parameters
    ----------
    items : str or list of str
        One text per interval; a single string may hold several separated by ``;`` or by ``,``
        between complete intervals.
    """
    if isinstance(items, str):
        items = [items]
    texts = []
    for item in items or []:
        texts += [t for t in re.split(r"[;,](?=\s*[^,;]*(?:=|:|±|\+-))", str(item)) if t.strip()]
    if not texts:
        raise ToFSIMSError("no mass interval given")
    parsed = [parse_interval(t) for t in texts]
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise ToFSIMSError(f"mass intervals: a name is given twice ({', '.join(names)})")
    low = np.array([p[1] for p in parsed])
    high = np.array([p[2] for p in parsed])
    return xr.Dataset(coords={
        "fragment": ("fragment", names),
        "fragment_mass": ("fragment", (low + high) / 2, {"units": "u"}),
        "mass_low": ("fragment", low, {"units": "u"}),
        "mass_high": ("fragment", high, {"units": "u"}),
    })


def disjoint_groups(windows: xr.Dataset) -> list[list[int]]:
    """Indices of ``windows`` split into groups whose intervals do not overlap (first fit by low edge).

    Examples
    --------
    >>> disjoint_groups(parse_intervals(["a=1:3", "b=2:4", "c=3:5"]))
    [[0, 2], [1]]
    """
    low, high = np.asarray(windows["mass_low"].values, float), np.asarray(windows["mass_high"].values, float)
    groups: list[list[int]] = []
    ends: list[float] = []
    for k in np.argsort(low, kind="stable"):
        for g, end in enumerate(ends):
            if low[k] >= end:
                groups[g].append(int(k))
                ends[g] = high[k]
                break
        else:
            groups.append([int(k)])
            ends.append(high[k])
    return [sorted(g) for g in groups]


def read_intervals(path, windows: xr.Dataset, *, progress: bool = False) -> xr.Dataset:
    """An image stack of the given mass intervals from an ITA/ITM file.

    Parameters
    ----------
    path : path-like
        ``.ita``/``.itm`` file.
    windows : xarray.Dataset
        From :func:`parse_intervals`.
    progress : bool
        Progress bar over the raw-data scans.

    Returns
    -------
    xarray.Dataset
        As :func:`doptrace.tofsims.read` (``counts`` over fragment = the intervals' names).

    Raises
    ------
    ToFSIMSError
        The file holds no raw data and an interval is not one of its peak list's intervals.
    """
    from .formats import detect, itm, itstr
    from .formats._iontof import FIRST_FRAGMENT_ID, peak_list
    from .formats.ita import read as read_ita

    if detect(path) != "ita":
        raise ToFSIMSError(f"{path}: custom mass intervals are read from IONTOF ITA/ITM files (raw data or peak "
                           "list); for an event list pass windows= to doptrace.tofsims.read")
    with itstr.ITStrFile(path) as f:
        raw = itm.has_raw_data(f)
        peaks = [p for p in peak_list(f) if p["id"] >= FIRST_FRAGMENT_ID]
    if raw:
        # one channel belongs to one window in the raw-data histogram (a lookup table), so
        # overlapping intervals are read in groups of disjoint ones, one pass over the ions each
        parts = [itm.read(path, windows=windows.isel(fragment=group), progress=progress)
                 for group in disjoint_groups(windows)]
        ds = parts[0] if len(parts) == 1 else xr.concat(parts, "fragment", data_vars="minimal", coords="minimal",
                                                        compat="override", combine_attrs="override")
        ds = ds.sel(fragment=[str(n) for n in windows["fragment"].values])
        ds.attrs["mass_intervals"] = "custom, histogrammed from the raw ion data"
        return ds
    names = [str(n) for n in windows["fragment"].values]
    low, high = np.asarray(windows["mass_low"].values, float), np.asarray(windows["mass_high"].values, float)
    chosen, missing = [], []
    for name, lo, hi in zip(names, low, high):
        match = [p for p in peaks if abs(p["lmass"] - lo) <= MATCH_U and abs(p["umass"] - hi) <= MATCH_U]
        if match:
            chosen.append(match[0]["name"])
        else:
            missing.append(f"{name} ({lo:g}-{hi:g} u)")
    if missing:
        have = ", ".join(f"{p['name']} {p['lmass']:.4f}-{p['umass']:.4f}" for p in peaks) or "none"
        raise ToFSIMSError(
            f"{path}: this ITA file holds only the images of its peak list, no raw ion data, so the mass "
            f"interval(s) {', '.join(missing)} cannot be cut from it; export an ITM file with raw data (or re-reduce "
            f"the ITA in SurfaceLab with these intervals). Peak-list intervals: {have}")
    ds = read_ita(path, fragments=chosen, progress=progress)
    ds = ds.assign_coords(fragment=("fragment", names))
    ds.attrs["mass_intervals"] = "custom, matched to the file's peak list"
    return ds
