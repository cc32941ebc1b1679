"""Lateral maps: fragment images summed over a scan range, normalised maps and ratio maps."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ToFSIMSError
from .quality import finish
from .processing import (bin_lateral, check_stack, count_variance, ratio_with_stderr, reference_counts,
                         select_fragments, source_of)


def scan_selection(ds: xr.Dataset, scans=None) -> xr.Dataset:
    """Restrict ``ds`` to a scan range: ``None`` (all), ``(first, last)`` inclusive, or a slice."""
    check_stack(ds)
    if scans is None:
        return ds
    if isinstance(scans, slice):
        out = ds.isel(scan=scans)
    else:
        first, last = (int(v) for v in scans)
        if first < 0 or last >= ds.sizes["scan"] or first > last:
            raise ToFSIMSError(
                f"{source_of(ds)}: scan range {first}..{last} outside the {ds.sizes['scan']} scans in the file"
            )
        out = ds.isel(scan=slice(first, last + 1))
    if out.sizes["scan"] == 0:
        raise ToFSIMSError(f"{source_of(ds)}: scan selection {scans!r} is empty")
    return out


def _scan_attrs(ds: xr.Dataset, sub: xr.Dataset) -> dict:
    scans = np.asarray(sub["scan"].values)
    return {"scan_first": int(scans[0]), "scan_last": int(scans[-1]), "n_scans": int(scans.size)}


def _base_attrs(ds: xr.Dataset) -> dict:
    keep = ("polarity", "primary_ion", "sample", "field_of_view_um", "dead_time_corrected", "dead_time_note")
    attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    attrs.update(technique="ToF-SIMS", source=source_of(ds))
    return attrs


def _xy_coords(ds: xr.Dataset) -> dict:
    return {name: ds[name].assign_attrs(units=ds[name].attrs.get("units", "um")) for name in ("x", "y")}


def fragment_maps(ds: xr.Dataset, fragments=None, scans=None, normalize: str | None = None,
                  bin: int = 1) -> xr.Dataset:
    """Counts per pixel of each fragment summed over a scan range.

    Parameters
    ----------
    ds : Dataset
        Reader output (``counts`` over fragment, scan, y, x).
    fragments : list of str or comma-separated str, optional
        Fragments to map (default: all in the peak list).
    scans : (first, last) or slice, optional
        Scan range, inclusive (default: all scans).
    normalize : {"total", "fragments", <fragment>}, optional
        Also give ``intensity = counts / reference`` summed over the same scans, with errors.
    bin : int
        Lateral binning factor applied before summing.

    Returns
    -------
    Dataset
        ``counts`` (fragment, y, x) exact sums, ``counts_stderr`` = sqrt(counts) (Poisson);
        with ``normalize``: ``intensity``/``intensity_stderr`` and ``reference`` (y, x).

    Examples
    --------
    In the simulated bulk-doped sample BO- sits in the oxide grains: the BO-/total map is
    about 60 times higher on the grains than between them.

    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> truth = write_ita("depth.ita", shape=(12, 32, 32), bulk_doped=True, seed=1)
    >>> maps = tofsims.fragment_maps(tofsims.read("depth.ita"), "BO-", normalize="total")
    >>> int(maps["counts"].sum()) == int(truth["counts"].sel(fragment="BO-").sum())
    True
    >>> bo = maps["intensity"].sel(fragment="BO-")
    >>> round(float(bo.where(truth["oxide"]).mean() / bo.where(~truth["oxide"]).mean()))
    61
    """
    sub = scan_selection(ds, scans)
    # voxel variances (= counts unless dead-time corrected) are summed like the counts themselves
    variance = select_fragments(sub, fragments)[["counts"]]
    variance["counts"] = count_variance(variance)
    if bin != 1:  # bin_lateral rejects factors below 1
        sub = bin_lateral(sub, bin)
        variance = bin_lateral(variance, bin)
    counts = select_fragments(sub, fragments)["counts"].sum("scan").compute()
    variance = variance["counts"].sum("scan", skipna=False).compute()
    out = xr.Dataset(coords=_xy_coords(sub))
    out["counts"] = counts.assign_attrs(units="counts", long_name="summed counts")
    out["counts_stderr"] = np.sqrt(variance).assign_attrs(units="counts", long_name="standard error (Poisson)")
    if normalize is not None:
        ref_voxels, nested = reference_counts(sub, normalize)
        reference = ref_voxels.sum("scan").compute()
        ratio, stderr = ratio_with_stderr(counts, reference, nested)
        out["reference"] = reference.assign_attrs(units="counts", normalization=normalize)
        out["intensity"] = ratio.assign_attrs(units="1", long_name=f"counts / {normalize}")
        out["intensity_stderr"] = stderr.assign_attrs(units="1", long_name="standard error (Poisson)")
    for name in ("fragment_mass", "mass_low", "mass_high"):
        if name in out.coords:
            out[name].attrs.setdefault("units", "u")
    out.attrs = _base_attrs(ds) | _scan_attrs(ds, sub) | {"binning": int(bin), "normalization": normalize or "none"}
    return finish(out, ds)


def ratio_map(ds: xr.Dataset, numerator: str = "BO-", denominator: str = "MnO-", scans=None,
              bin: int = 1) -> xr.Dataset:
    """Pixel-wise ratio of two fragments' summed counts, ``r = N_a / N_b``, with Poisson errors.

    ``r_stderr = r sqrt(1/N_a + 1/N_b)``; pixels with ``N_b = 0`` are NaN. Binning (``bin``)
    before the ratio is the usual cure for the noise of few-count pixels.

    Examples
    --------
    >>> ratio_map(ds, "BO-", "MnO-", bin=4)["ratio"]  # doctest: +SKIP
    """
    maps = fragment_maps(ds, [numerator, denominator], scans=scans, bin=bin)
    num = maps["counts"].sel(fragment=numerator, drop=True)
    den = maps["counts"].sel(fragment=denominator, drop=True)
    ratio, stderr = ratio_with_stderr(num, den, nested=False)
    out = xr.Dataset(coords={"x": maps["x"], "y": maps["y"]})
    out["numerator"] = num.assign_attrs(units="counts", fragment=numerator)
    out["denominator"] = den.assign_attrs(units="counts", fragment=denominator)
    out["ratio"] = ratio.assign_attrs(units="1", long_name=f"{numerator} / {denominator}")
    out["ratio_stderr"] = stderr.assign_attrs(units="1", long_name="standard error (Poisson)")
    out.attrs = dict(maps.attrs, numerator=numerator, denominator=denominator)
    out.attrs.pop("normalization", None)
    return finish(out, ds)
