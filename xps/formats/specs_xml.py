"""SPECS SpecsLab 2 XML (CORBA ``XMLSerializer``) files: raw multi-channel-detector counts.

Each ``RegionData`` holds the region definition (``kinetic_energy`` start, ``scan_delta``,
``values_per_curve``, ``pass_energy``, ``dwell_time``, ``excitation_energy``), the MCD geometry
(``mcd_head``, ``mcd_tail`` extra channels and one ``shift`` per detector, in units of the pass
energy) and, per cycle and scan, ``counts`` for (values + head + tail) channels x detectors,
channel-major. The spectrum is rebuilt the way SpecsLab does: detector ``d`` at raw channel ``j``
sees kinetic energy ``KE0 + (j - head) * delta + shift_d * Ep``; each detector's counts are
interpolated onto the region grid ``KE0 + i * delta`` and summed, then summed over scans.
(The head/tail counts match exactly the largest positive/negative shifts, which fixes the sign;
the opposite sign smears the peaks, see the tests.) BE = hv - KE.

XML is parsed with defusedxml only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from defusedxml import ElementTree

from ..errors import XPSError
from ._spectrum import make_spectrum

EXTENSIONS = (".xml",)
ACCEPTS_BY_EXTENSION = False
MAX_BYTES = 512 * 1024 * 1024
#: Largest channel / detector / scan count accepted from the file (real files: ~10^3 channels).
MAX_COUNT = 10_000_000


def sniff(head: bytes) -> bool:
    """True for a SpecsLab 2 CORBA XML serialisation."""
    return b"<?xml" in head[:100] and b"specs.de/Serializer" in head


def _field(parent, tag: str, name: str, path: Path, where: str) -> str:
    node = parent.find(f"{tag}[@name='{name}']")
    if node is None or node.text is None:
        raise XPSError(f"{path}: {where}: missing {tag} {name!r}")
    return node.text.strip()


def _number(parent, tag: str, name: str, path: Path, where: str) -> float:
    text = _field(parent, tag, name, path, where)
    try:
        return float(text)
    except ValueError:
        raise XPSError(f"{path}: {where}: {name} is not a number ({text[:30]!r})") from None


def _integer(parent, tag: str, name: str, path: Path, where: str, limit: int = MAX_COUNT) -> int:
    """A non-negative integer field, at most ``limit`` (a corrupt count cannot allocate)."""
    value = _number(parent, tag, name, path, where)
    if not (0 <= value <= limit) or value != int(value):
        raise XPSError(f"{path}: {where}: {name} = {value:g} is not a count in 0..{limit}")
    return int(value)


def _values(sequence, path: Path, where: str, what: str = "counts") -> np.ndarray:
    if sequence is None:
        raise XPSError(f"{path}: {where}: missing sequence {what!r}")
    raw = sequence.get("length", "0")
    try:
        length = int(raw)
    except ValueError:
        raise XPSError(f"{path}: {where}: {sequence.get('name')} length {raw[:30]!r} is not an integer") from None
    text = " ".join(child.text or "" for child in sequence)
    try:
        values = np.array(text.split(), dtype=float)
    except ValueError:
        raise XPSError(f"{path}: {where}: non-numeric value in {sequence.get('name')}") from None
    if values.size != length:
        raise XPSError(f"{path}: {where}: {sequence.get('name')} declares {length} values, holds {values.size}")
    return values


def rebuild_mcd(counts: np.ndarray, shifts: np.ndarray, head: int, ke_start: float, delta: float,
                pass_energy: float, n_values: int) -> np.ndarray:
    """Sum multi-channel-detector counts onto the region grid.

    Parameters
    ----------
    counts : ndarray, shape (n_values + head + tail, n_detectors)
        Raw counts per channel and detector.
    shifts : ndarray, shape (n_detectors,)
        Detector energy offsets in units of the pass energy.

    Returns
    -------
    ndarray, shape (n_values,)
        sum_d interp(KE0 + i*delta; KE0 + (j - head)*delta + shift_d*Ep, counts[:, d]).

    Examples
    --------
    >>> c = np.ones((6, 2)); rebuild_mcd(c, np.array([0.0, 0.0]), 1, 100.0, 1.0, 10.0, 4).tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    grid = ke_start + delta * np.arange(n_values)
    channels = ke_start + delta * (np.arange(counts.shape[0]) - head)
    return sum(np.interp(grid, channels + shift * pass_energy, counts[:, d]) for d, shift in enumerate(shifts))


def read(path: str | os.PathLike) -> list[xr.DataArray]:
    """Read every region and cycle of a SpecsLab 2 XML file (counts rebuilt from the MCD).

    Examples
    --------
    >>> [b.attrs["region"] for b in read("In-situ_PBTTT_XPS_SPECS.xml")]  # doctest: +SKIP
    ['Survey', 'C 1s']
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise XPSError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if size > MAX_BYTES:
        raise XPSError(f"{path}: file of {size} bytes is too large for a SpecsLab XML file")
    try:
        root = ElementTree.parse(str(path)).getroot()  # an internal DTD is normal here; entities are not
    except ElementTree.ParseError as exc:
        raise XPSError(f"{path}: malformed XML ({exc})") from None
    except Exception as exc:  # defusedxml refuses entities / DTD tricks with its own exceptions
        raise XPSError(f"{path}: refused XML ({type(exc).__name__}: {exc})") from None
    spectra = []
    for group in root.iter("struct"):
        if group.get("type_name") != "RegionGroup":
            continue
        group_name = (group.findtext("string[@name='name']") or "").strip()
        for data in group.iter("struct"):
            if data.get("type_name") != "RegionData":
                continue
            name = _field(data, "string", "name", path, "region")
            where = f"region {name!r}"
            region = data.find("struct[@name='region']")
            if region is None:
                raise XPSError(f"{path}: {where}: no region definition")
            n_values = _integer(region, "ulong", "values_per_curve", path, where)
            curves = _integer(region, "ulong", "curves_per_scan", path, where)
            delta = _number(region, "double", "scan_delta", path, where)
            ke_start = _number(region, "double", "kinetic_energy", path, where)
            hv = _number(region, "double", "excitation_energy", path, where)
            pass_energy = _number(region, "double", "pass_energy", path, where)
            dwell = _number(region, "double", "dwell_time", path, where)
            declared_scans = _integer(region, "ulong", "num_scans", path, where)
            head = _integer(data, "ulong", "mcd_head", path, where)
            tail = _integer(data, "ulong", "mcd_tail", path, where)
            if not (np.isfinite(delta) and delta > 0):
                raise XPSError(f"{path}: {where}: scan_delta {delta:g} eV is not a positive step")
            shifts = np.array([_number(d, "double", "shift", path, where) for d in data.iter("struct")
                               if d.get("type_name") == "Detector"])
            if shifts.size == 0 or curves != 1 or n_values < 1:
                raise XPSError(f"{path}: {where}: unsupported layout ({shifts.size} detectors, {curves} curves/scan)")
            channels = n_values + head + tail
            transmission = None
            seq = data.find("sequence[@name='transmission']")
            if seq is not None and seq.get("length", "0").strip() == str(n_values):
                transmission = _values(seq, path, where, "transmission")
            cycles = [c for c in data.iter("struct") if c.get("type_name") == "Cycle"]
            for cycle_index, cycle in enumerate(cycles):
                scans = [s for s in cycle.iter("struct") if s.get("type_name") == "ScanData"]
                if not scans:
                    raise XPSError(f"{path}: {where}: cycle {cycle_index}: empty block (no scans)")
                total = np.zeros(n_values)
                for scan in scans:
                    counts = _values(scan.find("sequence[@name='counts']"), path, where, "counts")
                    if counts.size != channels * shifts.size:
                        raise XPSError(f"{path}: {where}: {counts.size} counts, expected "
                                       f"({n_values} + {head} + {tail}) x {shifts.size} detectors")
                    total += rebuild_mcd(counts.reshape(channels, shifts.size), shifts, head, ke_start, delta,
                                         pass_energy, n_values)
                energy = ke_start + delta * np.arange(n_values)
                da = make_spectrum(
                    str(path), energy, total, abscissa="kinetic energy", excitation_energy=hv, region=name,
                    sample=group_name, block_index=len(spectra), pass_energy=pass_energy, dwell_time=dwell,
                    scans=len(scans), experimental_variables={"Cycle": float(cycle_index)},
                    transmission=transmission,
                    extra_attrs={"block_id": f"{group_name}/{name}", "declared_scans": declared_scans},
                )
                spectra.append(da)
    if not spectra:
        raise XPSError(f"{path}: no RegionData in this SpecsLab XML file")
    return spectra
