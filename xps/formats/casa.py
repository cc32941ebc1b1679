"""CasaXPS block comments: the processing history and the fit model CasaXPS stores in a VAMAS file.

CasaXPS saves its work in each block's comment, after a ``Casa Info Follows`` line::

    Casa Info Follows
    <n> process lines          (Calib, KECalib, TransmissionSet, InCalib, Sm ...)
    <n> annotation lines       (each followed by a blank line; ``annot text`` by its text line)
    <n> CASA region lines
    <n> CASA comp lines
    vendor comment lines ...

with (kinetic energies in eV; BE = hv - KE)::

    CASA region (*name*) (*background*) KEstart KEend RSF avgWidth startOffset% endOffset%
                p1 p2 p3 p4 (*tag*) mass 0 libraryRSF
    CASA comp (*name*) (*lineshape*) Area v min max ref factor MFWHM v min max ref factor
              Position v min max ref offset RSF r MASS m INDEX i (*tag*) CONST (*...*)
              UNCORRECTEDRSF r0

``ref`` is the 0-based index of another comp in the same block (-1: free); ``factor`` multiplies
the referenced area or FWHM, ``offset`` is added to the referenced position (kinetic energy, so a
doublet partner 3.14 eV higher in BE has offset -3.14). Parsing never fails silently: a CASA
line that does not match raises :class:`~xps.errors.XPSError` naming the source and the line.

Older CasaXPS 2.x versions write shorter lines: a region line may stop after fewer numbers and
lack the tag / mass / library-RSF tail; a comp line may lack the link fields of a parameter
(``Area v min max``), ``RSF``, ``MASS``, ``INDEX``, the tag, ``CONST`` and ``UNCORRECTEDRSF``.
Missing numbers become NaN (missing links: unlinked, factor 1, offset 0).

A component whose line shape is not a formula but the name of a reference spectrum (another
block of the file, e.g. ``%COMETAL``, ``$FEO``, ``&FE2O3``) is flagged by
:attr:`CasaComp.is_reference_shape`; doptrace cannot refit those (see ``xps.series.fit_casa``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import XPSError

MARKER = "Casa Info Follows"


@dataclass(frozen=True)
class CasaParam:
    """A fitted quantity with its CasaXPS limits and link: ``value`` = ``factor`` x comp[``ref``]."""

    value: float
    min: float
    max: float
    ref: int
    factor: float

    @property
    def linked(self) -> bool:
        return self.ref >= 0


@dataclass(frozen=True)
class CasaPosition:
    """A peak position (kinetic energy, eV): linked as ``value`` = comp[``ref``] + ``offset``."""

    value: float
    min: float
    max: float
    ref: int
    offset: float

    @property
    def linked(self) -> bool:
        return self.ref >= 0


@dataclass(frozen=True)
class CasaRegion:
    """One ``CASA region`` line: the background and its energy window (kinetic energy, eV)."""

    name: str
    background: str
    ke_start: float
    ke_end: float
    rsf: float
    average_width: float
    start_offset: float
    end_offset: float
    parameters: tuple[float, float, float, float]
    tag: str = ""
    mass: float = math.nan
    flag: float = math.nan
    library_rsf: float = math.nan
    line: int = 0

    def binding_window(self, excitation_energy: float) -> tuple[float, float]:
        """(low, high) binding energies of the region for photon energy ``excitation_energy``."""
        a, b = excitation_energy - self.ke_start, excitation_energy - self.ke_end
        return (min(a, b), max(a, b))

    @property
    def background_kind(self) -> str:
        """'shirley', 'linear', 'tougaard_u2', 'tougaard_u3' or the lower-cased CasaXPS text."""
        text = self.background.strip().lower()
        match = re.fullmatch(r"u\s*([234])\s*tougaard", text)
        if match:
            return f"tougaard_u{match.group(1)}"
        return text


@dataclass(frozen=True)
class CasaComp:
    """One ``CASA comp`` line: a synthetic component."""

    name: str
    lineshape: str
    area: CasaParam
    fwhm: CasaParam
    position: CasaPosition
    rsf: float = math.nan
    mass: float = math.nan
    index: int = -1
    tag: str = ""
    const: str = ""
    uncorrected_rsf: float = math.nan
    lineshape_flags: str = ""
    line: int = 0

    def binding_energy(self, excitation_energy: float) -> float:
        """Stored position as binding energy: hv - KE."""
        return excitation_energy - self.position.value

    @property
    def is_reference_shape(self) -> bool:
        """True when the line shape is a CasaXPS reference spectrum (a block name such as
        ``%COMETAL``, ``$FEO``, ``&FE2O3``), not a formula such as ``GL(30)`` or ``LA(1.53,243)``."""
        return is_reference_shape(self.lineshape)


_FORMULA_SHAPE = re.compile(r"^[A-Za-z][A-Za-z ]*(\(.*\))?$")


def is_reference_shape(lineshape: str) -> bool:
    """True for a CasaXPS line shape that names a reference spectrum instead of a formula.

    CasaXPS formulas are a letter name with optional arguments (GL(30), SGL(10), LA(1.53,243),
    LF(1,1,25,280), GA, T ...); reference spectra are block identifiers, which CasaXPS users mark
    with a leading symbol ('%', '$', '&', '#', '@' ...).

    Examples
    --------
    >>> is_reference_shape("%COMETAL"), is_reference_shape("$FEO"), is_reference_shape("LA(1.53,243)")
    (True, True, False)
    """
    text = str(lineshape).strip()
    return bool(text) and not _FORMULA_SHAPE.match(text)


@dataclass(frozen=True)
class CasaCalibration:
    """A ``Calib M = m[,m2] A = a BE ADD`` line: energy scale shifted so M lands on A."""

    measured: tuple[float, ...]
    actual: float
    scale: str
    operation: str

    @property
    def shift(self) -> float:
        """Shift added to the energy scale (mean of the measured values -> actual)."""
        return self.actual - sum(self.measured) / len(self.measured)


@dataclass
class CasaInfo:
    """Everything CasaXPS stored in one comment."""

    regions: list[CasaRegion] = field(default_factory=list)
    comps: list[CasaComp] = field(default_factory=list)
    process_lines: list[str] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    #: The line after each annotation: '' for most, the text of an ``annot text`` annotation.
    annotation_texts: list[str] = field(default_factory=list)
    vendor_lines: list[str] = field(default_factory=list)
    version: str = ""
    present: bool = False

    @property
    def calibrations(self) -> list[CasaCalibration]:
        """The ``Calib`` process lines, parsed."""
        out = []
        for text in self.process_lines:
            match = _CALIB.match(text.strip())
            if match:
                measured = tuple(float(v) for v in match.group("m").split(","))
                out.append(CasaCalibration(measured, float(match.group("a")), match.group("scale"), match.group("op")))
        return out

    @property
    def calibration_shift(self) -> float:
        """Total binding-energy shift of the ``Calib ... BE ADD`` lines, applied in turn (eV)."""
        return sum(c.shift for c in self.calibrations if c.scale == "BE" and c.operation == "ADD")


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CALIB = re.compile(rf"^Calib\s+M\s*=\s*(?P<m>{_NUM}(?:\s*,\s*{_NUM})*)\s+A\s*=\s*(?P<a>{_NUM})\s+(?P<scale>\w+)\s+(?P<op>\w+)")
_REGION = re.compile(
    r"^CASA region \(\*(?P<name>(?:(?!\*\)).)*)\*\) \(\*(?P<background>(?:(?!\*\)).)*)\*\)"
    rf"(?P<nums>(?:\s+{_NUM}){{2,10}})"
    r"(?:\s+\(\*(?P<tag>.*?)\*\))?"
    rf"(?:\s+(?P<mass>{_NUM}))?(?:\s+(?P<flag>{_NUM}))?(?:\s+(?P<library>{_NUM}))?\s*$"
)
_FIVE = rf"((?:\s+{_NUM}){{3,5}})"  # value min max [ref factor]: old versions stop after max
_COMP = re.compile(
    r"^CASA comp \(\*(?P<name>.*?)\*\) \(\*(?P<shape>.*?)\)"
    rf"\s+Area{_FIVE}\s+MFWHM{_FIVE}\s+Position{_FIVE}"
    rf"(?:\s+RSF\s+(?P<rsf>{_NUM}))?(?:\s+MASS\s+(?P<mass>{_NUM}))?(?:\s+INDEX\s+(?P<index>{_NUM}))?"
    r"(?:\s+\(\*(?P<tag>.*?)\*\))?(?:\s+CONST\s+\(\*(?P<const>.*?)\*\))?"
    rf"(?:\s+UNCORRECTEDRSF\s+(?P<ursf>{_NUM}))?\s*$"
)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def _opt(text: str | None) -> float:
    return float(text) if text is not None else math.nan


def parse_region(text: str, *, source: str = "<comment>", line: int = 0) -> CasaRegion:
    """Parse one ``CASA region`` line.

    Examples
    --------
    >>> r = parse_region("CASA region (*C 1s*) (*U 2 Tougaard*) 1188.28 1203.15 1 4 0 0 79.76 -1450 0 0 (*NoTag*) 12.011 0 1")
    >>> r.background_kind, r.parameters[:2]
    ('tougaard_u2', (79.76, -1450.0))
    """
    match = _REGION.match(text.strip())
    if not match:
        raise XPSError(f"{source}: comment line {line}: malformed CASA region line: {text.strip()[:120]!r}")
    nums = _floats(match.group("nums")) + [math.nan] * 8
    return CasaRegion(
        name=match.group("name"), background=match.group("background"), ke_start=nums[0], ke_end=nums[1],
        rsf=nums[2], average_width=nums[3], start_offset=nums[4], end_offset=nums[5],
        parameters=(nums[6], nums[7], nums[8], nums[9]), tag=match.group("tag") or "",
        mass=_opt(match.group("mass")), flag=_opt(match.group("flag")), library_rsf=_opt(match.group("library")),
        line=line,
    )


def parse_comp(text: str, *, source: str = "<comment>", line: int = 0) -> CasaComp:
    """Parse one ``CASA comp`` line.

    The lineshape text may carry a CasaXPS flag after its closing ``*`` (``(*LA(1.53,243)*z)``);
    it is kept in ``lineshape_flags``.

    Examples
    --------
    >>> c = parse_comp("CASA comp (*Mo 3d3/2*) (*LA(1.53,243)*) Area 153.6 1e-020 2327991 0 0.66666667 "
    ...                "MFWHM 0.76 0.65 1.25 -1 1 Position 1254.08 0 0 0 -3.14 RSF 10.8 MASS 95.9 INDEX -1 "
    ...                "(*Mo 3d*) CONST (**) UNCORRECTEDRSF 9.5")
    >>> c.area.ref, c.area.factor, c.position.offset, c.lineshape
    (0, 0.66666667, -3.14, 'LA(1.53,243)')
    """
    match = _COMP.match(text.strip())
    if not match:
        raise XPSError(f"{source}: comment line {line}: malformed CASA comp line: {text.strip()[:120]!r}")
    shape = match.group("shape")
    flags = ""
    star = shape.rfind("*")
    if star >= 0:
        shape, flags = shape[:star], shape[star + 1 :]
    if not shape.strip():
        raise XPSError(f"{source}: comment line {line}: CASA comp line without a lineshape")
    # Missing link fields (old CasaXPS): unlinked (-1), factor 1; a position offset 0.
    area, fwhm = ((_floats(match.group(i)) + [-1.0, 1.0])[:5] if len(_floats(match.group(i))) == 3
                  else _floats(match.group(i)) for i in (3, 4))
    pos = _floats(match.group(5))
    pos = (pos + [-1.0, 0.0])[:5] if len(pos) == 3 else pos
    if len(area) != 5 or len(fwhm) != 5 or len(pos) != 5:
        raise XPSError(f"{source}: comment line {line}: CASA comp line with a partial link (need value min max "
                       f"[ref factor]): {text.strip()[:120]!r}")

    def ref(value: float, what: str) -> int:
        if value != int(value):
            raise XPSError(f"{source}: comment line {line}: CASA comp {what} link index {value} is not an integer")
        return int(value)

    index = match.group("index")
    return CasaComp(
        name=match.group("name"), lineshape=shape.strip(), lineshape_flags=flags,
        area=CasaParam(area[0], area[1], area[2], ref(area[3], "area"), area[4]),
        fwhm=CasaParam(fwhm[0], fwhm[1], fwhm[2], ref(fwhm[3], "FWHM"), fwhm[4]),
        position=CasaPosition(pos[0], pos[1], pos[2], ref(pos[3], "position"), pos[4]),
        rsf=_opt(match.group("rsf")), mass=_opt(match.group("mass")),
        index=int(float(index)) if index is not None else -1, tag=match.group("tag") or "",
        const=match.group("const") or "", uncorrected_rsf=_opt(match.group("ursf")), line=line,
    )


class _Lines:
    def __init__(self, lines: list[str], start: int, source: str):
        self.lines, self.pos, self.source = lines, start, source

    def count(self, what: str) -> int:
        # A block comment may stop after the last non-empty section: missing counts are 0.
        if self.pos >= len(self.lines):
            return 0
        text = self.lines[self.pos].strip()
        if text == "" and all(not line.strip() for line in self.lines[self.pos :]):
            return 0
        try:
            value = int(text)
        except ValueError:
            raise XPSError(
                f"{self.source}: comment line {self.pos + 1}: expected the number of {what}, found {text[:60]!r}"
            ) from None
        if value < 0 or self.pos + 1 + value > len(self.lines):
            raise XPSError(
                f"{self.source}: comment line {self.pos + 1}: {value} {what} announced but only "
                f"{len(self.lines) - self.pos - 1} lines follow"
            )
        self.pos += 1
        return value

    def take(self) -> tuple[int, str]:
        self.pos += 1
        return self.pos, self.lines[self.pos - 1]


def parse_comment(text: str, *, source: str = "<comment>") -> CasaInfo:
    """Parse a VAMAS comment (block or header) for CasaXPS information.

    Parameters
    ----------
    text : str
        The comment text (lines separated by newlines).
    source : str
        Named in error messages (e.g. "file.vms block 3").

    Returns
    -------
    CasaInfo
        ``present`` is False (and every list empty except ``vendor_lines``) when the comment has
        no ``Casa Info Follows`` line.

    Raises
    ------
    XPSError
        A malformed CASA line, a count that runs past the end, or a CASA line outside the counted
        sections.

    Examples
    --------
    >>> info = parse_comment("Casa Info Follows\\n0\\n0\\n0\\n0")
    >>> info.present, info.comps
    (True, [])
    """
    lines = [line.rstrip("\r") for line in str(text).split("\n")]
    info = CasaInfo()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith(MARKER)), None)
    if start is None:
        info.vendor_lines = [line for line in lines if line.strip()]
        _reject_stray(lines, 0, source)
        return info
    info.present = True
    info.vendor_lines = [line for line in lines[:start] if line.strip()]
    info.version = lines[start].strip()[len(MARKER):].strip()
    cur = _Lines(lines, start + 1, source)
    if info.version:
        # Header comment form: a count of lines (region names...) then vendor lines; no model.
        for _ in range(cur.count("header lines")):
            info.process_lines.append(cur.take()[1].strip())
    else:
        for _ in range(cur.count("process lines")):
            info.process_lines.append(cur.take()[1].strip())
        for _ in range(cur.count("annotation lines")):
            annotation = cur.take()[1].strip()
            info.annotations.append(annotation)
            follow = ""
            # Each annotation is followed by one line: blank, or for ``annot text`` its text.
            if cur.pos < len(lines) and (not lines[cur.pos].strip() or annotation.lower().startswith("annot text")):
                follow = cur.take()[1].strip()
            info.annotation_texts.append(follow)
        for _ in range(cur.count("CASA region lines")):
            number, line = cur.take()
            info.regions.append(parse_region(line, source=source, line=number))
        for _ in range(cur.count("CASA comp lines")):
            number, line = cur.take()
            info.comps.append(parse_comp(line, source=source, line=number))
    _reject_stray(lines, cur.pos, source)
    info.vendor_lines += [line for line in lines[cur.pos :] if line.strip()]
    for comp in info.comps:
        for what, param in (("area", comp.area), ("FWHM", comp.fwhm), ("position", comp.position)):
            if param.ref >= len(info.comps) or param.ref == comp_index(info, comp):
                raise XPSError(
                    f"{source}: comment line {comp.line}: CASA comp {comp.name!r} links its {what} to "
                    f"comp {param.ref}, which is not another comp of this block ({len(info.comps)} comps)"
                )
    return info


def comp_index(info: CasaInfo, comp: CasaComp) -> int:
    """0-based position of ``comp`` in ``info.comps`` (the index CasaXPS links refer to)."""
    return next(i for i, c in enumerate(info.comps) if c is comp)


def _reject_stray(lines: list[str], start: int, source: str) -> None:
    for number, line in enumerate(lines[start:], start=start + 1):
        if line.lstrip().startswith(("CASA comp", "CASA region")):
            raise XPSError(f"{source}: comment line {number}: CASA line outside the counted CASA sections")


def from_block(da) -> CasaInfo | None:
    """The CasaXPS information of a block returned by ``xps.read``, or None when there is none.

    Examples
    --------
    >>> info = from_block(xps.read("assigned.vms")[5])  # doctest: +SKIP
    >>> [c.name for c in info.comps][:2]  # doctest: +SKIP
    ['Mo 3d MoS2 2H', 'Mo 3d MoS2 2H']
    """
    source = f"{da.attrs.get('source', '<data>')} block {da.attrs.get('block_index', '?')}"
    info = parse_comment(str(da.attrs.get("comment", "")), source=source)
    return info if info.present else None


def _num(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "0"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def format_region(region: CasaRegion) -> str:
    """One ``CASA region`` line (inverse of :func:`parse_region`)."""
    nums = [region.ke_start, region.ke_end, region.rsf, region.average_width, region.start_offset,
            region.end_offset, *region.parameters]
    tail = [_num(v) for v in (region.mass, region.flag, region.library_rsf)]
    return (f"CASA region (*{region.name}*) (*{region.background}*) " + " ".join(_num(v) for v in nums)
            + f" (*{region.tag}*) " + " ".join(tail))


def format_comp(comp: CasaComp) -> str:
    """One ``CASA comp`` line (inverse of :func:`parse_comp`)."""
    def five(p, last):
        return " ".join(_num(v) for v in (p.value, p.min, p.max, p.ref, last))

    shape = f"{comp.lineshape}*{comp.lineshape_flags}" if comp.lineshape_flags else f"{comp.lineshape}*"
    return (f"CASA comp (*{comp.name}*) (*{shape}) Area {five(comp.area, comp.area.factor)} "
            f"MFWHM {five(comp.fwhm, comp.fwhm.factor)} Position {five(comp.position, comp.position.offset)} "
            f"RSF {_num(comp.rsf)} MASS {_num(comp.mass)} INDEX {comp.index} (*{comp.tag}*) CONST (*{comp.const}*) "
            f"UNCORRECTEDRSF {_num(comp.uncorrected_rsf)}")


def format_comment(info: CasaInfo) -> str:
    """A VAMAS block comment CasaXPS reads back: the counted sections, then the vendor lines.

    ``parse_comment(format_comment(info))`` reproduces ``info`` (regions, comps, process lines,
    annotations, vendor lines), so a doptrace model can be handed to CasaXPS in a VAMAS file.

    Examples
    --------
    >>> text = format_comment(CasaInfo(process_lines=["Calib M = 281.17 A = 284.8 BE ADD"], present=True))
    >>> text.splitlines()[:3]
    ['Casa Info Follows', '1', 'Calib M = 281.17 A = 284.8 BE ADD']
    """
    lines = [MARKER, str(len(info.process_lines)), *info.process_lines, str(len(info.annotations))]
    texts = list(info.annotation_texts) + [""] * (len(info.annotations) - len(info.annotation_texts))
    for annotation, follow in zip(info.annotations, texts):
        lines += [annotation, follow]
    lines += [str(len(info.regions)), *(format_region(r) for r in info.regions)]
    lines += [str(len(info.comps)), *(format_comp(c) for c in info.comps)]
    lines += list(info.vendor_lines)
    return "\n".join(lines)
