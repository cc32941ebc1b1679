"""Figures of ToF-SIMS results: fragment maps, depth profiles, colocalization, side projections, comparison.

Each function takes result Datasets (from :mod:`doptrace.tofsims.maps`, ``profiles``, ``coloc``,
``volume``, ``compare``) and returns a :class:`matplotlib.figure.Figure` built without pyplot.
matplotlib is imported inside the functions, so ``import doptrace.tofsims`` stays free of it.
"""

from __future__ import annotations

import numpy as np


def _figure(width: float, height: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _scale_bar(ax, ds, image_width_px: int):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x = np.asarray(ds["x"].values, float)
    if x.size < 2 or ds["x"].attrs.get("units") != "um":
        return
    width_um = (x[-1] - x[0]) + (x[1] - x[0])
    target = width_um / 4
    nice = 10 ** np.floor(np.log10(target))
    length = max(m * nice for m in (1, 2, 5) if m * nice <= target)
    ax.add_artist(AnchoredSizeBar(ax.transData, length / width_um * image_width_px, f"{length:g} µm", "lower right",
                                  pad=0.3, color="white", frameon=False, size_vertical=image_width_px / 80))


def plot_maps(result, title: str = ""):
    """One panel per fragment (normalised intensity when present, else counts), each with a scale bar.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`doptrace.tofsims.maps.fragment_maps`; with a ``ratio`` map (``--ratio``, or a
        project's pair) a last panel shows it (pixels without denominator counts grey).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fragments = [str(f) for f in result["fragment"].values]
    values = result["intensity"] if "intensity" in result else result["counts"]
    has_ratio = "ratio" in result and tuple(result["ratio"].dims) == ("y", "x")
    n = len(fragments) + int(has_ratio)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = _figure(3.0 * cols, 2.9 * rows, rows, cols)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), fragments):
        image = np.asarray(values.sel(fragment=name).values, float)
        im = ax.imshow(image, cmap="magma", origin="upper", interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, result, image.shape[1])
        label = "counts / " + result.attrs.get("normalization", "") if "intensity" in result else "counts"
        fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    if has_ratio:
        _ratio_panel(fig, axes.ravel()[n - 1], result)
    if title:
        fig.suptitle(title)
    return fig


def _ratio_panel(fig, ax, result):
    """The pixel ratio map A/B, colour range from its 1st to 99th percentile, NaN (no B counts) grey."""
    image = np.asarray(result["ratio"].values, float)
    finite = image[np.isfinite(image)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1.0
    im = ax.imshow(image, cmap="viridis", vmin=lo, vmax=hi, origin="upper", interpolation="nearest")
    ax.set_facecolor("0.8")
    ax.set_title(f"ratio {result.attrs.get('ratio', result['ratio'].attrs.get('long_name', ''))}")
    ax.set_xticks([])
    ax.set_yticks([])
    _scale_bar(ax, result, image.shape[1])
    fig.colorbar(im, ax=ax, shrink=0.8, label="count ratio")


def plot_profile(profile, uniformity=None, title: str = "", max_fragments: int = 12):
    """Normalised intensity (or counts) per scan with Poisson error bars, versus depth or sputter time.

    Parameters
    ----------
    profile : xarray.Dataset
        From :func:`doptrace.tofsims.profiles.depth_profile` or ``profile_from_export``.
    uniformity : xarray.Dataset, optional
        From :func:`doptrace.tofsims.profiles.uniformity_test`: its excluded surface layer is shaded.
    title : str
        Axes title.
    max_fragments : int
        At most this many fragments are drawn, the most intense (a SurfaceLab export may hold over
        a hundred peaks; their legend would fill the figure); the title then says how many of how many.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _figure(6.4, 4.0)
    ax = axes[0, 0]
    key = "intensity" if "intensity" in profile else "counts"
    names = list(profile["fragment"].values)
    if len(names) > max_fragments:
        totals = profile[key].fillna(0).sum("scan").values
        keep = set(np.argsort(-totals, kind="stable")[:max_fragments])
        title = f"{title}{chr(10) if title else ''}the {max_fragments} most intense of {len(names)} fragments"
        names = [name for k, name in enumerate(names) if k in keep]
    use_depth = "depth" in profile.coords and np.all(np.isfinite(profile["depth"].values))
    x = profile["depth"].values if use_depth else profile["sputter_time"].values
    for name in names:
        y = profile[key].sel(fragment=name).values
        e = profile[f"{key}_stderr"].sel(fragment=name).values
        ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, lw=1, label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("depth (nm)" if use_depth else "sputter time (s)")
    ax.set_ylabel(f"counts / {profile.attrs.get('normalization')}" if key == "intensity" else "counts per scan")
    if uniformity is not None:
        low = float(uniformity.attrs.get("surface_excluded_below", np.nan))
        if np.isfinite(low):
            ax.axvspan(min(x), low, color="0.9", zorder=0, label="surface (excluded from test)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_coloc(result, title: str = ""):
    """Scatter of binned pixel counts of a fragment pair with Costes thresholds, r, p, M1, M2.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`doptrace.tofsims.coloc.colocalization`.
    title : str
        First line of the axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _figure(4.8, 4.2)
    ax = axes[0, 0]
    a = result["image_a"].values.ravel()
    b = result["image_b"].values.ravel()
    ax.scatter(a, b, s=6, alpha=0.5, color="tab:blue", edgecolors="none")
    ax.axvline(float(result["threshold_a"]), color="0.5", ls="--", lw=1)
    ax.axhline(float(result["threshold_b"]), color="0.5", ls="--", lw=1)
    bin_px = result.attrs.get("binning", 1)
    ax.set_xlabel(f"{result.attrs['fragment_a']} counts ({bin_px}x{bin_px} px)")
    ax.set_ylabel(f"{result.attrs['fragment_b']} counts ({bin_px}x{bin_px} px)")
    ax.set_title(
        (title + "\n" if title else "")
        + f"r = {float(result['pearson_r']):.3f}, p = {float(result['p_value']):.3g} (spatial null, "
        f"N = {result.attrs['n_null']}); M1 = {float(result['manders_m1']):.2f}, M2 = {float(result['manders_m2']):.2f}",
        fontsize=9,
    )
    return fig


def plot_projections(result, title: str = ""):
    """Side views of one fragment's volume: counts summed over y (depth vs x) and over x (depth vs y).

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`doptrace.tofsims.volume.projections`.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _figure(7.0, 3.0, 1, 2)
    use_depth = "depth" in result.coords and np.all(np.isfinite(result["depth"].values))
    z = result["depth"].values if use_depth else result["scan"].values
    for ax, key, lateral in zip(axes[0], ("proj_xz", "proj_yz"), ("x", "y")):
        image = np.asarray(result[key].values, float)
        pos = result[lateral].values
        dz = (z[1] - z[0]) if z.size > 1 else 1.0
        dp = (pos[1] - pos[0]) if pos.size > 1 else 1.0
        im = ax.imshow(image, aspect="auto", cmap="magma", interpolation="nearest", origin="upper",
                       extent=(pos[0] - dp / 2, pos[-1] + dp / 2, z[-1] + dz / 2, z[0] - dz / 2))
        ax.set_xlabel(f"{lateral} ({result[lateral].attrs.get('units', '')})")
        ax.set_ylabel("depth (nm)" if use_depth else "scan")
        ax.set_title(f"{result.attrs.get('fragment')} summed over {'y' if lateral == 'x' else 'x'}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="counts")
    if title:
        fig.suptitle(title)
    return fig


def plot_compare(result):
    """Normalised intensities per fragment and sample, with Poisson (thick) and bootstrap (thin) intervals.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`doptrace.tofsims.compare.compare_samples`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _figure(6.4, 3.8)
    ax = axes[0, 0]
    fragments = [str(f) for f in result["fragment"].values]
    samples = [str(s) for s in result["sample"].values]
    width = 0.8 / len(samples)
    positions = np.arange(len(fragments))
    for k, sample in enumerate(samples):
        sel = result.sel(sample=sample)
        xk = positions + (k - (len(samples) - 1) / 2) * width
        values = sel["intensity"].values
        ax.bar(xk, values, width * 0.9, label=sample, alpha=0.8)
        ax.errorbar(xk, values, yerr=[values - sel["boot_low"].values, sel["boot_high"].values - values],
                    fmt="none", ecolor="k", capsize=4, lw=1)
        ax.errorbar(xk, values, yerr=[values - sel["poisson_low"].values, sel["poisson_high"].values - values],
                    fmt="none", ecolor="k", lw=3)
    ax.set_xticks(positions, fragments)
    ax.set_ylabel(f"counts / {result.attrs.get('normalization')}")
    ax.legend(fontsize=8)
    ax.set_title(f"{int(100 * result.attrs['confidence'])} % intervals: Poisson (thick), tile bootstrap (thin)",
                 fontsize=9)
    return fig
