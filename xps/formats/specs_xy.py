"""SPECS Prodigy ``.xy`` export: ``#`` metadata lines, one data table per region, cycle and scan.

Each ``# Region:`` section holds ``# Cycle: c, Curve: k, Scan: s`` tables of ``energy value``
rows. One spectrum is returned per (region, cycle); the scans and curves of a cycle are averaged
when the file is in counts per second (``# Count Rate: Counts per Second``) and summed when it is
in counts, so ``counts_per_unit`` = dwell x scans x curves stays the factor back to raw counts.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import XPSError
from ._spectrum import make_spectrum
from ._text import read_bounded

EXTENSIONS = (".xy",)
ACCEPTS_BY_EXTENSION = False
MAX_BYTES = 512 * 1024 * 1024

_KEY = re.compile(r"^#\s*([^:]+?)\s*:\s*(.*?)\s*$")
_TABLE = re.compile(r"^#\s*Cycle:\s*(\d+),\s*Curve:\s*(\d+)(?:,\s*Scan:\s*(\d+))?")


def sniff(head: bytes) -> bool:
    """True for a SPECS Prodigy XY-Serializer export."""
    text = head.decode("latin-1")
    return "SpecsLab Prodigy" in text[:400] and "# Region:" in text


def _float(value: str, path: Path, line: int, what: str) -> float:
    try:
        return float(value.split()[0])
    except (ValueError, IndexError):
        raise XPSError(f"{path}: line {line}: {what} is not a number ({value[:30]!r})") from None


def _meta_number(meta: dict, key: str, path: Path, region: str) -> float:
    """A numeric '# Key: value [unit]' of a region; NaN when absent; XPSError when not a number."""
    text = (meta.get(key) or "").strip()
    if not text:
        return math.nan
    try:
        return float(text.split()[0])
    except ValueError:
        raise XPSError(f"{path}: region {region!r}: {key} is not a number ({text[:30]!r})") from None


def read(path: str | os.PathLike) -> list[xr.DataArray]:
    """Read every region and cycle of a SPECS Prodigy ``.xy`` file.

    Examples
    --------
    >>> [b.attrs["region"] for b in read("MgFe2O4_small.xy")]  # doctest: +SKIP
    ['Survey', 'Fe2p']
    """
    path = Path(path)
    text = read_bounded(path, MAX_BYTES, "a SPECS .xy file").decode("utf-8", errors="replace")
    lines = re.split(r"\r\n|\r|\n", text)
    settings: dict[str, str] = {}
    regions: list[dict] = []
    current: dict | None = None
    table: tuple[int, int] | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            found = _TABLE.match(stripped)
            if found:
                if current is None:
                    raise XPSError(f"{path}: line {number}: data table before any '# Region:' line")
                table = (int(found.group(1)), int(found.group(2)))
                current["tables"].setdefault(table[0], []).append(([], []))
                continue
            key = _KEY.match(stripped)
            if key:
                name, value = key.group(1).strip(), key.group(2)
                if name == "Region":
                    current = {"meta": {"Region": value}, "tables": {}}
                    regions.append(current)
                    table = None
                elif current is None:
                    settings[name] = value
                elif name not in current["meta"]:
                    current["meta"][name] = value
            continue
        if current is None or table is None:
            raise XPSError(f"{path}: line {number}: numbers outside a data table")
        cells = stripped.split()
        if len(cells) < 2:
            raise XPSError(f"{path}: line {number}: expected 'energy value', found {stripped[:40]!r}")
        energies, values = current["tables"][table[0]][-1]
        energies.append(_float(cells[0], path, number, "energy"))
        values.append(_float(cells[1], path, number, "intensity"))
    if not regions:
        raise XPSError(f"{path}: no '# Region:' sections")
    per_second = "second" in settings.get("Count Rate", "").lower()
    kinetic = "kinetic" in settings.get("Energy Axis", "binding").lower()
    spectra = []
    for region in regions:
        meta = region["meta"]
        if not region["tables"]:
            raise XPSError(f"{path}: region {meta['Region']!r}: empty block (0 data points)")
        name = meta["Region"]
        declared = _meta_number(meta, "Values/Curve", path, name)
        for cycle, tables in sorted(region["tables"].items()):
            if not math.isnan(declared):
                for energies, _ in tables:
                    if len(energies) != declared:
                        raise XPSError(f"{path}: region {name!r} cycle {cycle}: {len(energies)} data points, "
                                       f"but '# Values/Curve: {meta['Values/Curve']}' (truncated or edited table)")
            grids = [np.asarray(e) for e, _ in tables]
            if any(g.shape != grids[0].shape or not np.allclose(g, grids[0]) for g in grids):
                raise XPSError(f"{path}: region {meta['Region']!r} cycle {cycle}: scans on different energy grids")
            stack = np.array([v for _, v in tables], dtype=float)
            values = stack.mean(axis=0) if per_second else stack.sum(axis=0)
            if not grids[0].size:
                raise XPSError(f"{path}: region {name!r} cycle {cycle}: empty block (0 data points)")
            dwell = _meta_number(meta, "Dwell Time", path, name)
            spectra.append(make_spectrum(
                str(path), grids[0], values, abscissa="kinetic energy" if kinetic else "binding energy",
                excitation_energy=_meta_number(meta, "Excitation Energy", path, name),
                region=meta["Region"], sample=settings.get("Group", ""), block_index=len(spectra),
                pass_energy=_meta_number(meta, "Pass Energy", path, name), dwell_time=dwell,
                scans=len(tables), already_per_second=per_second,
                experimental_variables={"Cycle": float(cycle)}, comment=meta.get("Comment", ""),
                extra_attrs={"block_id": f"{meta['Region']} cycle {cycle}",
                             "spectrum_id": meta.get("Spectrum ID", "")},
            ))
    return spectra
