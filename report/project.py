"""Project files: which samples, which instrument files, which processing inputs.

A project file is TOML::

    title = "B-doped Li-rich cathodes"
    [[sample]]
    name = "LBO-LRMO"
    [[sample.xps]]            # one table per analysis; keys defined by the technique adapter
    file = "data/lbo_b1s.vms"
    model = "models/b1s.toml"

Paths are relative to the project file. Every problem is collected and reported at once,
before any processing starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ReportError
from .techniques import adapters

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


def load_project(path) -> Project:
    """Read and check a project file; raise :class:`ReportError` listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: project file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a valid TOML project file ({exc})") from None
    base = path.parent.resolve()
    known = adapters()
    problems: list[str] = []
    for key in raw:
        if key not in ("title", "sample", "checks", "depth"):
            problems.append(f"unknown top-level key '{key}'")
    samples = raw.get("sample", [])
    if not isinstance(samples, list) or not samples:
        problems.append("no [[sample]] tables")
        samples = []
    names, entries = [], []
    for number, sample in enumerate(samples):
        name = sample.get("name") if isinstance(sample, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"sample {number + 1} has no name")
            continue
        if name in names:
            problems.append(f"sample name '{name}' used twice")
        names.append(name)
        for key, value in sample.items():
            if key in ("name", "description"):
                continue
            if key not in known:
                problems.append(f"sample '{name}': unknown key '{key}' (techniques: {', '.join(known)})")
                continue
            tables = value if isinstance(value, list) else [value]
            for index, table in enumerate(tables):
                entry, entry_problems = _check_entry(known[key], table, base, f"sample '{name}' {key}[{index}]")
                problems += entry_problems
                if entry is not None:
                    entries.append(Entry(name, key, index, *entry))
    if problems:
        raise ReportError(f"{path}: " + "; ".join(problems))
    return Project(path, str(raw.get("title", path.stem)), names, entries, raw)


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
