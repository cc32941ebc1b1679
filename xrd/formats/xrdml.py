"""PANalytical ``.xrdml`` (XML; schema versions 1.0-2.x, namespaces ignored).

Each ``xrdMeasurement/scan`` is one range.  Its ``dataPoints`` hold ``positions axis="2Theta"``
(``startPosition``/``endPosition`` for equal steps, or ``listPositions``), ``intensities`` (or
``counts`` in old files; unit "counts" or "counts per second") and ``commonCountingTime`` (or
``countingTimes``).  Wavelengths come from ``usedWavelength`` (kAlpha1, kAlpha2,
ratioKAlpha2KAlpha1).  Count rates are turned into counts with the counting time so that the esd
is the Poisson one.  Parsed with defusedxml (no DTDs, no entities).
"""

from __future__ import annotations

import math

import numpy as np

from . import _xml
from ._pattern import fail, make_pattern, read_bytes

NAME = "xrdml"
EXTENSIONS = (".xrdml",)


def sniff(head: bytes) -> bool:
    """True for an XML document with an ``xrdMeasurements`` root."""
    return b"<?xml" in head[:200] and b"xrdMeasurement" in head


def _numbers(path, element, what) -> np.ndarray:
    text = (element.text or "").split()
    try:
        return np.array([float(t) for t in text], dtype=float)
    except ValueError:
        raise fail(path, f"{what}: non-numeric value in {' '.join(text[:5])!r}...") from None


def _float(path, text, what) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise fail(path, f"{what}: cannot read {text!r} as a number") from None


def read_all(path, **kw):
    """Every 2theta scan of an XRDML file."""
    root = _xml.parse(path, read_bytes(path))
    if _xml.local(root.tag) != "xrdMeasurements":
        raise fail(path, f"root element is <{_xml.local(root.tag)}>, not <xrdMeasurements>: not an XRDML file")
    sample_el = _xml.child(root, "sample")
    sample = "" if sample_el is None else (_xml.text_of(sample_el, "name") or _xml.text_of(sample_el, "id"))
    found = []
    for measurement in _xml.descendants(root, "xrdMeasurement"):
        wave = _xml.child(measurement, "usedWavelength")
        lam1 = lam2 = ratio = math.nan
        if wave is not None:
            lam1 = _float(path, _xml.text_of(wave, "kAlpha1", "nan"), "kAlpha1")
            lam2 = _float(path, _xml.text_of(wave, "kAlpha2", "nan"), "kAlpha2")
            ratio = _float(path, _xml.text_of(wave, "ratioKAlpha2KAlpha1", "nan"), "ratioKAlpha2KAlpha1")
        radius = math.nan
        beam = _xml.child(measurement, "incidentBeamPath")
        if beam is not None and _xml.child(beam, "radius") is not None:
            radius = _float(path, _xml.child(beam, "radius").text, "goniometer radius")
        for scan in _xml.children(measurement, "scan"):
            found.append((measurement, scan, lam1, lam2, ratio, radius))
    if not found:
        raise fail(path, "no <scan> element")
    out = []
    for index, (measurement, scan, lam1, lam2, ratio, radius) in enumerate(found):
        label = f"scan {index + 1}"
        points = _xml.child(scan, "dataPoints")
        if points is None:
            raise fail(path, f"{label}: no <dataPoints>")
        values_el = _xml.child(points, "intensities")
        if values_el is None:
            values_el = _xml.child(points, "counts")
        if values_el is None:
            raise fail(path, f"{label}: no <intensities> or <counts>")
        values = _numbers(path, values_el, f"{label} intensities")
        n = values.size
        if n == 0:
            raise fail(path, f"{label}: no intensities")
        axis = None
        for positions in _xml.children(points, "positions"):
            if positions.get("axis") == "2Theta":
                axis = positions
        if axis is None:
            raise fail(path, f"{label}: no 2Theta positions (scan axis {scan.get('scanAxis')!r}): not a 2theta scan")
        listed = _xml.child(axis, "listPositions")
        if listed is not None:
            two_theta = _numbers(path, listed, f"{label} 2Theta listPositions")
            if two_theta.size != n:
                raise fail(path, f"{label}: {two_theta.size} 2Theta positions but {n} intensities")
        else:
            start_el, end_el = _xml.child(axis, "startPosition"), _xml.child(axis, "endPosition")
            if start_el is None or end_el is None:
                raise fail(path, f"{label}: 2Theta positions without start/end or list")
            start = _float(path, start_el.text, f"{label} startPosition")
            end = _float(path, end_el.text, f"{label} endPosition")
            two_theta = np.linspace(start, end, n) if n > 1 else np.array([start])
        time_el = _xml.child(points, "commonCountingTime")
        if time_el is not None:
            time = np.full(n, _float(path, time_el.text, f"{label} commonCountingTime"))
        else:
            times_el = _xml.child(points, "countingTimes")
            time = _numbers(path, times_el, f"{label} countingTimes") if times_el is not None else np.full(n, math.nan)
            if time.size != n:
                raise fail(path, f"{label}: {time.size} counting times but {n} intensities")
        unit = (values_el.get("unit") or "counts").strip().lower()
        if unit in ("counts per second", "cps", "counts/s"):
            if not np.all(np.isfinite(time)) or np.any(time <= 0):
                raise fail(path, f"{label}: intensities in {unit} but no positive counting time to turn them into counts")
            counts = values * time
        elif unit in ("counts", ""):
            counts = values
        else:
            raise fail(path, f"{label}: intensity unit {unit!r} is not counts or counts per second")
        attenuation = _xml.child(points, "beamAttenuationFactors")
        if attenuation is not None:
            factors = _numbers(path, attenuation, f"{label} beamAttenuationFactors")
            if factors.size != n:
                raise fail(path, f"{label}: {factors.size} beam attenuation factors but {n} intensities (a value lost?)")
            if not np.all(np.isfinite(factors)) or np.any(factors <= 0):
                raise fail(path, f"{label}: beam attenuation factors must be finite and positive")
            if np.any(factors != 1):
                # counts were measured through an attenuator: scale the counts, keep Poisson esds of what was counted
                measured = counts / np.where(factors > 0, factors, 1.0)
                esd = np.sqrt(np.clip(measured, 0, None)) * factors
            else:
                esd = None
        else:
            esd = None
        offset = math.nan
        sample_offset = _xml.child(measurement, "sampleOffset")
        if sample_offset is not None:
            for pos in _xml.children(sample_offset, "position"):
                if pos.get("axis") == "2Theta":
                    offset = _float(path, pos.text, "sampleOffset 2Theta")
        step = float((two_theta[-1] - two_theta[0]) / (n - 1)) if n > 1 else math.nan
        out.append(make_pattern(
            two_theta, counts, esd, path=path, fmt="xrdml", range_index=index, n_ranges=len(found),
            wavelength=lam1, wavelength2=lam2, ka2_ratio=ratio, sample=sample,
            count_time=float(np.nanmedian(time)) if np.any(np.isfinite(time)) else math.nan, step=step,
            extra={
                "goniometer_radius_mm": radius,
                "scan_axis": scan.get("scanAxis", ""),
                "scan_mode": scan.get("mode", ""),
                "intensity_unit": unit,
                "sample_offset_2theta": offset,
                "start_time": _xml.text_of(scan, "startTimeStamp"),
                "xrdml_namespace": root.tag.split("}", 1)[0].lstrip("{") if "}" in root.tag else "",
            },
        ))
    return out
