"""The quality rules of XPS results, in one place: which fits and quantifications may be believed.

Every XPS result carries ``attrs["quality"]`` (``ok``, ``warning`` or ``failed``) and
``attrs["quality_reasons"]`` (see :mod:`doptrace.core.quality`). A ``failed`` result's numbers must
not reach a verdict; a ``warning`` is shown beside them.

Peak fits (:func:`fit_quality`)
-------------------------------
``failed``

- a level's Levenberg-Marquardt pass ended at its iteration limit (not converged);
- a fitted value or esd is not finite (esds of parameters at a bound excepted: they are NaN on purpose);
- every component's area sits at its lower bound: the model describes none of the signal;
- a negative area beyond ``IMPOSSIBLE_SIGMAS`` esd (when a model's bounds allow one);
- the reduced chi-square exceeds ``REDCHI_FAR`` and a centre or FWHM sits at a bound: the
  bounds, not the data, decide the result (the C 1s case: centres on their bounds, chi2/nu 80);
- the reduced chi-square exceeds ``REDCHI_FAILED`` whatever the bounds.

``warning``

- a parameter sits at one of its bounds; its esd is then NaN (not reported as if free); the
  shares keep the one-sided curvature at the bound;
- no step lowered chi-square although the linearised model predicted a decrease (stalled);
- ``|correlation| > CORRELATION_LIMIT`` between two free parameters;
- the reduced chi-square of a level lies outside the central ``1 - 2 * CHI2_TAIL`` of the
  chi-square distribution with the fit's degrees of freedom (counting noise alone stays inside):
  above, the model misses structure and the esds (scaled by sqrt(chi2/nu)) carry it; below, the
  stated counting noise is too large (wrong counts per unit?);
- a CasaXPS refit's area differs from the area CasaXPS stored by more than ``CASA_TOLERANCE``
  (relative) and 3 esd, or blocks of the region were not refitted because their model differs.

Quantification (:func:`quant_quality`)
--------------------------------------
- ``failed``: a negative atomic % beyond ``IMPOSSIBLE_SIGMAS`` esd (the background under that
  region is wrong);
- ``warning``: an atomic % below ``DETECTION_SIGMAS`` esd (not detected; the ``detected``
  variable is 0 there and reports print it as not detected, never as a concentration).

Peaks of an element quantified from several peaks (fitted components; :func:`peak_quality`):

- ``failed``: a negative area beyond ``IMPOSSIBLE_SIGMAS`` esd;
- ``warning``: an area below ``DETECTION_SIGMAS`` esd (below the noise), or a fitted area held at a
  bound (no esd: counted with its value, without uncertainty).

A peak that is its element's only one is judged by the element's atomic % alone (same rules).
"""

from __future__ import annotations

import math

import numpy as np

from doptrace.core.quality import record

IMPOSSIBLE_SIGMAS = 3.0
CORRELATION_LIMIT = 0.98
#: two-sided tail of the chi-square distribution beyond which a level's fit is flagged
CHI2_TAIL = 0.001
#: reduced chi-square above which a fit whose centres or widths sit on bounds is a fit of the bounds
REDCHI_FAR = 10.0
#: reduced chi-square above which no fit is believed
REDCHI_FAILED = 100.0
#: relative difference between a refit area and CasaXPS's stored area still counted as agreement
CASA_TOLERANCE = 0.10
#: an atomic % smaller than this many esd is reported as not detected
DETECTION_SIGMAS = 3.0


def _levels(labels, mask) -> str:
    chosen = [str(labels[i]) for i in np.nonzero(mask)[0]]
    if len(chosen) > 4:
        return f"{len(chosen)} levels ({', '.join(chosen[:3])}, ...)"
    return ("level " if len(chosen) == 1 else "levels ") + ", ".join(chosen)


def redchi_bounds(nfree: int, tail: float = CHI2_TAIL) -> tuple[float, float]:
    """Reduced chi-square range counting noise alone leaves with probability ``1 - 2 tail``.

    >>> lo, hi = redchi_bounds(100)
    >>> round(lo, 2), round(hi, 2)
    (0.62, 1.49)
    """
    nfree = max(int(nfree), 1)
    return chi2_isf(1.0 - tail, nfree) / nfree, chi2_isf(tail, nfree) / nfree


def chi2_sf(x: float, nu: int) -> float:
    """Survival function ``Q(x; nu) = P(chi2_nu > x)`` of the chi-square distribution, integer ``nu``.

    Closed forms (Abramowitz & Stegun 26.4.4-26.4.5), with ``h = x / 2``:

    - even ``nu``: ``Q = exp(-h) sum_{j=0}^{nu/2-1} h^j / j!``
    - odd ``nu``: ``Q = erfc(sqrt(h)) + exp(-h) sum_{j=0}^{(nu-3)/2} h^(j+1/2) / Gamma(j + 3/2)``

    Every term is taken from its logarithm, so large ``nu`` neither overflows nor underflows.
    Written out (with :func:`chi2_isf`) rather than imported from ``scipy.special`` because that
    import is 0.09 s of every ``doptrace xps fit`` start-up, a tenth of the run on a large series.
    """
    if x <= 0:
        return 1.0
    h = 0.5 * x
    if nu % 2 == 0:
        j = np.arange(nu // 2, dtype=float)
        log_terms = j * math.log(h) - np.concatenate([[0.0], np.cumsum(np.log(j[1:]))]) - h
        return float(min(1.0, np.exp(log_terms).sum()))
    j = np.arange((nu - 1) // 2, dtype=float)
    log_gamma = math.lgamma(1.5) + np.concatenate([[0.0], np.cumsum(np.log(j[:-1] + 1.5))])[: j.size]
    log_terms = (j + 0.5) * math.log(h) - log_gamma - h
    return float(min(1.0, math.erfc(math.sqrt(h)) + np.exp(log_terms).sum()))


def chi2_isf(q: float, nu: int) -> float:
    """The ``x`` with ``chi2_sf(x, nu) = q`` (0 < q < 1), by bisection to a relative 1e-12.

    >>> round(chi2_isf(0.05, 10), 4)  # the table value 18.307
    18.307
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"chi2_isf: probability {q} is not inside (0, 1)")
    lo, hi = 0.0, max(2.0 * nu, 10.0)
    while chi2_sf(hi, nu) > q:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, nu) > q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_quality(results, labels, model) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` sentences for the fits ``results`` (:class:`xps.fit.FitResult`, rows =
    levels in order, labelled ``labels``) of ``model``; see the module docstring."""
    failed, warned = [], []
    labels = list(labels)
    cat = lambda name: np.concatenate([np.asarray(getattr(r, name)) for r in results])  # noqa: E731
    converged, stalled, iterations = cat("converged"), cat("stalled"), cat("iterations")
    at_bound = np.concatenate([r.at_bound for r in results])  # (L, P)
    params = np.concatenate([r.params for r in results])
    names = results[0].param_names
    lower = np.concatenate([results[0].compiled.lower, np.full(len(names) - len(results[0].compiled.names), -np.inf)])
    limit = max(r.max_iter for r in results)
    stuck = ~converged & ~stalled
    if stuck.any():
        failed.append(f"The fit did not converge at {_levels(labels, stuck)}: the iteration limit ({limit} per "
                      f"pass) was reached ({int(iterations[stuck].max())} iterations used).")
    if stalled.any():
        warned.append(f"No step lowered chi-square at {_levels(labels, stalled)} although one was predicted: the "
                      "minimum there is uncertain.")
    values = {k: (np.concatenate([r.values()[k][0] for r in results]),
                  np.concatenate([r.values()[k][1] for r in results])) for k in ("area", "center", "fwhm")}
    fractions = [r.fractions() for r in results]
    frac = np.concatenate([f for f, _ in fractions])
    frac_se = np.concatenate([s for _, s in fractions])
    bad = ~np.isfinite(frac) | ~np.isfinite(frac_se)
    for kind, (v, s) in values.items():
        bad |= ~np.isfinite(v)
        # at-bound esds are NaN on purpose; any other non-finite esd is a broken fit
        comp_bound = _component_at_bound(results, kind)
        bad |= ~np.isfinite(s) & ~comp_bound
    if bad.any():
        failed.append(f"A fitted value or its esd is not finite at {_levels(labels, bad.any(axis=1))}.")
    area, area_se = values["area"]
    negative = area < -IMPOSSIBLE_SIGMAS * np.where(np.isfinite(area_se), area_se, 0.0)
    negative &= area < 0
    if negative.any():
        comps = sorted({model.names[j] for j in np.nonzero(negative.any(axis=0))[0]})
        failed.append(f"Negative area beyond {IMPOSSIBLE_SIGMAS:g} esd for {', '.join(comps)} at "
                      f"{_levels(labels, negative.any(axis=1))}: physically impossible.")
    area_index = [i for i, n in enumerate(names) if n.endswith(".area")]
    if area_index:
        nothing = np.all(at_bound[:, area_index] & (params[:, area_index] <= lower[area_index] + 1e-12), axis=1)
        if nothing.any():
            failed.append(f"Every free area sits at its lower bound at {_levels(labels, nothing)}: the model "
                          "describes none of the signal.")
    redchi = cat("redchi") if hasattr(results[0], "redchi") else None
    nfree = results[0].nfree
    shape_bound = np.zeros(len(labels), dtype=bool)
    for i, name in enumerate(names):
        if name.endswith((".center", ".fwhm")):
            shape_bound |= at_bound[:, i]
    if redchi is not None:
        lo, hi = redchi_bounds(nfree)
        worst = float(np.nanmax(redchi))
        far = (redchi > REDCHI_FAR) & shape_bound
        if (redchi > REDCHI_FAILED).any():
            failed.append(f"Reduced chi-square {worst:.3g} (at {_levels(labels, redchi > REDCHI_FAILED)}) is more than "
                          f"{REDCHI_FAILED:g}x what counting noise gives: the model does not describe the data.")
        elif far.any():
            failed.append(f"Reduced chi-square {float(np.max(redchi[far])):.3g} at {_levels(labels, far)} with a centre "
                          "or FWHM held by its bound: the bounds, not the data, decide this fit.")
        high, low = redchi > hi, redchi < lo
        if high.any():
            warned.append(f"Reduced chi-square up to {worst:.3g} at {_levels(labels, high)}; counting noise allows "
                          f"{lo:.2f}-{hi:.2f} ({100 * (1 - 2 * CHI2_TAIL):g} %): the model misses structure, the esds "
                          "are scaled by sqrt(chi2/nu).")
        if low.any():
            warned.append(f"Reduced chi-square down to {float(np.nanmin(redchi)):.3g} at {_levels(labels, low)}, below "
                          f"the {lo:.2f} counting noise allows: the counting noise is overstated (counts per unit?).")
    for i, name in enumerate(names):
        hit = at_bound[:, i]
        if not hit.any():
            continue
        value = params[hit, i]
        side = "lower" if np.isfinite(lower[i]) and np.allclose(value, lower[i]) else "upper"
        warned.append(f"{name} sits at its {side} bound {float(value[0]):.4g} at {_levels(labels, hit)}; its esd "
                      "is not given (not a free parameter there).")
    corr = np.concatenate([r.correlation() for r in results])
    free = ~at_bound
    pairs = {}
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            r = np.abs(corr[:, a, b])
            hit = (r > CORRELATION_LIMIT) & free[:, a] & free[:, b] & np.isfinite(r)
            if hit.any():
                pairs[(names[a], names[b])] = (float(np.max(r[hit])), hit)
    for (a, b), (r, hit) in pairs.items():
        warned.append(f"{a} and {b} are correlated (|r| up to {r:.3f} > {CORRELATION_LIMIT:g}) at "
                      f"{_levels(labels, hit)}: the data cannot separate them.")
    return failed, warned


def _component_at_bound(results, kind: str) -> np.ndarray:
    """(L, C) True where the free parameter behind a component's ``kind`` sits at a bound."""
    k = ("area", "center", "fwhm").index(kind)
    out = []
    for r in results:
        n_model = len(r.compiled.names)
        matrix = r.compiled.kind_matrix(k)
        out.append((r.at_bound[:, :n_model].astype(float) @ (matrix != 0).T.astype(float)) > 0)
    return np.concatenate(out)


def casa_quality(area, area_stderr, casa_area, components, labels,
                 tolerance: float = CASA_TOLERANCE) -> list[str]:
    """Warnings where a refit area and CasaXPS's stored area differ beyond ``tolerance`` and 3 esd."""
    area, area_stderr, casa_area = (np.asarray(v, float) for v in (area, area_stderr, casa_area))
    diff = np.abs(area - casa_area)
    allowed = np.maximum(tolerance * np.abs(casa_area), IMPOSSIBLE_SIGMAS * np.nan_to_num(area_stderr))
    off = np.isfinite(casa_area) & (diff > allowed)
    out = []
    for j in np.nonzero(off.any(axis=0))[0]:
        rel = np.where(casa_area[:, j] != 0, diff[:, j] / np.abs(casa_area[:, j]), np.inf)[off[:, j]]
        out.append(f"The refit area of {components[j]} differs from CasaXPS's stored area by up to "
                   f"{100 * float(np.max(rel)):.3g} % at {_levels(labels, off[:, j])} (tolerance "
                   f"{100 * tolerance:g} % and {IMPOSSIBLE_SIGMAS:g} esd).")
    return out


def quant_quality(atomic_percent, stderr, elements, labels) -> tuple[list[str], list[str], np.ndarray]:
    """``(failed, warnings, detected)`` for atomic % (level, element); ``detected`` is False where the
    at% is below ``DETECTION_SIGMAS`` esd (or not finite)."""
    x, s = np.asarray(atomic_percent, float), np.asarray(stderr, float)
    finite = np.isfinite(x) & np.isfinite(s)
    detected = finite & (x > DETECTION_SIGMAS * s)
    failed, warned = [], []
    if (~finite).any():
        failed.append(f"An atomic % or its esd is not finite at {_levels(labels, (~finite).any(axis=1))}.")
    negative = finite & (x < -IMPOSSIBLE_SIGMAS * s)
    for j in np.nonzero(negative.any(axis=0))[0]:
        failed.append(f"{elements[j]} has a negative atomic % (down to {float(np.min(x[negative[:, j], j])):.3g} %) "
                      f"beyond {IMPOSSIBLE_SIGMAS:g} esd at {_levels(labels, negative[:, j])}: the background under "
                      "that region is wrong.")
    for j in np.nonzero((finite & ~detected & ~negative).any(axis=0))[0]:
        hit = finite[:, j] & ~detected[:, j] & ~negative[:, j]
        warned.append(f"{elements[j]} is below the detection limit ({DETECTION_SIGMAS:g} esd) at "
                      f"{_levels(labels, hit)}: reported as not detected, not as a concentration.")
    return failed, warned, detected


def peak_quality(names, elements, area, area_stderr, labels) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` for the peaks (level, peak) of elements quantified from several peaks."""
    area, se = np.asarray(area, float), np.asarray(area_stderr, float)
    failed, warned = [], []
    for j, name in enumerate(names):
        if sum(e == elements[j] for e in elements) == 1:
            continue  # the element's own at% rule names it
        unknown = ~np.isfinite(se[:, j])
        negative = ~unknown & (area[:, j] < -IMPOSSIBLE_SIGMAS * se[:, j])
        if negative.any():
            failed.append(f"{name} has a negative area beyond {IMPOSSIBLE_SIGMAS:g} esd at "
                          f"{_levels(labels, negative)}: physically impossible.")
        if unknown.any():
            warned.append(f"{name}: its fitted area sits at a bound at {_levels(labels, unknown)} (no esd): counted "
                          "with that area, without uncertainty.")
        weak = ~negative & ~(area[:, j] > DETECTION_SIGMAS * se[:, j])
        if weak.any():
            warned.append(f"{name} is below the noise ({DETECTION_SIGMAS:g} esd of its area) at {_levels(labels, weak)}.")
    return failed, warned


def level_labels(dim: str, levels, units: str = "") -> list[str]:
    """Readable labels of the levels (``"30 s"``; ``"block 3"``)."""
    out = []
    for v in np.asarray(levels).tolist():
        text = f"{v:g}" if isinstance(v, float) and math.isfinite(v) else str(v)
        out.append(f"{dim} {text}" if dim != "etch_time" else f"{text} s")
    return out
