"""``doptrace run``: process every analysis a project lists, write results, provenance and the report.

Order of work: check the project (all problems at once), hash every input, reuse the results whose
cache key still matches, run the rest (in parallel, see :mod:`report.execute`), read every result
back from its NetCDF file, weigh the cross-technique evidence, then write ``checks.json``,
``provenance.json`` and ``report.html`` (each atomically).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr
from tqdm import tqdm

from doptrace.core.atomic import write_text

from . import cache
from .conventions import read_netcdf, write_netcdf
from .crosscheck import SampleEvidence, evaluate
from .execute import FILE_ERRORS, Outcome, run_all
from .html import Section, draw_plots, write_report
from .overview import overview_section
from .project import Entry, load_project
from .provenance import environment, file_record
from .techniques import adapters


@dataclass
class Analysis:
    """One finished (or failed) analysis: its entry, its results, and where they were written."""

    entry: Entry
    results: dict[str, xr.Dataset] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    cached: bool = False

    @property
    def sample(self) -> str:
        return self.entry.sample


@dataclass
class RunSummary:
    out_dir: Path
    analyses: list[Analysis]
    evidence: list[SampleEvidence] = field(default_factory=list)
    report_reused: bool = False  # nothing changed since the report in out_dir was written

    @property
    def failed(self) -> list[Analysis]:
        return [a for a in self.analyses if a.error]

    @property
    def redone(self) -> list[Analysis]:
        return [a for a in self.analyses if not a.cached]


def _analysis(entry: Entry, outcome: Outcome) -> Analysis:
    analysis = Analysis(entry, outputs=[o["path"] for o in outcome.outputs], error=outcome.error,
                        seconds=outcome.seconds, cached=outcome.cached)
    if not analysis.error:
        try:
            analysis.results = {o["name"]: read_netcdf(o["path"]) for o in outcome.outputs}
        except FILE_ERRORS as exc:
            analysis.error = str(exc).splitlines()[0]
    return analysis


def run_project(project_path, out_dir, progress: bool = True, workers: int | None = None,
                scheduler: str | None = None) -> RunSummary:
    """Process a project file into ``out_dir/report.html``, ``results/*.nc``, ``checks.json`` and ``provenance.json``.

    ``workers`` local processes (default: the CPU count; 1 runs in this process) or the dask
    ``scheduler`` at an address like ``tcp://host:8786`` do the per-file work. Analyses whose inputs,
    parameters and code are unchanged since the last run into ``out_dir`` are not redone.
    """
    project = load_project(project_path)
    out_dir = Path(out_dir)
    results_dir, cache_dir = out_dir / "results", out_dir / "cache"
    results_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # each input hashed once: for the cache keys, provenance.json and the report's input table
    inputs = {str(p): file_record(p) for e in project.entries for p in e.files}
    hashes = {path: record["sha256"] for path, record in inputs.items()}
    keys = [cache.entry_key(e, hashes) for e in project.entries]
    outcomes: list[Outcome | None] = []
    for entry, key in zip(project.entries, keys):
        manifest = cache.lookup(cache_dir, entry, key)
        outcomes.append(None if manifest is None else Outcome(entry.key, manifest["outputs"],
                                                              seconds=manifest.get("seconds", 0.0), cached=True))
    pending = [i for i, o in enumerate(outcomes) if o is None]
    fresh = run_all([project.entries[i] for i in pending], results_dir, workers, scheduler, progress)
    for i, outcome in zip(pending, fresh):
        entry = project.entries[i]
        if outcome.error:
            cache.forget(cache_dir, entry)
            for record in outcome.outputs:  # a failure half-way must not leave half a result set
                Path(record["path"]).unlink(missing_ok=True)
            outcome.outputs = []
        else:
            cache.forget(cache_dir, entry, keep={o["path"] for o in outcome.outputs})
            cache.store(cache_dir, entry, keys[i], outcome.outputs, outcome.seconds)
        outcomes[i] = outcome
    project_record = file_record(project.path)
    report_key = cache.report_key(project_record["sha256"], keys)
    if not pending and cache.report_current(cache_dir, report_key):
        # nothing changed: the report, checks.json and depth files on disk are this run's already
        analyses = [Analysis(e, outputs=[o["path"] for o in out.outputs], seconds=out.seconds, cached=True)
                    for e, out in zip(project.entries, outcomes)]
        evidence = [SampleEvidence.from_dict(r) for r in json.loads((out_dir / "checks.json").read_text())]
        summary = RunSummary(out_dir, analyses, evidence, report_reused=True)
        _write_provenance(project_record, project, summary, list(inputs.values()), keys)
        return summary
    analyses = [_analysis(e, o) for e, o in zip(project.entries, outcomes)]
    summary = RunSummary(out_dir, analyses, evaluate(project, analyses))
    written = []
    for evidence in summary.evidence:
        if evidence.series is not None and evidence.series.data_vars:
            written.append(write_netcdf(evidence.series, results_dir / f"{evidence.sample}__depth.nc"))
    written.append(write_text(out_dir / "checks.json", json.dumps([e.to_dict() for e in summary.evidence], indent=2)))
    _write_provenance(project_record, project, summary, list(inputs.values()), keys)
    sections = _sections(project, summary, inputs, progress)
    draw_plots(sections, workers=workers, progress=progress)
    written.append(write_report(out_dir / "report.html", f"doptrace report: {project.title}", sections))
    if not summary.failed:
        cache.store_report(cache_dir, report_key, written)
    else:
        (cache_dir / "report.json").unlink(missing_ok=True)
    return summary


def _write_provenance(project_record: dict, project, summary: RunSummary, inputs: list[dict],
                      keys: list[str]) -> None:
    record = environment()
    record["project"] = project_record
    record["inputs"] = inputs
    record["code_fingerprint"] = cache.code_fingerprint()
    record["depth"] = {s: {k: str(q) for k, q in d.items()} for s, d in project.depth.items()}
    record["checks"] = project.checks
    record["analyses"] = [
        {
            "sample": a.entry.sample,
            "technique": a.entry.technique,
            "parameters": {k: str(v) for k, v in a.entry.settings.items()},
            "cache_key": key,
            "cached": a.cached,
            "outputs": a.outputs,
            "seconds": round(a.seconds, 3),
            "error": a.error,
        }
        for a, key in zip(summary.analyses, keys)
    ]
    write_text(summary.out_dir / "provenance.json", json.dumps(record, indent=2, default=str))


def _sections(project, summary: RunSummary, inputs: dict[str, dict], progress: bool = False) -> list[Section]:
    sections = [overview_section(project.title, summary.evidence, summary.analyses, inputs, project)]
    for name, adapter in tqdm(adapters().items(), desc="report", unit="section", disable=not progress):
        done = [a for a in summary.analyses if a.entry.technique == name and not a.error]
        if done:
            sections.append(Section(adapter.TITLE, adapter.section(done), anchor=name))
    return sections
