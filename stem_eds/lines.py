"""X-ray lines by name: energies and weights from exSpy's element database, detector resolution.

Lines are always addressed by name (``"Mn_Ka"``), never by position in a list: exSpy sorts its
``xray_lines`` alphabetically, so a list of k-factors in "element order" silently lands on the
wrong lines there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import warnings

import numpy as np

with warnings.catch_warnings():
    # HyperSpy 2.x announces its own internal renames on import; they are not the user's business
    # and would break the CLI's one-line error contract.
    warnings.simplefilter("ignore")
    import hyperspy.api  # noqa: F401  (imported here, once, with its warnings silenced)
    from exspy.material import elements as _ELEMENTS

from .errors import EDSError

MN_KA_KEV = 5.8987
#: Energies below this are never used: the zero-energy noise peak and the detector's cut-off.
MIN_ENERGY_KEV = 0.1
#: Elements whose only line is so soft that absorption and detector efficiency make numbers qualitative.
LIGHT_LINE_KEV = 0.3
FAMILIES = ("K", "L", "M")


@dataclass(frozen=True)
class Line:
    """One X-ray line: ``name`` ("Mn_Ka"), element, family (K/L/M), energy (keV), relative weight."""

    name: str
    element: str
    family: str
    energy: float
    weight: float


def element_lines(element: str, source: str = "") -> list[Line]:
    """Every line exSpy lists for ``element``; ``EDSError`` if the element is unknown.

    Examples
    --------
    >>> [l.name for l in element_lines("B")]
    ['B_Ka']
    """
    entry = getattr(_ELEMENTS, element, None) if element.isalpha() else None
    if entry is None:
        raise EDSError(f"{source or 'element list'}: unknown element {element!r}")
    lines_node = entry.get_item("Atomic_properties.Xray_lines")
    if lines_node is None:
        raise EDSError(f"{source or 'element list'}: {element} has no X-ray line EDS can detect")
    props = lines_node.as_dictionary()
    out = [
        Line(f"{element}_{name}", element, name[0], float(v["energy (keV)"]), float(v["weight"]))
        for name, v in props.items()
    ]
    return sorted(out, key=lambda line: line.energy)


def line(name: str, source: str = "") -> Line:
    """The line called ``name`` ("Fe_Ka"); ``EDSError`` naming it if it does not exist."""
    element, _, short = name.partition("_")
    for candidate in element_lines(element, source):
        if candidate.name == name:
            return candidate
    raise EDSError(f"{source or 'line list'}: element {element} has no X-ray line {short or '?'!r} ({name})")


def family_lines(element: str, family: str, source: str = "") -> list[Line]:
    """Lines of one family (K, L or M) of ``element``."""
    return [line_ for line_ in element_lines(element, source) if line_.family == family]


def atomic_weight(element: str) -> float:
    """Atomic weight in g/mol."""
    return float(getattr(_ELEMENTS, element).General_properties.atomic_weight)


def fwhm_kev(energy_kev, fwhm_mnka_ev: float = 130.0):
    """Detector FWHM at ``energy_kev`` from the Mn Ka FWHM (Fiori & Newbury 1978).

    FWHM(E)^2 = FWHM(Mn Ka)^2 + 2.5 eV * (E - E_MnKa) [E in eV]; result in keV.

    Examples
    --------
    >>> round(float(fwhm_kev(5.8987, 130.0)), 4)
    0.13
    """
    e = np.asarray(energy_kev, dtype=float)
    squared = fwhm_mnka_ev**2 + 2.5 * (e - MN_KA_KEV) * 1000.0
    return np.sqrt(np.maximum(squared, 1.0)) / 1000.0


def default_line(element: str, max_energy: float, source: str = "") -> Line:
    """The line used to quantify ``element``: the 'a' line of the hardest family the axis holds.

    A family counts as held when its 'a' line lies below ``max_energy`` minus a margin of
    three FWHM (room for the peak and its background).
    """
    lines = element_lines(element, source)
    for family in FAMILIES:
        main = [line_ for line_ in lines if line_.name == f"{element}_{family}a"]
        if main and MIN_ENERGY_KEV < main[0].energy < max_energy - 3 * float(fwhm_kev(main[0].energy)):
            return main[0]
    raise EDSError(f"{source or 'element list'}: no line of {element} lies inside the energy axis")


def parse_elements(spec, max_energy: float, source: str = "") -> list[Line]:
    """Lines to quantify from ``"O,B,Mn,Co,Ni"`` or ``["Fe_Ka", "Pt_La"]`` (names or elements).

    Each element appears once; an element name picks its :func:`default_line`, a line name is
    taken as given and checked to lie on the axis.
    """
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if not items:
        raise EDSError(f"{source or 'element list'}: no elements given")
    chosen: dict[str, Line] = {}
    for item in items:
        if "_" in item:
            found = line(item, source)
            if not MIN_ENERGY_KEV < found.energy < max_energy:
                raise EDSError(f"{source}: line {found.name} at {found.energy:.3f} keV is outside the energy axis")
        else:
            found = default_line(item, max_energy, source)
        if found.element in chosen:
            raise EDSError(f"{source or 'element list'}: element {found.element} listed twice")
        chosen[found.element] = found
    return list(chosen.values())


def is_qualitative(line_: Line) -> bool:
    """True for soft lines (B K, C K ...) whose intensities are mapped but not quantified reliably."""
    return line_.energy < LIGHT_LINE_KEV


def take_off_angle(tilt_alpha: float, azimuth: float, elevation: float, tilt_beta: float = 0.0) -> float:
    """Take-off angle in degrees for stage tilts and detector azimuth/elevation (all in degrees).

    cos(90 - TOA) = sin a cos b cos phi cos theta - sin b sin phi cos theta - cos a cos b sin theta,
    with theta = -elevation, b = -tilt_beta, phi = azimuth.
    """
    a, b = math.radians(tilt_alpha), -math.radians(tilt_beta)
    phi, theta = math.radians(azimuth), -math.radians(elevation)
    cosine = (
        math.sin(a) * math.cos(b) * math.cos(phi) * math.cos(theta)
        - math.sin(b) * math.sin(phi) * math.cos(theta)
        - math.cos(a) * math.cos(b) * math.sin(theta)
    )
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
