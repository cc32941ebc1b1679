"""Figures of STEM-EDS results: element and composition maps, homogeneity index, radial profiles.

Each function takes result Datasets and returns a :class:`matplotlib.figure.Figure` built without
pyplot; matplotlib is imported inside the functions, so ``import doptrace.stem_eds`` stays free of it.
"""

from __future__ import annotations

import numpy as np


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def _scale_bar(ax, ds, width_px: int):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x = np.asarray(ds["x"].values, float)
    if x.size < 2:
        return
    pixel = x[1] - x[0]
    target = pixel * width_px / 4
    nice = 10 ** np.floor(np.log10(target))
    length = max(m * nice for m in (1, 2, 5) if m * nice <= target)
    bar = AnchoredSizeBar(ax.transData, length / pixel, f"{length:g} {ds['x'].attrs.get('units', '')}",
                          "lower right", pad=0.2, color="black", frameon=True, size_vertical=width_px / 60,
                          fontproperties={"size": 7})
    bar.patch.set_alpha(0.7)
    ax.add_artist(bar)


def plot_maps(ds, title: str = ""):
    """One panel per element (at% when quantified, else net counts) with colour and scale bars.

    Parameters
    ----------
    ds : xarray.Dataset
        Line intensities (:func:`doptrace.stem_eds.line_intensities`) or their quantification
        (:func:`doptrace.stem_eds.quantify`). A result without spatial dims is drawn as bars.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Pixels with almost no counts (vacuum, holes) are left blank: they carry no composition.
    """
    key = "atomic_percent" if "atomic_percent" in ds else "intensity"
    values = ds[key]
    if values.ndim != 3:
        fig, axes = _figure(5, 3)
        ax = axes[0, 0]
        ax.bar([str(l) for l in ds["line"].values], np.asarray(values.values, float),
               yerr=np.asarray(ds[f"{key}_stderr"].values, float), capsize=3)
        ax.set_ylabel(f"{key.replace('_', ' ')} ({values.attrs.get('units', '')})")
        ax.set_title(title)
        return fig
    elements = [str(e) for e in ds["element"].values]
    qualitative = dict(zip(elements, np.asarray(ds["qualitative"].values, int))) if "qualitative" in ds.coords else {}
    n = len(elements)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = _figure(2.8 * cols, 2.7 * rows, rows, cols)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    total = np.asarray(ds["intensity"].sum("element").values, float)
    positive = total[total > 0]
    valid = total > 0.1 * (np.median(positive) if positive.size else 0.0)
    for ax, element, line in zip(axes.ravel(), elements, ds["line"].values):
        image = np.where(valid, np.asarray(values.sel(element=element).values, float), np.nan)
        finite = image[np.isfinite(image)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0, 1))
        # Counts and compositions cannot be negative: noise below 0 (a light line's at% can read
        # -60 % in a pixel) is shown at the bottom of the scale, not given half the colour range.
        lo = max(lo, 0.0)
        hi = hi if hi > lo else lo + 1.0
        im = ax.imshow(image, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_facecolor("0.85")
        ax.set_title(f"{line}" + (" (qualitative)" if qualitative.get(element) else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, ds, image.shape[1])
        label = "at%" if key == "atomic_percent" else "net counts"
        fig.colorbar(im, ax=ax, shrink=0.8, label=label, extend="both" if finite.size and finite.min() < lo else "max")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_homogeneity(h, title: str = ""):
    """Block dispersion index H versus block size with its uncertainty; H = 1 is pure counting noise.

    Parameters
    ----------
    h : xarray.Dataset
        From :func:`doptrace.stem_eds.homogeneity`.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _figure(5.6, 3.8)
    ax = axes[0, 0]
    sizes = np.asarray(h["block_size"].values, float)
    for element in h["element"].values:
        ax.errorbar(sizes, h["H"].sel(element=element).values, yerr=h["H_stderr"].sel(element=element).values,
                    marker="o", ms=4, capsize=3, label=str(element))
    ax.axhline(1.0, color="0.4", ls="--", lw=1, label="Poisson only")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("block size (px)")
    ax.set_ylabel("H = CV / CV_Poisson")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def plot_radial(h, title: str = ""):
    """Radial composition profile of each element about the count-weighted centre, Poisson error bars.

    Parameters
    ----------
    h : xarray.Dataset
        From :func:`doptrace.stem_eds.homogeneity` (``profile_radial`` over ``radius``).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    elements = [str(e) for e in h["element"].values]
    fig, axes = _figure(2.3 * len(elements), 2.6, 1, len(elements), sharex=True)
    r = np.asarray(h["radius"].values, float)
    for ax, element in zip(axes[0], elements):
        ax.errorbar(r, h["profile_radial"].sel(element=element).values,
                    yerr=h["profile_radial_stderr"].sel(element=element).values, marker="o", ms=3, capsize=2)
        ax.set_title(element, fontsize=9)
        ax.set_xlabel(f"radius ({h['radius'].attrs.get('units', '')})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"composition ({h['profile_radial'].attrs.get('units', '')})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
