"""The quality record of an XRD refinement: ``ok``, ``warning`` or ``failed`` and the reasons why.

Every rule lives here (both engines' results go through :func:`assess` in
:func:`doptrace.xrd.rietveld.build_result`). A rule gives a short sentence with the numbers behind it.

``failed`` (the numbers must not be used for a verdict):

- a stage could not take a step although the linearised model predicted a decrease, or the
  engine reports a problem (non-finite derivative, GSAS-II aborted);
- a refined value or esd is not finite;
- a physically impossible value beyond ``IMPOSSIBLE_SIGMAS`` esd: a site fraction or occupancy
  outside [0, site total], a negative weight fraction;
- GOF above ``GOF_FAILED`` (chi² a hundred times what counting noise allows: the model does not
  describe the pattern at all, e.g. a wrong phase).

``warning`` (shown beside the numbers):

- the last stage hit its cycle limit while chi² was still falling (not converged);
- a parameter sits at one of its hard bounds (its esd is then reported as NaN, not as if free);
- ``|correlation| > CORRELATION_LIMIT`` between two refined parameters;
- a negative Uiso beyond ``IMPOSSIBLE_SIGMAS`` esd;
- GOF above ``GOF_HIGH`` or below ``GOF_LOW`` (counting noise alone gives GOF ~ 1);
- Durbin-Watson statistic of the weighted residuals below ``DW_LOW`` (counting noise gives
  2 ± 2/sqrt(N)): the residuals are serially correlated, the model misses a systematic feature
  and the esds are too small by about :func:`serial_correlation_factor`;
- more than ``FLOOR_SHARE`` of a phase's reflections at the width floor (no width gradient there).

Notes (level ``note``, e.g. that a Le Bail phase has no weight fraction) follow the reasons
without changing the quality.

Example
-------
>>> quality, reasons = assess(names=["a"], values=[1.0], esds=[0.1], correlation=[[1.0]], gof=1.02,
...                           durbin_watson=1.97, nobs=1000)
>>> quality, reasons
('ok', [])
"""

from __future__ import annotations

import math

import numpy as np

OK, WARNING, FAILED = "ok", "warning", "failed"
CORRELATION_LIMIT = 0.98
IMPOSSIBLE_SIGMAS = 3.0
GOF_HIGH = 2.0
GOF_FAILED = 10.0
GOF_LOW = 0.5
DW_LOW = 1.0
FLOOR_SHARE = 0.5
#: largest esd inflation quoted from the Durbin-Watson statistic
MAX_SERIAL_FACTOR = 10.0


def durbin_watson(obs, calc, esd, used=None) -> float:
    """Durbin-Watson statistic of the weighted residuals ``r = (yo - yc)/esd`` over the used points.

    ``DW = sum (r_i - r_{i-1})^2 / sum r_i^2`` (GSAS-II reports the same statistic); 2 for
    uncorrelated residuals, towards 0 when neighbouring residuals share a sign.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(durbin_watson(rng.normal(size=20000), np.zeros(20000), np.ones(20000)), 1)
    2.0
    """
    obs, calc, esd = (np.asarray(v, float) for v in (obs, calc, esd))
    keep = np.isfinite(esd) & (esd > 0)
    if used is not None:
        keep &= np.asarray(used, bool)
    r = (obs[keep] - calc[keep]) / esd[keep]
    denom = float(np.sum(r * r))
    return float(np.sum(np.diff(r) ** 2) / denom) if denom > 0 and r.size > 2 else float("nan")


def serial_correlation_factor(dw: float) -> float:
    """Esd inflation for serially correlated residuals (Bérar & Lelann, J. Appl. Cryst. 24 (1991) 1).

    With the lag-one correlation ``rho = 1 - DW/2`` (clipped to >= 0) the factor is
    ``sqrt((1 + rho)/(1 - rho))``: 1 for counting noise, about 1.8 at DW = 0.9.

    Examples
    --------
    >>> serial_correlation_factor(2.0), round(serial_correlation_factor(0.92), 2)
    (1.0, 1.83)
    """
    if not math.isfinite(dw):
        return 1.0
    rho = min(max(1.0 - dw / 2.0, 0.0), 0.999)
    return float(min(math.sqrt((1.0 + rho) / (1.0 - rho)), MAX_SERIAL_FACTOR))


def outside(value: float, esd: float, lo: float, hi: float, sigmas: float = IMPOSSIBLE_SIGMAS) -> float:
    """How many esds ``value`` lies outside ``[lo, hi]`` (0 inside; inf with a zero esd outside)."""
    gap = max(lo - value, value - hi, 0.0)
    if gap == 0.0:
        return 0.0
    return gap / esd if esd > 0 and math.isfinite(esd) else math.inf


def assess(*, names, values, esds, correlation, gof, durbin_watson, nobs, bounds=None, at_bound=(),
           weight_fraction=(), weight_fraction_esd=(), phases=(), site_fractions=(), notes=(), lebail_phases=()):
    """Quality and reasons of one refinement (the rules in the module docstring).

    Parameters
    ----------
    names, values, esds : sequences over the refined parameters; correlation : (n, n)
    gof, durbin_watson : float; nobs : int
    at_bound : names of parameters sitting at a hard bound (their esds are not checked)
    weight_fraction, weight_fraction_esd, phases : per phase
    site_fractions : iterable of ``(label, value, esd, lo, hi)`` for dopant fractions and occupancies
    notes : iterable of ``(level, sentence)`` from the engine (stage problems, convergence, floors);
        level ``"note"`` is reported after the others without changing the quality
    lebail_phases : phases fitted by Le Bail extraction: no structure, no mass, so their weight
        fraction means nothing and is not checked (the engine's note says so)

    Returns
    -------
    (str, list of str)
        ``"ok"``, ``"warning"`` or ``"failed"`` and the reasons, failures first.
    """
    failed, warned, noted = [], [], []
    for level, text in notes:
        (failed if level == FAILED else noted if level == "note" else warned).append(str(text))
    at_bound = set(at_bound)
    values = np.asarray(values, float)
    esds = np.asarray(esds, float)
    bad = [n for n, v, e in zip(names, values, esds)
           if not math.isfinite(v) or (n not in at_bound and not math.isfinite(e))]
    if bad:
        failed.append(f"non-finite value or esd of {len(bad)} parameter(s): {', '.join(bad[:5])}"
                      f"{' ...' if len(bad) > 5 else ''}")
    for name in sorted(at_bound):
        warned.append(f"{name} sits at its bound; its esd is not that of a free parameter (reported as NaN)")
    for label, value, esd, lo, hi in site_fractions:
        n_out = outside(value, esd, lo, hi)
        if n_out > IMPOSSIBLE_SIGMAS:
            failed.append(f"{label} = {value:.4g} ± {esd:.2g} lies outside [{lo:g}, {hi:g}] by "
                          f"{n_out:.1f} esd: physically impossible, the model does not describe the data")
    for phase, w, e in zip(phases, weight_fraction, weight_fraction_esd):
        if phase in lebail_phases:
            continue
        if outside(float(w), float(e), 0.0, math.inf) > IMPOSSIBLE_SIGMAS:
            failed.append(f"weight fraction of {phase} = {float(w):.4g} ± {float(e):.2g} is negative beyond "
                          f"{IMPOSSIBLE_SIGMAS:g} esd")
    for name, v, e in zip(names, values, esds):
        if name.endswith(":uiso") and outside(v, e, 0.0, math.inf) > IMPOSSIBLE_SIGMAS:
            warned.append(f"{name} = {v:.4g} ± {e:.2g} Å² is negative (absorption, roughness or a wrong "
                          "model absorbed into the displacement parameter)")
    corr = np.asarray(correlation, float) if len(names) else np.zeros((0, 0))
    if corr.size:
        upper = np.triu(np.abs(np.nan_to_num(corr)), 1)
        pairs = np.argwhere(upper > CORRELATION_LIMIT)
        if pairs.size:
            order = np.argsort(-upper[pairs[:, 0], pairs[:, 1]])
            shown = ", ".join(f"{names[i]}/{names[j]} ({corr[i, j]:+.3f})" for i, j in pairs[order][:3])
            warned.append(f"{len(pairs)} parameter pair(s) correlated beyond |r| = {CORRELATION_LIMIT:g}: {shown}"
                          f"{' ...' if len(pairs) > 3 else ''}")
    if math.isfinite(gof) and gof > GOF_FAILED:
        failed.append(f"GOF {gof:.1f}: chi² is {gof * gof:.0f}x what counting noise allows; the model does not "
                      "describe the pattern")
    elif math.isfinite(gof) and gof > GOF_HIGH:
        warned.append(f"GOF {gof:.2f}: the misfit is {gof:.1f}x what counting noise allows (GOF ~ 1)")
    elif math.isfinite(gof) and gof < GOF_LOW:
        warned.append(f"GOF {gof:.2f} is far below 1: the data esds are overestimated")
    if math.isfinite(durbin_watson) and durbin_watson < DW_LOW:
        spread = 2.0 / math.sqrt(max(nobs, 1))
        warned.append(f"Durbin-Watson {durbin_watson:.2f} (counting noise gives 2.00 ± {spread:.2f}): residuals "
                      f"are serially correlated, esds too small by about "
                      f"{serial_correlation_factor(durbin_watson):.1f}x")
    if not math.isfinite(gof):
        failed.append("GOF is not finite")
    quality = FAILED if failed else WARNING if warned else OK
    return quality, failed + warned + noted
