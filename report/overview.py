"""The report's overview: verdict table, depth overlays, checks, sample comparison, analyses and inputs."""

from __future__ import annotations

import math
from pathlib import Path

from doptrace.core.fmt import format_value

from .depth import overlay_figure
from .html import Heading, Plot, Section, Table, Text

#: most samples compared side by side (one table column each)
MAX_COMPARED = 8

#: attributes of results that come from instrument files and say what was measured
METADATA_KEYS = ("sample", "sample_name", "instrument", "primary_ion", "polarity", "signal_type",
                 "beam_energy_kev", "acquired", "date", "operator", "comment")


def _pm(value: float, stderr: float, units: str = "") -> str:
    # two significant digits of the esd: one digit hides the sign of a difference near zero
    return format_value(value, stderr, units, esd_digits=2, missing="-")


def _number(check) -> str:
    return _pm(check.value, check.stderr, check.units)


def _quality_text(quality: str, reasons) -> str:
    return quality if quality == "ok" or not reasons else f"{quality}: " + " ".join(reasons)


def check_rows(checks, with_sample: bool = False) -> list[list]:
    """Rows of the checks table; a context row's verdict reads ``context: ...`` (styled as context, not
    as evidence), a warning stands beside the number and its reasons in the quality column."""
    rows = []
    for c in checks:
        quality = getattr(c, "quality", "ok")
        number = f"{c.quantity}: {_number(c)}" + ("" if quality == "ok" else f" [{quality}]")
        verdict = c.verdict if c.decisive else f"context: {c.verdict}"
        rows.append(([c.sample] if with_sample else []) + [
            c.technique, c.claim + ("" if c.decisive else " (context)"), number, c.threshold, verdict, c.reason,
            _quality_text(quality, getattr(c, "quality_reasons", []))])
    return rows


def analysis_quality(analysis) -> str:
    """Worst quality of an analysis' results with every reason (``failed`` for an analysis that failed)."""
    from doptrace.core.quality import get_quality, worst

    if analysis.error:
        return "failed: " + analysis.error
    records = {name: get_quality(ds) for name, ds in analysis.results.items()}
    if not records:
        return "-"
    quality = worst(*(q for q, _ in records.values()))
    reasons = [f"{name}: {r}" for name, (q, rs) in records.items() for r in rs]
    return _quality_text(quality, reasons)


def simulated_sources(analyses) -> list[str]:
    """Inputs of the analyses whose results carry a simulator's marker (``attrs["simulated"]``, which
    every technique's reader sets from its file and its pipeline carries: :mod:`doptrace.core.simulated`)."""
    from doptrace.core.simulated import simulated

    found = []
    for a in analyses:
        marked = [ds for ds in a.results.values() if simulated(ds)]
        if marked:  # the data file(s) the results name as their source, not e.g. an XRD recipe beside it
            named = {Path(part).name for ds in marked for part in str(ds.attrs.get("source", "")).split(", ")}
            files = [p.name for p in a.entry.files]
            found += [f for f in files if f in named] or files
    return sorted(set(found))


def run_facts(project, analyses) -> list:
    """What a reader needs to trust the numbers: version, date, simulated inputs, conversions, thresholds."""
    import datetime

    from doptrace import __version__

    from .checks import thresholds

    blocks = []
    simulated = simulated_sources(analyses)
    if simulated:
        blocks.append(Text(f"SIMULATED DATA: {len(simulated)} input file(s) were written by doptrace's simulators "
                           f"({', '.join(simulated[:6])}{', ...' if len(simulated) > 6 else ''}), not measured: the "
                           "verdicts below show what the methods can tell, not facts about real samples."))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks.append(Text(f"doptrace {__version__}, report written {now}."))
    if project is not None:
        rows = [[s, key, str(q)] for s, d in project.depth.items() for key, q in d.items()]
        blocks.append(Table(["sample", "depth conversion", "value ± esd"], rows or [["-", "none given", "-"]],
                            "Depth conversions used (their esds are scale errors added to depth slopes)"))
        samples = list(project.checks)
        known = thresholds()
        keys = [k for k in known if any(k in project.checks[s] for s in samples)]
        rows = [[k, known[k][2]] + [str(project.checks[s].get(k)) for s in samples] for k in keys]
        blocks.append(Table(["threshold", "meaning"] + samples, rows, "Thresholds of the checks"))
    return blocks


def comparison_table(evidence) -> Table:
    """One row per check, one column per sample; with two samples the difference in esd."""
    samples = [e.sample for e in evidence]
    keyed: dict[tuple, dict] = {}
    for e in evidence:
        for c in e.checks:
            keyed.setdefault((c.technique, c.claim, c.quantity), {})[e.sample] = c
    header = ["technique", "claim"] + samples + (["difference"] if len(samples) == 2 else [])
    rows = []
    for (technique, claim, _), by_sample in keyed.items():
        row = [technique, claim]
        for s in samples:
            c = by_sample.get(s)
            row.append(f"{_number(c)} ({c.verdict})" if c else "-")
        if len(samples) == 2:
            a, b = (by_sample.get(s) for s in samples)
            row.append(_difference(a, b))
        rows.append(row)
    rows.append(["all", "bulk, uniform doping"] + [e.verdict for e in evidence] + ([""] if len(samples) == 2 else []))
    return Table(header, rows, "Sample comparison: the same checks side by side")


def _difference(a, b) -> str:
    if a is None or b is None:
        return "-"
    values = (a.value, b.value, a.stderr, b.stderr)
    if not all(v is not None and math.isfinite(v) for v in values) or a.units != b.units:
        return "-"
    spread = math.hypot(a.stderr, b.stderr)
    if spread <= 0:
        return "-"
    return f"{_pm(a.value - b.value, spread, a.units)} ({abs(a.value - b.value) / spread:.1f} esd)"


def overview_section(title: str, evidence, analyses, inputs: dict[str, dict], project=None) -> Section:
    """The first section of the report."""
    section = Section("Overview", anchor="overview")
    section.blocks += run_facts(project, analyses)
    dopants = sorted({str(c.get("dopant")) for c in project.checks.values()}) if project is not None else []
    dopant = " / ".join(dopants) if dopants else "the dopant"
    section.blocks.append(Text(
        f"The question: does {dopant} sit in the bulk lattice, uniformly, or only at the surface or in a second "
        "phase? Each technique's evidence is a number with its uncertainty, a threshold and a verdict "
        "(supported, contradicted, not determined); a technique that cannot tell says so."))
    from .techniques import adapters

    labels = [adapter.LABEL for adapter in adapters().values()]
    rows = [[e.sample, e.verdict] + [e.techniques.get(t, "-") for t in labels] + [e.reason] for e in evidence]
    section.blocks.append(Table(["sample", "bulk, uniform doping"] + labels + ["reason"], rows, "Verdicts"))
    failed = [a for a in analyses if a.error]
    if failed:
        section.blocks.append(Text(f"FAILED: {len(failed)} analysis(es) could not be completed; their evidence is "
                                   "missing from the verdicts (see the analyses table below)."))
    for e in evidence:
        section.blocks.append(Heading(e.sample))
        if e.series is not None and not e.series.data_vars:
            section.blocks.append(Text(f"No depth profile for {e.sample}: {e.series.attrs.get('notes')}."))
        elif e.series is not None:
            section.blocks.append(Plot(overlay_figure, (e.series, e.surface_nm, e.sample),
                                         f"{e.sample}: {e.series.attrs.get('techniques', '')} on the common depth axis; horizontal bars are "
                                         "the depth conversions' esds, the grey band the surface layer."
                                         + (f" Notes: {e.series.attrs['notes']}." if e.series.attrs.get("notes") else "")))
        section.blocks.append(Table(["technique", "claim", "number", "threshold", "verdict", "reason", "quality"],
                                    check_rows(e.checks), f"{e.sample}: checks"))
    if 2 <= len(evidence) <= MAX_COMPARED:
        section.blocks.append(comparison_table(evidence))
    elif len(evidence) > MAX_COMPARED:
        counts = {v: sum(e.verdict == v for e in evidence) for v in ("supported", "contradicted", "not determined")}
        section.blocks.append(Text(f"{len(evidence)} samples: too many for a side-by-side table (one column each); "
                                   f"{counts['supported']} supported, {counts['contradicted']} contradicted, "
                                   f"{counts['not determined']} not determined. Every check is in checks.json."))
    section.blocks.append(Table(
        ["sample", "technique", "inputs", "status", "time", "quality"],
        [[a.entry.sample, a.entry.technique, ", ".join(p.name for p in a.entry.files),
          "FAILED: " + a.error if a.error else ("cached" if a.cached else "ok"), f"{a.seconds:.2f} s",
          analysis_quality(a)]
         for a in analyses], "Analyses"))
    meta = metadata_rows(analyses)
    if meta:
        section.blocks.append(Table(["analysis", "file", "field", "value (as written in the file)"], meta,
                                    "Instrument metadata"))
    section.blocks.append(Table(["input file", "bytes", "sha256"],
                                [[Path(r["path"]).name, r["bytes"], r["sha256"]] for r in inputs.values()], "Inputs"))
    return section


def metadata_rows(analyses) -> list[list]:
    """What the instrument files say about themselves, one row per distinct (file, field)."""
    rows, seen = [], set()
    for a in analyses:
        for ds in a.results.values():
            source = Path(str(ds.attrs.get("source", ""))).name
            for key in METADATA_KEYS:
                if key in ds.attrs and (source, key) not in seen:
                    seen.add((source, key))
                    rows.append([a.entry.key, source, key, str(ds.attrs[key])])
    return rows
