"""Build the one Dataset layout every ToF-SIMS image reader returns (the ToF-SIMS data contract).

The ITA, ITM (via the event-list code), event-list, imzML and ASCII image-export readers pass their
arrays to
:func:`make_cube`, so dims, coordinates, units and attrs are decided in one place, as
``xps/formats/_spectrum.py`` does for XPS spectra.
"""

from __future__ import annotations

import math
import os

import numpy as np
import xarray as xr

POLARITIES = ("negative", "positive", "unknown")


def _known(value) -> float:
    """``value`` as float; NaN for None."""
    return math.nan if value is None else float(value)


def make_cube(
    source,
    counts,
    fragments,
    *,
    file_format: str,
    total=None,
    fragment_mass=None,
    mass_low=None,
    mass_high=None,
    scan=None,
    n_scans_file: int | None = None,
    sputter_time_total: float | None = None,
    field_of_view_um: float | None = None,
    pixel_size_um: float | None = None,
    polarity: str = "unknown",
    dead_time_corrected: int = 0,
    fragment_coords: dict | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """A ToF-SIMS image cube as the Dataset every reader returns (the ToF-SIMS data contract).

    Data variables

    ``counts`` (fragment, scan, y, x)
        Secondary-ion counts per fragment window, voxel and scan; ``units = "counts"``. uint32
        from IONTOF files and event lists (float64 when a format stores non-integer values);
        a dask array when the reader was asked to be lazy.
    ``total`` (scan, y, x), optional
        Total-ion counts (every detected ion, inside a fragment window or not).

    Coordinates

    ``fragment`` (fragment)
        Fragment names as the file's peak list gives them (``"BO-"``, ``"MnO-"``).
    ``fragment_mass``, ``mass_low``, ``mass_high`` (fragment)
        Window centre and edges in u; NaN when the file does not say.
    ``scan`` (scan)
        Scan number in the file (int64, ``units = "1"``); a selection keeps the file's numbers.
    ``sputter_time`` (scan)
        Sputter time before the scan, s: ``scan * sputter_time_total / n_scans_file`` (scan ``i``
        of an interleaved depth profile is recorded after ``i`` sputter cycles); NaN when unknown.
    ``depth`` (scan)
        nm, all NaN with ``method = "none"`` until a depth calibration fills it.
    ``y``, ``x``
        Pixel centres in µm when the field of view (or pixel size) is known, else pixel index +
        0.5 with ``units = "pixel"``.

    Attrs

    ``source`` (path), ``technique = "ToF-SIMS"``, ``format``, ``polarity`` (``negative``,
    ``positive`` or ``unknown``), ``field_of_view_um`` (NaN when unknown), ``sputter_time_total``
    (s, NaN when unknown), ``dead_time_corrected`` (0 or 1); readers add what their format knows
    (``sf``, ``k0``, ``channel_width_ns``, ``shots_per_pixel``, ``primary_ion``, ``sample``,
    ``n_scans_file``) through ``attrs``.

    Parameters
    ----------
    source : path-like or str
        File (or files) read; stored as ``attrs["source"]``.
    counts : array (fragment, scan, y, x)
        Not copied.
    fragments : sequence of str
    file_format : str
        Human-readable format name (``"IONTOF ITA (ITStr)"``).
    total : array (scan, y, x), optional
    fragment_mass, mass_low, mass_high : array (fragment,), optional
        u; NaN when omitted.
    scan : array of int, optional
        Scan numbers (default ``0 .. n-1``).
    n_scans_file : int, optional
        Scans in the whole file (default: the number of scans in ``counts``).
    sputter_time_total : float, optional
        Sputter time of the whole file, s.
    field_of_view_um, pixel_size_um : float, optional
        Field of view (µm, square pixels over ``x``) or the pixel size directly.
    polarity : str
        Anything but ``negative``/``positive`` (any case) becomes ``unknown``.
    dead_time_corrected : int
    fragment_coords : dict, optional
        More coordinates over ``fragment`` (``{"tof_low": (array, {"units": "1"})}``).
    attrs : dict, optional
        More attrs; they cannot override the contract's.

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> ds = make_cube("a.ita", np.zeros((1, 2, 3, 4), np.uint32), ["BO-"], file_format="test",
    ...                field_of_view_um=40.0, sputter_time_total=100.0, polarity="Negative")
    >>> dict(ds["counts"].sizes), ds["x"].values.tolist(), ds["sputter_time"].values.tolist()
    ({'fragment': 1, 'scan': 2, 'y': 3, 'x': 4}, [5.0, 15.0, 25.0, 35.0], [0.0, 50.0])
    >>> ds.attrs["polarity"], ds["x"].attrs["units"], bool(np.isnan(ds["fragment_mass"].values[0]))
    ('negative', 'um', True)
    """
    n_frag, n_scans, ny, nx = counts.shape
    scan = np.arange(n_scans, dtype=np.int64) if scan is None else np.asarray(scan, np.int64)
    n_scans_file = n_scans if n_scans_file is None else int(n_scans_file)
    sputter_total = _known(sputter_time_total)
    per_scan = sputter_total / n_scans_file if n_scans_file else 0.0
    fov = _known(field_of_view_um)
    if pixel_size_um is not None:
        pixel, unit = float(pixel_size_um), "um"
    elif np.isfinite(fov) and fov > 0:
        pixel, unit = fov / nx, "um"
    else:
        pixel, unit = 1.0, "pixel"

    def per_fragment(values):
        return np.full(n_frag, np.nan) if values is None else np.asarray(values, float)

    coords = {
        "fragment": ("fragment", [str(name) for name in fragments]),
        "fragment_mass": ("fragment", per_fragment(fragment_mass), {"units": "u"}),
        "mass_low": ("fragment", per_fragment(mass_low), {"units": "u"}),
        "mass_high": ("fragment", per_fragment(mass_high), {"units": "u"}),
    }
    for name, (values, var_attrs) in (fragment_coords or {}).items():
        coords.setdefault(name, ("fragment", values, var_attrs))
    coords.update(
        {
            "scan": ("scan", scan, {"units": "1"}),
            "sputter_time": ("scan", scan.astype(float) * per_scan, {"units": "s"}),
            "depth": ("scan", np.full(scan.size, np.nan), {"units": "nm", "method": "none"}),
            "y": ("y", (np.arange(ny) + 0.5) * pixel, {"units": unit}),
            "x": ("x", (np.arange(nx) + 0.5) * pixel, {"units": unit}),
        }
    )
    # xr.Variable, not (dims, data, attrs) tuples, so the (possibly GB-sized) cube is not copied
    data = {"counts": xr.Variable(("fragment", "scan", "y", "x"), counts,
                                  {"units": "counts", "long_name": "secondary ion counts"})}
    if total is not None:
        data["total"] = xr.Variable(("scan", "y", "x"), total, {"units": "counts", "long_name": "total ion counts"})
    polarity = str(polarity).lower()
    out_attrs = dict(attrs or {})
    out_attrs.update(
        {
            "source": source if isinstance(source, str) else os.fspath(source),
            "technique": "ToF-SIMS",
            "format": file_format,
            "polarity": polarity if polarity in POLARITIES else "unknown",
            "field_of_view_um": fov,
            "sputter_time_total": sputter_total,
            "dead_time_corrected": int(dead_time_corrected),
        }
    )
    return xr.Dataset(data, coords=coords, attrs=out_attrs)
