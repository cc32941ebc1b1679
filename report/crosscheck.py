"""Cross-technique evidence per sample: the checks of every technique, the depth series, one verdict.

Reads only finished analyses (results as written to NetCDF), so a cached run and a fresh one
give the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import xarray as xr

from . import checks as ck
from .depth import depth_series
from .techniques import adapters


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


def _failure(sample: str, label: str, analysis) -> ck.Check:
    nan = float("nan")
    files = ", ".join(p.name for p in analysis.entry.files) or analysis.entry.key
    return ck.Check(sample, label, f"analysis of {files}", "-", nan, nan, "",
                    "-", ck.UNDETERMINED, f"The analysis failed, so it says nothing: {analysis.error}")


def _cannot(sample: str, adapter, th: dict) -> ck.Check:
    """A row saying why a technique's checks cannot be made, instead of the technique vanishing."""
    nan = float("nan")
    names = [k for k, (kind, _, _) in getattr(adapter, "THRESHOLDS", {}).items() if kind == "text"]
    undeclared = [k for k in names if not th.get(k)]
    if undeclared:
        why = f"the project declares no {', '.join(undeclared)} in its [checks] table"
    else:
        why = "no result holds " + ", ".join(f"{k} = {th[k]!r}" for k in names) if names else "no result to check"
    return ck.Check(sample, adapter.LABEL, "checks of " + adapter.LABEL, "-", nan, nan, "", "-", ck.UNDETERMINED,
                    f"Cannot be checked: {why}.")


def evaluate_sample(sample: str, analyses, thresholds: dict, depth: dict) -> SampleEvidence:
    """The checks of one sample's analyses (:class:`report.runner.Analysis`) under ``thresholds``.

    Every adapter's ``checks`` runs on each of its analyses, and its ``depth_track`` (when it has
    one) on all of them; ``depth`` holds the sample's :class:`doptrace.core.units.Quantity`
    conversions (the adapters' ``DEPTH_KEYS``).
    """
    th = thresholds
    evidence = SampleEvidence(sample, surface_nm=float(th["surface_depth"]))
    tracks = {}
    for name, adapter in adapters().items():
        group = [a for a in analyses if a.entry.technique == name]
        if not group:
            continue
        rows = []
        used = getattr(adapter, "CHECKED_RESULTS", None)  # the results its checks rest on (default: all)
        for analysis in group:
            if analysis.error:
                rows.append(_failure(sample, adapter.LABEL, analysis))
                continue
            results = [ds for name, ds in analysis.results.items() if used is None or name in used]
            rows += ck.apply_quality(adapter.checks(sample, analysis.results, th, depth), results)
        if not rows and any(not a.error for a in group):
            rows.append(_cannot(sample, adapter, th))
        if rows:
            evidence.checks += rows
            evidence.techniques[adapter.LABEL] = ck.technique_verdict(rows, getattr(adapter, "VERDICT_RULE", "all"))
        if hasattr(adapter, "depth_track"):
            # a failed result's numbers never reach the depth overlay
            tracks[adapter.LABEL] = adapter.depth_track(
                [{k: ds for k, ds in a.results.items() if ds.attrs.get("quality") != "failed"}
                 for a in group if not a.error], th, depth)
    evidence.verdict, evidence.reason = ck.sample_verdict(evidence.techniques)
    if any(t is not None for t in tracks.values()):
        evidence.series = depth_series(sample, tracks)
    return evidence


def evaluate(project, analyses) -> list[SampleEvidence]:
    """Evidence for every sample of ``project``, in the project's order."""
    return [evaluate_sample(s, [a for a in analyses if a.entry.sample == s], project.checks[s], project.depth[s])
            for s in project.samples]
