"""Doping-distribution checks: each technique's evidence on one claim, as number, threshold, verdict, reason.

The claim every check weighs is the chemist's: *the dopant sits in the bulk lattice, uniformly*.
Each check turns one technique's result into a :class:`Check` whose verdict is ``supported``,
``contradicted`` or ``not determined`` and whose reason is one sentence with the numbers behind it.

The checks themselves belong to the techniques: each adapter in :mod:`report.techniques` declares
``checks(sample, results, thresholds, depth)`` and its ``THRESHOLDS``. This module holds what they
share: the :class:`Check` record, the verdict words, the thresholds every technique reads
(:data:`COMMON_THRESHOLDS`), :func:`thresholds` (common plus every adapter's, overridable in a
project's ``[checks]`` table), and the rules that combine rows into verdicts.

Combining rows: a technique supports the claim when all its decisive rows do (rule ``"all"``; with
rule ``"any"``, e.g. XRD, when one does, since one occupied bulk site is bulk doping), contradicts it
when one decisive row does, and otherwise says it cannot tell. A sample's verdict is ``supported``
when some technique supports and none contradicts, ``contradicted`` in the mirror case, and
``not determined`` when no technique can tell or they disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

SUPPORTED, CONTRADICTED, UNDETERMINED = "supported", "contradicted", "not determined"

#: thresholds every technique may read: key -> (kind, default, meaning); kinds as in project files,
#: "length" is a quantity string in nm. Each adapter adds its own (``THRESHOLDS``).
COMMON_THRESHOLDS = {
    # declared in the project's [checks] (the demo declares B): no code default, so a project about
    # another dopant never reads boron's names
    "dopant": ("text", "", "dopant element"),
    "surface_depth": ("length", 60.0, "depth below which material counts as the surface layer (nm)"),
    "slope_sigma": ("number", 3.0, "a depth slope this many esd from zero is not flat"),
}


@dataclass
class Check:
    """One row of evidence: the claim, the number with its uncertainty, the threshold and the verdict."""

    sample: str
    technique: str
    claim: str
    quantity: str
    value: float
    stderr: float
    units: str
    threshold: str
    verdict: str
    reason: str
    decisive: bool = True
    quality: str = "ok"  # the quality record of the result(s) the row rests on (ok, warning, failed)
    quality_reasons: list = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("value", "stderr"):
            out[key] = None if not math.isfinite(out[key]) else float(out[key])
        return out


def thresholds() -> dict:
    """Every threshold ``{key: (kind, default, meaning)}``: the common ones, then each adapter's."""
    from .techniques import adapters

    out = dict(COMMON_THRESHOLDS)
    for adapter in adapters().values():
        out.update(getattr(adapter, "THRESHOLDS", {}))
    return out


def defaults() -> dict:
    """The default thresholds ``{key: value}``."""
    return {key: (list(v) if isinstance(v, list) else v) for key, (_, v, _) in thresholds().items()}


def percent(x: float) -> str:
    """A fraction as percent with three significant digits.

    >>> percent(0.01234)
    '1.23 %'
    """
    return f"{100 * x:.3g} %"


def weighted_line(x, y, sigma):
    """Weighted least-squares line ``y = a + b (x - x̄)``: ``(b, se_b, mean, se_mean, chi2_const, dof)``.

    ``mean`` is the weighted mean ``Σ w y / Σ w`` with ``w = 1/σ²`` and ``se_mean = 1/sqrt(Σ w)``;
    ``chi2_const = Σ w (y - mean)²`` measures scatter about a constant against the stated errors.
    """
    import numpy as np

    x, y, w = (np.asarray(v, float) for v in (x, y, 1.0 / np.asarray(sigma, float) ** 2))
    mean = float(np.sum(w * y) / np.sum(w))
    xbar = float(np.sum(w * x) / np.sum(w))
    sxx = float(np.sum(w * (x - xbar) ** 2))
    b = float(np.sum(w * (x - xbar) * (y - mean)) / sxx) if sxx > 0 else float("nan")
    se_b = 1.0 / math.sqrt(sxx) if sxx > 0 else float("nan")
    chi2 = float(np.sum(w * (y - mean) ** 2))
    return b, se_b, mean, 1.0 / math.sqrt(float(np.sum(w))), chi2, len(x) - 1


# ----------------------------------------------------------------------------- combining
def technique_verdict(rows: list[Check], rule: str = "all") -> str:
    """One technique's verdict from its decisive rows under its adapter's ``VERDICT_RULE`` (see module docstring)."""
    decisive = [r.verdict for r in rows if r.decisive]
    if not decisive:
        return UNDETERMINED
    if rule == "any":
        if SUPPORTED in decisive:
            return SUPPORTED
        return CONTRADICTED if CONTRADICTED in decisive else UNDETERMINED
    if CONTRADICTED in decisive:
        return CONTRADICTED
    return SUPPORTED if SUPPORTED in decisive else UNDETERMINED


def sample_verdict(by_technique: dict[str, str]) -> tuple[str, str]:
    """``(verdict, one-sentence reason)`` for a sample from ``{technique: verdict}``."""
    support = [t for t, v in by_technique.items() if v == SUPPORTED]
    against = [t for t, v in by_technique.items() if v == CONTRADICTED]
    unknown = [t for t, v in by_technique.items() if v == UNDETERMINED]
    tail = f"; {', '.join(unknown)} cannot tell" if unknown else ""
    if support and not against:
        return SUPPORTED, f"Bulk, uniform doping is supported by {', '.join(support)}{tail}."
    if against and not support:
        return CONTRADICTED, f"Bulk, uniform doping is contradicted by {', '.join(against)}{tail}."
    if support and against:
        return UNDETERMINED, (f"The techniques disagree: {', '.join(support)} support bulk, uniform doping and "
                              f"{', '.join(against)} contradict it{tail}.")
    return UNDETERMINED, "No technique can tell where the dopant sits."


def apply_quality(rows: list[Check], results) -> list[Check]:
    """Weigh the rows by the quality of the results they rest on (:mod:`doptrace.core.quality`).

    A ``failed`` result makes every row using it ``not determined: fit failed (reason)`` whatever its
    number says; a ``warning`` keeps the verdict and carries the reasons beside the number (for
    STEM-EDS, one row per element, only the reasons naming that element).
    """
    from doptrace.core.quality import FAILED, get_quality, worst

    records = [get_quality(ds) for ds in results if ds is not None]
    if not records:
        return rows
    quality = worst(*(q for q, _ in records))
    reasons = list(dict.fromkeys(r for q, rs in records if q != "ok" for r in rs))
    for row in rows:
        mine = reasons
        if quality != FAILED and row.technique == "STEM-EDS":
            subject = row.claim.split()[0] if row.claim else ""
            mine = [r for r in reasons if subject in r.replace(".", " ").replace(",", " ").split()
                    or f"{subject}_" in r]
        row.quality, row.quality_reasons = (quality if mine or quality == FAILED else "ok"), mine
        if quality == FAILED:
            first = next(r for q, rs in records if q == FAILED for r in rs)
            row.verdict = UNDETERMINED
            row.reason = f"Not determined: fit failed ({first.rstrip('.')})."
    return rows
