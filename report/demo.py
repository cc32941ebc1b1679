"""``doptrace demo``: simulate two samples with every technique, write their project file, run it.

BM-LRMO has boron only at the surface (ball-milled coating); LBO-LRMO has boron doped into the
bulk lattice. Every file is written by the techniques' own simulators in real instrument formats.
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_text
from .runner import RunSummary, run_project
from .techniques import adapters

DEMO_SAMPLES = {"BM-LRMO": False, "LBO-LRMO": True}  # sample -> boron doped into the bulk


def toml_value(value) -> str:
    """TOML text for the simple values project files hold (JSON strings are valid TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def write_demo_project(directory: Path, seed: int = 7) -> Path:
    """Simulate every technique's files for the demo samples and write ``project.toml``."""
    directory = Path(directory)
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ['title = "doptrace demo: boron in Li-rich layered cathodes"', ""]
    for number, (sample, bulk_doped) in enumerate(DEMO_SAMPLES.items()):
        lines += ["[[sample]]", f"name = {toml_value(sample)}", ""]
        for name, adapter in adapters().items():
            for entry in adapter.demo_entries(data_dir, sample, bulk_doped, seed + 100 * number):
                lines.append(f"[[sample.{name}]]")
                for key, value in entry.items():
                    if isinstance(value, Path):
                        value = value.resolve().relative_to(directory.resolve()).as_posix()
                    lines.append(f"{key} = {toml_value(value)}")
                lines.append("")
    return write_text(directory / "project.toml", "\n".join(lines))


def run_demo(out_dir, seed: int = 7, progress: bool = True) -> RunSummary:
    """Write the demo project under ``out_dir`` and run it into the same folder."""
    project = write_demo_project(Path(out_dir), seed)
    return run_project(project, out_dir, progress=progress)
