"""Dopant site fractions: parametrisation, verdicts, correlations in words, detectability (what-if).

A dopant fraction ``d`` on a site keeps the site total: the dopant occupancy is ``d`` and every host
species is scaled so that the host total becomes ``site total - d``.

Example
-------
>>> dopant_verdict(0.06, 0.015)
'determined'
>>> dopant_verdict(0.004, 0.02)
'consistent with zero'
>>> dopant_verdict(0.06, 0.054)
'not determined by these data'
"""

from __future__ import annotations

import math

import numpy as np

DETERMINED = "determined"
ZERO = "consistent with zero"
UNDETERMINED = "not determined by these data"

#: Largest esd (absolute site fraction) at which "consistent with zero" is still a meaningful statement.
MAX_ESD_FOR_ZERO = 0.05


def dopant_verdict(value: float, esd: float, *, total: float = 1.0, failed: str = "",
                   esd_factor: float = 1.0) -> str:
    """Shared verdict rule for a refined dopant fraction.

    ``not determined: fit failed (reason)`` when the refinement's quality is ``failed`` (``failed``
    holds the first reason); ``not determined: outside [0, total] by N esd`` when the value is
    physically impossible beyond 3 esd. Otherwise, with ``s = esd * esd_factor`` (the esd
    inflated for serially correlated residuals, :func:`xrd.quality.serial_correlation_factor`):
    ``determined`` if ``|d| / s >= 3``; ``consistent with zero`` if ``|d| < 2 s`` and ``s <= 0.05``;
    otherwise ``not determined by these data``. A missing or non-positive esd is never a determination.

    Examples
    --------
    >>> dopant_verdict(-0.256, 0.072)
    'not determined: -0.256 lies outside [0, 1] by 3.6 esd'
    >>> dopant_verdict(0.06, 0.01, failed="GOF is not finite")
    'not determined: fit failed (GOF is not finite)'
    """
    if failed:
        return f"not determined: fit failed ({failed})"
    if value is None or esd is None or not math.isfinite(value) or not math.isfinite(esd) or esd <= 0:
        return UNDETERMINED
    gap = max(-value, value - total, 0.0)
    if gap > 3.0 * esd:
        return f"not determined: {value:.3g} lies outside [0, {total:g}] by {gap / esd:.1f} esd"
    esd = esd * max(float(esd_factor), 1.0) if math.isfinite(esd_factor) else esd
    if abs(value) >= 3.0 * esd:
        return DETERMINED
    if abs(value) < 2.0 * esd and esd <= MAX_ESD_FOR_ZERO:
        return ZERO
    return UNDETERMINED


def doped_occupancy(host: dict[str, float], dopant: str, fraction: float) -> dict[str, float]:
    """Occupancies of a site holding ``fraction`` of ``dopant``; the host keeps ``total - fraction``.

    ``o_i' = o_i * (T - d) / T`` for every host species ``i`` (``T`` = host total), ``o_dopant = d``
    (added to any dopant already in the host).

    Examples
    --------
    >>> doped_occupancy({"Li": 1.0}, "B", 0.06)
    {'Li': 0.94, 'B': 0.06}
    """
    total = float(sum(host.values()))
    factor = (total - fraction) / total if total > 0 else 0.0
    out = {species: occ * factor for species, occ in host.items()}
    out[dopant] = out.get(dopant, 0.0) + fraction
    return out


def doped_occupancies(host: dict[str, float], fractions: dict[str, float]) -> dict[str, float]:
    """Occupancies of a site holding several dopants: ``fractions`` maps dopant -> its fraction.

    The host keeps ``T - sum(fractions)`` in its own proportions, each dopant adds its fraction; linear
    in the fractions, so one fraction per dopant is refined and the site total stays ``T``.

    Examples
    --------
    >>> doped_occupancies({"Li": 1.0}, {"B": 0.04, "Al": 0.06})
    {'Li': 0.9, 'B': 0.04, 'Al': 0.06}
    """
    total = float(sum(host.values()))
    factor = (total - float(sum(fractions.values()))) / total if total > 0 else 0.0
    out = {species: occ * factor for species, occ in host.items()}
    for dopant, fraction in fractions.items():
        out[dopant] = out.get(dopant, 0.0) + fraction
    return out


def correlation_words(names: list[str], correlation: np.ndarray, index: int, n: int = 3, floor: float = 0.3) -> str:
    """The ``n`` strongest correlations of parameter ``index`` in words, e.g. ``"scale LiTMO2 (-0.72)"``.

    Only correlations with ``|r| >= floor`` are named; ``"none above 0.3"`` otherwise.
    """
    row = np.abs(np.nan_to_num(correlation[index]))
    row[index] = 0.0
    order = [i for i in np.argsort(row)[::-1][:n] if row[i] >= floor]
    if not order:
        return f"none above {floor:g}"
    return ", ".join(f"{names[i]} ({correlation[index, i]:+.2f})" for i in order)


def min_detectable(fisher: np.ndarray, index: int, sigmas: float = 3.0) -> float:
    """Smallest fraction seen at ``sigmas`` standard deviations from a Fisher information matrix.

    ``d_min = k * sqrt((F^-1)_ii)`` with ``F = J^T W J`` of the actual pattern at the solution:
    the marginal esd of parameter ``i`` with every other refined parameter free.
    """
    # invert through the correlation-like normalised matrix: parameters span many decades
    d = np.sqrt(np.diag(fisher))
    d = np.where(d > 0, d, np.inf)
    try:
        cov = np.linalg.pinv(fisher / np.outer(d, d), rcond=1e-13, hermitian=True) / np.outer(d, d)
    except np.linalg.LinAlgError:
        return float("nan")
    var = cov[index, index]
    return float(sigmas * math.sqrt(var)) if var > 0 else float("nan")
