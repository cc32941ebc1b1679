"""``doptrace demo``: simulate two samples with every technique, write their project file, run it.

BM-LRMO has boron only at the surface (ball-milled coating); LBO-LRMO has boron doped into the
bulk lattice. Every file is written by the techniques' own simulators in real instrument formats.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from doptrace.core.atomic import write_text

from .runner import RunSummary, run_project
from .techniques import adapters

DEMO_SAMPLES = {"BM-LRMO": False, "LBO-LRMO": True}  # sample -> boron doped into the bulk

# Depth conversions as a lab would state them come from each adapter's ``demo_depth`` (the XPS
# etch rate calibrated on a reference film, ±10 %; the ToF-SIMS crater depth by profilometry, ±5 %).
# The XPS simulator's surface layer ends near 60 nm, where the ToF-SIMS simulator's B-rich surface
# scans (3 of 24 over 500 nm) end too.
# the demo's question: boron, its XPS lattice component and its ToF-SIMS fragments (project settings,
# not code defaults); nominal B is 5-8 % of Li sites
DEMO_CHECKS = {"dopant": "B", "xps_component": "TM-O-B", "sims_fragment": "BO-", "sims_host": "MnO-",
               "surface_depth": "60 nm", "xrd_expected_fraction": 0.05}


def toml_value(value) -> str:
    """TOML text for the simple values project files hold (JSON strings are valid TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def simulate_entries(directory: Path, techniques=None, seed: int = 7,
                     progress: bool = False) -> dict[str, dict[str, list[dict]]]:
    """Simulate the demo samples' files under ``directory/data``: ``{sample: {technique: [entry, ...]}}``.

    ``techniques`` limits the run to some adapters (all by default); sample ``k`` uses seed
    ``seed + 100 * k`` so every technique's files of one sample are reproducible.
    """
    data_dir = Path(directory) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    chosen = {n: a for n, a in adapters().items() if techniques is None or n in techniques}
    entries: dict[str, dict[str, list[dict]]] = {}
    with tqdm(total=len(DEMO_SAMPLES) * len(chosen), desc="simulating", unit="file", disable=not progress) as bar:
        for number, (sample, bulk_doped) in enumerate(DEMO_SAMPLES.items()):
            entries[sample] = {}
            for name, adapter in chosen.items():
                entries[sample][name] = adapter.demo_entries(data_dir, sample, bulk_doped, seed + 100 * number)
                bar.update()
    return entries


def write_project_file(directory: Path, entries: dict[str, dict[str, list[dict]]], title: str,
                       depth: dict[str, dict] | None = None, checks: dict | None = None) -> Path:
    """Write ``directory/project.toml`` for ``{sample: {technique: [entry, ...]}}``; paths made relative.

    ``depth`` maps samples to their ``[sample.depth]`` table, ``checks`` is the ``[checks]`` table.
    """
    directory = Path(directory)
    lines = [f"title = {toml_value(title)}", ""]
    if checks:
        lines += ["[checks]"] + [f"{k} = {toml_value(v)}" for k, v in checks.items()] + [""]
    for sample, techniques in entries.items():
        lines += ["[[sample]]", f"name = {toml_value(sample)}", ""]
        if depth and depth.get(sample):
            lines += ["[sample.depth]"] + [f"{k} = {toml_value(v)}" for k, v in depth[sample].items()] + [""]
        for name, tables in techniques.items():
            for entry in tables:
                lines.append(f"[[sample.{name}]]")
                for key, value in entry.items():
                    if isinstance(value, Path):
                        value = value.resolve().relative_to(directory.resolve()).as_posix()
                    lines.append(f"{key} = {toml_value(value)}")
                lines.append("")
    return write_text(directory / "project.toml", "\n".join(lines))


def demo_depth(entries: dict[str, dict[str, list[dict]]]) -> dict[str, dict]:
    """Each sample's ``[sample.depth]`` table from its adapters' ``demo_depth`` (which may move depth
    conversions out of their entries, e.g. a simulated crater depth, stated with a lab's esd)."""
    known = adapters()
    depth = {}
    for sample, techniques in entries.items():
        depth[sample] = {}
        for name, tables in techniques.items():
            if hasattr(known.get(name), "demo_depth"):
                depth[sample].update(known[name].demo_depth(tables))
    return depth


def write_demo_project(directory: Path, seed: int = 7, techniques=None, progress: bool = False) -> Path:
    """Simulate every technique's files for the demo samples and write ``project.toml``."""
    entries = simulate_entries(directory, techniques, seed, progress)
    return write_project_file(directory, entries, "doptrace demo: boron in Li-rich layered cathodes",
                              demo_depth(entries), DEMO_CHECKS)


def run_demo(out_dir, seed: int = 7, progress: bool = True, workers: int | None = None,
             scheduler: str | None = None) -> RunSummary:
    """Write the demo project under ``out_dir`` and run it into the same folder."""
    project = write_demo_project(Path(out_dir), seed, progress=progress)
    return run_project(project, out_dir, progress=progress, workers=workers, scheduler=scheduler)
