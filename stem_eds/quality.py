"""The quality rules of STEM-EDS results, in one place (see :mod:`doptrace.core.quality`).

Line intensities (:func:`intensity_quality`)
    ``failed``: a line's net counts summed over the whole image are negative beyond
    ``IMPOSSIBLE_SIGMAS`` esd (the background model removes more than the line holds), or an
    intensity / esd is not finite. ``warning``: more than ``NEGATIVE_PIXEL_SHARE`` of the pixels
    have net counts below -``IMPOSSIBLE_SIGMAS`` esd (counting noise gives 0.13 %); a line is
    qualitative (B K: its number depends on the background model far beyond its Poisson error).

Quantification (:func:`quant_quality`)
    ``failed``: a region total (or single-spectrum) atomic % negative beyond ``IMPOSSIBLE_SIGMAS``
    esd. ``warning``: a total below ``DETECTION_SIGMAS`` esd (not detected); per-pixel maps where
    more than ``NEGATIVE_PIXEL_SHARE`` of the pixels are negative beyond ``IMPOSSIBLE_SIGMAS`` esd,
    or where most pixels are below the detection limit (the map shows noise there; its colour
    scale is clipped at 0); qualitative lines.

Homogeneity (:func:`homogeneity_quality`)
    ``warning``: a verdict resting on a qualitative line; an H that is not finite.
"""

from __future__ import annotations

import numpy as np

IMPOSSIBLE_SIGMAS = 3.0
DETECTION_SIGMAS = 3.0
#: share of pixels allowed below -3 esd before a map is flagged (counting noise gives 0.13 %)
NEGATIVE_PIXEL_SHARE = 0.01
#: share of pixels below the detection limit from which a map is called mostly noise
NOISE_PIXEL_SHARE = 0.5


def _qualitative(ds) -> list[str]:
    if "qualitative" not in ds.coords:
        return []
    return [str(line) for line, q in zip(ds["line"].values if "line" in ds.coords else ds["element"].values,
                                         np.asarray(ds["qualitative"].values).astype(bool)) if q]


def _qualitative_sentence(ds) -> list[str]:
    lines = _qualitative(ds)
    if not lines:
        return []
    return [f"{', '.join(lines)} {'is' if len(lines) == 1 else 'are'} qualitative: the number depends on the "
            "background model far beyond its Poisson error."]


def intensity_quality(ds) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` for line intensities (``intensity`` over element and spatial dims)."""
    failed, warned = [], []
    value = np.asarray(ds["intensity"].values, float)
    err = np.asarray(ds["intensity_stderr"].values, float)
    names = [str(n) for n in (ds["line"].values if "line" in ds.coords else ds["element"].values)]
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(err))):
        failed.append("A line intensity or its esd is not finite.")
    spatial = tuple(range(1, value.ndim))
    total = value.sum(axis=spatial) if spatial else value
    total_err = np.sqrt((err**2).sum(axis=spatial)) if spatial else err
    for name, t, e in zip(names, total, total_err):
        if t < -IMPOSSIBLE_SIGMAS * e:
            failed.append(f"{name} has negative net counts over the whole image ({t:.4g} ± {e:.2g}): the background "
                          "model removes more than the line holds.")
    if spatial:
        for name, v, e in zip(names, value, err):
            share = float(np.mean(v < -IMPOSSIBLE_SIGMAS * e))
            if share > NEGATIVE_PIXEL_SHARE:
                warned.append(f"{name}: {100 * share:.2g} % of the pixels have net counts below -{IMPOSSIBLE_SIGMAS:g} "
                              "esd (counting noise gives 0.13 %): the background is over-subtracted there.")
    return failed, warned + _qualitative_sentence(ds)


def quant_quality(ds) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` for a quantification (``atomic_percent`` and, for maps, region totals)."""
    failed, warned = [], []
    elements = [str(e) for e in ds["element"].values]
    ap = np.asarray(ds["atomic_percent"].values, float)
    se = np.asarray(ds["atomic_percent_stderr"].values, float)
    totals = ("total_atomic_percent", "total_atomic_percent_stderr") if "total_atomic_percent" in ds else None
    if ap.ndim == 1:
        totals = ("atomic_percent", "atomic_percent_stderr")
    if totals is not None:
        t, te = (np.asarray(ds[k].values, float) for k in totals)
        where = f" over {ds.attrs.get('total_region', 'the spectrum')}" if ap.ndim > 1 else ""
        for name, v, e in zip(elements, t, te):
            if not (np.isfinite(v) and np.isfinite(e)):
                failed.append(f"{name}: the atomic %{where} or its esd is not finite.")
            elif v < -IMPOSSIBLE_SIGMAS * e:
                failed.append(f"{name} has a negative atomic %{where} ({v:.3g} ± {e:.2g} %): physically impossible.")
            elif v < DETECTION_SIGMAS * e:
                warned.append(f"{name} is below the detection limit{where} ({v:.3g} ± {e:.2g} %, less than "
                              f"{DETECTION_SIGMAS:g} esd): not detected, not a concentration.")
    if ap.ndim > 1:
        for name, v, e in zip(elements, ap, se):
            finite = np.isfinite(v) & np.isfinite(e)
            if not finite.any():
                continue
            negative = float(np.mean(v[finite] < -IMPOSSIBLE_SIGMAS * e[finite]))
            noise = float(np.mean(v[finite] < DETECTION_SIGMAS * e[finite]))
            if negative > NEGATIVE_PIXEL_SHARE:
                warned.append(f"{name} map: {100 * negative:.2g} % of the pixels are negative beyond "
                              f"{IMPOSSIBLE_SIGMAS:g} esd.")
            if noise > NOISE_PIXEL_SHARE:
                warned.append(f"{name} map: {100 * noise:.2g} % of the pixels are below the detection limit "
                              f"({DETECTION_SIGMAS:g} esd); per-pixel values there are noise (the map's colour scale "
                              "starts at 0).")
    return failed, warned + _qualitative_sentence(ds)


def homogeneity_quality(ds) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` for a homogeneity result."""
    warned = []
    qualitative = _qualitative(ds)
    if qualitative:
        warned.append(f"The homogeneity of {', '.join(qualitative)} rests on a qualitative line (its composition "
                      "depends on the background model).")
    h = np.asarray(ds["H"].values, float)
    if not np.all(np.isfinite(h)):
        bad = [str(e) for e, row in zip(ds["element"].values, h) if not np.all(np.isfinite(row))]
        warned.append(f"H is not finite for {', '.join(bad)} at some block sizes.")
    return [], warned
