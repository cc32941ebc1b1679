"""PHI MultiPak ``.spe`` (spectra) and ``.pro`` (sputter depth profile) files.

Layout (learned from public PHI VersaProbe files; no PHI documentation is public):

- a text header between ``SOFH`` and ``EOFH`` lines (``Key: value``), with one
  ``SpectralRegDef: id id name Z n step start end ... dwell pass_energy AREA`` line per acquired
  region and ``SpectralRegDef2: id ? sweeps ...``; ``XraySource: Al 1486.6 mono``;
- then binary, little endian: a uint32, then a table of 96-byte records (24 uint32); the first
  record's field 0 is the number of records. Per record: field 3 record number, field 6 region id,
  field 7 kind (1 spectrum, 8 sputter time per cycle, 2 MultiPak profile areas), field 8 values per
  curve, field 9 curves (depth cycles), field 22 byte length, field 23 byte offset (from the
  binary start). Values are float32.

Intensities are stored as counts / dwell (every value x dwell is an integer in real files), so
``counts_per_unit`` = dwell: raw summed counts = values x dwell. A ``.pro`` file yields one spectrum
per region per depth cycle with ``etch_time`` (s) from the sputter-time record, so
``xps.stack_series`` gives the depth profile directly.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import XPSError
from ._text import read_bounded
from ._spectrum import make_spectrum

EXTENSIONS = (".spe", ".pro")
ACCEPTS_BY_EXTENSION = False
MAX_BYTES = 1024 * 1024 * 1024
_RECORD = 96
#: Points per region: real PHI spectra hold up to a few thousand.
MAX_POINTS = 10_000_000
_KIND_SPECTRUM, _KIND_SPUTTER_TIME, _KIND_PROFILE = 1, 8, 2


def sniff(head: bytes) -> bool:
    """True when the file starts with a PHI ``SOFH`` header."""
    return head.lstrip()[:4] == b"SOFH" and b"Platform:" in head[:200]


def _header(path: Path, raw: bytes) -> tuple[dict[str, list[str]], int]:
    match = re.search(rb"\r?\nEOFH\r?\n", raw)
    if not match:
        raise XPSError(f"{path}: PHI header has no EOFH line (truncated or not a PHI file)")
    fields: dict[str, list[str]] = {}
    for line in raw[: match.start()].decode("latin-1").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), []).append(value.strip())
    return fields, match.end()


def _regions(path: Path, fields: dict[str, list[str]]) -> dict[int, dict]:
    regions = {}
    sweeps = {}
    for value in fields.get("SpectralRegDef2", []):
        parts = value.split()
        if len(parts) >= 3:
            try:
                sweeps[int(parts[0])] = _count(parts[2])
            except (ValueError, OverflowError):
                raise XPSError(f"{path}: malformed SpectralRegDef2 line {value[:60]!r}") from None
    for value in fields.get("SpectralRegDef", []):
        parts = value.split()
        try:
            region_id, name, n = int(parts[0]), parts[2], int(parts[4])
            start, end = float(parts[6]), float(parts[7])
            dwell, pass_energy = float(parts[-3]), float(parts[-2])
        except (IndexError, ValueError):
            raise XPSError(f"{path}: malformed SpectralRegDef line {value[:60]!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise XPSError(f"{path}: SpectralRegDef line {value[:60]!r}: start/end energy is not finite")
        if not 1 <= n <= MAX_POINTS:
            raise XPSError(f"{path}: SpectralRegDef line {value[:60]!r}: {n} points (expected 1..{MAX_POINTS})")
        regions[region_id] = {"name": name, "n": n, "start": start, "end": end, "dwell": dwell,
                              "pass_energy": pass_energy, "sweeps": sweeps.get(region_id, 1)}
    if not regions:
        raise XPSError(f"{path}: PHI header lists no SpectralRegDef regions")
    return regions


def _count(text: str) -> int:
    """A non-negative integer written as int or float text ('3', '3.0'); ValueError otherwise."""
    value = float(text)
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(text)
    return int(value)


def _region_label(name: str) -> str:
    # MultiPak names the survey 'Su1s' and doublet members 'Sn3d5' (3d5/2).
    if name.lower().startswith("su"):
        return "Survey"
    match = re.fullmatch(r"([A-Z][a-z]?)(\d[spdf])(\d)?", name)
    if match:
        return f"{match.group(1)} {match.group(2)}" + (f"{match.group(3)}/2" if match.group(3) else "")
    return name


def read(path: str | os.PathLike) -> list[xr.DataArray]:
    """Read a PHI ``.spe`` spectrum file or ``.pro`` depth profile.

    Returns
    -------
    list of DataArray
        ``.spe``: one per region. ``.pro``: one per region and depth cycle, ``etch_time`` set
        from the profile's sputter times and ``experimental_variables["Cycle"]`` the cycle index.

    Examples
    --------
    >>> blocks = read("SnO2_10nm_1.pro")  # doctest: +SKIP
    >>> series = xps.stack_series(blocks, "Sn 3d5/2")  # doctest: +SKIP
    """
    path = Path(path)
    raw = read_bounded(path, MAX_BYTES, "a PHI file")
    fields, start = _header(path, raw)
    areas = (fields.get("NoSpatialArea") or ["1"])[0]
    try:
        n_areas = _count(areas)
    except (ValueError, OverflowError):
        raise XPSError(f"{path}: NoSpatialArea is not a count ({areas[:30]!r})") from None
    if n_areas != 1:
        raise XPSError(f"{path}: PHI files with several spatial areas are not supported")
    regions = _regions(path, fields)
    source = (fields.get("XraySource") or [""])[0].split()
    try:
        hv = float(source[1])
    except (IndexError, ValueError):
        raise XPSError(f"{path}: no photon energy in the XraySource header line") from None
    binary = raw[start:]
    if len(binary) < 4 + _RECORD:
        raise XPSError(f"{path}: truncated PHI file (binary part of {len(binary)} bytes)")
    n_records = int(np.frombuffer(binary, "<u4", count=1, offset=4)[0])
    if not 1 <= n_records <= 10_000 or 4 + _RECORD * n_records > len(binary):
        raise XPSError(f"{path}: corrupt PHI record table ({n_records} records)")
    table = np.frombuffer(binary, "<u4", count=24 * n_records, offset=4).reshape(n_records, 24)
    arrays: dict[tuple[int, int], np.ndarray] = {}
    for row, record in enumerate(table):
        kind, region_id, n_values, n_curves = int(record[7]), int(record[6]), int(record[8]), int(record[9])
        length, offset = int(record[22]), int(record[23])
        if length != 4 * n_values * n_curves:
            raise XPSError(f"{path}: record {row}: {length} bytes for {n_values} x {n_curves} float32 values "
                           "(unsupported PHI encoding)")
        if offset + length > len(binary):
            raise XPSError(f"{path}: truncated PHI file: record {row} needs bytes {offset}..{offset + length}, "
                           f"file has {len(binary)}")
        arrays[(kind, region_id if kind == _KIND_SPECTRUM else row)] = np.frombuffer(
            binary, "<f4", count=n_values * n_curves, offset=offset).astype(float).reshape(n_curves, n_values)
    sputter = next((a for (kind, _), a in arrays.items() if kind == _KIND_SPUTTER_TIME), None)
    profile = next((a for (kind, _), a in arrays.items() if kind == _KIND_PROFILE), None)
    is_profile = (fields.get("FileType") or [""])[0].upper() == "DEPTHPRO"
    spectra = []
    for position, (region_id, region) in enumerate(sorted(regions.items())):
        data = arrays.get((_KIND_SPECTRUM, region_id))
        if data is None:
            raise XPSError(f"{path}: region {region['name']!r} has no data record")
        if data.shape[1] != region["n"]:
            raise XPSError(f"{path}: region {region['name']!r}: {data.shape[1]} values, header says {region['n']}")
        energy = np.linspace(region["start"], region["end"], region["n"])
        for cycle, values in enumerate(data):
            etch = math.nan
            if is_profile and sputter is not None and position < sputter.shape[0] and cycle < sputter.shape[1]:
                etch = abs(float(sputter[position, cycle]))
            da = make_spectrum(
                str(path), energy, values, abscissa="binding energy", excitation_energy=hv,
                region=_region_label(region["name"]), sample=(fields.get("FileDesc") or [""])[0],
                block_index=len(spectra), pass_energy=region["pass_energy"], dwell_time=region["dwell"], scans=1,
                already_per_second=True, etch_time=etch,
                experimental_variables={"Cycle": float(cycle)} if is_profile else {},
                extra_attrs={"block_id": f"{region['name']} cycle {cycle}" if is_profile else region["name"],
                             "instrument": (fields.get("InstrumentModel") or [""])[0]},
            )
            if is_profile and profile is not None and position < profile.shape[0] and cycle < profile.shape[1]:
                # MultiPak's own peak area for this region and cycle (its profile curve).
                da.attrs["vendor_area"] = float(profile[position, cycle])
            da.attrs["scans"] = region["sweeps"]  # counts_per_unit stays dwell: values are summed counts / dwell
            spectra.append(da)
    return spectra
