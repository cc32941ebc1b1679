"""Depth profiles with Poisson errors, and the test of whether a fragment is uniform with depth."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from .errors import ToFSIMSError
from .quality import finish
from .processing import (apply_roi, count_variance, ratio_with_stderr, reference_counts, select_fragments,
                         source_of)


def depth_profile(ds: xr.Dataset, fragments=None, roi: xr.DataArray | None = None,
                  normalize: str | None = None) -> xr.Dataset:
    """Counts of each fragment per scan, summed over the field of view (or a ROI).

    Parameters
    ----------
    ds : Dataset
        Reader output; ``depth`` (nm) is carried along when set (see ``sputter_to_depth``).
    fragments : list of str or comma-separated str, optional
    roi : (y, x) boolean DataArray, optional
    normalize : {"total", "fragments", <fragment>}, optional

    Returns
    -------
    Dataset
        ``counts`` (fragment, scan) exact sums with ``counts_stderr = sqrt(counts)``, coords
        ``sputter_time`` (s) and ``depth`` (nm); with ``normalize`` also ``reference`` (scan) and
        ``intensity = counts / reference`` with binomial/Poisson ``intensity_stderr``.

    Examples
    --------
    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> truth = write_ita("depth.ita", shape=(12, 32, 32), seed=1)
    >>> ds = tofsims.sputter_to_depth(tofsims.read("depth.ita"), crater_depth_nm=500.0)
    >>> prof = tofsims.depth_profile(ds, "BO-,MnO-", normalize="total")
    >>> prof["depth"].values[:3].round(1).tolist(), prof["counts"].sel(fragment="BO-").values[:3].tolist()
    ([0.0, 41.7, 83.3], [2951, 2928, 2879])
    >>> bool((prof["counts"] == truth["counts"].sel(fragment=["BO-", "MnO-"]).sum(("y", "x"))).all())
    True
    """
    sub = apply_roi(ds, roi) if roi is not None else ds
    selected = select_fragments(sub, fragments)
    counts = selected["counts"].sum(("y", "x")).compute()
    variance = count_variance(selected).sum(("y", "x"), skipna=False).compute()  # = counts unless dead-time corrected
    out = xr.Dataset()
    out["counts"] = counts.assign_attrs(units="counts", long_name="counts per scan")
    out["counts_stderr"] = np.sqrt(variance).assign_attrs(units="counts", long_name="standard error (Poisson)")
    if normalize is not None:
        ref_voxels, nested = reference_counts(sub, normalize)
        reference = ref_voxels.sum(("y", "x")).compute()
        ratio, stderr = ratio_with_stderr(counts, reference, nested)
        out["reference"] = reference.assign_attrs(units="counts", normalization=normalize)
        out["intensity"] = ratio.assign_attrs(units="1", long_name=f"counts / {normalize}")
        out["intensity_stderr"] = stderr.assign_attrs(units="1", long_name="standard error (Poisson)")
        out.attrs["nested_reference"] = int(nested)
    for name, units in (("sputter_time", "s"), ("depth", "nm"), ("fragment_mass", "u"), ("mass_low", "u"),
                        ("mass_high", "u"), ("scan", "1")):
        if name in out.coords:
            out[name].attrs.setdefault("units", units)
    out.attrs.update(
        technique="ToF-SIMS", source=source_of(ds), normalization=normalize or "none",
        roi_pixels=int(roi.sum()) if roi is not None else int(ds.sizes["x"] * ds.sizes["y"]),
    )
    for key in ("polarity", "sample", "primary_ion", "dead_time_corrected", "dead_time_note"):
        if key in ds.attrs:
            out.attrs[key] = ds.attrs[key]
    return finish(out, ds)


def profile_from_export(ds: xr.Dataset, fragments=None, normalize: str | None = None) -> xr.Dataset:
    """A depth-profile export (``intensity`` over ``sputter_time, fragment``) in the layout of
    :func:`depth_profile`: ``counts`` (fragment, scan) with ``counts_stderr = sqrt(counts)``.

    ``normalize`` names a column (``"total"`` matches a column called total/Total, case-blind) used
    as the reference: nested binomial errors for the total, independent Poisson otherwise. Scan
    ``i`` starts at ``sputter_time[i]``; the total sputter time is taken as the last time plus one
    step (the convention of the image stacks). Exported values that are not whole counts
    (normalised or dead-time-corrected exports) keep approximate Poisson errors, flagged in
    ``attrs["integer_counts"]``.

    Examples
    --------
    >>> prof = profile_from_export(tofsims.read("profile.txt"), "BO-,MnO-")  # doctest: +SKIP
    """
    source = source_of(ds)
    if "intensity" not in ds or set(ds["intensity"].dims) != {"sputter_time", "fragment"}:
        raise ToFSIMSError(f"{source}: not a depth-profile export (intensity over sputter_time, fragment)")
    values = ds["intensity"].transpose("fragment", "sputter_time")
    t = np.asarray(ds["sputter_time"].values, float)
    # SurfaceLab 7 ends a profile with an empty data point (every column 0, ratios inf): the
    # interval after the last sputter time, never measured. Trailing all-zero points are dropped.
    counted = np.flatnonzero(np.asarray(values.values != 0).any(axis=0))
    n_dropped = t.size - (int(counted[-1]) + 1 if counted.size else 0)
    if 0 < n_dropped < t.size:
        values, t = values.isel(sputter_time=slice(0, t.size - n_dropped)), t[: t.size - n_dropped]
    if t.size < 2 or not np.all(np.isfinite(values.values)) or np.any(values.values < 0):
        raise ToFSIMSError(f"{source}: depth profile is too short, negative or not finite")
    if np.any(np.diff(t) <= 0):
        raise ToFSIMSError(f"{source}: sputter times do not increase")
    names = [str(n) for n in ds["fragment"].values]
    lower = {n.lower(): n for n in names}
    reference = None
    if normalize is not None:
        key = lower.get(str(normalize).lower())
        if key is None:
            raise ToFSIMSError(f"{source}: normalisation reference '{normalize}' is not a column ({', '.join(names)})")
        reference = key
    if fragments is None:
        chosen = [n for n in names if n != reference and n.lower() != "total"]
    else:
        chosen = [f.strip() for f in fragments.split(",")] if isinstance(fragments, str) else list(fragments)
        missing = [f for f in chosen if f not in names]
        if missing:
            raise ToFSIMSError(f"{source}: fragment(s) {', '.join(missing)} not in the profile ({', '.join(names)})")
    scan = np.arange(t.size)
    counts = xr.DataArray(values.sel(fragment=chosen).values, dims=("fragment", "scan"),
                          coords={"fragment": chosen})
    out = xr.Dataset(coords={
        "scan": ("scan", scan, {"units": "1"}),
        "sputter_time": ("scan", t, {"units": "s"}),
        "depth": ("scan", np.full(t.size, np.nan), {"units": "nm", "method": "none"}),
    })
    out["counts"] = counts.assign_attrs(units="counts", long_name="counts per scan")
    out["counts_stderr"] = np.sqrt(counts).assign_attrs(units="counts", long_name="standard error (Poisson)")
    if reference is not None:
        den = xr.DataArray(values.sel(fragment=reference).values, dims=("scan",))
        nested = reference.lower() == "total"
        ratio, stderr = ratio_with_stderr(counts, den, nested)
        out["reference"] = den.assign_attrs(units="counts", normalization=reference)
        out["intensity"] = ratio.assign_attrs(units="1", long_name=f"counts / {reference}")
        out["intensity_stderr"] = stderr.assign_attrs(units="1", long_name="standard error (Poisson)")
        out.attrs["nested_reference"] = int(nested)
    out.attrs.update(
        technique="ToF-SIMS", source=source, normalization=reference or "none",
        sputter_time_total=float(t[-1] + np.median(np.diff(t))),
        integer_counts=int(np.all(values.values == np.round(values.values))),
    )
    if n_dropped:
        out.attrs["note"] = f"{n_dropped} trailing empty data point(s) (every column 0) left out"
    return finish(out, ds)


def _axis(profile: xr.Dataset) -> tuple[np.ndarray, str, str]:
    if "depth" in profile.coords and np.all(np.isfinite(profile["depth"].values)):
        return np.asarray(profile["depth"].values, float), "depth", "nm"
    if "sputter_time" in profile.coords:
        return np.asarray(profile["sputter_time"].values, float), "sputter_time", "s"
    return np.asarray(profile["scan"].values, float), "scan", "1"


def uniformity_test(profile: xr.Dataset, fragments=None, surface_depth: float | None = None,
                    surface_fraction: float = 0.1, n_slabs: int = 5, alpha: float = 0.05) -> xr.Dataset:
    """Is each fragment uniform with depth? A slope test and a dispersion test, beyond the surface.

    With ``y_i`` the normalised intensity of scan ``i`` (``counts/reference`` when the profile was
    normalised, else raw counts) at depth ``z_i``:

    1. Slope: weighted linear fit ``y = a + b (z - z_w)``, weights ``1/s_i^2`` from the Poisson
       variance expected under uniformity (pooled ``p`` over reference ``D_i``:
       ``s_i^2 = p (1-p) / D_i`` nested, ``p / D_i`` otherwise, so few-count scans do not bias
       the fit). ``stderr(b)`` is scaled by ``sqrt(max(1, chi2/dof))`` (extra-Poisson scatter
       widens, never narrows, it); ``p_slope`` two-sided from Student's t with ``n-2`` dof.
       ``relative_change = b (z_max - z_min) / a`` is the fractional change across the range.
    2. Dispersion: the scans are grouped into ``n_slabs`` depth slabs; slab sums ``N_k`` against
       their expectation ``p D_k`` give ``chi2 = sum (N_k - p D_k)^2 / var_k`` with
       ``n_slabs - 1`` dof (``p_dispersion``). Per slab, ``cv_observed`` of the scans' ``y`` is
       compared to ``cv_poisson`` expected from counting alone (``p_slab``).

    ``p_value = min(1, 2 min(p_slope, p_dispersion))`` (Bonferroni); ``uniform = p_value > alpha``.
    ``surface_to_bulk`` is the normalised intensity of the excluded surface layer over the bulk
    one (a surface-only dopant shows a large value, a bulk dopant about 1).
    The first ``surface_fraction`` of the range (or everything shallower than ``surface_depth``,
    in the profile's axis units) is excluded as the surface layer.

    Returns
    -------
    Dataset over ``fragment`` (and ``slab``): ``slope``, ``intercept`` (fitted, with
    ``_stderr``), ``relative_change`` and ``surface_to_bulk`` (+ ``_stderr``), ``p_slope``, ``chi2_dispersion``,
    ``p_dispersion``, ``p_value``, ``uniform`` (1/0), per slab ``cv_observed``, ``cv_poisson``,
    ``p_slab``.

    Examples
    --------
    Boron doped into the bulk is uniform below the surface; boron only in a surface layer is not,
    and its surface layer is 8 times richer than the rest:

    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> for name, bulk in (("bulk.ita", True), ("surface.ita", False)):
    ...     _ = write_ita(name, shape=(12, 32, 32), bulk_doped=bulk, seed=1)
    ...     profile = tofsims.depth_profile(tofsims.read(name, fragments=["BO-"]), normalize="total")
    ...     test = tofsims.uniformity_test(profile)
    ...     print(name, int(test["uniform"][0]), round(float(test["surface_to_bulk"][0]), 1))
    bulk.ita 1 1.0
    surface.ita 0 8.3
    """
    if "counts" not in profile or "fragment" not in profile["counts"].dims:
        raise ToFSIMSError(f"{source_of(profile)}: not a depth profile (no counts over fragment, scan)")
    names = [str(n) for n in profile["fragment"].values]
    every_fragment = fragments is None
    if fragments is None:
        fragments = names
    elif isinstance(fragments, str):
        fragments = [f.strip() for f in fragments.split(",") if f.strip()]
    missing = [f for f in fragments if f not in names]
    if missing:
        raise ToFSIMSError(f"{source_of(profile)}: fragment(s) {', '.join(missing)} not in the profile")
    z, axis, axis_units = _axis(profile)
    if surface_depth is None:
        cut = z.min() + surface_fraction * (z.max() - z.min())
        keep = z >= cut
        if keep.sum() == z.size and z.size > 3:
            keep[np.argmin(z)] = False
    else:
        keep = z >= float(surface_depth)
    if keep.sum() < max(4, n_slabs):
        raise ToFSIMSError(
            f"{source_of(profile)}: only {int(keep.sum())} scans beyond the surface layer; need at least "
            f"{max(4, n_slabs)} for the uniformity test"
        )
    nested = bool(profile.attrs.get("nested_reference", 0))
    has_reference = "reference" in profile
    untested = []
    if every_fragment:
        # every fragment of an export by default: those never counted beyond the surface (a peak
        # list entry absent from this sample) cannot be tested and are listed, not fatal
        counted = profile["counts"].isel(scan=np.flatnonzero(keep)).sum("scan")
        untested = [n for n in fragments if float(counted.sel(fragment=n)) <= 0]
        fragments = [n for n in fragments if n not in untested]
        if not fragments:
            raise ToFSIMSError(f"{source_of(profile)}: {', '.join(untested)} "
                               f"{'has' if len(untested) == 1 else 'have'} no counts beyond the surface; nothing to test")
    results = [
        _test_one(profile, name, z[keep], keep, has_reference, nested, n_slabs) for name in fragments
    ]
    keys = results[0].keys()
    data = {k: np.array([r[k] for r in results]) for k in keys}
    slab_edges = np.array_split(np.sort(z[keep]), n_slabs)
    per_fragment = ("fragment",)
    per_slab = ("fragment", "slab")
    yunits = "1" if has_reference else "counts"
    out = xr.Dataset(
        {
            "slope": (per_fragment, data["slope"], {"units": f"{yunits}/{axis_units}"}),
            "slope_stderr": (per_fragment, data["slope_stderr"], {"units": f"{yunits}/{axis_units}"}),
            "intercept": (per_fragment, data["intercept"], {"units": yunits, "long_name": "mean at the weighted centre"}),
            "intercept_stderr": (per_fragment, data["intercept_stderr"], {"units": yunits}),
            "relative_change": (per_fragment, data["relative_change"], {"units": "1"}),
            "relative_change_stderr": (per_fragment, data["relative_change_stderr"], {"units": "1"}),
            "p_slope": (per_fragment, data["p_slope"], {"units": "1"}),
            "chi2_dispersion": (per_fragment, data["chi2"], {"units": "1", "dof": n_slabs - 1}),
            "p_dispersion": (per_fragment, data["p_dispersion"], {"units": "1"}),
            "p_value": (per_fragment, data["p_value"], {"units": "1"}),
            "uniform": (per_fragment, (data["p_value"] > alpha).astype("int8"), {"units": "1"}),
            "surface_to_bulk": (per_fragment, data["surface_to_bulk"], {"units": "1"}),
            "surface_to_bulk_stderr": (per_fragment, data["surface_to_bulk_stderr"], {"units": "1"}),
            "cv_observed": (per_slab, data["cv_observed"], {"units": "1"}),
            "cv_poisson": (per_slab, data["cv_poisson"], {"units": "1"}),
            "p_slab": (per_slab, data["p_slab"], {"units": "1"}),
        },
        coords={
            "fragment": fragments,
            "slab": ("slab", np.arange(n_slabs), {"units": "1"}),
            "slab_low": ("slab", [e[0] for e in slab_edges], {"units": axis_units}),
            "slab_high": ("slab", [e[-1] for e in slab_edges], {"units": axis_units}),
        },
        attrs={
            "technique": "ToF-SIMS", "source": source_of(profile), "fitted": "slope intercept",
            "axis": axis, "axis_range": [float(z[keep].min()), float(z[keep].max())], "alpha": alpha,
            "n_scans_used": int(keep.sum()), "surface_excluded_below": float(z[keep].min()),
            "normalization": profile.attrs.get("normalization", "none"),
        },
    )
    warnings = []
    if untested:
        out.attrs["untested"] = ", ".join(untested)
        out.attrs["note"] = f"{len(untested)} fragment(s) without counts beyond the surface not tested"
        warnings.append(f"Not tested (no counts beyond the surface): {', '.join(untested)}.")
    return finish(out, profile, warnings=warnings)


def _test_one(profile, name, z, keep, has_reference, nested, n_slabs) -> dict:
    counts = np.asarray(profile["counts"].sel(fragment=name).values, float)[keep]
    if has_reference:
        den = np.asarray(profile["reference"].values, float)[keep]
        if np.any(den <= 0):
            raise ToFSIMSError(f"{source_of(profile)}: a scan has no reference counts; cannot normalise {name}")
    else:
        den = np.ones_like(counts)
    p = counts.sum() / den.sum()
    if p <= 0:
        raise ToFSIMSError(f"{source_of(profile)}: {name} has no counts beyond the surface; nothing to test")
    unit_var = p * (1 - p) if (has_reference and nested) else p
    y = counts / den
    var = unit_var / den
    w = 1 / var
    zc = np.sum(w * z) / np.sum(w)
    sxx = np.sum(w * (z - zc) ** 2)
    slope = np.sum(w * (z - zc) * (y - np.sum(w * y) / np.sum(w))) / sxx
    intercept = np.sum(w * y) / np.sum(w)
    resid = y - intercept - slope * (z - zc)
    dof = z.size - 2
    scale = np.sqrt(max(1.0, float(np.sum(w * resid**2)) / dof))
    slope_se = scale / np.sqrt(sxx)
    intercept_se = scale / np.sqrt(np.sum(w))
    p_slope = float(2 * stats.t.sf(abs(slope / slope_se), dof))
    span = z.max() - z.min()
    rel = slope * span / intercept
    rel_se = abs(rel) * np.sqrt((slope_se / slope) ** 2 + (intercept_se / intercept) ** 2) if slope else span * slope_se / intercept

    order = np.argsort(z)
    groups = np.array_split(order, n_slabs)
    n_k = np.array([counts[g].sum() for g in groups])
    d_k = np.array([den[g].sum() for g in groups])
    chi2 = float(np.sum((n_k - p * d_k) ** 2 / (unit_var * d_k)))
    p_dispersion = float(stats.chi2.sf(chi2, n_slabs - 1))
    cv_obs, cv_poi, p_slab = [], [], []
    for g in groups:
        yg, vg, wg = y[g], var[g], w[g]
        mean = np.sum(wg * yg) / np.sum(wg)
        cv_obs.append(float(np.std(yg, ddof=1) / mean) if g.size > 1 and mean > 0 else np.nan)
        cv_poi.append(float(np.sqrt(np.mean(vg)) / mean) if mean > 0 else np.nan)
        chi_g = float(np.sum((yg - mean) ** 2 / vg))
        p_slab.append(float(stats.chi2.sf(chi_g, g.size - 1)) if g.size > 1 else np.nan)
    surface_to_bulk, surface_to_bulk_se = np.nan, np.nan
    all_counts = np.asarray(profile["counts"].sel(fragment=name).values, float)
    if (~keep).any():
        n_s = all_counts[~keep].sum()
        d_s = np.asarray(profile["reference"].values, float)[~keep].sum() if has_reference else float((~keep).sum())
        if d_s > 0:
            surface_to_bulk = (n_s / d_s) / p
            surface_to_bulk_se = surface_to_bulk * np.sqrt(1 / max(n_s, 1.0) + 1 / counts.sum())
    return {
        "surface_to_bulk": surface_to_bulk, "surface_to_bulk_stderr": surface_to_bulk_se,
        "slope": slope, "slope_stderr": slope_se, "intercept": intercept, "intercept_stderr": intercept_se,
        "relative_change": rel, "relative_change_stderr": rel_se, "p_slope": p_slope, "chi2": chi2,
        "p_dispersion": p_dispersion, "p_value": min(1.0, 2 * min(p_slope, p_dispersion)),
        "cv_observed": cv_obs, "cv_poisson": cv_poi, "p_slab": p_slab,
    }
