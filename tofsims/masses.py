"""Exact masses of secondary-ion fragments from isotope masses and the electron mass.

The mass of an ion is the sum of its atoms' isotope masses minus ``charge`` electron masses
(a negative ion carries extra electrons, so ``BO-`` weighs 11B + 16O + m_e). Isotope masses are
the AME2020 atomic masses (as tabulated by NIST, "Atomic Weights and Isotopic Compositions",
in u); each element defaults to its most abundant isotope (11B, 7Li, 115In, 35Cl, 16O ...).

Formula syntax: element symbols with counts (``C2H-``, ``BO2-``, ``Li2O+``), an explicit isotope
in square brackets (``[10B]O-``, ``[37Cl]-``; SurfaceLab's ``^10BO-`` and ``C_2H_3-`` are read too), and a trailing charge (``-``, ``+``, or repeated
signs ``--`` for two charges; a digit before the sign counts atoms, so ``BO2-`` is singly charged). Why hand-written: the mass tables in hyperspy/exspy carry average atomic weights (for
X-ray lines), not isotope masses, and no small maintained package parses SIMS fragment names.
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from .errors import ToFSIMSError

#: electron mass in u (CODATA 2018)
ELECTRON_MASS = 5.48579909065e-4

#: {element: {mass number: atomic mass in u}}; the first entry is the most abundant isotope
ISOTOPES: dict[str, dict[int, float]] = {
    "H": {1: 1.00782503223, 2: 2.01410177812},
    "He": {4: 4.00260325413},
    "Li": {7: 7.0160034366, 6: 6.0151228874},
    "Be": {9: 9.012183065},
    "B": {11: 11.00930536, 10: 10.01293695},
    "C": {12: 12.0, 13: 13.00335483507},
    "N": {14: 14.00307400443, 15: 15.00010889888},
    "O": {16: 15.99491461957, 18: 17.99915961286, 17: 16.99913175650},
    "F": {19: 18.99840316273},
    "Ne": {20: 19.9924401762},
    "Na": {23: 22.9897692820},
    "Mg": {24: 23.985041697, 26: 25.982592968, 25: 24.985836976},
    "Al": {27: 26.98153853},
    "Si": {28: 27.97692653465, 29: 28.97649466490, 30: 29.973770136},
    "P": {31: 30.97376199842},
    "S": {32: 31.9720711744, 34: 33.967867004},
    "Cl": {35: 34.968852682, 37: 36.965902602},
    "Ar": {40: 39.9623831237},
    "K": {39: 38.9637064864, 41: 40.9618252579},
    "Ca": {40: 39.962590863},
    "Sc": {45: 44.95590828},
    "Ti": {48: 47.94794198, 46: 45.95262772, 47: 46.95175879, 49: 48.94786568, 50: 49.94478689},
    "V": {51: 50.94395704},
    "Cr": {52: 51.94050623, 53: 52.94064815, 50: 49.94604183},
    "Mn": {55: 54.93804391},
    "Fe": {56: 55.93493633, 54: 53.93960899, 57: 56.93539284},
    "Co": {59: 58.93319429},
    "Ni": {58: 57.93534241, 60: 59.93078588, 62: 61.92834537},
    "Cu": {63: 62.92959772, 65: 64.92778970},
    "Zn": {64: 63.92914201, 66: 65.92603381},
    "Ga": {69: 68.9255735},
    "Ge": {74: 73.921177761},
    "As": {75: 74.92159457},
    "Se": {80: 79.9165218},
    "Br": {79: 78.9183376, 81: 80.9162897},
    "Rb": {85: 84.9117897379},
    "Sr": {88: 87.9056125},
    "Y": {89: 88.9058403},
    "Zr": {90: 89.9046977},
    "Nb": {93: 92.9063730},
    "Mo": {98: 97.90540482},
    "Ag": {107: 106.9050916, 109: 108.9047553},
    "In": {115: 114.903878776, 113: 112.90406184},
    "Sn": {120: 119.90220163, 118: 117.90160657, 116: 115.90174280, 119: 118.90331117, 117: 116.90295398,
           124: 123.9052766, 122: 121.9034438, 112: 111.90482387, 114: 113.9027827, 115: 114.903344699},
    "Sb": {121: 120.9038120},
    "I": {127: 126.9044719},
    "Cs": {133: 132.905451961},
    "Ba": {138: 137.905247},
    "La": {139: 138.9063563},
    "Hf": {180: 179.9465570},
    "Ta": {181: 180.9479958},
    "W": {184: 183.95093092},
    "Au": {197: 196.96656879},
    "Pb": {208: 207.9766525, 206: 205.9744657, 207: 206.9758973, 204: 203.9730440},
    "Bi": {209: 208.9803991},
}

_TOKEN = re.compile(r"\[(?P<iso>\d+)(?P<iel>[A-Z][a-z]?)\](?P<icount>\d*)|(?P<el>[A-Z][a-z]?)(?P<count>\d*)")
_SURFACELAB_ISOTOPE = re.compile(r"\^(\d+)([A-Z][a-z]?)")
_CHARGE = re.compile(r"(?P<sign>[+-]+)$")  # digits before the sign count atoms: BO2- is BO2 with one charge


def parse_formula(name: str) -> tuple[list[tuple[str, int, int]], int]:
    """Split a fragment name into ``[(element, mass number, count)]`` and a signed charge.

    Examples
    --------
    >>> parse_formula("BO2-")
    ([('B', 11, 1), ('O', 16, 2)], -1)
    """
    # SurfaceLab writes subscripts as "_3" and isotopes as "^13C": C_6H_5+, ^13CC_25H_21N_2+
    text = _SURFACELAB_ISOTOPE.sub(r"[\1\2]", str(name).strip().replace("_", ""))
    charge = 0
    match = _CHARGE.search(text)
    if match:
        signs = match["sign"]
        if len(set(signs)) > 1:
            raise ToFSIMSError(f"fragment {name!r}: mixed charge signs")
        magnitude = len(signs)
        charge = magnitude if signs[0] == "+" else -magnitude
        text = text[: match.start()]
    atoms, pos = [], 0
    while pos < len(text):
        token = _TOKEN.match(text, pos)
        if token is None or token.end() == pos:
            raise ToFSIMSError(f"fragment {name!r}: cannot read a formula at {text[pos:]!r}")
        element = token["iel"] or token["el"]
        if element not in ISOTOPES:
            raise ToFSIMSError(f"fragment {name!r}: unknown element {element!r}")
        if token["iso"]:
            number = int(token["iso"])
            if number not in ISOTOPES[element]:
                raise ToFSIMSError(f"fragment {name!r}: no isotope table entry for {number}{element}")
            count = token["icount"]
        else:
            number = next(iter(ISOTOPES[element]))
            count = token["count"]
        atoms.append((element, number, int(count) if count else 1))
        pos = token.end()
    if not atoms:
        raise ToFSIMSError(f"fragment {name!r}: no elements")
    return atoms, charge


def fragment_mass(name: str) -> float:
    """Exact mass (u) of the ion ``name``, e.g. ``fragment_mass("BO-") = 27.00477``.

    m = sum(count * isotope mass) - charge * m_e

    Examples
    --------
    >>> round(fragment_mass("BO-"), 6)
    27.004769
    """
    atoms, charge = parse_formula(name)
    return float(sum(ISOTOPES[el][number] * count for el, number, count in atoms) - charge * ELECTRON_MASS)


def nominal_mass(name: str) -> int:
    """Nominal (integer) mass of ``name``."""
    atoms, _ = parse_formula(name)
    return int(sum(number * count for _, number, count in atoms))


def peak_windows(
    fragments,
    *,
    resolving_power: float = 3000.0,
    min_half_width: float = 0.05,
    background_offset: float = 0.35,
) -> xr.Dataset:
    """Integration and background windows (u) for each fragment.

    The integration window is centre +- ``max(min_half_width, 3 * m / (2 R))``: three FWHM of
    a peak at mass resolving power R. The background window has the same width and starts
    ``background_offset`` u above the peak centre (between nominal masses, where a SIMS
    spectrum has no peaks). The windows are returned as coordinates over ``fragment``.

    Examples
    --------
    >>> w = peak_windows(["BO-", "MnO-"])
    >>> round(float(w["mass_high"].sel(fragment="BO-") - w["mass_low"].sel(fragment="BO-")), 6)
    0.1
    """
    names = [str(f) for f in fragments]
    if not names:
        raise ToFSIMSError("peak_windows: no fragments given")
    centre = np.array([fragment_mass(n) for n in names])
    half = np.maximum(min_half_width, 3.0 * centre / (2.0 * resolving_power))
    bg_low = centre + background_offset
    coords = {
        "fragment": ("fragment", names),
        "fragment_mass": ("fragment", centre, {"units": "u"}),
        "mass_low": ("fragment", centre - half, {"units": "u"}),
        "mass_high": ("fragment", centre + half, {"units": "u"}),
        "background_low": ("fragment", bg_low, {"units": "u"}),
        "background_high": ("fragment", bg_low + 2 * half, {"units": "u"}),
    }
    return xr.Dataset(coords=coords, attrs={"resolving_power": resolving_power})
