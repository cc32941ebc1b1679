"""Figures of XPS results: one level's fit, and a component's share across etch depth.

Each function takes result Datasets and returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global figure registry, no GUI backend), so it can be saved with ``fig.savefig`` or
shown in a notebook. matplotlib is imported inside the functions: ``import doptrace.xps`` stays
free of it.
"""

from __future__ import annotations

import numpy as np

from .series import headline_component, headline_share


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def level_label(ds, i: int) -> str:
    """``"etch 100 s"`` (or ``"<dim> <value> <units>"``) for level ``i`` of a fit result."""
    dim = ds.attrs.get("level_dim", "etch_time")
    value = ds[dim].values[i]
    if dim == "etch_time":
        return f"etch {value:g} s"
    units = ds[dim].attrs.get("units", "1")
    return f"{dim} {value:g}" + ("" if units == "1" else f" {units}")


def plot_fit(ds, level: int = 0, title: str = ""):
    """Data, background, components and envelope of one level of a fit.

    Parameters
    ----------
    ds : xarray.Dataset
        A fit result of :func:`doptrace.xps.fit_region` or :func:`doptrace.xps.fit_casa`.
    level : int
        Index along the fit's level dimension (``attrs["level_dim"]``, e.g. ``etch_time``).
    title : str
        Axes title; default: region, level and reduced chi-square.

    Returns
    -------
    matplotlib.figure.Figure
        Binding energy decreasing to the right, as XPS spectra are read.
    """
    dim = ds.attrs.get("level_dim", "etch_time")
    one = ds.isel({dim: level})
    x = np.asarray(one["binding_energy"].values, float)
    units = ds["data"].attrs.get("units", "counts/s")
    fig, ax = _figure(6.4, 4.2)
    ax.plot(x, one["data"].values, ".", ms=3, color="k", label="data")
    background = np.asarray(one["background"].values, float)
    ax.plot(x, background, "--", color="0.5", label="background")
    for name in ds["component"].values:
        curve = np.asarray(one["component_curve"].sel(component=name).values, float)
        ax.fill_between(x, background, background + curve, alpha=0.35, label=str(name))
    ax.plot(x, one["envelope"].values, "-", color="crimson", lw=1.2, label="envelope")
    ax.set_xlim(np.nanmax(x), np.nanmin(x))
    ax.set_xlabel("binding energy (eV)")
    ax.set_ylabel(f"intensity ({units})")
    ax.set_title(title or f"{ds.attrs.get('region', '')}, {level_label(ds, level)}, "
                          f"reduced chi2 {float(one['redchi']):.2f}")
    ax.legend(fontsize=7)
    return fig


def plot_fractions(items, title: str = ""):
    """The headline component's share of the fitted area versus level, one series per sample.

    Parameters
    ----------
    items : list of (str, xarray.Dataset)
        ``(label, fit result)`` pairs; each fit's headline is
        :func:`doptrace.xps.series.headline_component`.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Shares with 1-sigma error bars (from the full covariance of the areas).
    """
    fig, ax = _figure(6.4, 4.0)
    for label, ds in items:
        comp = headline_component(ds)
        dim = ds.attrs.get("level_dim", "etch_time")
        share, err = headline_share(ds, comp)
        ax.errorbar(ds[dim].values, share, yerr=err, marker="o", capsize=3, label=f"{label}: {comp}")
    dims = {d.attrs.get("level_dim", "etch_time") for _, d in items}
    dim = dims.pop() if len(dims) == 1 else "level"
    units = items[0][1][dim].attrs.get("units", "1") if dim in items[0][1] else "1"
    ax.set_xlabel("etch time (s)" if dim == "etch_time" else dim.replace("_", " ") + ("" if units == "1" else f" ({units})"))
    ax.set_ylabel("fraction of fitted area (1)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    if len(items) <= 12:  # a legend of hundreds of samples would squeeze the axes to nothing
        ax.legend(fontsize=8)
    else:
        ax.text(0.99, 0.02, f"{len(items)} samples", transform=ax.transAxes, ha="right", fontsize=8)
    return fig
