"""The figure of a single-spectrum EDS quantification: the spectrum with what was integrated or fitted.

Windows method: each line's integration window shaded, its two background windows hatched grey
and the background level under the line (the background windows' mean count per channel, as
:func:`doptrace.stem_eds.intensities.window_intensities` subtracts it) drawn across the window.
Model method: in each fit region the fitted model (line families + background) and its
background part (Legendre polynomial, plus the zero-peak tail where it reaches) are drawn over
the counts; :func:`model_curves` recomputes them exactly as
:func:`doptrace.stem_eds.model_fit.model_intensities` fits a single spectrum.
"""

from __future__ import annotations

import json

import numpy as np

from .errors import EDSError


def model_curves(da, ds) -> list[dict]:
    """Per fit region of a model-method result: energies, fitted model, background and amplitudes.

    Parameters
    ----------
    da : xarray.DataArray
        The single spectrum (counts over ``energy``) the result was fitted on.
    ds : xarray.Dataset
        Its :func:`doptrace.stem_eds.model_fit.model_intensities` result (``attrs["regions"]``,
        ``fwhm_mnka_fitted_ev``, ``energy_shift_kev``).

    Returns
    -------
    list of dict
        ``energy``, ``model``, ``background`` arrays, the ``channels`` (start, stop) they cover and
        ``amplitudes`` ``{family: 'a'-line area}``.
    """
    from . import lines as xl
    from .intensities import energy_axis
    from .model_fit import _projection, design_matrix, families

    source = str(da.attrs.get("source", "spectrum"))
    if da.ndim != 1:
        raise EDSError(f"{source}: model curves are drawn for a single spectrum, not {da.ndim - 1}-D data")
    offset, scale, size = energy_axis(da)
    energy = offset + scale * np.arange(size)
    y = np.asarray(da.values, float)
    fwhm = float(ds.attrs.get("fwhm_mnka_fitted_ev", da.attrs.get("fwhm_mnka_ev", 130.0)))
    shift = float(ds.attrs.get("energy_shift_kev", 0.0))
    present = [str(e) for e in ds["element"].values] + str(da.attrs.get("file_elements", "")).split()
    beam = float(da.attrs.get("beam_energy_kev", np.inf) or np.inf)
    by_name = {f.name: f for f in families(present, xl.MIN_ENERGY_KEV, energy[-1], beam if beam > 0 else np.inf,
                                           source)}
    curves = []
    for region in json.loads(ds.attrs["regions"]):
        lo, hi = region["range_kev"]
        i0, i1 = int(np.searchsorted(energy, lo)), int(np.searchsorted(energy, hi, side="right"))
        members = [by_name[n] for n in region["families"] if n in by_name]
        degree = int(region["background_degree"])
        a = design_matrix(energy[i0:i1] - shift, scale, members, fwhm, degree, lo < 0.3)
        mean = y[i0:i1]
        weights = 1.0 / np.maximum(mean, max(mean.mean() * 0.05, 1e-9))
        coef = _projection(a, weights, source, f"{lo:.3f}-{hi:.3f} keV") @ y[i0:i1]
        n_lines = len(members)
        curves.append({"energy": energy[i0:i1], "channels": (i0, i1), "model": a @ coef,
                       "background": a[:, n_lines:] @ coef[n_lines:],
                       "amplitudes": {f.name: float(c) for f, c in zip(members, coef[:n_lines])}})
    return curves


def plot_spectrum(da, ds, title: str = ""):
    """The spectrum with the quantified lines' windows and background (windows) or fit (model).

    Parameters
    ----------
    da : xarray.DataArray
        A single spectrum (counts over ``energy`` keV).
    ds : xarray.Dataset
        Its intensities or quantification (``attrs["method"]`` ``windows`` or ``model``).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    energy = np.asarray(da["energy"].values, float)
    y = np.asarray(da.values, float)
    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.step(energy, y, where="mid", color="0.25", lw=0.8, label="counts")
    method = str(ds.attrs.get("method", ""))
    top = float(np.max(y)) if y.size else 1.0
    labels = dict(zip([str(l) for l in ds["line"].values], np.asarray(ds["line_energy"].values, float)))
    if method == "windows":
        windows = json.loads(ds.attrs.get("windows", "{}"))
        scale = energy[1] - energy[0]
        for k, (name, w) in enumerate(windows.items()):
            lo, hi = w["window"]
            colour = f"C{k % 10}"
            ax.axvspan(lo, hi, color=colour, alpha=0.25, lw=0, label=f"{name} window")
            bw = w.get("background")
            if bw:
                level_parts = []
                for j, (b0, b1) in enumerate(((bw[0], bw[1]), (bw[2], bw[3]))):
                    first = k == 0 and j == 0
                    ax.axvspan(b0, b1, facecolor="none", edgecolor="0.5", hatch="///", lw=0.5,
                               label="background windows" if first else None)
                    sel = (energy >= b0 - scale / 2) & (energy < b1 - scale / 2)
                    level_parts.append(y[sel])
                level = float(np.mean(np.concatenate(level_parts))) if sum(p.size for p in level_parts) else 0.0
                ax.plot([bw[0], bw[3]], [level, level], color=colour, lw=1.2, ls="--",
                        label="background level" if k == 0 else None)
    elif method == "model":
        for k, curve in enumerate(model_curves(da, ds)):
            ax.plot(curve["energy"], curve["model"], color="C3", lw=1.2, label="model fit" if k == 0 else None)
            ax.plot(curve["energy"], curve["background"], color="C0", lw=1.0, ls="--",
                    label="background" if k == 0 else None)
            ax.axvspan(curve["energy"][0], curve["energy"][-1], color="0.9", lw=0, zorder=0)
    for name, e in labels.items():
        ax.annotate(name, (e, top), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7, rotation=90)
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts")
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title + (f" ({method} method)" if method else ""), fontsize=9)
    return fig
