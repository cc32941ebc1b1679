"""The common depth axis: XPS etch time and ToF-SIMS sputter time in nm, with propagated uncertainty.

XPS: ``z = r t`` for an etch rate ``r ± σ_r`` (nm/s), so ``σ_z = σ_r t``. ToF-SIMS: ``z = D t / T``
for a crater depth ``D ± σ_D`` reached after the total sputter time ``T``, so ``σ_z = σ_D t / T``.
Both are scale errors, common to every point of one series: they stretch the axis but do not
scatter the points, which is why :mod:`report.checks` adds them to slopes and not to means.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from doptrace.core.units import Quantity


def etch_depth(etch_time, rate: Quantity):
    """``(depth, depth_stderr)`` in nm of XPS levels at ``etch_time`` (s) for an etch rate in nm/s.

    >>> etch_depth([0.0, 100.0], Quantity(0.4, 0.04, "nm/s"))
    (array([ 0., 40.]), array([0., 4.]))
    """
    t = np.asarray(etch_time, float)
    return rate.value * t, rate.stderr * t


def sputter_depth(sputter_time, crater: Quantity, total_time: float):
    """``(depth, depth_stderr)`` in nm of ToF-SIMS scans for a crater depth reached at ``total_time`` (s).

    >>> sputter_depth([0.0, 50.0], Quantity(500.0, 25.0, "nm"), 100.0)
    (array([  0., 250.]), array([ 0. , 12.5]))
    """
    t = np.asarray(sputter_time, float)
    return crater.value * t / total_time, crater.stderr * t / total_time


def total_sputter_time(profile: xr.Dataset) -> float:
    """The sputter time at the crater's bottom: the last scan's start plus one scan (tofsims' convention)."""
    t = np.asarray(profile["sputter_time"].values, float)
    if "sputter_time_total" in profile.attrs:
        return float(profile.attrs["sputter_time_total"])
    return float(t[-1] + (np.median(np.diff(t)) if t.size > 1 else 0.0))


def depth_series(sample: str, xps_fit=None, etch_rate: Quantity | None = None, component: str = "TM-O-B",
                 sims_profile=None, crater: Quantity | None = None, fragment: str = "BO-",
                 host: str = "MnO-") -> xr.Dataset:
    """One sample's XPS and ToF-SIMS series on the common depth axis (nm).

    Dimensions ``xps_level`` and ``sims_scan`` (each technique keeps its own depths). Variables:
    ``xps_depth``, ``xps_share`` (the component's share of its region), ``sims_depth``,
    ``sims_fraction`` (fragment / total counts) and ``sims_ratio`` (fragment / host counts), each with
    ``_stderr``; Poisson errors for the ToF-SIMS ratios. Missing inputs give no variables for that
    technique and a note in ``attrs["notes"]``.
    """
    data, coords, notes = {}, {}, []
    if xps_fit is not None:
        if xps_fit.attrs.get("level_dim", "etch_time") != "etch_time" or "etch_time" not in xps_fit.coords:
            notes.append("XPS levels are not etch times; not placed on the depth axis")
        elif etch_rate is None:
            notes.append("no XPS etch rate given; XPS not placed on the depth axis")
        elif component not in [str(c) for c in xps_fit["component"].values]:
            notes.append(f"XPS fit has no component {component}")
        else:
            t = np.asarray(xps_fit["etch_time"].values, float)
            z, dz = etch_depth(t, etch_rate)
            share = xps_fit["fraction"].sel(component=component).values
            share_se = xps_fit["fraction_stderr"].sel(component=component).values
            coords["xps_etch_time"] = ("xps_level", t, {"units": "s"})
            data.update(
                xps_depth=("xps_level", z, {"units": "nm", "etch_rate_nm_per_s": etch_rate.value,
                                            "etch_rate_stderr_nm_per_s": etch_rate.stderr}),
                xps_depth_stderr=("xps_level", dz, {"units": "nm"}),
                xps_share=("xps_level", np.asarray(share, float), {"units": "1", "component": component}),
                xps_share_stderr=("xps_level", np.asarray(share_se, float), {"units": "1"}),
            )
    if sims_profile is not None:
        fragments = [str(f) for f in sims_profile["fragment"].values]
        if fragment not in fragments:
            notes.append(f"ToF-SIMS profile has no {fragment}")
        else:
            t = np.asarray(sims_profile["sputter_time"].values, float)
            total = total_sputter_time(sims_profile)
            if crater is not None:
                z, dz = sputter_depth(t, crater, total)
            elif "depth" in sims_profile.coords and np.all(np.isfinite(sims_profile["depth"].values)):
                z, dz = np.asarray(sims_profile["depth"].values, float), np.zeros(t.size)
                notes.append("ToF-SIMS depth from the entry's own conversion, without an uncertainty")
            else:
                z = dz = None
                notes.append("no crater depth given; ToF-SIMS not placed on the depth axis")
            if z is not None:
                counts = np.asarray(sims_profile["counts"].sel(fragment=fragment).values, float)
                coords["sims_sputter_time"] = ("sims_scan", t, {"units": "s"})
                data.update(sims_depth=("sims_scan", z, {"units": "nm", "sputter_time_total_s": total}),
                            sims_depth_stderr=("sims_scan", dz, {"units": "nm"}))
                if "reference" in sims_profile and sims_profile.attrs.get("normalization") == "total":
                    total_counts = np.asarray(sims_profile["reference"].values, float)
                    frac, frac_se = _poisson_ratio(counts, total_counts, nested=True)
                    data.update(sims_fraction=("sims_scan", frac, {"units": "1", "ratio": f"{fragment}/total"}),
                                sims_fraction_stderr=("sims_scan", frac_se, {"units": "1"}))
                else:
                    notes.append("ToF-SIMS profile not normalised to total counts; no fraction of total")
                if host in fragments:
                    host_counts = np.asarray(sims_profile["counts"].sel(fragment=host).values, float)
                    ratio, ratio_se = _poisson_ratio(counts, host_counts)
                    data.update(sims_ratio=("sims_scan", ratio, {"units": "1", "ratio": f"{fragment}/{host}"}),
                                sims_ratio_stderr=("sims_scan", ratio_se, {"units": "1"}))
                else:
                    notes.append(f"ToF-SIMS profile has no {host}")
    attrs = {"sample": sample, "analysis": "common depth axis", "component": component, "fragment": fragment,
             "host": host, "notes": "; ".join(notes),
             "source": "; ".join(str(d.attrs.get("source", "")) for d in (xps_fit, sims_profile) if d is not None)}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _poisson_ratio(a, b, nested: bool = False):
    """``a / b`` and its Poisson esd; ``nested`` when ``a`` is part of ``b`` (a binomial fraction)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(b > 0, a / b, np.nan)
        if nested:
            stderr = np.sqrt(ratio * (1 - ratio) / b)
        else:
            stderr = ratio * np.sqrt(np.where(a > 0, 1 / a, 0.0) + 1 / b)
            stderr = np.where(a > 0, stderr, np.where(b > 0, 1 / b, np.nan))  # zero counts: one-count bound
    return ratio, stderr


def overlay_figure(series: xr.Dataset, surface_nm: float | None = None, title: str = ""):
    """XPS component share (left axis) and ToF-SIMS fragment ratios (right axis, log) versus depth (nm).

    Horizontal error bars are the depth conversions' esds; the depth axis is linear up to 10 nm and
    logarithmic beyond, so the XPS range (tens of nm) and the SIMS crater (hundreds) both show.
    """
    from .figures import new_figure

    fig, ax = new_figure(7.2, 4.2)
    handles = []
    if "xps_share" in series:
        h = ax.errorbar(series["xps_depth"], 100 * series["xps_share"], yerr=100 * series["xps_share_stderr"],
                        xerr=series["xps_depth_stderr"], fmt="o-", color="C0", capsize=2,
                        label=f"XPS {series.attrs.get('component')} share (%)")
        handles.append(h)
        ax.set_ylim(0, max(5.0, 1.15 * float(np.nanmax(100 * (series["xps_share"] + series["xps_share_stderr"])))))
    ax.set_ylabel(f"XPS {series.attrs.get('component')} share of B 1s (%)")
    ax.set_xlabel("depth (nm)")
    right = ax.twinx()
    for name, color, marker in (("sims_fraction", "C1", "s"), ("sims_ratio", "C2", "^")):
        if name in series:
            values = np.asarray(series[name].values, float)
            errors = np.asarray(series[f"{name}_stderr"].values, float)
            positive = values > 0
            h = right.errorbar(series["sims_depth"].values[positive], values[positive], yerr=errors[positive],
                               xerr=series["sims_depth_stderr"].values[positive], fmt=marker + "--", color=color,
                               capsize=2, markersize=4, label=f"ToF-SIMS {series[name].attrs['ratio']}")
            handles.append(h)
    if any(name in series for name in ("sims_fraction", "sims_ratio")):
        right.set_yscale("log")
    right.set_ylabel("ToF-SIMS count ratio (1)")
    ax.set_xscale("symlog", linthresh=10.0)
    ax.set_xlim(left=0)
    if surface_nm is not None and math.isfinite(surface_nm):
        ax.axvspan(0, surface_nm, color="0.9", zorder=0)
        ax.text(surface_nm, ax.get_ylim()[1], " surface layer ", ha="right", va="top", fontsize=8, color="0.4")
    if handles:
        ax.legend(handles=handles, loc="center right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no series on the depth axis", transform=ax.transAxes, ha="center")
    ax.set_title(title)
    return fig
