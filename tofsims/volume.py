"""3D views of one fragment: the volume itself, orthogonal slices and projections."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ToFSIMSError
from .quality import finish
from .processing import bin_depth, bin_lateral, select_fragments, source_of


def _units(da: xr.DataArray) -> xr.DataArray:
    for name, units in (("x", "um"), ("y", "um"), ("sputter_time", "s"), ("depth", "nm"), ("scan", "1"),
                        ("fragment_mass", "u"), ("mass_low", "u"), ("mass_high", "u")):
        if name in da.coords:
            da[name].attrs.setdefault("units", units)
    return da


def fragment_volume(ds: xr.Dataset, fragment: str, lateral_bin: int = 1, depth_bin: int = 1) -> xr.Dataset:
    """The counts of one fragment as a (scan, y, x) volume, optionally binned.

    Examples
    --------
    >>> vol = fragment_volume(ds, "BO-", lateral_bin=2)  # doctest: +SKIP
    """
    sub = select_fragments(ds, [fragment])
    if lateral_bin > 1:
        sub = bin_lateral(sub, lateral_bin)
    if depth_bin > 1:
        sub = bin_depth(sub, depth_bin)
    volume = _units(sub["counts"].isel(fragment=0).compute())
    out = xr.Dataset({"counts": volume.assign_attrs(units="counts")})
    out["counts_stderr"] = np.sqrt(volume.astype("float64")).assign_attrs(units="counts")
    out.attrs = {"technique": "ToF-SIMS", "source": source_of(ds), "fragment": fragment,
                 "lateral_bin": int(lateral_bin), "depth_bin": int(depth_bin)}
    return finish(out, ds)


def _index(ds: xr.Dataset, dim: str, value, where: str) -> int:
    size = ds.sizes[dim]
    if value is None:
        return size // 2
    index = int(value)
    if not 0 <= index < size:
        raise ToFSIMSError(f"{source_of(ds)}: {where} index {index} outside 0..{size - 1}")
    return index


def orthogonal_slices(ds: xr.Dataset, fragment: str, x: int | None = None, y: int | None = None,
                      scan: int | None = None) -> xr.Dataset:
    """Three orthogonal slices through one fragment's volume at pixel/scan indices.

    ``slice_xy`` (y, x) is scan ``scan``; ``slice_xz`` (scan, x) is row ``y``; ``slice_yz``
    (scan, y) is column ``x``. Defaults: the middle of each axis. Values are exact counts.

    Examples
    --------
    >>> sl = orthogonal_slices(ds, "BO-", scan=0)  # doctest: +SKIP
    """
    counts = select_fragments(ds, [fragment])["counts"].isel(fragment=0)
    ix, iy, iscan = _index(ds, "x", x, "x"), _index(ds, "y", y, "y"), _index(ds, "scan", scan, "scan")
    out = xr.Dataset(
        {
            "slice_xy": _units(counts.isel(scan=iscan, drop=True).compute()).assign_attrs(units="counts"),
            "slice_xz": _units(counts.isel(y=iy).drop_vars("y").compute()).assign_attrs(units="counts"),
            "slice_yz": _units(counts.isel(x=ix).drop_vars("x").compute()).assign_attrs(units="counts"),
        },
        attrs={"technique": "ToF-SIMS", "source": source_of(ds), "fragment": fragment,
               "x_index": ix, "y_index": iy, "scan_index": iscan,
               "x_um": float(ds["x"][ix]), "y_um": float(ds["y"][iy])},
    )
    return finish(out, ds)


def projections(ds: xr.Dataset, fragment: str) -> xr.Dataset:
    """Sums of one fragment's volume along each axis.

    ``proj_xy`` (y, x) sums over scans (the map), ``proj_xz`` (scan, x) over y, ``proj_yz``
    (scan, y) over x. Exact integer sums.

    Examples
    --------
    >>> projections(ds, "BO-")["proj_xz"].sizes  # doctest: +SKIP
    """
    counts = select_fragments(ds, [fragment])["counts"].isel(fragment=0, drop=True)
    out = xr.Dataset(
        {
            "proj_xy": _units(counts.sum("scan").compute()).assign_attrs(units="counts"),
            "proj_xz": _units(counts.sum("y").compute()).assign_attrs(units="counts"),
            "proj_yz": _units(counts.sum("x").compute()).assign_attrs(units="counts"),
        },
        attrs={"technique": "ToF-SIMS", "source": source_of(ds), "fragment": fragment},
    )
    return finish(out, ds)
