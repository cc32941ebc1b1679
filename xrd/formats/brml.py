"""Bruker DIFFRAC.SUITE ``.brml``: a zip container of XML documents.

Each scan is a member ``Experiment*/RawData<N>.xml`` with root ``RawData``:

- ``DataRoutes/DataRoute`` (the one with ``RouteFlag="Final"`` when several) holds
  ``ScanInformation`` (``MeasurementPoints``, ``TimePerStep``, ``ScanAxes/ScanAxisInfo`` with
  ``AxisId``/``AxisName`` 2Theta and ``Start``/``Stop``/``Increment``) and one ``Datum`` element
  per step: comma-separated columns ``time, enabled, 2theta, theta, counts[, ...]`` (rows of
  four columns, ``time, enabled, 2theta, counts``, also occur).
- Wavelengths sit anywhere in the document as ``WaveLengthAlpha1``/``WaveLengthAlpha2``/
  ``WaveLengthRatio`` elements with a ``Value`` attribute.

The container is opened with bounded decompression (:mod:`xrd.formats._zip`) and every XML
member with defusedxml (:mod:`xrd.formats._xml`).  No public ``.brml`` file could be found, so
this layout is the one described in Bruker's DIFFRAC.SUITE documentation and GSAS-II's importer;
the tests write such containers themselves.
"""

from __future__ import annotations

import math
import re

import numpy as np

from . import _xml, _zip
from ._pattern import fail, make_pattern, read_bytes

NAME = "brml"
EXTENSIONS = (".brml",)

_RAWDATA = re.compile(r"(?:^|/)RawData(\d+)\.xml$", re.IGNORECASE)
_TWO_THETA_IDS = {"twotheta", "2theta", "2-theta", "two theta"}


def sniff(head: bytes) -> bool:
    """A zip container whose first member names look like DIFFRAC.SUITE's."""
    return head.startswith(b"PK\x03\x04") and (b"RawData" in head or b"Experiment" in head or b"DataContainer" in head)


def _value(element) -> float:
    """Number held in a ``Value`` attribute or in the element text."""
    text = element.get("Value")
    if text is None:
        text = element.text
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _first_value(root, name) -> float:
    for element in _xml.descendants(root, name):
        value = _value(element)
        if math.isfinite(value):
            return value
    return math.nan


def _scan(path, member: str, root):
    label = f"{member}"
    routes = _xml.descendants(root, "DataRoute")
    if not routes:
        raise fail(path, f"{label}: no <DataRoute>")
    route = next((r for r in routes if r.get("RouteFlag") == "Final"), routes[-1])
    info = _xml.child(route, "ScanInformation")
    rows = [d.text or "" for d in _xml.children(route, "Datum")]
    if not rows:
        raise fail(path, f"{label}: no <Datum> rows")
    declared = None
    time_per_step = math.nan
    axis_start = axis_step = math.nan
    if info is not None:
        points = _xml.child(info, "MeasurementPoints")
        if points is not None:
            declared = int(_value(points)) if math.isfinite(_value(points)) else None
        tps = _xml.child(info, "TimePerStep")
        if tps is not None:
            time_per_step = _value(tps)
        for axis in _xml.descendants(info, "ScanAxisInfo"):
            ident = (axis.get("AxisId") or axis.get("AxisName") or "").strip().lower()
            if ident in _TWO_THETA_IDS:
                start, inc = _xml.child(axis, "Start"), _xml.child(axis, "Increment")
                axis_start = _value(start) if start is not None else math.nan
                axis_step = _value(inc) if inc is not None else math.nan
    if declared is not None and declared != len(rows):
        raise fail(path, f"{label}: MeasurementPoints says {declared} but {len(rows)} <Datum> rows are present (truncated?)")
    table = []
    for i, row in enumerate(rows):
        parts = row.split(",")
        if len(parts) < 4:
            raise fail(path, f"{label}: <Datum> row {i + 1} has {len(parts)} columns, need time, enabled, 2theta, [theta,] counts")
        counts_col = 4 if len(parts) >= 5 else 3
        try:
            table.append([float(parts[0]), float(parts[2]), float(parts[counts_col])])
        except ValueError:
            raise fail(path, f"{label}: <Datum> row {i + 1} {row.strip()[:40]!r} is not numeric") from None
    table = np.array(table, dtype=float)
    time = table[:, 0]
    finite_time = time[np.isfinite(time) & (time > 0)]
    count_time = float(np.median(finite_time)) if finite_time.size else time_per_step
    return {
        "two_theta": table[:, 1],
        "counts": table[:, 2],
        "count_time": count_time,
        "axis_start": axis_start,
        "axis_step": axis_step,
        "route": route.get("RouteFlag", ""),
    }


def read_all(path, **kw):
    """Every scan (``RawData<N>.xml`` member) of a BRML container, in member-number order."""
    data = read_bytes(path)
    archive = _zip.open_zip(path, data)
    members = []
    for name in archive.namelist():
        m = _RAWDATA.search(name)
        if m:
            members.append((int(m.group(1)), name))
    if not members:
        raise fail(path, "no RawData<N>.xml member: not a Bruker BRML container")
    members.sort()
    scans = []
    for number, name in members:
        root = _xml.parse(path, _zip.read_member(path, archive, name), member=name)
        if _xml.local(root.tag) != "RawData":
            raise fail(path, f"{name}: root element <{_xml.local(root.tag)}> is not <RawData>")
        scan = _scan(path, name, root)
        scan.update(
            member=name,
            wavelength=_first_value(root, "WaveLengthAlpha1"),
            wavelength2=_first_value(root, "WaveLengthAlpha2"),
            ka2_ratio=_first_value(root, "WaveLengthRatio"),
            sample=_xml.text_of(root, "SampleName") or _xml.text_of(root, "SampleID"),
            started=root.get("TimeStampStarted", "") or _xml.text_of(root, "TimeStampStarted"),
            radius=_first_value(root, "GoniometerRadius"),
        )
        scans.append(scan)
    out = []
    for i, s in enumerate(scans):
        out.append(make_pattern(
            s["two_theta"], s["counts"], path=path, fmt="brml", range_index=i, n_ranges=len(scans),
            wavelength=s["wavelength"], wavelength2=s["wavelength2"], ka2_ratio=s["ka2_ratio"],
            sample=s["sample"], count_time=s["count_time"],
            step=s["axis_step"] if math.isfinite(s["axis_step"]) else None,
            extra={"member": s["member"], "route": s["route"], "started": s["started"],
                   "goniometer_radius_mm": s["radius"]},
        ))
    return out
