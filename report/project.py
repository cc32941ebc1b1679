"""Project files: which samples, which instrument files, which processing inputs.

A project file is TOML::

    title = "B-doped Li-rich cathodes"
    [[sample]]
    name = "LBO-LRMO"
    [[sample.xps]]            # one table per analysis; keys defined by the technique adapter
    file = "data/lbo_b1s.vms"
    model = "models/b1s.toml"

    [sample.depth]            # depth conversions for this sample (a top-level [depth] sets defaults)
    xps_etch_rate = "0.40 ± 0.04 nm/s"
    sims_crater_depth = "500 ± 25 nm"

    [checks]                  # thresholds of the doping-distribution checks (report.checks.thresholds())
    surface_depth = "60 nm"

The keys of ``[[sample.NAME]]``, ``[depth]`` and ``[checks]`` come from the technique adapters
(``ENTRY_SCHEMA``, ``DEPTH_KEYS``, ``THRESHOLDS``; :mod:`report.techniques`). Paths are relative
to the project file. Quantities carry units, converted on reading; a quantity
of the wrong kind (a rate given in nm) is refused. Every problem is collected and reported at once,
before any processing starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from doptrace.core.tomlfile import Problems, read_toml
from doptrace.core.units import Quantity, parse_quantity

from .checks import defaults, thresholds
from .errors import ReportError
from .techniques import adapters


def depth_keys() -> dict[str, str]:
    """Every depth-conversion key of the adapters' ``DEPTH_KEYS`` and the kind of quantity it holds."""
    out = {}
    for adapter in adapters().values():
        out.update(getattr(adapter, "DEPTH_KEYS", {}))
    return out

_KIND_CHECKS = {
    "text": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "table": lambda v: isinstance(v, dict),
    "bool": lambda v: isinstance(v, bool),
    "file": lambda v: isinstance(v, str),
}


@dataclass
class Entry:
    """One analysis of one sample: technique name, its resolved settings and its index."""

    sample: str
    technique: str
    index: int
    settings: dict
    files: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.sample}__{self.technique}{self.index}"


@dataclass
class Project:
    path: Path
    title: str
    samples: list[str]
    entries: list[Entry]
    raw: dict
    depth: dict[str, dict[str, Quantity]] = field(default_factory=dict)
    checks: dict[str, dict] = field(default_factory=dict)


def load_project(path) -> Project:
    """Read and check a project file; raise :class:`ReportError` listing every problem."""
    path = Path(path)
    doc = read_toml(path, ReportError, "project file")
    raw = doc.data
    base = path.parent.resolve()
    known = adapters()
    problems = Problems(doc)  # each problem with the line of its key
    for key in raw:
        if key not in ("title", "sample", "checks", "depth"):
            problems.append(f"unknown top-level key '{key}'", (key,))
    top_depth = _read_depth(raw.get("depth", {}), "[depth]", problems, ("depth",))
    top_checks = _read_checks(raw.get("checks", {}), "[checks]", problems, defaults(), ("checks",))
    depth, checks = {}, {}
    samples = raw.get("sample", [])
    if not isinstance(samples, list) or not samples:
        problems.append("no [[sample]] tables")
        samples = []
    names, entries = [], []
    for number, sample in enumerate(samples):
        at = ("sample", number)
        name = sample.get("name") if isinstance(sample, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"sample {number + 1} has no name", at)
            continue
        if name in names:
            problems.append(f"sample name '{name}' used twice", at + ("name",))
        if name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
            # result files are named after the sample
            problems.append(f"sample name {name!r} cannot name a file (no /, \\, control characters, '.' or '..')",
                            at + ("name",))
        names.append(name)
        depth[name] = {**top_depth, **_read_depth(sample.get("depth", {}), f"sample '{name}' depth", problems,
                                                  at + ("depth",))}
        checks[name] = _read_checks(sample.get("checks", {}), f"sample '{name}' checks", problems, top_checks,
                                    at + ("checks",))
        for key, value in sample.items():
            if key in ("name", "description", "depth", "checks"):
                continue
            if key not in known:
                problems.append(f"sample '{name}': unknown key '{key}' (techniques: {', '.join(known)})", at + (key,))
                continue
            tables = value if isinstance(value, list) else [value]
            for index, table in enumerate(tables):
                entry, entry_problems = _check_entry(known[key], table, base, f"sample '{name}' {key}[{index}]")
                for problem in entry_problems:
                    problems.append(problem, at + ((key, index) if isinstance(value, list) else (key,)))
                if entry is not None:
                    entries.append(Entry(name, key, index, *entry))
    for entry in entries:
        prepare = getattr(known[entry.technique], "prepare_entry", None)
        if prepare is not None:
            problems += prepare(entry.settings, depth.get(entry.sample, {}), _explicit_surface(raw, entry.sample, checks),
                                f"sample '{entry.sample}' {entry.technique}[{entry.index}]",
                                checks.get(entry.sample, {}))
    problems.raise_if_any(ReportError)
    return Project(path, str(raw.get("title", path.stem)), names, entries, raw, depth, checks)


def _read_depth(table, where: str, problems: Problems, keys: tuple = ()) -> dict[str, Quantity]:
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table", keys)
        return {}
    out, known = {}, depth_keys()
    for key, value in table.items():
        if key not in known:
            problems.append(f"{where}: unknown key '{key}' (known: {', '.join(known)})", keys + (key,))
            continue
        try:
            out[key] = parse_quantity(value, known[key])
        except ValueError as exc:
            problems.append(f"{where}: {key}: {exc}", keys + (key,))
            continue
        if out[key].value <= 0:
            problems.append(f"{where}: {key} must be positive, got {out[key]}", keys + (key,))
    return out


def _read_checks(table, where: str, problems: Problems, base: dict, keys: tuple = ()) -> dict:
    out, known = dict(base), thresholds()
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table", keys)
        return out
    for key, value in table.items():
        if key not in known:
            problems.append(f"{where}: unknown key '{key}' (known: {', '.join(known)})", keys + (key,))
            continue
        kind = known[key][0]
        if kind == "length":
            try:
                out[key] = parse_quantity(value, "length").value
            except ValueError as exc:
                problems.append(f"{where}: {key}: {exc}", keys + (key,))
        elif not _KIND_CHECKS[kind](value):
            problems.append(f"{where}: '{key}' must be {kind}", keys + (key,))
        else:
            out[key] = value
    return out


def _explicit_surface(raw: dict, sample: str, checks: dict) -> float | None:
    """The surface depth (nm) when the project sets one, for the sample or for all; else None."""
    tables = [raw.get("checks", {})] + [s.get("checks", {}) for s in raw.get("sample", [])
                                        if isinstance(s, dict) and s.get("name") == sample]
    if any(isinstance(t, dict) and "surface_depth" in t for t in tables) and sample in checks:
        return float(checks[sample]["surface_depth"])
    return None


def _check_entry(adapter, table, base: Path, where: str):
    if not isinstance(table, dict):
        return None, [f"{where}: must be a table"]
    problems, settings, files = [], {}, []
    for key, (kind, required) in adapter.ENTRY_SCHEMA.items():
        if key not in table:
            if required:
                problems.append(f"{where}: missing '{key}'")
            continue
        value = table[key]
        if not _KIND_CHECKS[kind](value):
            problems.append(f"{where}: '{key}' must be {kind}")
            continue
        if kind == "file":
            resolved = (base / value).resolve()
            if not resolved.is_file():
                problems.append(f"{where}: file '{value}' not found")
            files.append(resolved)
            value = resolved
        settings[key] = value
    for key in table:
        if key not in adapter.ENTRY_SCHEMA:
            problems.append(f"{where}: unknown key '{key}'")
    return (settings, files), problems
