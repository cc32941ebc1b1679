"""Doping-distribution checks: each technique's evidence on one claim, as number, threshold, verdict, reason.

The claim every check weighs is the chemist's: *the dopant sits in the bulk lattice, uniformly*.
Each check turns one technique's result into a :class:`Check` whose verdict is ``supported``,
``contradicted`` or ``not determined`` and whose reason is one sentence with the numbers behind it.
Checks are pure functions of result Datasets and a thresholds mapping (see :data:`THRESHOLDS`,
overridable in a project's ``[checks]`` table).

Combining rows: a technique supports the claim when all its decisive rows do (XRD: when the dopant
is found on any expected site, since one occupied bulk site is bulk doping), contradicts it when
one decisive row does, and otherwise says it cannot tell. A sample's verdict is ``supported`` when
some technique supports and none contradicts, ``contradicted`` in the mirror case, and
``not determined`` when no technique can tell or they disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

SUPPORTED, CONTRADICTED, UNDETERMINED = "supported", "contradicted", "not determined"

#: key -> (kind, default, meaning); kinds as in project files, "length" is a quantity string in nm.
THRESHOLDS = {
    "dopant": ("text", "B", "dopant element"),
    "xrd_sites": ("list", [], "sites where the dopant is expected (default: every site named ':Li...')"),
    "xrd_expected_fraction": ("number", 0.03, "smallest site fraction the chemist expects on those sites"),
    "xps_component": ("text", "TM-O-B", "XPS component whose share marks dopant in the host lattice"),
    "surface_depth": ("length", 60.0, "depth below which material counts as the surface layer (nm)"),
    "xps_min_share": ("number", 0.05, "smallest share of that component beyond the surface for bulk doping"),
    "slope_sigma": ("number", 3.0, "a depth slope this many esd from zero is not flat"),
    "xps_max_scatter": ("number", 2.0, "largest scatter about the mean, in units of the counting noise"),
    "sims_fragment": ("text", "BO-", "ToF-SIMS fragment of the dopant"),
    "sims_host": ("text", "MnO-", "ToF-SIMS fragment of the host lattice"),
    "sims_alpha": ("number", 0.05, "significance level of the ToF-SIMS uniformity and colocalization tests"),
    "sims_max_surface_ratio": ("number", 2.0, "largest surface / bulk ratio of the dopant fragment"),
    "sims_min_r": ("number", 0.5, "smallest Pearson r of dopant and host images"),
    "sims_min_counts": ("number", 100.0, "fewest dopant counts below the surface for the tests to mean anything"),
    "eds_elements": ("list", [], "elements whose homogeneity is reported (default: all mapped)"),
}

TECHNIQUES = {"xrd": "XRD", "xps": "XPS", "tofsims": "ToF-SIMS", "eds": "STEM-EDS"}


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

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("value", "stderr"):
            out[key] = None if not math.isfinite(out[key]) else float(out[key])
        return out


def defaults() -> dict:
    """The default thresholds ``{key: value}``."""
    return {key: (list(v) if isinstance(v, list) else v) for key, (_, v, _) in THRESHOLDS.items()}


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


# ----------------------------------------------------------------------------- XRD
def xrd_checks(sample: str, refinement, th: dict) -> list[Check]:
    """Dopant fraction per site with its esd and the refinement's determinability verdict.

    ``determined`` (|d| >= 3 esd, positive) supports the dopant on that site. ``consistent with zero``
    contradicts it only when the refinement could have seen the expected fraction (its
    ``dopant_min_detectable`` is below ``xrd_expected_fraction``); otherwise nothing is determined.
    """
    ds = refinement
    dopant = str(ds.attrs.get("dopant_element", th["dopant"]))
    sigma = float(ds.attrs.get("dopant_min_detectable_sigma", 3.0))
    expected = float(th["xrd_expected_fraction"])
    sites = [str(s) for s in ds["site"].values] if "site" in ds.coords else []
    wanted = [str(s) for s in th["xrd_sites"]] or [s for s in sites if s.split(":")[-1].startswith("Li")]
    rows = []
    for i, site in enumerate(sites):
        f = float(ds["dopant_fraction"].values[i])
        e = float(ds["dopant_fraction_stderr"].values[i])
        verdict_text = str(ds["dopant_verdict"].values[i])
        limit = float(ds["dopant_min_detectable"].values[i]) if "dopant_min_detectable" in ds else sigma * e
        value = f"{f:.4f} ± {e:.4f}"
        expected_here = site in wanted
        if verdict_text == "determined" and f > 0:
            verdict, reason = SUPPORTED, f"{dopant} on {site} refines to {value}, {abs(f) / e:.1f} esd above zero."
        elif verdict_text == "determined":
            verdict, reason = UNDETERMINED, (f"{dopant} on {site} refines to a negative {value}: the model "
                                             "absorbs something else there, so it says nothing about the dopant.")
        elif verdict_text == "consistent with zero" and not expected_here:
            verdict, reason = CONTRADICTED, (f"{dopant} on {site} refines to {value}, consistent with zero; any "
                                             f"fraction above {limit:.3f} ({sigma:g} esd) would have been seen.")
        elif verdict_text == "consistent with zero" and limit <= expected:
            verdict, reason = CONTRADICTED, (
                f"{dopant} on {site} refines to {value}, consistent with zero, although any fraction above "
                f"{limit:.3f} ({sigma:g} esd) would have been seen and {expected:g} is expected.")
        else:
            verdict, reason = UNDETERMINED, (
                f"{dopant} on {site} refines to {value}: only fractions above {limit:.3f} ({sigma:g} esd) could be "
                f"seen, more than the {expected:g} expected, so these data cannot tell.")
        rows.append(Check(sample, "XRD", f"{dopant} on {site}", "site fraction", f, e, "1",
                          f"|d| ≥ {sigma:g} esd" + (f"; detectable ≤ {expected:g}" if expected_here else ""),
                          verdict, reason, expected_here))
    return rows


# ----------------------------------------------------------------------------- XPS
def weighted_line(x, y, sigma):
    """Weighted least-squares line ``y = a + b (x - x̄)``: ``(b, se_b, mean, se_mean, chi2_const, dof)``.

    ``mean`` is the weighted mean ``Σ w y / Σ w`` with ``w = 1/σ²`` and ``se_mean = 1/sqrt(Σ w)``;
    ``chi2_const = Σ w (y - mean)²`` measures scatter about a constant against the stated errors.
    """
    x, y, w = (np.asarray(v, float) for v in (x, y, 1.0 / np.asarray(sigma, float) ** 2))
    mean = float(np.sum(w * y) / np.sum(w))
    xbar = float(np.sum(w * x) / np.sum(w))
    sxx = float(np.sum(w * (x - xbar) ** 2))
    b = float(np.sum(w * (x - xbar) * (y - mean)) / sxx) if sxx > 0 else float("nan")
    se_b = 1.0 / math.sqrt(sxx) if sxx > 0 else float("nan")
    chi2 = float(np.sum(w * (y - mean) ** 2))
    return b, se_b, mean, 1.0 / math.sqrt(float(np.sum(w))), chi2, len(x) - 1


def xps_checks(sample: str, depth_nm, share, share_stderr, rate_rel_stderr: float, th: dict) -> list[Check]:
    """The component's share beyond the surface layer: present (mean) and flat (slope, scatter).

    ``depth_nm`` are the levels' depths; ``rate_rel_stderr`` the relative uncertainty of the etch rate,
    a scale error common to all depths that widens the slope's esd but not the mean's.
    """
    comp, surface = str(th["xps_component"]), float(th["surface_depth"])
    depth_nm, share, share_stderr = (np.asarray(v, float) for v in (depth_nm, share, share_stderr))
    beyond = (depth_nm >= surface) & np.isfinite(share) & (share_stderr > 0)
    claim_present, claim_flat = f"{comp} share beyond {surface:g} nm", f"{comp} share flat beyond {surface:g} nm"
    if beyond.sum() < 3:
        why = f"only {int(beyond.sum())} XPS level(s) lie beyond {surface:g} nm; 3 are needed to test a trend."
        nan = float("nan")
        return [Check(sample, "XPS", claim_present, "mean share", nan, nan, "%",
                      f"≥ {100 * th['xps_min_share']:g} %", UNDETERMINED, why),
                Check(sample, "XPS", claim_flat, "slope", nan, nan, "% per 100 nm",
                      f"|slope| < {th['slope_sigma']:g} esd", UNDETERMINED, why)]
    b, se_b, mean, se_mean, chi2, dof = weighted_line(depth_nm[beyond], share[beyond], share_stderr[beyond])
    se_b = math.hypot(se_b, b * rate_rel_stderr)
    scatter = math.sqrt(chi2 / dof)
    # A scatter beyond the noise makes the stated errors too small: widen the mean's esd by it.
    se_mean *= max(1.0, scatter)
    minimum = float(th["xps_min_share"])
    span = f"{depth_nm[beyond].min():.3g}-{depth_nm[beyond].max():.3g} nm"
    if mean + 2 * se_mean < minimum:
        present = (CONTRADICTED, f"The {comp} share over {span} is {_pct(mean)} ± {_pct(se_mean)}, below the "
                                 f"{_pct(minimum)} a bulk dopant would give: the dopant bonds into the host near the "
                                 "surface only.")
    elif mean - 2 * se_mean >= minimum:
        present = (SUPPORTED, f"The {comp} share over {span} is {_pct(mean)} ± {_pct(se_mean)}, above {_pct(minimum)}.")
    else:
        present = (UNDETERMINED, f"The {comp} share over {span} is {_pct(mean)} ± {_pct(se_mean)}, too close to "
                                 f"{_pct(minimum)} to tell.")
    z = abs(b) / se_b
    per_100 = f"{100 * b * 100:.3g} ± {100 * se_b * 100:.3g} % per 100 nm"
    if z >= float(th["slope_sigma"]):
        flat = (CONTRADICTED, f"The {comp} share changes with depth over {span} ({per_100}, {z:.1f} esd from zero).")
    elif scatter > float(th["xps_max_scatter"]):
        flat = (CONTRADICTED, f"The {comp} share scatters {scatter:.2g}x its counting noise over {span}: "
                              "not one flat level.")
    else:
        flat = (SUPPORTED, f"The {comp} share is flat over {span} ({per_100}, {z:.1f} esd; scatter "
                           f"{scatter:.2g}x noise).")
    # shares in %, slopes in percentage points per 100 nm: the numbers a reader compares
    return [
        Check(sample, "XPS", claim_present, "mean share", 100 * mean, 100 * se_mean, "%", f"≥ {100 * minimum:g} %",
              *present),
        Check(sample, "XPS", claim_flat, "slope", 1e4 * b, 1e4 * se_b, "% per 100 nm",
              f"|slope| < {th['slope_sigma']:g} esd; scatter ≤ {th['xps_max_scatter']:g}x noise", *flat),
    ]


# ----------------------------------------------------------------------------- ToF-SIMS
def sims_checks(sample: str, uniformity, coloc, profile, th: dict) -> list[Check]:
    """Dopant fragment uniform with depth, not piled up at the surface, and colocalized with the host."""
    frag, alpha = str(th["sims_fragment"]), float(th["sims_alpha"])
    rows = []
    nan = float("nan")
    if uniformity is not None and frag in [str(f) for f in uniformity["fragment"].values]:
        u = uniformity.sel(fragment=frag)
        low, high = (float(v) for v in uniformity.attrs.get("axis_range", [nan, nan]))
        units = "nm" if uniformity.attrs.get("axis") == "depth" else "s"
        counts_below = _counts_beyond(profile, frag, low)
        rel, rel_se, p = float(u["relative_change"]), float(u["relative_change_stderr"]), float(u["p_value"])
        claim = f"{frag} uniform with depth below the surface"
        if counts_below < float(th["sims_min_counts"]):
            verdict, reason = UNDETERMINED, (f"Only {counts_below:.0f} {frag} counts lie beyond {low:.3g} {units}: "
                                             "too few to test a depth trend.")
        elif p < alpha:
            verdict, reason = CONTRADICTED, (f"{frag} changes by {_pct(rel)} ± {_pct(rel_se)} over {low:.3g}-{high:.3g} "
                                             f"{units} (p = {p:.2g} < {alpha:g}).")
        else:
            verdict, reason = SUPPORTED, (f"{frag} changes by {_pct(rel)} ± {_pct(rel_se)} over {low:.3g}-{high:.3g} "
                                          f"{units}, within counting noise (p = {p:.2g}).")
        rows.append(Check(sample, "ToF-SIMS", claim, "relative change", 100 * rel, 100 * rel_se, "%",
                          f"p ≥ {alpha:g}", verdict, reason))
        ratio, ratio_se = float(u["surface_to_bulk"]), float(u["surface_to_bulk_stderr"])
        limit = float(th["sims_max_surface_ratio"])
        if not math.isfinite(ratio):
            verdict, reason = UNDETERMINED, f"The {frag} surface / bulk ratio is undefined (no bulk counts)."
        elif ratio - 2 * ratio_se > limit:
            verdict, reason = CONTRADICTED, (f"{frag} is {ratio:.3g} ± {ratio_se:.2g} times richer above {low:.3g} "
                                             f"{units} than below: the dopant piles up at the surface.")
        elif ratio + 2 * ratio_se <= limit:
            verdict, reason = SUPPORTED, (f"{frag} above {low:.3g} {units} is {ratio:.3g} ± {ratio_se:.2g} times its "
                                          f"level below, within {limit:g}.")
        else:
            verdict, reason = UNDETERMINED, f"{frag} surface / bulk is {ratio:.3g} ± {ratio_se:.2g}, too close to {limit:g}."
        rows.append(Check(sample, "ToF-SIMS", f"{frag} not piled up at the surface", "surface / bulk",
                          ratio, ratio_se, "1", f"≤ {limit:g}", verdict, reason))
    if coloc is not None:
        a, b = str(coloc.attrs.get("fragment_a")), str(coloc.attrs.get("fragment_b"))
        r, p = float(coloc["pearson_r"]), float(coloc["p_value"])
        null = np.asarray(coloc["null_r"].values, float) if "null_r" in coloc else np.array([])
        spread = float(np.std(null)) if null.size else nan
        min_r = float(th["sims_min_r"])
        total_a = float(np.sum(coloc["image_a"].values))
        claim = f"{a} colocalized with {b}"
        if total_a < float(th["sims_min_counts"]):
            verdict, reason = UNDETERMINED, f"The {a} image holds only {total_a:.0f} counts: too few to compare."
        elif r >= min_r and p < alpha:
            verdict, reason = SUPPORTED, (f"{a} follows {b} laterally (r = {r:.3f}; p = {p:.2g} against "
                                          f"{null.size} shifted/rotated images).")
        else:
            verdict, reason = CONTRADICTED, (f"{a} does not follow {b} laterally (r = {r:.3f}, threshold {min_r:g}; "
                                             f"p = {p:.2g} against {null.size} shifted/rotated images).")
        # the uncertainty shown for r is the spread of r under the spatial null (no association)
        rows.append(Check(sample, "ToF-SIMS", claim, "Pearson r (± null spread)", r, spread, "1",
                          f"r ≥ {min_r:g}, p < {alpha:g}", verdict, reason))
    return rows


def _counts_beyond(profile, fragment: str, start: float) -> float:
    if profile is None or fragment not in [str(f) for f in profile["fragment"].values]:
        return float("inf")
    axis = profile["depth"] if "depth" in profile.coords else profile["sputter_time"]
    keep = np.asarray(axis.values, float) >= start
    return float(np.sum(profile["counts"].sel(fragment=fragment).values[keep]))


# ----------------------------------------------------------------------------- STEM-EDS
def eds_checks(sample: str, homogeneity, th: dict) -> list[Check]:
    """Homogeneity index H = CV_observed / CV_Poisson per element at the most telling block size.

    Only the dopant's row is decisive; the host elements' rows say whether the host itself is even.
    """
    ds = homogeneity
    dopant = str(th["dopant"])
    elements = [str(e) for e in th["eds_elements"]] or [str(e) for e in ds["element"].values]
    alpha = float(ds.attrs.get("alpha", float("nan")))
    pixel = float(ds.attrs.get("pixel_size", 1.0))
    rows = []
    for element in elements:
        if element not in [str(e) for e in ds["element"].values]:
            continue
        e = ds.sel(element=element)
        h, h_se = np.asarray(e["H"].values, float), np.asarray(e["H_stderr"].values, float)
        j = int(np.nanargmax(h))
        text = str(e["verdict"].values)
        size = int(ds["block_size"].values[j])
        detectable = float(e["detectable_cv"])
        qualitative = bool(int(e["qualitative"])) if "qualitative" in e.coords else False
        note = " (B K is qualitative in EDS)" if qualitative else ""
        if text.startswith("inhomogeneous"):
            verdict = CONTRADICTED
            reason = (f"{element} varies more than counting noise allows: H = {h[j]:.2f} ± {h_se[j]:.2f} in "
                      f"{size * pixel:g}-nm blocks (p = {float(e['p_value'].values[j]):.2g} < {alpha:.2g}){note}.")
        elif text == "homogeneous":
            verdict = SUPPORTED
            reason = (f"{element} is even to within counting noise (largest H = {h[j]:.2f} ± {h_se[j]:.2f}); a "
                      f"{_pct(detectable)} variation would have been seen{note}.")
        else:
            verdict = UNDETERMINED
            reason = (f"Too few {element} counts: only a variation above {_pct(detectable)} could be seen "
                      f"(largest H = {h[j]:.2f} ± {h_se[j]:.2f}){note}.")
        rows.append(Check(sample, "STEM-EDS", f"{element} homogeneous", "H (largest)", float(h[j]), float(h_se[j]),
                          "1", f"p ≥ {alpha:.2g}; detectable CV ≤ {float(ds.attrs.get('tolerance', 0.05)):g}",
                          verdict, reason, element == dopant))
    return rows


# ----------------------------------------------------------------------------- combining
def technique_verdict(rows: list[Check]) -> str:
    """One technique's verdict from its decisive rows (see module docstring)."""
    decisive = [r.verdict for r in rows if r.decisive]
    if not decisive:
        return UNDETERMINED
    if rows[0].technique == "XRD":
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
