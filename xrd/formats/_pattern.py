"""The one place a reader turns arrays into the shared powder-pattern ``xarray.DataArray``.

Every reader calls :func:`make_pattern`, so the checks (finite, non-empty, monotonic angles,
physical counts) and the layout (dims, units, attrs) are the same for every format.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import XRDError

#: Largest file any text or binary reader loads whole; powder patterns are far smaller.
MAX_FILE_BYTES = 512 * 1024 * 1024


def fail(path, problem: str) -> XRDError:
    """The package's error with the message ``"<path>: <problem>"``."""
    return XRDError(f"{path}: {problem}")


def read_bytes(path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Whole file contents (read-only), refusing a missing, empty or oversized file."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise fail(path, f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise fail(path, "file is empty")
    if size > limit:
        raise fail(path, f"file is {size} bytes, more than the {limit}-byte limit for a powder pattern")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None


def read_text(path, limit: int = MAX_FILE_BYTES) -> str:
    """Whole file as text; latin-1 never fails, which suits old instrument formats."""
    data = read_bytes(path, limit)
    if b"\x00" in data[:4096]:
        raise fail(path, "binary content where a text file was expected")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def make_pattern(
    two_theta,
    counts,
    esd=None,
    *,
    path,
    fmt: str,
    wavelength: float = math.nan,
    wavelength2: float = math.nan,
    ka2_ratio: float = math.nan,
    range_index: int = 0,
    n_ranges: int = 1,
    sample: str = "",
    count_time: float = math.nan,
    counts_kind: str = "counts",
    step: float | None = None,
    esd_rule: str | None = None,
    extra: dict | None = None,
) -> xr.DataArray:
    """Checked powder pattern over ``two_theta``.

    Parameters
    ----------
    two_theta, counts : array_like
        Angles (deg) and intensities, same length.
    esd : array_like, optional
        Standard deviations from the file; default sqrt(counts).  An esd of 0 (zero counts, or a
        zero esd in the file) marks a point that carries no weight: GSAS-II weighs such points 0,
        and :func:`xrd.read.weights` does the same.
    step : float, optional
        Nominal step (deg) when the file states one; default the mean spacing.
    esd_rule : str, optional
        How the esds were obtained, stored as an attribute (default describes the two cases).
    counts_kind : {"counts", "intensity"}
        "counts" refuses negative values (a detector cannot count below zero); "intensity"
        (processed xy data) allows them but then needs esds from the file, and records how many in
        ``attrs["negative_values"]`` with a sentence in ``attrs["notes"]`` (the policy every doptrace
        reader follows).

    Returns
    -------
    xarray.DataArray
        dims ``("two_theta",)``, coords ``two_theta`` (deg) and ``esd`` (counts), attrs as in the
        XRD reader contract.
    """
    x = np.asarray(two_theta, dtype=float).ravel()
    y = np.asarray(counts, dtype=float).ravel()
    label = f"range {range_index + 1}: " if n_ranges > 1 else ""
    if x.size == 0 or y.size == 0:
        raise fail(path, f"{label}no data points")
    if x.size != y.size:
        raise fail(path, f"{label}{x.size} angles but {y.size} intensities")
    if not np.all(np.isfinite(x)):
        raise fail(path, f"{label}2theta value {x[~np.isfinite(x)][0]} at point {int(np.argmin(np.isfinite(x))) + 1} is not finite")
    bad = ~np.isfinite(y)
    if bad.any():
        raise fail(path, f"{label}intensity at 2theta={x[bad][0]:g} deg (point {int(np.argmax(bad)) + 1}) is {y[bad][0]}: NaN/inf counts")
    if np.any(x <= -180.0) or np.any(x >= 180.0):
        raise fail(path, f"{label}2theta outside (-180, 180) deg (min {x.min():g}, max {x.max():g}): not an angle scan")
    if x.size > 1:
        dx = np.diff(x)
        if np.all(dx < 0):
            x, y = x[::-1], y[::-1]
            esd = None if esd is None else np.asarray(esd, dtype=float).ravel()[::-1]
            dx = -dx[::-1]
        if not np.all(dx > 0):
            i = int(np.argmax(dx <= 0))
            raise fail(path, f"{label}2theta is not strictly increasing at point {i + 2} ({x[i]:g} then {x[i + 1]:g} deg)")
    if esd is None:
        if counts_kind != "counts" and np.any(y < 0):
            raise fail(path, f"{label}negative intensities without esds: cannot weight them")
        e = np.sqrt(np.clip(y, 0.0, None))
        rule = "sqrt(counts); esd 0 (zero counts) means weight 0, as in GSAS-II"
    else:
        e = np.asarray(esd, dtype=float).ravel()
        if e.size != y.size:
            raise fail(path, f"{label}{y.size} intensities but {e.size} esds")
        badesd = ~np.isfinite(e)
        if badesd.any():
            raise fail(path, f"{label}esd at 2theta={x[badesd][0]:g} deg is {e[badesd][0]}: NaN/inf esd")
        if np.any(e < 0):
            raise fail(path, f"{label}negative esd at 2theta={x[e < 0][0]:g} deg")
        e = e.copy()
        rule = "from the file; esd 0 means weight 0, as in GSAS-II"
    if counts_kind == "counts" and np.any(y < 0):
        # one policy for every doptrace reader (NEGATIVE_COUNTS): a detector cannot count below zero
        i = int(np.argmin(y))
        raise fail(path, f"{label}negative counts ({y[i]:g}) at 2theta={x[i]:g} deg (point {i + 1}): a detector cannot count below zero")
    negative = int(np.count_nonzero(y < 0))
    notes = [] if not (extra and extra.get("notes")) else [str(extra["notes"])]
    if negative:
        notes.append(f"{negative} negative intensities kept (processed data: the file does not say they are raw counts)")
    if not np.any(e > 0):
        raise fail(path, f"{label}every point has zero counts or zero esd: nothing to fit")
    if step is None:
        step = float((x[-1] - x[0]) / (x.size - 1)) if x.size > 1 else math.nan
    attrs = {
        "source": str(path),
        "format": fmt,
        "technique": "XRD",
        "wavelength": float(wavelength),
        "wavelength2": float(wavelength2),
        "ka2_ratio": float(ka2_ratio),
        "step": float(step),
        "range_index": int(range_index),
        "n_ranges": int(n_ranges),
        "sample": str(sample),
        "count_time": float(count_time),
        "units": "counts",
        "long_name": "intensity",
        "esd_rule": esd_rule or rule,
    }
    for key, value in (extra or {}).items():
        attrs[key] = value
    if negative:
        attrs["negative_values"] = negative
    if notes:
        attrs["notes"] = "; ".join(notes)
    return xr.DataArray(
        y.copy(),
        dims=("two_theta",),
        coords={
            "two_theta": ("two_theta", x.copy(), {"units": "deg", "long_name": "2theta"}),
            "esd": ("two_theta", e, {
                "units": "counts",
                "long_name": "standard deviation of the intensity",
                "zero_means": "no weight (GSAS-II gives these points weight 0)",
            }),
        },
        name="intensity",
        attrs=attrs,
    )
