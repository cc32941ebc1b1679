"""VAMAS (ISO 14976) surface-analysis transfer format: read and write.

Written from the standard's field order (cross-checked in the tests against the ``vamas`` PyPI
package, which handles only a subset: REGULAR scans, no exclusion lists). This reader also does
IRREGULAR scans (the abscissa is then the first corresponding variable), the parameter
inclusion/exclusion list (excluded items repeat the first block's values), every experiment
mode (MAP, MAPDP, MAPSV, MAPSVDP, NORM, SDP, SDPSV, SEM, NOEXP), future-upgrade entries,
leading blank lines, CRLF / CR / LF line ends and the 1E37 "not available" marker.

File layout (one value per line)::

    header: format id, institution, instrument, operator, experiment, comment lines,
            experiment mode, scan mode, [regions], [positions, nx, ny], experimental
            variables, inclusion/exclusion list, manual items, future-upgrade entries, blocks
    block:  id, sample, date (7), comment, technique, [x, y], variable values, source ...
            species, transition, charge, [abscissa], corresponding variables, signal mode,
            dwell, scans, ... additional parameters, future-upgrade entries, ordinates
    "end of experiment"
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.atomic import write_text
from doptrace.core.simulated import marker_in

from ..errors import XPSError
from ._text import decode_text, read_bounded
from ._spectrum import (canonical_region, etch_time_from_variables, is_empty_label, known, make_spectra,
                        region_name, time_in_seconds)

IDENTIFIER = "VAMAS Surface Chemical Analysis Standard Data Transfer Format 1988 May 4"
EXTENSIONS = (".vms", ".vamas", ".npl")

EXPERIMENT_MODES = ("MAP", "MAPDP", "MAPSV", "MAPSVDP", "NORM", "SDP", "SDPSV", "SEM", "NOEXP")
SCAN_MODES = ("REGULAR", "IRREGULAR", "MAPPING")
_REGION_COUNT_MODES = {"MAP", "MAPDP", "NORM", "SDP"}
_MAP_MODES = {"MAP", "MAPDP"}
_FIELD_OF_VIEW_MODES = {"MAP", "MAPDP", "MAPSV", "MAPSVDP", "SEM"}
_LINESCAN_MODES = {"MAPSV", "MAPSVDP", "SEM"}
_DEPTH_PROFILE_MODES = {"MAPDP", "MAPSVDP", "SDP", "SDPSV"}
_ION_TECHNIQUES = {"FABMS", "FABMS energy spec", "ISS", "SIMS", "SIMS energy spec", "SNMS", "SNMS energy spec"}
_TECHNIQUES = {"AES diff", "AES dir", "EDX", "ELS", "FABMS", "FABMS energy spec", "ISS", "SIMS", "SIMS energy spec",
               "SNMS", "SNMS energy spec", "UPS", "XPS", "XRF"}
_SPUTTER_SOURCE_TECHNIQUES = {"AES diff", "AES dir", "EDX", "ELS", "UPS", "XPS", "XRF"}
# Files bigger than this are refused before reading: a real VAMAS file is a few MB at most.
MAX_BYTES = 512 * 1024 * 1024



@dataclass
class VamasHeader:
    """The experiment-level part of a VAMAS file."""

    institution: str = ""
    instrument: str = ""
    operator: str = ""
    experiment: str = ""
    comment: str = ""
    experiment_mode: str = "NORM"
    scan_mode: str = "REGULAR"
    n_regions: int = 0
    variable_labels: list[str] = field(default_factory=list)
    variable_units: list[str] = field(default_factory=list)
    included: list[bool] = field(default_factory=lambda: [True] * 41)
    n_future_block: int = 0
    n_blocks: int = 0


class _Cursor:
    """Line cursor whose errors name the file, the line number and the field being read."""

    def __init__(self, source: str, lines: list[str], start: int = 0):
        self.source = source
        self.lines = lines
        self.pos = start

    def fail(self, problem: str, line: int | None = None) -> XPSError:
        line = self.pos if line is None else line
        return XPSError(f"{self.source}: line {line + 1}: {problem}")

    def text(self, what: str) -> str:
        if self.pos >= len(self.lines):
            raise XPSError(f"{self.source}: truncated VAMAS file: ended while reading {what} (line {self.pos + 1})")
        value = self.lines[self.pos]
        self.pos += 1
        return value.strip()

    def integer(self, what: str) -> int:
        value = self.text(what)
        try:
            number = float(value)
        except ValueError:
            raise self.fail(f"expected an integer for {what}, found {value[:40]!r}", self.pos - 1) from None
        if not math.isfinite(number) or number != int(number):
            raise self.fail(f"expected an integer for {what}, found {value[:40]!r}", self.pos - 1)
        return int(number)

    def count(self, what: str, limit: int | None = None) -> int:
        """A non-negative count; bounded by the lines left so a corrupt count cannot allocate."""
        value = self.integer(what)
        if value < 0:
            raise self.fail(f"negative {what} ({value})", self.pos - 1)
        left = len(self.lines) - self.pos
        if limit is not None and value > limit:
            raise self.fail(f"absurd {what}: {value}", self.pos - 1)
        if value > left:
            raise XPSError(
                f"{self.source}: line {self.pos}: {what} is {value} but only {left} lines remain "
                "(truncated or corrupt VAMAS file)"
            )
        return value

    def number(self, what: str) -> float:
        value = self.text(what)
        try:
            return float(value)
        except ValueError:
            raise self.fail(f"expected a number for {what}, found {value[:40]!r}", self.pos - 1) from None

    def skip(self, n: int, what: str) -> list[str]:
        if self.pos + n > len(self.lines):
            raise XPSError(f"{self.source}: truncated VAMAS file: ended while reading {what} (line {len(self.lines) + 1})")
        out = self.lines[self.pos : self.pos + n]
        self.pos += n
        return out

    def floats(self, n: int, what: str) -> np.ndarray:
        chunk = self.skip(n, what)
        try:
            return np.array(chunk, dtype=float)
        except ValueError:
            for offset, value in enumerate(chunk):
                try:
                    float(value)
                except ValueError:
                    raise self.fail(
                        f"non-numeric value {value.strip()[:40]!r} in {what}", self.pos - n + offset
                    ) from None
            raise


_CRS_BEFORE_LF = re.compile("\r+\n")


def split_lines(text: str) -> list[str]:
    """Split into lines: on LF when the text has any (CRs at line ends stripped), else on CR.

    CasaXPS 2.3 writes SPECS block-comment lines ending in CR CR LF and counts them as one line
    each, so a bare CR inside LF-ended text is not a line end; old Mac files use CR alone.
    (``str.splitlines`` would also split on form feeds etc.)
    """
    if "\n" in text:
        # CRs before each LF dropped over the whole text at once, not by one rstrip per line (400k
        # lines in a 2000-level series); the regex, slower, only for runs of CRs (CR CR LF)
        text = _CRS_BEFORE_LF.sub("\n", text) if "\r\r\n" in text else text.replace("\r\n", "\n")
        text = text.rstrip("\r")
        lines = text.split("\n")
    else:
        lines = text.split("\r")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_NUL_TERMINATORS = re.compile(rb"\x00+(?=[\r\n]|$)")


def _load_text(path: str | os.PathLike) -> str:
    path = Path(path)
    data = read_bounded(path, MAX_BYTES, "a VAMAS file")
    if b"\x00" in data:
        # PHI MultiPak (.npl) writes C strings: the transition label ends in NUL before CR LF.
        # Only NULs at line ends go; any other NUL still marks a binary file (refused below).
        data = _NUL_TERMINATORS.sub(b"", data)
        if b"\x00" in data:
            raise XPSError(f"{path}: not a VAMAS file (binary content: NUL bytes inside lines)")
    return decode_text(path, data, "a VAMAS file")


def _first_content_line(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if line.strip():
            return index
    return len(lines)


def sniff(head: bytes) -> bool:
    """True when the first non-blank line of ``head`` is the VAMAS format identifier."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return text.startswith(IDENTIFIER.split(" 1988")[0].encode())


def is_comment_fragment(head: bytes) -> bool:
    """True for a bare VAMAS comment section: a line count then that many lines (no identifier)."""
    lines = split_lines(head.decode("latin-1"))
    if not lines or sniff(head):
        return False
    try:
        count = int(lines[0].strip())
    except ValueError:
        return False
    # The announced count covers what follows (a cut-out fragment may lose its last line or two).
    return 0 < count and count - 2 <= len(lines) - 1 <= count + 1


def read_comment_fragment(path: str | os.PathLike) -> str:
    """Text of a file holding only a VAMAS comment section (count line + lines).

    Such fragments (vendor and CasaXPS comment snippets) carry metadata but no spectrum.
    """
    lines = split_lines(_load_text(path))
    cur = _Cursor(str(path), lines)
    n = cur.integer("number of comment lines")
    left = len(lines) - 1
    if n < 0:
        raise XPSError(f"{path}: negative comment line count")
    # A fragment cut from a file may end one line early (no trailing newline on the last line).
    body = lines[1 : 1 + min(n, left)]
    return "\n".join(line.rstrip() for line in body)


def _parse_header(cur: _Cursor) -> VamasHeader:
    head = VamasHeader()
    cur.pos = _first_content_line(cur.lines)
    ident = cur.text("the format identifier")
    if not ident.startswith("VAMAS Surface Chemical Analysis Standard Data Transfer Format"):
        raise XPSError(f"{cur.source}: not a VAMAS file (first line is {ident[:60]!r})")
    head.institution = cur.text("institution identifier")
    head.instrument = cur.text("instrument model identifier")
    head.operator = cur.text("operator identifier")
    head.experiment = cur.text("experiment identifier")
    n = cur.count("number of header comment lines")
    head.comment = "\n".join(line.rstrip() for line in cur.skip(n, "header comment"))
    head.experiment_mode = cur.text("experiment mode")
    if head.experiment_mode not in EXPERIMENT_MODES:
        raise cur.fail(f"unknown experiment mode {head.experiment_mode!r}", cur.pos - 1)
    head.scan_mode = cur.text("scan mode")
    if head.scan_mode not in SCAN_MODES:
        raise cur.fail(f"unknown scan mode {head.scan_mode!r}", cur.pos - 1)
    if head.scan_mode == "MAPPING":
        raise cur.fail("scan mode MAPPING (images) is not an XPS spectrum series", cur.pos - 1)
    if head.experiment_mode in _REGION_COUNT_MODES:
        head.n_regions = cur.integer("number of spectral regions")
    if head.experiment_mode in _MAP_MODES:
        cur.integer("number of analysis positions")
        cur.integer("number of discrete x coordinates")
        cur.integer("number of discrete y coordinates")
    n_vars = cur.count("number of experimental variables")
    for _ in range(n_vars):
        head.variable_labels.append(cur.text("experimental variable label"))
        head.variable_units.append(cur.text("experimental variable units"))
    n_list = cur.integer("number of entries in the parameter inclusion/exclusion list")
    if abs(n_list) > 40:
        raise cur.fail(f"inclusion/exclusion list of {n_list} entries (at most 40 block parameters)", cur.pos - 1)
    # Positive: only the listed block parameters appear after the first block; negative: the
    # listed ones are left out. Index = the standard's prefix number 1..40.
    head.included = [n_list <= 0] * 41
    for _ in range(abs(n_list)):
        prefix = cur.integer("block parameter prefix number")
        if not 1 <= prefix <= 40:
            raise cur.fail(f"block parameter prefix number {prefix} outside 1..40", cur.pos - 1)
        head.included[prefix] = n_list > 0
    n_manual = cur.count("number of manually entered items")
    cur.skip(n_manual, "manually entered item prefix numbers")
    n_future_exp = cur.count("number of future upgrade experiment entries")
    cur.skip(n_future_exp, "future upgrade experiment entries")
    head.n_future_block = cur.count("number of future upgrade block entries")
    head.n_blocks = cur.count("number of blocks")
    return head


def _parse_block(cur: _Cursor, head: VamasHeader, first: dict | None, index: int) -> dict:
    """One block as a dict of raw fields; excluded items are copied from the first block."""
    block: dict = {}
    mode = head.experiment_mode

    def item(prefix: int, key: str, read):
        if first is None or head.included[prefix]:
            block[key] = read()
        else:
            block[key] = first[key]

    block["id"] = cur.text(f"block {index} identifier")
    block["sample"] = cur.text(f"block {index} sample identifier")
    for prefix, key in enumerate(("year", "month", "day", "hour", "minute", "second"), start=1):
        item(prefix, key, lambda key=key: cur.integer(f"block {index} {key}"))
    item(7, "gmt_offset", lambda: cur.number(f"block {index} hours in advance of GMT"))

    def comment():
        found = cur.lines[cur.pos].strip() if cur.pos < len(cur.lines) else ""
        if found in _TECHNIQUES:
            # Seen in Omicron EIS exports: the block header lacks a line (e.g. the sample id),
            # so the technique arrives where the comment-line count belongs.
            raise cur.fail(f"expected an integer for block {index} number of comment lines, found the "
                           f"technique {found!r}: the block header is a line short (not a conforming VAMAS file)")
        n = cur.count(f"block {index} number of comment lines")
        return "\n".join(line.rstrip() for line in cur.skip(n, f"block {index} comment"))

    item(8, "comment", comment)
    item(9, "technique", lambda: cur.text(f"block {index} technique"))
    technique = block["technique"]
    if mode in _MAP_MODES:
        item(10, "xy", lambda: (cur.number("x coordinate"), cur.number("y coordinate")))
    item(11, "variables", lambda: [cur.text(f"block {index} experimental variable value")
                                   for _ in head.variable_labels])
    item(12, "source_label", lambda: cur.text(f"block {index} analysis source label"))
    if mode in _DEPTH_PROFILE_MODES or technique in _ION_TECHNIQUES:
        item(13, "sputter_ion", lambda: (cur.number("sputtering ion atomic number"),
                                         cur.number("number of atoms in sputtering ion"),
                                         cur.number("sputtering ion charge")))
    item(14, "excitation_energy", lambda: cur.number(f"block {index} analysis source characteristic energy"))
    item(15, "source_strength", lambda: cur.number(f"block {index} analysis source strength"))
    item(16, "beam_width", lambda: (cur.number("beam width x"), cur.number("beam width y")))
    if mode in _FIELD_OF_VIEW_MODES:
        item(17, "field_of_view", lambda: (cur.number("field of view x"), cur.number("field of view y")))
    if mode in _LINESCAN_MODES:
        item(18, "linescan", lambda: tuple(cur.number("linescan coordinate") for _ in range(6)))
    item(19, "source_polar_angle", lambda: cur.number(f"block {index} source polar angle of incidence"))
    item(20, "source_azimuth", lambda: cur.number(f"block {index} source azimuth"))
    item(21, "analyser_mode", lambda: cur.text(f"block {index} analyser mode"))
    item(22, "pass_energy", lambda: cur.number(f"block {index} analyser pass energy"))
    if technique == "AES diff":
        item(23, "differential_width", lambda: cur.number("differential width"))
    item(24, "magnification", lambda: cur.number(f"block {index} analyser transfer lens magnification"))
    item(25, "work_function", lambda: cur.number(f"block {index} analyser work function"))
    item(26, "target_bias", lambda: cur.number(f"block {index} target bias"))
    item(27, "analysis_width", lambda: (cur.number("analysis width x"), cur.number("analysis width y")))
    item(28, "take_off", lambda: (cur.number("analyser take-off polar angle"), cur.number("take-off azimuth")))
    item(29, "species", lambda: cur.text(f"block {index} species label"))
    item(30, "transition", lambda: (cur.text(f"block {index} transition label"),
                                    cur.number(f"block {index} charge of detected particle")))
    if head.scan_mode == "REGULAR":
        item(31, "abscissa", lambda: (cur.text(f"block {index} abscissa label"),
                                      cur.text(f"block {index} abscissa units"),
                                      cur.number(f"block {index} abscissa start"),
                                      cur.number(f"block {index} abscissa increment")))

    def corresponding():
        n = cur.count(f"block {index} number of corresponding variables", limit=1000)
        return [(cur.text("corresponding variable label"), cur.text("corresponding variable units"))
                for _ in range(n)]

    item(32, "corresponding", corresponding)
    item(33, "signal_mode", lambda: cur.text(f"block {index} signal mode"))
    item(34, "dwell_time", lambda: cur.number(f"block {index} signal collection time"))
    item(35, "scans", lambda: cur.number(f"block {index} number of scans"))
    item(36, "time_correction", lambda: cur.number(f"block {index} signal time correction"))
    if mode in _DEPTH_PROFILE_MODES and technique in _SPUTTER_SOURCE_TECHNIQUES:
        def sputter_source():
            values = [cur.number("sputtering source parameter") for _ in range(6)]
            return (*values, cur.text("sputtering mode"))

        item(37, "sputter_source", sputter_source)
    item(38, "tilt", lambda: (cur.number("sample tilt polar angle"), cur.number("sample tilt azimuth")))
    item(39, "rotation", lambda: cur.number(f"block {index} sample rotation angle"))

    def additional():
        n = cur.count(f"block {index} number of additional numerical parameters")
        return [(cur.text("parameter label"), cur.text("parameter units"), cur.number("parameter value"))
                for _ in range(n)]

    item(40, "additional", additional)
    cur.skip(head.n_future_block, f"block {index} future upgrade entries")
    n_corr = len(block["corresponding"])
    if n_corr == 0:
        raise cur.fail(f"block {index} has no corresponding variables (no intensities)")
    n_values = cur.count(f"block {index} number of ordinate values")
    cur.skip(2 * n_corr, f"block {index} ordinate minima/maxima")
    if n_values % n_corr:
        raise cur.fail(f"block {index}: {n_values} ordinate values do not divide into {n_corr} variables")
    block["ordinates"] = cur.floats(n_values, f"block {index} ordinate values").reshape(-1, n_corr)
    return block


def parse_vendor_comment(text: str) -> dict:
    """Acquisition facts from a vendor block comment (Kratos ESCApe, SPECS, CasaXPS notes).

    Returns a dict with any of ``dwell_time`` (s), ``scans``, ``etch_time`` (s) found.

    Examples
    --------
    >>> parse_vendor_comment("Dwell time : 260ms\\nSweeps : 3\\nEtch Time : 20 s")
    {'dwell_time': 0.26, 'scans': 3, 'etch_time': 20.0}
    """
    out: dict = {}
    dwell = re.search(r"(?im)^\s*dwell(?:\s*time)?\s*[:=]\s*([-+0-9.eE]+)\s*(ms|s)?\b", text)
    if dwell:
        out["dwell_time"] = float(dwell.group(1)) * (1e-3 if (dwell.group(2) or "").lower() == "ms" else 1.0)
    sweeps = re.search(r"(?im)^\s*(?:sweeps|scans|number of scans)\s*[:=]\s*(\d+)\s*$", text)
    if sweeps:
        out["scans"] = int(sweeps.group(1))
    etch = re.search(r"(?im)\betch(?:ing)?[ _]?time\s*[:=]?\s*([-+0-9.eE]+)\s*([a-z]*)", text)
    if etch:
        try:
            out["etch_time"] = time_in_seconds(float(etch.group(1)), etch.group(2) or "s")
        except ValueError:
            pass
    return out


def _number_or_text(value: str):
    """Experimental-variable value: a float (NaN for 1E37) or, when not numeric, the text."""
    try:
        float(value)
    except ValueError:
        return value.strip()
    return known(value)


def _block_call(source: str, head: VamasHeader, block: dict, index: int) -> dict:
    """The :func:`make_spectrum` keyword arguments of one parsed block (``energy`` and ``values`` included)."""
    ordinates = block["ordinates"]
    corresponding = list(block["corresponding"])
    where = f"{source}: block {index}"
    if ordinates.shape[0] == 0:
        raise XPSError(f"{where} ({block['id']}): empty block (0 data points)")
    if head.scan_mode == "IRREGULAR":
        if len(corresponding) < 2:
            raise XPSError(f"{where}: IRREGULAR block needs the abscissa and at least one ordinate variable")
        abscissa_label = corresponding[0][0]
        energy = ordinates[:, 0]
        corresponding = corresponding[1:]
        ordinates = ordinates[:, 1:]
    else:
        abscissa_label, _units, start, step = block["abscissa"]
        energy = start + step * np.arange(ordinates.shape[0])
    labels = [label.lower() for label, _ in corresponding]
    transmission_column = next((i for i, label in enumerate(labels) if "transmission" in label), None)
    candidates = [i for i in range(len(labels)) if i != transmission_column]
    if not candidates:
        raise XPSError(f"{where}: no intensity variable (only {corresponding[0][0]!r})")
    intensity_column = candidates[0]
    intensity_label, intensity_units = corresponding[intensity_column]
    per_second = bool(re.search(r"per second|c/s|cps|counts/s", f"{intensity_label} {intensity_units} {block['id']}",
                                re.IGNORECASE))
    variables = {label: _number_or_text(value) for label, value in zip(head.variable_labels, block["variables"])}
    units = dict(zip(head.variable_labels, head.variable_units))
    vendor = parse_vendor_comment(block["comment"])
    etch = etch_time_from_variables(variables, units)
    if math.isnan(etch):
        etch = vendor.get("etch_time", math.nan)
    dwell = known(block["dwell_time"])
    scans = known(block["scans"])
    if math.isnan(dwell):
        dwell = vendor.get("dwell_time", math.nan)
    if math.isnan(scans):
        scans = vendor.get("scans", math.nan)
    transition, _charge = block["transition"]
    lower = abscissa_label.lower()
    if "kinetic" in lower:
        abscissa = "kinetic energy"
    elif "binding" in lower:
        abscissa = "binding energy"
    elif "energy" in lower:
        abscissa = "kinetic energy"  # the standard's electron-spectroscopy abscissa when unqualified
    else:
        raise XPSError(f"{where}: abscissa {abscissa_label!r} is neither kinetic nor binding energy")
    notes = []
    technique, hv = _technique(block, abscissa)
    if technique == "AES" and not str(block["technique"]).upper().startswith("AES"):
        notes.append(f"technique field says {block['technique']!r} but the source energy is "
                     f"{block['excitation_energy']:g} eV on a kinetic-energy abscissa: read as AES")
    region, named_by = _region(block, transition, index)
    if named_by:
        notes.append(f"region named from the {named_by} (species/transition labels are empty)")
    extra = {
        "block_id": block["id"],
        "vamas_technique": block["technique"],
        "source_label": block["source_label"],
        "analyser_mode": block["analyser_mode"],
        "species": block["species"],
        "transition": transition,
        "work_function": known(block["work_function"]),
        "take_off_angle": known(block["take_off"][0]),
        "experimental_variable_units": units,
        "date": "%04d-%02d-%02dT%02d:%02d:%02d" % tuple(
            block[key] for key in ("year", "month", "day", "hour", "minute", "second")) if block["year"] > 0 else "",
        "instrument": head.instrument,
        # doptrace's simulator names itself as the instrument (doptrace.core.simulated)
        **({"simulated": marker} if (marker := marker_in([head.instrument])) else {}),
        "institution": head.institution,
        "experiment_mode": head.experiment_mode,
        "scan_mode": head.scan_mode,
    }
    if block["additional"]:
        extra["additional_parameters"] = {label: value for label, _u, value in block["additional"]}
    return dict(
        energy=energy,
        values=ordinates[:, intensity_column],
        abscissa=abscissa,
        excitation_energy=hv,
        region=region,
        sample=block["sample"],
        block_index=index,
        pass_energy=block["pass_energy"],
        dwell_time=dwell,
        scans=scans,
        already_per_second=per_second,
        etch_time=etch,
        experimental_variables=variables,
        comment=block["comment"],
        transmission=None if transmission_column is None else ordinates[:, transmission_column],
        extra_attrs=extra,
        technique=technique,
        notes=notes,
        irregular=head.scan_mode == "IRREGULAR",
    )


def _technique(block: dict, abscissa: str) -> tuple[str, float]:
    """("AES" or "XPS", excitation energy): AES when the technique field says so, or when an
    "XPS" block has no photon energy (0 or 'not available') on a kinetic-energy abscissa:
    instruments write AES spectra into VAMAS with the technique field left at XPS."""
    hv = known(block["excitation_energy"])
    if str(block["technique"]).upper().startswith("AES"):
        return "AES", hv
    if abscissa == "kinetic energy" and not (hv > 0):
        return "AES", hv
    return "XPS", hv


_CASA_REGION_NAME = re.compile(r"^\s*CASA region \(\*(.*?)\*\)", re.MULTILINE)


def _region(block: dict, transition: str, index: int) -> tuple[str, str]:
    """(region name, what named it): species + transition; when both are empty or 'None' (old
    CasaXPS 2.x, Omicron EIS), the first CASA region name, else the block identifier, else
    'block <index>', so blocks never merge into one unnamed region."""
    name = region_name(block["species"], transition)
    if name:
        return name, ""
    match = _CASA_REGION_NAME.search(block["comment"])
    if match and not is_empty_label(match.group(1)):
        return canonical_region(match.group(1)), "CasaXPS region name"
    if not is_empty_label(block["id"]):
        return canonical_region(block["id"]), "block identifier"
    return f"block {index}", "block index"


def read_header(path: str | os.PathLike) -> VamasHeader:
    """The experiment header of a VAMAS file (no blocks parsed)."""
    cur = _Cursor(str(path), split_lines(_load_text(path)))
    return _parse_header(cur)


def read(path: str | os.PathLike, *, progress: bool = False) -> list[xr.DataArray]:
    """Read every block of a VAMAS file.

    Parameters
    ----------
    path : path-like
        The ``.vms`` file (opened read-only).
    progress : bool
        Show a tqdm bar over blocks (large multi-block files).

    Returns
    -------
    list of DataArray
        One per block, over ascending ``binding_energy`` (eV); see ``xps.read`` for the attrs.

    Examples
    --------
    >>> blocks = read("assigned.vms")  # doctest: +SKIP
    >>> blocks[0].attrs["region"], blocks[0].attrs["excitation_energy"]  # doctest: +SKIP
    ('Mo 3d', 1486.69)
    """
    source = str(path)
    lines = split_lines(_load_text(path))
    if not lines or not any(line.strip() for line in lines):
        raise XPSError(f"{source}: empty file")
    cur = _Cursor(source, lines)
    head = _parse_header(cur)
    if head.n_blocks == 0:
        raise XPSError(f"{source}: VAMAS file holds no blocks")
    calls = []
    first = None
    indices = range(head.n_blocks)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"reading {Path(source).name}", unit="block")
    try:
        for index in indices:
            block = _parse_block(cur, head, first, index)
            if first is None:
                first = block
            calls.append(_block_call(source, head, block, index))
    except XPSError:
        make_spectra(source, calls)  # a bad block before the one that stopped parsing is named first
        raise
    # all blocks at once: a 2000-level series on one grid is checked and scaled as one array
    blocks = make_spectra(source, calls)
    end = cur.text("the 'end of experiment' line") if cur.pos < len(lines) else ""
    if end and end.lower() != "end of experiment":
        raise cur.fail(f"expected 'end of experiment' after {head.n_blocks} blocks, found {end[:40]!r}", cur.pos - 1)
    return blocks


# ----------------------------------------------------------------------------------------- writing


def _fmt(value) -> str:
    """Shortest text that reads back to the same float; unknown -> 1e+37 (the VAMAS marker)."""
    value = float(value)
    if not math.isfinite(value):
        return "1e+37"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _single_line(text: str) -> str:
    return " ".join(str(text).split()) or "Not Specified"


def _split_region(region: str) -> tuple[str, str]:
    parts = str(region).strip().split(None, 1)
    if not parts:
        return "Unknown", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _uniform_step(energy: np.ndarray) -> float | None:
    if energy.size < 2:
        return 0.0
    steps = np.diff(energy)
    step = (energy[-1] - energy[0]) / (energy.size - 1)
    if np.allclose(steps, step, rtol=1e-6, atol=1e-9):
        return float(step)
    return None


def write(
    path: str | os.PathLike,
    blocks: list[xr.DataArray],
    *,
    institution: str = "doptrace",
    instrument: str = "doptrace simulator",
    operator: str = "doptrace",
    experiment: str = "doptrace",
    sample: str | None = None,
    abscissa: str = "kinetic energy",
    header_comment: str = "",
) -> Path:
    """Write spectra as a real ISO 14976 VAMAS file (NORM mode), atomically.

    Each DataArray (dims ``("binding_energy",)``, attrs as returned by ``xps.read``) becomes one
    block: abscissa stored as kinetic energy (KE = hv - BE, ascending, as Kratos writes it) unless
    ``abscissa="binding energy"``; intensities stored as raw counts (values x ``counts_per_unit``);
    experimental variable "Etch Time" (s) from ``attrs["etch_time"]``; dwell, scans, pass energy,
    excitation energy; a "Transmission" corresponding variable when the DataArray has a
    ``transmission`` coord; ``attrs["comment"]`` as the block comment. Uniform grids are written
    in REGULAR scan mode; if any block's grid is not uniform the whole file is IRREGULAR.

    Examples
    --------
    >>> write("series.vms", blocks, sample="LBO-LRMO")  # doctest: +SKIP
    """
    if not blocks:
        raise XPSError(f"{path}: no blocks to write")
    kinetic = abscissa.lower().startswith("kinetic")
    prepared = []
    for index, da in enumerate(blocks):
        if da.dims != ("binding_energy",):
            raise XPSError(f"{path}: block {index} has dims {da.dims}, expected ('binding_energy',)")
        hv = known(da.attrs.get("excitation_energy", math.nan))
        if kinetic and math.isnan(hv):
            raise XPSError(f"{path}: block {index} has no excitation_energy to write a kinetic-energy abscissa")
        be = np.asarray(da["binding_energy"].values, dtype=float)
        values = np.asarray(da.values, dtype=float)
        if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(np.isfinite(be)):
            raise XPSError(f"{path}: block {index} is empty or holds NaN values")
        energy = hv - be if kinetic else be
        order = np.argsort(energy, kind="stable")
        cpu = float(da.attrs.get("counts_per_unit", 1.0) or 1.0)
        counts = values[order] * cpu
        # Pulse counts are integers: snap float noise from the cps division back onto them so a
        # write -> read round trip reproduces the counts-per-second values bit for bit.
        rounded = np.round(counts)
        if np.all(np.abs(counts - rounded) <= 1e-9 * np.maximum(1.0, np.abs(counts))):
            counts = rounded
        transmission = None
        if "transmission" in da.coords:
            transmission = np.asarray(da["transmission"].values, dtype=float)[order]
        prepared.append((da, energy[order], counts, transmission, hv))
    steps = [_uniform_step(energy) for _, energy, *_ in prepared]
    scan_mode = "REGULAR" if all(step is not None for step in steps) else "IRREGULAR"
    extra_labels: list[str] = []
    for da, *_ in prepared:
        for label, value in dict(da.attrs.get("experimental_variables") or {}).items():
            if ("etch" in label.lower() or label == "Etch Time" or label in extra_labels
                    or isinstance(value, str)):
                continue
            extra_labels.append(label)
    var_labels = ["Etch Time", *extra_labels]
    var_units = ["s"] + ["d"] * len(extra_labels)
    regions = {str(da.attrs.get("region", "")) for da, *_ in prepared}

    out = [IDENTIFIER, _single_line(institution), _single_line(instrument), _single_line(operator),
           _single_line(experiment)]
    comment_lines = [line.rstrip() for line in header_comment.splitlines()] if header_comment else []
    out += [str(len(comment_lines)), *comment_lines]
    out += ["NORM", scan_mode, str(len(regions)), str(len(var_labels))]
    for label, unit in zip(var_labels, var_units):
        out += [label, unit]
    out += ["0", "0", "0", "0", str(len(prepared))]
    for (da, energy, counts, transmission, hv), step in zip(prepared, steps):
        attrs = da.attrs
        species, transition = _split_region(attrs.get("region", ""))
        block_sample = sample if sample is not None else attrs.get("sample", "")
        out += [_single_line(attrs.get("block_id") or attrs.get("region", "")), _single_line(block_sample)]
        date = str(attrs.get("date", ""))
        match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", date)
        out += list(match.groups()) if match else ["0"] * 6
        out += ["0"]
        comment = [line.rstrip() for line in str(attrs.get("comment", "")).splitlines()]
        out += [str(len(comment)), *comment]
        out += ["XPS"]
        variables = dict(attrs.get("experimental_variables") or {})
        out.append(_fmt(attrs.get("etch_time", math.nan)))
        out += [_fmt(known(variables.get(label, math.nan))) for label in extra_labels]
        out += [_single_line(attrs.get("source_label", "Al")), _fmt(hv)]
        out += ["1e+37", "1e+37", "1e+37", "1e+37", "1e+37"]  # strength, beam width x/y, polar, azimuth
        out += [_single_line(attrs.get("analyser_mode", "FAT")), _fmt(known(attrs.get("pass_energy", math.nan)))]
        out += ["1e+37", _fmt(known(attrs.get("work_function", math.nan))), "0", "1e+37", "1e+37"]
        out += [_fmt(known(attrs.get("take_off_angle", 0.0))), "0", species, transition or " ", "-1"]
        if scan_mode == "REGULAR":
            out += ["Kinetic Energy" if kinetic else "Binding Energy", "eV", _fmt(energy[0]), _fmt(step)]
        columns = [counts] if transmission is None else [counts, transmission]
        names = [("Intensity", "d")] + ([] if transmission is None else [("Transmission", "d")])
        if scan_mode == "IRREGULAR":
            columns.insert(0, energy)
            names.insert(0, ("Kinetic Energy" if kinetic else "Binding Energy", "eV"))
        out.append(str(len(names)))
        for label, unit in names:
            out += [label, unit]
        dwell = known(attrs.get("dwell_time", math.nan))
        scans = int(attrs.get("scans", 0) or 0)
        if attrs.get("units") == "counts" or math.isnan(dwell):
            dwell, scans = math.nan, max(scans, 1)
        out += ["pulse counting", _fmt(dwell), str(max(scans, 1)), "0", "0", "0", "0", "0"]
        table = np.column_stack(columns)
        out.append(str(table.size))
        for column in columns:
            out += [_fmt(np.min(column)), _fmt(np.max(column))]
        out += [_fmt(v) for v in table.ravel()]
    out.append("end of experiment")
    return write_text(path, "\r\n".join(out) + "\r\n", newline="")
