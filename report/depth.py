"""The common depth axis: each technique's series in nm, with propagated uncertainty.

Each technique adapter that has a depth axis declares a ``depth_track`` that returns a
:class:`Track`; :func:`depth_series` merges a sample's tracks and :func:`overlay_figure` draws
them. The conversions here are the two a depth profile needs: a rate, ``z = r t`` for ``r ± σ_r``
(nm/s), so ``σ_z = σ_r t`` (:func:`etch_depth`); and a final depth, ``z = D t / T`` for a depth
``D ± σ_D`` reached after the total time ``T``, so ``σ_z = σ_D t / T`` (:func:`sputter_depth`).
Both are scale errors, common to every point of one series: they stretch the axis but do not
scatter the points, which is why the checks add them to slopes and not to means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from doptrace.core.units import Quantity


def etch_depth(etch_time, rate: Quantity):
    """``(depth, depth_stderr)`` in nm of levels reached after ``etch_time`` (s) at a rate in nm/s (e.g. XPS etching).

    >>> etch_depth([0.0, 100.0], Quantity(0.4, 0.04, "nm/s"))
    (array([ 0., 40.]), array([0., 4.]))
    """
    t = np.asarray(etch_time, float)
    return rate.value * t, rate.stderr * t


def sputter_depth(sputter_time, crater: Quantity, total_time: float):
    """``(depth, depth_stderr)`` in nm of scans for a final (crater) depth reached at ``total_time`` (s).

    >>> sputter_depth([0.0, 50.0], Quantity(500.0, 25.0, "nm"), 100.0)
    (array([  0., 250.]), array([ 0. , 12.5]))
    """
    t = np.asarray(sputter_time, float)
    return crater.value * t / total_time, crater.stderr * t / total_time


@dataclass
class Track:
    """One technique's contribution to a sample's common depth axis (an adapter's ``depth_track``).

    ``data`` and ``coords`` are ``{name: (dim, values, attrs)}`` as :class:`xarray.Dataset` takes
    them; each technique uses its own dimension and prefixes its names. A variable drawn by
    :func:`overlay_figure` carries :meth:`plotted` attrs and a ``<name>_stderr`` companion.
    ``notes`` say why something is missing; ``attrs`` go into the series' attrs.
    """

    data: dict = field(default_factory=dict)
    coords: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    axis_labels: dict = field(default_factory=dict)  # {"left" | "right": axis label}

    @staticmethod
    def plotted(depth: str, axis: str, scale: float, style: str, label: str) -> dict:
        """Attrs that put a variable on the overlay: its depth variable, ``"left"`` (linear) or
        ``"right"`` (log) axis, a factor for display (100: a fraction shown in %), a matplotlib
        format string and a legend label."""
        return {"plot_depth": depth, "plot_axis": axis, "plot_scale": float(scale), "plot_style": style,
                "plot_label": label}


def depth_series(sample: str, tracks: dict) -> xr.Dataset:
    """One sample's series on the common depth axis (nm) from ``{technique label: Track}``.

    Each technique keeps its own dimension and depths. Tracks that place nothing (no conversion
    given) leave only their notes in ``attrs["notes"]``; ``None`` tracks are skipped.
    ``attrs["techniques"]`` names those that placed something ("XPS and ToF-SIMS").
    """
    data, coords, notes, sources, attrs, labels, placed = {}, {}, [], [], {}, {}, []
    for label, track in tracks.items():
        if track is None:
            continue
        data.update(track.data)
        coords.update(track.coords)
        notes += track.notes
        sources += track.sources
        attrs.update(track.attrs)
        labels.update({f"axis_label_{k}": v for k, v in track.axis_labels.items()})
        if track.data:
            placed.append(label)
    attrs = {"sample": sample, "analysis": "common depth axis", **attrs, **labels, "notes": "; ".join(notes),
             "techniques": " and ".join(placed), "source": "; ".join(sources)}
    from doptrace.core.quality import set_quality

    # the tracks come from results that are not failed (crosscheck leaves failed ones out)
    return set_quality(xr.Dataset(data, coords=coords, attrs=attrs))


def poisson_ratio(a, b, nested: bool = False):
    """``a / b`` and its Poisson esd; ``nested`` when ``a`` is part of ``b`` (a binomial fraction).

    >>> poisson_ratio([100.0], [1000.0])[0]
    array([0.1])
    """
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
    """Every technique's plotted series (:meth:`Track.plotted`) versus depth (nm): linear left axis,
    logarithmic right axis.

    Horizontal error bars are the depth conversions' esds; the depth axis is linear up to 10 nm and
    logarithmic beyond, so ranges of tens of nm and craters of hundreds both show.
    """
    from .figures import new_figure

    fig, ax = new_figure(7.2, 4.2)
    right = ax.twinx()
    handles, tops = [], []
    plotted = [name for name in series.data_vars if "plot_axis" in series[name].attrs]
    for n, name in enumerate(plotted):
        var = series[name]
        scale = float(var.attrs.get("plot_scale", 1.0))
        values = scale * np.asarray(var.values, float)
        errors = scale * np.asarray(series[f"{name}_stderr"].values, float)
        depth = series[var.attrs["plot_depth"]].values
        depth_se = series[f"{var.attrs['plot_depth']}_stderr"].values
        if var.attrs["plot_axis"] == "left":
            axes, keep = ax, np.ones(values.size, bool)
            tops.append(float(np.nanmax(values + errors)))
        else:
            axes, keep = right, values > 0
        handles.append(axes.errorbar(depth[keep], values[keep], yerr=errors[keep], xerr=depth_se[keep],
                                     fmt=var.attrs.get("plot_style", "o-"), color=f"C{n}", capsize=2,
                                     markersize=6 if axes is ax else 4, label=var.attrs.get("plot_label", name)))
    if tops:
        ax.set_ylim(0, max(5.0, 1.15 * max(tops)))
    ax.set_ylabel(series.attrs.get("axis_label_left", ""))
    ax.set_xlabel("depth (nm)")
    if any(series[name].attrs["plot_axis"] == "right" for name in plotted):
        right.set_yscale("log")
    right.set_ylabel(series.attrs.get("axis_label_right", ""))
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
