"""Spherical-harmonics preferred orientation (GSAS-II's cylindrical "SH" model) and uniaxial broadening axes.

The texture correction of a reflection ``h`` measured in symmetric Bragg-Brentano reflection is,
as GSAS-II evaluates it (``GSASIIstrMath.SHPOcal``, ``GSASIIlattice.GetKcl``/``GetKsl``/``CrsAng``,
git 013259a0), with cylindrical sample symmetry::

    A(h) = 1 + sum_{L,N} C(L,N) (4 pi / (2L + 1)) k_L^N(phi, beta) k_L^0(psi = 90 deg)

``phi``, ``beta`` are the polar and azimuthal angles of ``h`` in the crystal frame (polar axis
c*, except the unique axis of a monoclinic cell), ``psi = 90 deg`` the sample angle GSAS-II's
``SamAng`` gives for every 2theta in Bragg-Brentano geometry, and

    k_L^N(phi, beta) = P_L^|N|(cos phi) / sqrt(2 pi) * (sqrt 2 if N else 1) * trig(N beta)

with ``P_L^N`` the associated Legendre function normalised to ``int_0^pi P^2 sin = 1`` without the
Condon-Shortley phase (GSAS-II's Fortran ``pyplmpsi``; here :func:`scipy.special.lpmv` times
``(-1)^N`` and the norm), ``trig`` the cosine, sine or cosine + sine that the Laue class allows.
Cubic classes use Bunge's symmetrised harmonics (the ``BOH`` coefficients of GSAS-II, from Bunge,
*Texture Analysis in Materials Science*, 1993, Table 15.2.1). The harmonic names ``C(L,N)`` are
GSAS-II's, so the GSAS-II driver passes the coefficients through unchanged. The texture index is
``J = 1 + sum C^2 / (2L + 1)`` (``GSASIIlattice.textureIndex``).

In Laue classes -1, 2/m, -31m and rhombohedral axes GSAS-II's harmonics are not the same for all
members of a set of equivalent reflections; GSAS-II evaluates them at the member its powder
reflection generator lists, and so does the built-in engine (:func:`gsas2_representatives`), so
that both give the same numbers there too (a GSAS-II definition, not a physical average).

Why hand-written: GSAS-II is optional (the built-in engine must work without it) and no
maintained library implements this crystal-frame convention; the angle conventions below are
GSAS-II's own, ported line by line (including its quirks, stated where they occur) so both
engines compute the same number.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import lpmv

#: Harmonic orders offered for powder preferred orientation (even, 2 to 6).
SH_ORDERS = (2, 4, 6)
#: Laue classes in which GSAS-II's crystal harmonics are the same for every member of a set of
#: equivalent reflections (checked against GSAS-II's own functions, tests/test_xrd_texture.py). In
#: -1, 2/m, 31m, 3R and 3mR they are not, and GSAS-II evaluates them at the one member its reflection
#: generator lists (``GenHLaue``); both engines then use that member (:func:`gsas2_representatives`).
SH_LAUE = ("mmm", "4/m", "4/mmm", "3", "3m1", "6/m", "6/mmm", "m3", "m3m")
MEMBER_LAUE = ("-1", "2/m", "31m", "3R", "3mR")
_RSQ2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQ3 = 1.732050807569  # GSAS-II's literal
#: Bunge's cubic coefficients for L = 4, 6 (GSAS-II ``GSASIIlattice.BOH``, first row: N = 1).
_BOH = {4: (0.30469720, 0.36418281), 6: (-0.14104740, 0.52775103)}


def gsas2_laue(sg) -> tuple[str, str]:
    """GSAS-II's Laue-class symbol and unique axis (``SGLaue``, ``SGUniq``) of a gemmi space group.

    Trigonal classes follow GSAS-II: ``3``/``3m1``/``31m`` in hexagonal axes, ``3R``/``3mR`` in
    rhombohedral axes; the unique axis (``a``, ``b``, ``c``) is given for monoclinic groups only.

    Examples
    --------
    >>> import gemmi
    >>> gsas2_laue(gemmi.find_spacegroup_by_name("R -3 m:H")), gsas2_laue(gemmi.find_spacegroup_by_name("P 1 21/c 1"))
    (('3m1', ''), ('2/m', 'b'))
    """
    laue = sg.laue_str()
    tokens = sg.hm.split()
    if laue == "2/m":
        axes = [i for i, t in enumerate(tokens[1:4]) if t != "1"]
        return "2/m", "abc"[axes[0]] if len(axes) == 1 else "b"
    if laue in ("-3", "-3m"):
        if sg.ext == "R":
            return ("3R" if laue == "-3" else "3mR"), ""
        if laue == "-3":
            return "3", ""
        # P -3 1 m, P 3 1 2, P 3 1 c ...: the second position is 1
        return ("31m" if len(tokens) > 2 and tokens[2] == "1" else "3m1"), ""
    return {"-1": "-1", "mmm": "mmm", "4/m": "4/m", "4/mmm": "4/mmm", "6/m": "6/m", "6/mmm": "6/mmm",
            "m-3": "m3", "m-3m": "m3m"}[laue], ""


def _listed(hkl: np.ndarray, laue: str, unique: str) -> np.ndarray:
    """Whether GSAS-II's powder reflection generator (``GSASIIlattice.GenHLaue``) lists each ``hkl``
    (its loop bounds written as conditions, for the classes of :data:`MEMBER_LAUE`)."""
    h, k, l = (hkl[:, i] for i in range(3))
    if laue == "-1":
        return h >= np.where((k < 0) | ((k == 0) & (l < 0)), 1, 0)
    if laue == "2/m":
        # GenHLaue loops over the indices cycled so that the unique axis comes first (SwapIndx)
        p0, p1, p2 = {"a": (h, k, l), "b": (k, l, h)}.get(unique, (l, h, k))
        return (p0 >= 0) & (p2 >= np.where(p1 < 0, 1, 0))
    if laue in ("3R", "3mR"):  # generated in hexagonal (obverse) indices, then converted (Hx2Rh)
        h, k, l = h - k, k - l, h + k + l
    ok = h >= np.where(l < 0, 1, 0)
    if laue in ("3", "3R"):
        return ok & (k >= -np.trunc((h - 1.0) / 2.0)) & (k <= h)
    if laue in ("3m1", "3mR"):
        return ok & (k >= 0) & (k <= np.where(l < 0, h - 1, h))
    if laue == "31m":
        return ok & (k >= np.where(l < 0, 1, 0)) & (k <= h)
    raise ValueError(f"no GenHLaue rule for Laue class {laue!r}")


def gsas2_representatives(refl, laue: str, unique: str = "") -> np.ndarray:
    """The member of each set of equivalent reflections that GSAS-II lists for a powder pattern.

    For the classes of :data:`MEMBER_LAUE` (elsewhere the reflections' own representatives are
    returned: every member gives the same texture factor there). GSAS-II turns a rhombohedral
    index with a negative first component into its Friedel mate (``Hx2Rh``); the SH factor is even.
    """
    if laue not in MEMBER_LAUE:
        return refl.hkl
    members = np.asarray(refl.members)
    listed = _listed(members, laue, unique)
    if laue in ("3R", "3mR"):
        members = np.where(members[:, :1] < 0, -members, members)
    out = np.zeros((len(refl), 3), members.dtype)
    count = np.bincount(refl.member_of[listed], minlength=len(refl))
    if np.any(count != 1):
        raise ValueError(f"GSAS-II's reflection rule for Laue class {laue} does not pick one member per reflection")
    out[refl.member_of[listed]] = members[listed]
    return out


def _allowed(laue: str, order: int, n: int) -> bool:
    """GSAS-II ``OdfChk``: may the harmonic ``C(order, n)`` appear in Laue class ``laue``?"""
    if order % 2 or abs(n) > order:
        return False
    if laue == "-1":
        return True
    if laue == "2/m":
        return abs(n) % 2 == 0
    if laue == "mmm":
        return abs(n) % 2 == 0 and n >= 0
    if laue == "4/m":
        return abs(n) % 4 == 0
    if laue == "4/mmm":
        return abs(n) % 4 == 0 and n >= 0
    if laue in ("3R", "3"):
        return abs(n) % 3 == 0
    if laue in ("3mR", "3m1", "31m"):
        return abs(n) % 3 == 0 and n >= 0
    if laue == "6/m":
        return abs(n) % 6 == 0
    if laue == "6/mmm":
        return abs(n) % 6 == 0 and n >= 0
    if laue in ("m3", "m3m"):
        return n > 0 and n <= (order // 12 if order % 12 == 2 else order // 12 + 1)
    raise ValueError(f"unknown Laue class {laue!r}")


def sh_names(laue: str, order: int) -> list[str]:
    """GSAS-II's harmonic names ``C(L,N)`` up to ``order`` (``GenSHCoeffT(laue, '0', order, False)``).

    Examples
    --------
    >>> sh_names("3m1", 4), sh_names("m3m", 6)
    (['C(2,0)', 'C(4,0)', 'C(4,3)'], ['C(4,1)', 'C(6,1)'])
    """
    return [f"C({L},{n})" for L in range(2, order + 1, 2) for n in range(-L, L + 1) if _allowed(laue, L, n)]


def parse_name(name: str) -> tuple[int, int]:
    """``"C(4,3)"`` -> ``(4, 3)``."""
    inner = name.strip()
    if not (inner.startswith("C(") and inner.endswith(")")):
        raise ValueError(f"'{name}' is not a harmonic name C(L,N)")
    L, n = (int(v) for v in inner[2:-1].split(","))
    return L, n


def _cell_metric(cell):
    from .structure import metric

    g = metric(cell)
    return np.linalg.inv(g)


def crystal_angles(hkl, cell, laue: str, unique: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Polar ``phi`` and azimuth ``beta`` (deg) of reflections in GSAS-II's crystal frame (``CrsAng``).

    The polar axis is c* (the unique axis for monoclinic ``2/m``). GSAS-II's own test for
    rhombohedral axes compares with names that never occur, so ``3R``/``3mR`` also measure phi
    from c* (here too, so the engines agree).
    """
    h = np.atleast_2d(np.asarray(hkl, float))
    a, b, c, al, be, ga = (float(v) for v in cell)
    gstar = _cell_metric(cell)
    dh = np.einsum("ni,ij,nj->n", h, gstar, h)
    ref = np.array([0.0, 0.0, 1.0])
    if laue == "2/m":
        ref = {"a": np.array([1.0, 0, 0]), "b": np.array([0, 1.0, 0])}.get(unique, ref)
    dr = ref @ gstar @ ref
    dhr = (h @ gstar @ ref) / np.sqrt(dr * dh)
    phi = np.degrees(np.arccos(np.clip(dhr, -1.0, 1.0)))
    H, K, L = h.T
    cosd, sind = (lambda x: math.cos(math.radians(x))), (lambda x: math.sin(math.radians(x)))
    if laue == "-1" or (laue == "2/m" and unique not in ("a", "b")):
        ba, bb = K * a / (b - H * cosd(ga)), H * sind(ga) ** 2
    elif laue == "2/m" and unique == "a":
        ba, bb = L * b / (c - K * cosd(al)), K * sind(al) ** 2
    elif laue == "2/m":
        ba, bb = H * c / (a - L * cosd(be)), L * sind(be) ** 2
    elif laue in ("mmm", "4/m", "4/mmm"):
        ba, bb = K * a, H * b
    elif laue in ("3R", "3mR"):
        ba, bb = H + K - 2.0 * L, _SQ3 * (H - K)
    elif laue in ("m3", "m3m"):
        ba, bb = K, H
    else:
        ba, bb = H + 2.0 * K, _SQ3 * H
    beta = np.degrees(np.arctan2(ba, bb))
    return phi, beta


def _plm(L: int, m: int, angle_deg) -> np.ndarray:
    """Normalised associated Legendre function of cos(angle), GSAS-II's ``pyplmpsi`` convention."""
    m = abs(m)
    x = np.cos(np.radians(np.asarray(angle_deg, float)))
    norm = math.sqrt((2 * L + 1) / 2.0 * math.factorial(L - m) / math.factorial(L + m))
    return (-1) ** m * norm * lpmv(m, L, x)


def crystal_harmonic(L: int, n: int, laue: str, phi, beta) -> np.ndarray:
    """``k_L^N(phi, beta)`` of GSAS-II's ``GetKcl`` (the cosine/sine choice by Laue class is GSAS-II's)."""
    beta = np.radians(np.asarray(beta, float))
    if laue in ("m3", "m3m"):
        out = np.zeros_like(np.asarray(phi, float))
        for j in range(0, L + 1, 4):
            out = out + _BOH[L][j // 4] * _plm(L, j, phi) * np.cos(j * beta)
        return out
    p = _plm(L, n, phi) * _RSQ2PI * (math.sqrt(2.0) if n else 1.0)
    if laue in ("mmm", "4/mmm", "6/mmm", "3m1", "31m"):
        if laue in ("3m1", "31m") and n % 6 == 3:
            return p * np.sin(n * beta)
        return p * np.cos(n * beta)
    return p * (np.cos(n * beta) + np.sin(n * beta))


def sample_harmonic(L: int) -> float:
    """``k_L^0(psi = 90 deg)``: cylindrical sample symmetry, symmetric Bragg-Brentano reflection."""
    return float(_plm(L, 0, 90.0)) * _RSQ2PI


def sh_factor(hkl, cell, laue: str, unique: str, coefficients: dict[str, float]) -> np.ndarray:
    """Texture correction ``A(h)`` of each reflection (1 when every coefficient is 0).

    Examples
    --------
    >>> float(sh_factor([[0, 0, 3]], [2.88, 2.88, 14.2, 90, 90, 120], "3m1", "", {"C(2,0)": 0.0})[0])
    1.0
    """
    h = np.atleast_2d(np.asarray(hkl, float))
    out = np.ones(h.shape[0])
    if not coefficients:
        return out
    phi, beta = crystal_angles(h, cell, laue, unique)
    for name, value in coefficients.items():
        if value == 0.0:
            continue  # exactly no texture from this term
        L, n = parse_name(name)
        out = out + value * (4.0 * math.pi / (2 * L + 1)) * crystal_harmonic(L, n, laue, phi, beta) * sample_harmonic(L)
    return out


def texture_index(coefficients: dict[str, float]) -> float:
    """``J = 1 + sum_{L,N} C(L,N)^2 / (2L + 1)`` (1 for a random powder)."""
    return 1.0 + sum(v * v / (2 * parse_name(k)[0] + 1) for k, v in coefficients.items())


def texture_index_gradient(coefficients: dict[str, float]) -> dict[str, float]:
    """``dJ/dC(L,N) = 2 C / (2L + 1)`` (for the esd of :func:`texture_index`)."""
    return {k: 2.0 * v / (2 * parse_name(k)[0] + 1) for k, v in coefficients.items()}


def axis_cosines(hkl, axis, cell) -> np.ndarray:
    """Cosine of the angle between each reciprocal vector ``h`` and the direction ``axis`` (given as
    indices in the same reciprocal metric, as GSAS-II's ``CosSinAngle(H, axis, G)`` for uniaxial
    size and microstrain)."""
    gstar = _cell_metric(cell)
    h = np.atleast_2d(np.asarray(hkl, float))
    v = np.asarray(axis, float)
    hn = np.sqrt(np.einsum("ni,ij,nj->n", h, gstar, h))
    return np.clip((h @ gstar @ v) / (hn * math.sqrt(v @ gstar @ v)), -1.0, 1.0)


def axis_is_symmetric(sg, cell, axis) -> bool:
    """True when every Laue operation keeps the angle between a reflection and ``axis`` (up to sign),
    so uniaxial broadening is the same for all equivalent reflections."""
    from .reflections import laue_rotations

    rng = np.random.default_rng(12345)
    h = rng.normal(size=(4, 3))
    base = np.abs(axis_cosines(h, axis, cell))
    for rot in laue_rotations(sg):
        if not np.allclose(np.abs(axis_cosines(h @ rot, axis, cell)), base, atol=1e-9):
            return False
    return True


def negative_factor_note(phase: str, factors) -> list[tuple[str, str]]:
    """A quality warning when the harmonic texture factor is <= 0 for some reflection (a negative pole
    density: the truncated series cannot describe the texture, or the coefficients ran away)."""
    factors = np.asarray(factors, float)
    bad = int(np.sum(factors <= 0.0))
    if not bad:
        return []
    return [("warning", f"the spherical-harmonics texture factor of {phase} is <= 0 for {bad} of {factors.size} "
                        f"reflections (minimum {factors.min():.3g}): a negative pole density is unphysical")]
