"""Figures of XPS results: one level's fit with its residual, a gallery of every level, and a
component's share across etch depth.

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


def _draw_level(ax, res_ax, ds, level: int, legend: bool = True, markersize: float = 3.0) -> None:
    """Data, background, components and envelope of one level on ``ax``; data - envelope on ``res_ax``."""
    dim = ds.attrs.get("level_dim", "etch_time")
    one = ds.isel({dim: level})
    x = np.asarray(one["binding_energy"].values, float)
    data = np.asarray(one["data"].values, float)
    envelope = np.asarray(one["envelope"].values, float)
    ax.plot(x, data, ".", ms=markersize, color="k", label="data")
    background = np.asarray(one["background"].values, float)
    ax.plot(x, background, "--", color="0.5", label="background")
    for name in ds["component"].values:
        curve = np.asarray(one["component_curve"].sel(component=name).values, float)
        ax.fill_between(x, background, background + curve, alpha=0.35, label=str(name))
    ax.plot(x, envelope, "-", color="crimson", lw=1.2, label="envelope")
    ax.set_xlim(np.nanmax(x), np.nanmin(x))
    ax.tick_params(labelbottom=False)
    res_ax.axhline(0.0, color="0.5", lw=0.8)
    res_ax.plot(x, data - envelope, "-", color="k", lw=0.8)
    res_ax.set_xlim(np.nanmax(x), np.nanmin(x))
    if legend:
        ax.legend(fontsize=7)


def plot_fit(ds, level: int = 0, title: str = ""):
    """Data, background, components and envelope of one level of a fit, residual panel beneath.

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
        Two axes sharing the binding-energy axis (decreasing to the right, as XPS spectra are
        read): the fit, and below it the residual data - envelope in the data's units.
    """
    from matplotlib.figure import Figure

    dim = ds.attrs.get("level_dim", "etch_time")
    units = ds["data"].attrs.get("units", "counts/s")
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax, res_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _draw_level(ax, res_ax, ds, level)
    ax.set_ylabel(f"intensity ({units})")
    res_ax.set_xlabel("binding energy (eV)")
    res_ax.set_ylabel("residual")
    one = ds.isel({dim: level})
    ax.set_title(title or f"{ds.attrs.get('region', '')}, {level_label(ds, level)}, "
                          f"reduced chi2 {float(one['redchi']):.2f}")
    return fig


#: most levels a gallery draws; a longer series is shown at evenly spaced levels (the title says so)
GALLERY_MAX = 48


def gallery_levels(ds, max_panels: int = GALLERY_MAX) -> list[int]:
    """Indices of the levels :func:`plot_gallery` draws: all, or ``max_panels`` evenly spaced
    (always the first and the last) when the series is longer."""
    n = ds.sizes[ds.attrs.get("level_dim", "etch_time")]
    if n <= max_panels:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max_panels)})


def plot_gallery(ds, columns: int = 4, max_panels: int = GALLERY_MAX, title: str = ""):
    """Every level of a fit in a grid: one panel per level, each a fit above its residual.

    Parameters
    ----------
    ds : xarray.Dataset
        A fit result (:func:`doptrace.xps.fit_region`, :func:`doptrace.xps.fit_casa`).
    columns : int
        Panels per row.
    max_panels : int
        At most this many levels are drawn (evenly spaced, first and last included,
        :func:`gallery_levels`); the figure title then says how many of how many.
    title : str
        Figure title; default: region and number of levels.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes per level drawn (fit above residual), in ``fig.axes`` order.
    """
    from matplotlib.figure import Figure

    dim = ds.attrs.get("level_dim", "etch_time")
    chosen = gallery_levels(ds, max_panels)
    n = len(chosen)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    height = 2.8 * rows + 0.6
    fig = Figure(figsize=(3.2 * columns, height))
    # fixed margins, not constrained layout: its solver over up to 96 axes took ~0.1 s per panel
    fig.subplots_adjust(left=0.35 / columns, right=1 - 0.15 / columns, bottom=0.5 / height, top=1 - 0.75 / height,
                        wspace=0.35, hspace=0.3)
    cells = fig.add_gridspec(rows, columns)
    for k in range(n):
        level = chosen[k]
        inner = cells[k // columns, k % columns].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        ax = fig.add_subplot(inner[0])
        res_ax = fig.add_subplot(inner[1], sharex=ax)
        ax.tick_params(labelbottom=False)
        _draw_level(ax, res_ax, ds, level, legend=k == 0, markersize=1.5)
        ax.set_title(f"{level_label(ds, level)}, chi2 {float(ds['redchi'].values[level]):.2f}", fontsize=8)
        ax.tick_params(labelsize=6)
        res_ax.tick_params(labelsize=6)
        if k >= n - columns:
            res_ax.set_xlabel("binding energy (eV)", fontsize=7)
    total = ds.sizes[dim]
    shown = f"{n} of {total} levels (evenly spaced)" if n < total else f"{total} level(s)"
    fig.suptitle(title or f"{ds.attrs.get('region', '')} fit, {shown}; residual (data - envelope) under each",
                 fontsize=10, y=1 - 0.15 / height)
    # the panels that were really drawn, for callers and tests
    fig.doptrace_levels = chosen
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
