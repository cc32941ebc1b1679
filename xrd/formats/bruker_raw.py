"""Bruker (Siemens) DIFFRAC binary ``.raw`` files, versions 1 to 4 (all little-endian).

Written from the published layouts (DIFFRAC-AT manual for v1/v2, DIFFRAC plus XCH manual
appendix A for "RAW1.01", and the RAW4 segment layout as documented by the xylib and GSAS-II
projects).  Names used below: u4 = uint32, u2 = uint16, f4/f8 = IEEE float/double.

v1 ``"RAW "``: per range, from the byte after the 4-byte magic: +0 u4 steps, +4 f4 time/step,
    +8 f4 step, +12 u4 scan mode, +20 f4 start 2theta, +24/28/32 f4 theta/chi/phi start,
    +36 32-byte sample name, +68 f4 Ka1, +72 f4 Ka2, +148 u4 "another range follows", +152 data
    (f4 x steps).  Later ranges may or may not repeat the magic.
v2 ``"RAW2"``: +4 u2 range count, +168 20-byte date, +188 2-byte anode, +190 f4 Ka1, +194 f4 Ka2,
    +198 f4 ratio, +256 first range: +0 u2 header length, +2 u2 steps, +8 f4 time/step,
    +12 f4 step, +16 f4 start 2theta, +46 u2 temperature (K); data after the header.
v3 ``"RAW1.01"`` (712-byte file header): +8 u4 status, +12 u4 range count, +16 date, +26 time,
    +36 user, +326 sample id (60), +386 comment (160), +564 f4 goniometer radius (mm),
    +608 anode, +616 f8 Ka mean, Ka1, Ka2, Kb, Ka2/Ka1.  Each range: +0 u4 header length (304),
    +4 u4 steps, +8 f8 theta start, +16 f8 2theta start, +176 f8 step, +192 f4 time/step,
    +240 f8 wavelength used, +256 u4 supplementary header size; data (f4) after both headers.
v4 ``"RAW4.00"``: 61-byte header (+12 date, +24 time), then segments ``u4 type, u4 length``:
    type 10 = text variable (+12 name(24), +36 value), type 30 = X-ray source (+80 f8 Ka1,
    +88 Ka2, +104 ratio, +116 anode), ...; type 0 or 160 starts a range of 160 bytes
    (+32 scan type(24), +72 f8 start, +80 f8 step, +88 u4 steps, +92 f4 time/step,
    +112 f8 wavelength used, +136 u4 datum size, +140 u4 extra header size), then the extra
    header, then the data.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ._pattern import fail, make_pattern, read_bytes

NAME = "bruker-raw"
EXTENSIONS = (".raw",)

_MAGICS = (b"RAW1.01", b"RAW4.00", b"RAW2", b"RAW ")
#: scan types whose x axis is 2theta
_TWO_THETA_SCANS = ("Locked Coupled", "Unlocked Coupled", "Detector Scan", "Coupled TwoTheta/Theta", "2Theta")
_MAX_STEPS = 50_000_000


def sniff(head: bytes) -> bool:
    """True for the Bruker RAW magic bytes."""
    return head.startswith(_MAGICS)


class _Bytes:
    """Bounds-checked little-endian access to the file, so a short file names what is missing."""

    def __init__(self, path, data: bytes):
        self.path, self.data = path, data

    def need(self, offset: int, size: int, what: str):
        if offset < 0 or offset + size > len(self.data):
            raise fail(self.path, f"truncated: {what} needs bytes {offset}..{offset + size} but the file has {len(self.data)}")

    def unpack(self, fmt: str, offset: int, what: str):
        size = struct.calcsize("<" + fmt)
        self.need(offset, size, what)
        values = struct.unpack_from("<" + fmt, self.data, offset)
        return values[0] if len(values) == 1 else values

    def text(self, offset: int, size: int, what: str) -> str:
        self.need(offset, size, what)
        return self.data[offset:offset + size].split(b"\x00", 1)[0].decode("latin-1").strip()

    def floats(self, offset: int, count: int, what: str, dtype="<f4") -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        self.need(offset, count * itemsize, what)
        with np.errstate(invalid="ignore"):  # NaN payloads are reported by make_pattern, by position
            return np.frombuffer(self.data, dtype=dtype, count=count, offset=offset).astype(float)


def _check_steps(path, steps: int, label: str):
    if steps <= 0:
        raise fail(path, f"{label}: {steps} steps")
    if steps > _MAX_STEPS:
        raise fail(path, f"{label}: {steps} steps is not a plausible scan")


def _check_axis(path, start: float, step: float, label: str):
    if not (math.isfinite(start) and math.isfinite(step)) or step <= 0:
        raise fail(path, f"{label}: start {start} / step {step} do not describe a 2theta scan")


def _v1(b: _Bytes):
    ranges, pos = [], 0
    while True:
        if b.data[pos:pos + 4] == b"RAW ":
            pos += 4
        label = f"range {len(ranges) + 1}"
        steps = b.unpack("I", pos, f"{label} header")
        _check_steps(b.path, steps, label)
        count_time, step = b.unpack("2f", pos + 4, f"{label} header")
        start = b.unpack("f", pos + 20, f"{label} header")
        _check_axis(b.path, start, step, label)
        sample = b.text(pos + 36, 32, f"{label} sample name")
        ka1, ka2 = b.unpack("2f", pos + 68, f"{label} wavelengths")
        follows = b.unpack("I", pos + 148, f"{label} header")
        y = b.floats(pos + 152, steps, f"{label} data ({steps} steps)")
        ranges.append(dict(start=start, step=step, counts=y, count_time=count_time, sample=sample,
                           wavelength=ka1, wavelength2=ka2 or math.nan, ka2_ratio=math.nan))
        pos += 152 + 4 * steps
        if not follows or pos >= len(b.data):
            return {"file_version": "1"}, ranges


def _v2(b: _Bytes):
    n = b.unpack("H", 4, "file header (range count)")
    meta = {
        "file_version": "2",
        "date": b.text(168, 20, "file header (date)"),
        "anode": b.text(188, 2, "file header (anode)"),
    }
    ka1, ka2, ratio = b.unpack("3f", 190, "file header (wavelengths)")
    ranges, pos = [], 256
    for r in range(n):
        label = f"range {r + 1}"
        header_len, steps = b.unpack("2H", pos, f"{label} header")
        if header_len < 48:
            raise fail(b.path, f"{label}: header length {header_len} is shorter than the 48-byte minimum")
        _check_steps(b.path, steps, label)
        count_time, step, start = b.unpack("3f", pos + 8, f"{label} header")
        _check_axis(b.path, start, step, label)
        temperature = b.unpack("H", pos + 46, f"{label} header")
        y = b.floats(pos + header_len, steps, f"{label} data ({steps} steps)")
        ranges.append(dict(start=start, step=step, counts=y, count_time=count_time, sample="",
                           wavelength=ka1, wavelength2=ka2, ka2_ratio=ratio, temperature_K=float(temperature)))
        pos += header_len + 4 * steps
    return meta, ranges


def _v3(b: _Bytes):
    b.need(0, 712, "the 712-byte file header")
    n = b.unpack("I", 12, "file header (range count)")
    if n == 0 or n > 10000:
        raise fail(b.path, f"file header declares {n} ranges")
    ka_mean, ka1, ka2, kb, ratio = b.unpack("5d", 616, "file header (wavelengths)")
    meta = {
        "file_version": "3 (RAW1.01)",
        "date": b.text(16, 10, "date"),
        "time": b.text(26, 10, "time"),
        "user": b.text(36, 72, "user"),
        "comment": b.text(386, 160, "comment"),
        "anode": b.text(608, 4, "anode"),
        "goniometer_radius_mm": float(b.unpack("f", 564, "goniometer radius")),
        "wavelength_mean": float(ka_mean),
        "wavelength_kbeta": float(kb),
    }
    sample = b.text(326, 60, "sample id")
    ranges, pos = [], 712
    for r in range(n):
        label = f"range {r + 1}"
        header_len, steps = b.unpack("2I", pos, f"{label} header")
        if header_len < 260:
            raise fail(b.path, f"{label}: header length {header_len}, expected 304")
        _check_steps(b.path, steps, label)
        theta_start, start = b.unpack("2d", pos + 8, f"{label} header")
        step = b.unpack("d", pos + 176, f"{label} header (step)")
        _check_axis(b.path, start, step, label)
        count_time = b.unpack("f", pos + 192, f"{label} header (time per step)")
        used = b.unpack("d", pos + 240, f"{label} header (wavelength)")
        supplementary = b.unpack("I", pos + 256, f"{label} header (supplementary size)")
        if supplementary > len(b.data):
            raise fail(b.path, f"{label}: supplementary header of {supplementary} bytes is larger than the file")
        y = b.floats(pos + header_len + supplementary, steps, f"{label} data ({steps} steps)")
        ranges.append(dict(start=start, step=step, counts=y, count_time=count_time, sample=sample,
                           wavelength=ka1, wavelength2=ka2, ka2_ratio=ratio, wavelength_used=used,
                           theta_start=theta_start))
        pos += header_len + supplementary + 4 * steps
    return meta, ranges


def _v4(b: _Bytes):
    meta = {"file_version": "4 (RAW4.00)", "date": b.text(12, 12, "date"), "time": b.text(24, 10, "time")}
    waves = (math.nan, math.nan, math.nan)
    pos = 61
    ranges, skipped = [], []
    variables = {}
    while pos < len(b.data):
        kind = b.unpack("I", pos, "segment type")
        if kind in (0, 160):
            label = f"range {len(ranges) + len(skipped) + 1}"
            scan = b.text(pos + 32, 24, f"{label} scan type")
            start, step = b.unpack("2d", pos + 72, f"{label} header")
            steps = b.unpack("I", pos + 88, f"{label} header (steps)")
            count_time = b.unpack("f", pos + 92, f"{label} header (time per step)")
            used = b.unpack("d", pos + 112, f"{label} header (wavelength)")
            datum, extra = b.unpack("2I", pos + 136, f"{label} header (sizes)")
            if datum not in (4,):
                raise fail(b.path, f"{label}: datum size {datum} bytes, only 4-byte floats are defined")
            if extra > len(b.data):
                raise fail(b.path, f"{label}: extra header of {extra} bytes is larger than the file")
            _check_steps(b.path, steps, label)
            data_at = pos + 160 + extra
            if scan in _TWO_THETA_SCANS:
                _check_axis(b.path, start, step, label)
                y = b.floats(data_at, steps, f"{label} data ({steps} steps)")
                ranges.append(dict(start=start, step=step, counts=y, count_time=count_time,
                                   sample=variables.get("SAMPLEID", ""), wavelength=waves[0],
                                   wavelength2=waves[1], ka2_ratio=waves[2], wavelength_used=used, scan_type=scan))
            else:
                b.need(data_at, datum * steps, f"{label} data")
                skipped.append(f"{label}: {scan}")
            pos = data_at + datum * steps
            continue
        length = b.unpack("I", pos + 4, "segment length")
        if length < 8:
            raise fail(b.path, f"segment at byte {pos} has length {length} (< 8)")
        b.need(pos, length, f"segment type {kind}")
        if kind == 10 and length >= 36:
            variables[b.text(pos + 12, 24, "variable name")] = b.text(pos + 36, length - 36, "variable value")
        elif kind == 30 and length >= 120:
            a1, a2 = b.unpack("2d", pos + 80, "source segment")
            ratio = b.unpack("d", pos + 104, "source segment")
            waves = (a1, a2, ratio)
            meta["anode"] = b.text(pos + 116, 4, "anode")
        pos += length
    if not ranges:
        why = "; ".join(skipped) if skipped else "no range records"
        raise fail(b.path, f"no 2theta scan range ({why})")
    if skipped:
        meta["skipped_ranges"] = "; ".join(skipped)
    for key in ("SAMPLEID", "USER", "COMMENT"):
        if key in variables:
            meta[key.lower()] = variables[key]
    return meta, ranges


def read_all(path, **kw):
    """Every 2theta range of a Bruker RAW file."""
    data = read_bytes(path)
    b = _Bytes(path, data)
    if data.startswith(b"RAW1.01"):
        meta, ranges = _v3(b)
    elif data.startswith(b"RAW4.00"):
        meta, ranges = _v4(b)
    elif data.startswith(b"RAW2"):
        meta, ranges = _v2(b)
    elif data.startswith(b"RAW "):
        meta, ranges = _v1(b)
    else:
        raise fail(path, f"not a Bruker RAW file (starts with {data[:7]!r})")
    out = []
    for i, r in enumerate(ranges):
        counts = r.pop("counts")
        start, step = r.pop("start"), r.pop("step")
        # angles in double precision from start + i*step, as DIFFRAC defines them
        two_theta = start + step * np.arange(counts.size)
        extra = dict(meta)
        extra.update({k: v for k, v in r.items() if k not in ("count_time", "sample", "wavelength", "wavelength2", "ka2_ratio")})
        out.append(make_pattern(
            two_theta, counts, path=path, fmt="bruker-raw", range_index=i, n_ranges=len(ranges),
            wavelength=r["wavelength"], wavelength2=r["wavelength2"], ka2_ratio=r["ka2_ratio"],
            sample=r["sample"], count_time=r["count_time"], step=step, extra=extra,
        ))
    return out
