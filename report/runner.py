"""``doptrace run``: process every analysis a project lists, write results, provenance and the report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr
from tqdm import tqdm

from .atomic import write_text
from .conventions import check_result, write_netcdf
from .html import Section, Table, Text, write_report
from .project import Entry, load_project
from .provenance import environment, file_record
from .techniques import adapters

# A file's problem is a ValueError (each package's exception family) or an OSError; anything
# else is a bug in doptrace and should surface with its traceback.
FILE_ERRORS = (ValueError, OSError)


@dataclass
class Analysis:
    """One finished (or failed) analysis: its entry, its results, and where they were written."""

    entry: Entry
    results: dict[str, xr.Dataset] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def sample(self) -> str:
        return self.entry.sample


@dataclass
class RunSummary:
    out_dir: Path
    analyses: list[Analysis]

    @property
    def failed(self) -> list[Analysis]:
        return [a for a in self.analyses if a.error]


def run_analysis(entry: Entry, results_dir: Path) -> Analysis:
    """Run one entry through its technique adapter and write its results; never raises for bad files."""
    adapter = adapters()[entry.technique]
    analysis = Analysis(entry)
    start = time.perf_counter()
    try:
        analysis.results = adapter.analyse(dict(entry.settings))
        for name, ds in analysis.results.items():
            check_result(ds, f"{entry.key}/{name}")
            target = results_dir / f"{entry.key}__{name}.nc"
            write_netcdf(ds, target)
            analysis.outputs.append(str(target))
    except FILE_ERRORS as exc:
        analysis.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    analysis.seconds = time.perf_counter() - start
    return analysis


def run_project(project_path, out_dir, progress: bool = True) -> RunSummary:
    """Process a project file into ``out_dir/report.html``, ``results/*.nc`` and ``provenance.json``."""
    project = load_project(project_path)
    out_dir = Path(out_dir)
    results_dir = out_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    analyses = [
        run_analysis(entry, results_dir)
        for entry in tqdm(project.entries, desc="analyses", unit="file", disable=not progress)
    ]
    summary = RunSummary(out_dir, analyses)
    # each input hashed once, for provenance.json and the report's input table alike
    inputs = {str(p): file_record(p) for a in analyses for p in a.entry.files}
    _write_provenance(project, summary, list(inputs.values()))
    write_report(out_dir / "report.html", f"doptrace report: {project.title}", _sections(summary, inputs))
    return summary


def _write_provenance(project, summary: RunSummary, inputs: list[dict]) -> None:
    record = environment()
    record["project"] = file_record(project.path)
    record["inputs"] = inputs
    record["analyses"] = [
        {
            "sample": a.entry.sample,
            "technique": a.entry.technique,
            "parameters": {k: str(v) for k, v in a.entry.settings.items()},
            "outputs": a.outputs,
            "seconds": round(a.seconds, 3),
            "error": a.error,
        }
        for a in summary.analyses
    ]
    write_text(summary.out_dir / "provenance.json", json.dumps(record, indent=2))


def _sections(summary: RunSummary, inputs: dict[str, dict]) -> list[Section]:
    overview = Section("Overview", anchor="overview")
    rows = [
        [a.entry.sample, a.entry.technique, ", ".join(p.name for p in a.entry.files),
         "FAILED: " + a.error if a.error else "ok", f"{a.seconds:.2f} s"]
        for a in summary.analyses
    ]
    overview.blocks.append(Table(["sample", "technique", "inputs", "status", "time"], rows, "Analyses"))
    if summary.failed:
        overview.blocks.append(Text(f"{len(summary.failed)} analysis(es) failed; see the table above."))
    overview.blocks.append(
        Table(["input file", "sha256"], [[Path(r["path"]).name, r["sha256"]] for r in inputs.values()], "Inputs")
    )
    sections = [overview]
    for name, adapter in adapters().items():
        done = [a for a in summary.analyses if a.entry.technique == name and not a.error]
        if done:
            sections.append(Section(adapter.TITLE, adapter.section(done), anchor=name))
    return sections
