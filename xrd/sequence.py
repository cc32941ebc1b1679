"""Sequential refinement of a series of patterns (in-situ charge/discharge scans).

Each pattern starts from the previous result (first pattern: the recipe's full staging; later
patterns: the recipe's final cumulative stage). The layered phase's lattice parameters and the
(003) and (101) peak positions are tracked with esds against scan index (and time when files say).

Example
-------
>>> ds = sequence(load_recipe("examples/xrd/li-rich-two-phase.toml"), ["scan1.xye", "scan2.xye"])  # doctest: +SKIP
>>> ds.peak_003.values                                                                           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from .errors import XRDError
from .rietveld import CELL_NAMES, CELL_UNITS, run

TRACKED = ((0, 0, 3), (1, 0, 1))


def layered_phase(model) -> int:
    """Index of the layered (R-3m) phase, or of the first phase when there is none."""
    for k, phase in enumerate(model.phases):
        if phase.spacegroup.number == 166:
            return k
    return 0


def peak_positions(model, values, covariance, names, k: int, hkls=TRACKED):
    """Ka1 positions (deg) of ``hkls`` in phase ``k`` and their esds (propagated, numerical gradient)."""
    from .profiles import peak_position
    from .reflections import inverse_d_squared

    def positions(vals):
        d = 1.0 / np.sqrt(inverse_d_squared(model.cell(k, vals), np.array(hkls, float)))
        return peak_position(d, model.lam1, vals["zero"], vals["displacement"], model.inst.radius_mm)

    base = positions(values)
    grad = np.zeros((len(hkls), len(names)))
    for j, name in enumerate(names):
        if model.parameters[name].group in ("cell", "zero", "displacement"):
            h = model.parameters[name].step
            grad[:, j] = (positions({**values, name: values[name] + h}) -
                          positions({**values, name: values[name] - h})) / (2 * h)
    err = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", grad, covariance, grad), 0, None))
    return base, err


_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S",
                 "%d-%b-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S")


def scan_time(pattern) -> float:
    """Acquisition time of a pattern (s since the epoch, or a plain number of seconds) from its
    metadata: a numeric ``time_s``/``elapsed_s`` attribute, an ISO ``start_time``/``timestamp``, or
    Bruker RAW ``date`` + ``time`` strings; NaN when the file says nothing usable."""
    from datetime import datetime, timezone

    attrs = pattern.attrs
    for key in ("time_s", "elapsed_s", "time"):
        value = attrs.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            return float(value)
    texts = [str(attrs[k]) for k in ("start_time", "timestamp", "start") if attrs.get(k)]
    if attrs.get("date"):
        texts.append(f"{str(attrs['date']).strip()} {str(attrs.get('time', '00:00:00')).strip()}")
    for text in texts:
        text = text.strip().replace("Z", "")
        text = text.split(".")[0] if "T" in text else text
        text = text[:19] if "T" in text else text
        for fmt in _TIME_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                continue
    return float("nan")


def sequence(recipe, patterns, progress: bool = False) -> xr.Dataset:
    """Refine ``patterns`` (DataArrays or file paths) in order, each from the previous result.

    Returns
    -------
    xarray.Dataset
        Over ``scan`` (and ``phase``/``site``): cell parameters, ``rwp``, ``gof``, ``peak_003``,
        ``peak_101`` (deg) of the layered phase, dopant fractions, each fitted one with ``_stderr``.
    """
    from .read import read

    if not patterns:
        raise XRDError(f"{recipe.path}: no patterns to refine in sequence")
    rows = []
    previous = None
    final = [recipe.cumulative_groups()[-1]]
    for number, item in enumerate(tqdm(list(patterns), desc="sequence", unit="scan", disable=not progress)):
        pattern = read(item) if isinstance(item, (str, Path)) else item
        result = run(recipe, pattern, start=previous, stages=None if previous is None else final)
        previous = result.values
        ds = result.dataset
        k = layered_phase(result.model)
        pos, pos_err = peak_positions(result.model, result.values, result.fit.covariance, result.fit.names, k)
        rows.append((pattern.attrs.get("source", f"scan {number}"), scan_time(pattern), ds, pos, pos_err,
                     result.model.phases[k].name))
    first = rows[0][2]
    n = len(rows)
    data = {}
    for name, units in zip(CELL_NAMES, CELL_UNITS):
        for suffix in ("", "_stderr"):
            data[name + suffix] = (("scan", "phase"), np.array([r[2][name + suffix].values for r in rows]),
                                   {"units": units})
    for name in ("weight_fraction", "weight_fraction_stderr"):
        data[name] = (("scan", "phase"), np.array([r[2][name].values for r in rows]), {"units": "1"})
    if first.sizes.get("site", 0):
        for name in ("dopant_fraction", "dopant_fraction_stderr"):
            data[name] = (("scan", "site"), np.array([r[2][name].values for r in rows]), {"units": "1"})
    for name, units in (("rwp", "%"), ("gof", "1")):
        data[name] = ("scan", np.array([float(r[2][name]) for r in rows]), {"units": units})
    for j, hkl in enumerate(TRACKED):
        label = "peak_" + "".join(str(v) for v in hkl)
        data[label] = ("scan", np.array([r[3][j] for r in rows]), {
            "units": "deg", "long_name": f"({' '.join(map(str, hkl))}) Ka1 position of {rows[0][5]}"})
        data[label + "_stderr"] = ("scan", np.array([r[4][j] for r in rows]), {"units": "deg"})
        data[label + "_shift"] = ("scan", data[label][1] - data[label][1][0], {"units": "deg"})
    ds = xr.Dataset(data, coords={
        "scan": ("scan", np.arange(n), {"units": "1"}),
        "time": ("scan", np.array([r[1] for r in rows]) - rows[0][1], {
            "units": "s", "long_name": "acquisition time since the first scan (NaN when the files do not say)"}),
        "file": ("scan", np.array([str(r[0]) for r in rows], dtype=object)),
        "phase": first["phase"].values,
        **({"site": first["site"].values} if first.sizes.get("site", 0) else {}),
    })
    fitted = ["a", "b", "c", "alpha", "beta", "gamma", "weight_fraction", "peak_003", "peak_101"]
    if "dopant_fraction" in ds:
        fitted.append("dopant_fraction")
    ds.attrs.update({"technique": "XRD", "engine": "builtin", "source": " ".join(str(r[0]) for r in rows),
                     "recipe": str(recipe.path), "fitted": " ".join(fitted), "layered_phase": rows[0][5]})
    return ds
