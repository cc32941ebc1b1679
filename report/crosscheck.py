"""Cross-technique evidence per sample: the checks of every technique, the depth series, one verdict.

Reads only finished analyses (results as written to NetCDF), so a cached run and a fresh one
give the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from . import checks as ck
from .depth import depth_series, etch_depth


@dataclass
class SampleEvidence:
    """Everything the overview says about one sample."""

    sample: str
    checks: list = field(default_factory=list)
    techniques: dict = field(default_factory=dict)  # technique label -> verdict
    verdict: str = ck.UNDETERMINED
    reason: str = ""
    series: xr.Dataset | None = None
    surface_nm: float = float("nan")

    def to_dict(self) -> dict:
        return {"sample": self.sample, "verdict": self.verdict, "reason": self.reason,
                "techniques": dict(self.techniques), "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, record: dict) -> "SampleEvidence":
        """The evidence as ``checks.json`` holds it (without the depth series)."""
        rows = [ck.Check(**{k: (float("nan") if v is None and k in ("value", "stderr") else v) for k, v in c.items()})
                for c in record["checks"]]
        return cls(record["sample"], rows, dict(record["techniques"]), record["verdict"], record["reason"])


def _failure(sample: str, analysis) -> ck.Check:
    nan = float("nan")
    files = ", ".join(p.name for p in analysis.entry.files) or analysis.entry.key
    return ck.Check(sample, ck.TECHNIQUES[analysis.entry.technique], f"analysis of {files}", "-", nan, nan, "",
                    "-", ck.UNDETERMINED, f"The analysis failed, so it says nothing: {analysis.error}")


def evaluate_sample(sample: str, analyses, thresholds: dict, depth: dict) -> SampleEvidence:
    """The checks of one sample's analyses (:class:`report.runner.Analysis`) under ``thresholds``.

    ``depth`` holds the sample's :class:`doptrace.core.units.Quantity` conversions
    (``xps_etch_rate``, ``sims_crater_depth``).
    """
    th = thresholds
    evidence = SampleEvidence(sample, surface_nm=float(th["surface_depth"]))
    rate = depth.get("xps_etch_rate")
    xps_fit = sims_profile = None
    for technique, label in ck.TECHNIQUES.items():
        group = [a for a in analyses if a.entry.technique == technique]
        if not group:
            continue
        rows = []
        for analysis in group:
            if analysis.error:
                rows.append(_failure(sample, analysis))
                continue
            res = analysis.results
            if technique == "xrd" and "refinement" in res and "dopant_fraction" in res["refinement"]:
                rows += ck.xrd_checks(sample, res["refinement"], th)
            elif technique == "xps" and "fit" in res and th["xps_component"] in [
                    str(c) for c in res["fit"]["component"].values]:
                fit = res["fit"]
                xps_fit = xps_fit if xps_fit is not None else fit
                rows += _xps_rows(sample, fit, rate, th)
            elif technique == "tofsims" and ("uniformity" in res or "coloc" in res):
                sims_profile = sims_profile if sims_profile is not None else res.get("profile")
                rows += ck.sims_checks(sample, res.get("uniformity"), res.get("coloc"), res.get("profile"), th)
            elif technique == "eds" and "homogeneity" in res:
                rows += ck.eds_checks(sample, res["homogeneity"], th)
        if rows:
            evidence.checks += rows
            evidence.techniques[label] = ck.technique_verdict(rows)
    evidence.verdict, evidence.reason = ck.sample_verdict(evidence.techniques)
    if xps_fit is not None or sims_profile is not None:
        evidence.series = depth_series(sample, xps_fit, rate, str(th["xps_component"]), sims_profile,
                                       depth.get("sims_crater_depth"), str(th["sims_fragment"]), str(th["sims_host"]))
    return evidence


def _xps_rows(sample: str, fit, rate, th) -> list:
    comp = str(th["xps_component"])
    if fit.attrs.get("level_dim", "etch_time") != "etch_time" or rate is None:
        nan = float("nan")
        why = ("no XPS etch rate in the project's depth table, so the surface layer cannot be placed"
               if rate is None else "the XPS levels are not etch times")
        return [ck.Check(sample, "XPS", f"{comp} share flat beyond {th['surface_depth']:g} nm", "slope", nan, nan,
                         "1/nm", "-", ck.UNDETERMINED, f"Not tested: {why} ({Path(str(fit.attrs.get('source', ''))).name}).")]
    t = fit["etch_time"].values
    share = fit["fraction"].sel(component=comp).values
    share_se = fit["fraction_stderr"].sel(component=comp).values
    return ck.xps_checks(sample, etch_depth(t, rate)[0], share, share_se, rate.stderr / rate.value, th)


def evaluate(project, analyses) -> list[SampleEvidence]:
    """Evidence for every sample of ``project``, in the project's order."""
    return [evaluate_sample(s, [a for a in analyses if a.entry.sample == s], project.checks[s], project.depth[s])
            for s in project.samples]
