"""Figures of ToF-SIMS multivariate analysis: score maps (or score profiles) beside loadings against mass.

matplotlib is imported inside the function (via :func:`doptrace.tofsims.plot._figure`), so
``import doptrace.tofsims`` stays free of it.
"""

from __future__ import annotations

import numpy as np

from .plot import _figure, _scale_bar


def plot_mva(result, title: str = ""):
    """One row per component: its score map (images) or score against depth (profiles), and its
    loadings as stems at each mass interval's centre mass, labelled with the fragment.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`doptrace.tofsims.mva.mva`.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = result.sizes["component"]
    fig, axes = _figure(8.0, 2.6 * n, n, 2)
    names = [str(f) for f in result["fragment"].values]
    if "fragment_mass" in result.coords and np.all(np.isfinite(result["fragment_mass"].values)):
        mass = np.asarray(result["fragment_mass"].values, float)
        mass_label = "m/z (u)"
    else:
        mass = np.arange(len(names), dtype=float)
        mass_label = "mass interval"
    ratio = np.asarray(result["explained_variance_ratio"].values, float)
    image = "y" in result["scores"].dims
    for k in range(n):
        ax_s, ax_l = axes[k]
        scores = result["scores"].isel(component=k)
        label = f"{result.attrs.get('method', '').upper()} {k + 1} ({100 * ratio[k]:.1f} %)"
        if image:
            values = np.asarray(scores.values, float)
            limit = float(np.nanmax(np.abs(values))) or 1.0
            diverging = result.attrs.get("method") == "pca"
            im = ax_s.imshow(values, cmap="RdBu_r" if diverging else "magma", interpolation="nearest",
                             vmin=-limit if diverging else None, vmax=limit if diverging else None)
            ax_s.set_xticks([])
            ax_s.set_yticks([])
            _scale_bar(ax_s, result, values.shape[1])
            fig.colorbar(im, ax=ax_s, shrink=0.85, label="score")
        else:
            axis = "depth" if "depth" in result.coords and np.all(np.isfinite(result["depth"].values)) else (
                "sputter_time" if "sputter_time" in result.coords else "scan")
            ax_s.plot(np.asarray(result[axis].values, float), np.asarray(scores.values, float), "o-", ms=3)
            ax_s.axhline(0, color="0.6", lw=0.8)
            ax_s.set_xlabel(f"{axis.replace('_', ' ')} ({result[axis].attrs.get('units', '')})")
            ax_s.set_ylabel("score")
        ax_s.set_title(f"{label}: scores", fontsize=9)
        loading = np.asarray(result["loadings"].isel(component=k).values, float)
        ax_l.axhline(0, color="0.6", lw=0.8)
        markers, stems, _ = ax_l.stem(mass, loading, basefmt=" ")
        stems.set_linewidth(1.2)
        markers.set_markersize(3)
        for m, v, name in zip(mass, loading, names):
            ax_l.annotate(name, (m, v), textcoords="offset points", xytext=(0, 4 if v >= 0 else -10),
                          ha="center", fontsize=7)
        ax_l.set_xlabel(mass_label)
        ax_l.set_ylabel("loading")
        ax_l.set_title(f"{label}: loadings", fontsize=9)
    scaling = result.attrs.get("scaling", "none")
    centred = "mean-centred" if int(result.attrs.get("centred", 0)) else "not centred"
    fig.suptitle((f"{title}: " if title else "") + f"{scaling} scaling, {centred}", fontsize=10)
    return fig
