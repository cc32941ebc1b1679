"""Figure of an XRD refinement result: the classic Rietveld plot.

Returns a :class:`matplotlib.figure.Figure` built without pyplot; matplotlib is imported inside
the function, so ``import doptrace.xrd`` stays free of it.
"""

from __future__ import annotations

import numpy as np


def plot_refinement(ds, title: str = ""):
    """Observed, calculated, background and difference patterns with reflection ticks per phase.

    Parameters
    ----------
    ds : xarray.Dataset
        A refinement result (``two_theta``, ``obs``, ``calc``, ``background``, ``diff``,
        ``reflection_two_theta``/``reflection_phase``, ``rwp``), as written by ``doptrace xrd refine``.
    title : str
        Prefix of the axes title (which always shows Rwp).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    x = ds.two_theta.values
    obs, calc = ds.obs.values, ds.calc.values
    ax.plot(x, obs, ".", ms=1.5, color="0.2", label="observed")
    ax.plot(x, calc, "-", lw=0.8, color="tab:red", label="calculated")
    ax.plot(x, ds.background.values, "-", lw=0.6, color="tab:green", label="background")
    span = float(np.nanmax(obs) - np.nanmin(obs)) or 1.0
    offset = float(np.nanmin(obs)) - 0.12 * span
    diff = ds["diff"].values
    ax.plot(x, diff + offset - np.nanmax(diff), "-", lw=0.6, color="tab:blue", label="difference")
    tick_top = offset - np.nanmax(diff) + np.nanmin(diff) - 0.03 * span
    colors = ["tab:purple", "tab:orange", "tab:brown", "tab:cyan"]
    for k, phase in enumerate(ds.phase.values):
        sel = ds.reflection_phase.values == phase
        y0 = tick_top - 0.05 * span * k
        ax.plot(ds.reflection_two_theta.values[sel], np.full(int(sel.sum()), y0), "|", ms=6,
                color=colors[k % len(colors)], label=f"{phase} reflections")
    ax.set_xlabel("2θ (deg)")
    ax.set_ylabel("intensity (counts)")
    ax.set_title(f"{title}  Rwp {float(ds.rwp):.2f} %".strip())
    ax.legend(fontsize=7, loc="upper right")
    return fig
