"""Crystal phases for the built-in engine: symmetry, orbits, free coordinates, form factors, cell mass.

gemmi supplies the space-group operations, X-ray form-factor coefficients (IT92), Cromer-Liberman
anomalous dispersion and CIF reading; the rest is numpy.

Example
-------
>>> from xrd.recipe import PhaseSpec, SiteSpec
>>> spec = PhaseSpec("LiTMO2", "R -3 m:H", (2.85, 2.85, 14.23, 90, 90, 120),
...                  [SiteSpec("Li", (0, 0, 0.5), 0.01, {"Li": 1.0})])
>>> build_phase(spec).sites[0].multiplicity
3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import scipy.linalg

from .errors import XRDError
from .recipe import PhaseSpec, SiteSpec, parse_species

CELL_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
_TOL = 1e-4


@dataclass
class Site:
    """A site: species sharing xyz and Uiso, its orbit operators and its free-coordinate basis."""

    label: str
    xyz: np.ndarray
    uiso: float
    occupancy: dict[str, float]
    rotations: np.ndarray  # (n_orbit, 3, 3) operators generating the distinct orbit positions
    translations: np.ndarray  # (n_orbit, 3)
    free_basis: np.ndarray  # (3, n_free): allowed displacements respecting the site symmetry
    free_names: list[str] = field(default_factory=list)

    @property
    def multiplicity(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def total(self) -> float:
        return float(sum(self.occupancy.values()))

    def orbit(self, xyz=None) -> np.ndarray:
        """Fractional coordinates of every equivalent position, ``(n_orbit, 3)``."""
        xyz = self.xyz if xyz is None else np.asarray(xyz, float)
        return np.einsum("nij,j->ni", self.rotations, xyz) + self.translations


@dataclass
class Phase:
    """A crystalline phase ready for pattern calculation."""

    name: str
    spacegroup: gemmi.SpaceGroup
    cell: np.ndarray  # a b c alpha beta gamma
    sites: list[Site]
    cell_free: list[str]  # refinable cell parameters; the others follow from symmetry
    size_um: float | None = None
    mustrain: float | None = None
    preferred_orientation: tuple | None = None
    source: str = ""

    def site(self, label: str) -> Site:
        for site in self.sites:
            if site.label == label:
                return site
        raise KeyError(label)

    def constrained_cell(self, free: dict[str, float]) -> np.ndarray:
        """Full cell from the free cell parameters, applying the crystal-system constraints."""
        return constrain_cell(self.spacegroup, {**dict(zip(CELL_NAMES, self.cell)), **free})


def unique_axis(sg: gemmi.SpaceGroup) -> int:
    """Unique axis (0, 1, 2) of a monoclinic space group from its full Hermann-Mauguin symbol."""
    tokens = sg.xhm().split(":")[0].split()[1:]
    if len(tokens) == 3:
        for axis, token in enumerate(tokens):
            if token != "1":
                return axis
    return 1


def free_cell_names(sg: gemmi.SpaceGroup) -> list[str]:
    """Independent cell parameters of a space group's crystal system."""
    system = sg.crystal_system_str()
    if system == "triclinic":
        return list(CELL_NAMES)
    if system == "monoclinic":
        return ["a", "b", "c", ("alpha", "beta", "gamma")[unique_axis(sg)]]
    if system == "orthorhombic":
        return ["a", "b", "c"]
    if system == "trigonal" and sg.ext == "R" and ":R" in sg.xhm():
        return ["a", "alpha"]
    if system in ("tetragonal", "trigonal", "hexagonal"):
        return ["a", "c"]
    return ["a"]


def constrain_cell(sg: gemmi.SpaceGroup, values: dict[str, float]) -> np.ndarray:
    """``a b c alpha beta gamma`` with the crystal-system equalities imposed on ``values``."""
    a, b, c, al, be, ga = (float(values[k]) for k in CELL_NAMES)
    system = sg.crystal_system_str()
    if system == "monoclinic":
        axis = unique_axis(sg)
        angles = [90.0, 90.0, 90.0]
        angles[axis] = (al, be, ga)[axis]
        al, be, ga = angles
    elif system == "orthorhombic":
        al = be = ga = 90.0
    elif system == "trigonal" and ":R" in sg.xhm():
        b = c = a
        be = ga = al
    elif system in ("trigonal", "hexagonal"):
        b, al, be, ga = a, 90.0, 90.0, 120.0
    elif system == "tetragonal":
        b, al, be, ga = a, 90.0, 90.0, 90.0
    elif system == "cubic":
        b = c = a
        al = be = ga = 90.0
    return np.array([a, b, c, al, be, ga])


def metric(cell) -> np.ndarray:
    """Direct metric tensor G (Å²) of ``a b c alpha beta gamma``."""
    a, b, c = cell[:3]
    al, be, ga = np.radians(cell[3:6])
    return np.array([
        [a * a, a * b * np.cos(ga), a * c * np.cos(be)],
        [a * b * np.cos(ga), b * b, b * c * np.cos(al)],
        [a * c * np.cos(be), b * c * np.cos(al), c * c],
    ])


def volume(cell) -> float:
    """Unit-cell volume (Å³)."""
    det = np.linalg.det(metric(cell))
    return float(math.sqrt(det)) if det > 0 else float("nan")


def find_spacegroup(name: str, where: str) -> gemmi.SpaceGroup:
    """gemmi space group for a Hermann-Mauguin symbol or number; XRDError if there is none."""
    sg = None
    try:
        sg = gemmi.find_spacegroup_by_name(name.strip())
        if sg is None and name.strip().isdigit():
            sg = gemmi.find_spacegroup_by_number(int(name))
    except (ValueError, RuntimeError):
        sg = None
    if sg is None:
        raise XRDError(f"{where}: '{name}' is not a space group")
    return sg


def _ops(sg: gemmi.SpaceGroup) -> tuple[np.ndarray, np.ndarray]:
    rot, tran = [], []
    for op in sg.operations():
        rot.append(np.array(op.rot, float) / gemmi.Op.DEN)
        tran.append(np.array(op.tran, float) / gemmi.Op.DEN)
    return np.array(rot), np.array(tran)


def _wrap_diff(d: np.ndarray) -> np.ndarray:
    return d - np.round(d)


def make_site(spec: SiteSpec, sg: gemmi.SpaceGroup, phase: str) -> Site:
    """Orbit and site-symmetry constraints of one site.

    The free displacements are the null space of ``(R - I)`` stacked over every operator that
    maps the site onto itself (modulo lattice translations): refining only those keeps a special
    position special.
    """
    rot, tran = _ops(sg)
    xyz = np.asarray(spec.xyz, float)
    images = np.einsum("nij,j->ni", rot, xyz) + tran
    keep_r, keep_t, seen = [], [], []
    stabiliser = []
    for r, t, img in zip(rot, tran, images):
        if np.all(np.abs(_wrap_diff(img - xyz)) < _TOL):
            stabiliser.append(r - np.eye(3))
        wrapped = img - np.floor(img + _TOL)
        if any(np.all(np.abs(_wrap_diff(wrapped - s)) < _TOL) for s in seen):
            continue
        seen.append(wrapped)
        keep_r.append(r)
        keep_t.append(t)
    basis = scipy.linalg.null_space(np.vstack(stabiliser)) if stabiliser else np.eye(3)
    basis = _tidy_basis(basis)
    names = []
    for k in range(basis.shape[1]):
        col = basis[:, k]
        axis = int(np.argmax(np.abs(col)))
        names.append("xyz"[axis] if np.sum(np.abs(col) > 1e-8) == 1 else f"u{k + 1}")
    for species in spec.occupancy:
        parse_species(species)
    return Site(spec.label, xyz, float(spec.uiso), dict(spec.occupancy), np.array(keep_r), np.array(keep_t),
                basis, names)


def _tidy_basis(basis: np.ndarray) -> np.ndarray:
    """Column-echelon form so free coordinates read as x, y, z where possible (e.g. (x, 2x, z))."""
    if basis.shape[1] == 0:
        return basis
    if basis.shape[1] == 3:
        return np.eye(3)
    # reduced row echelon of basis^T gives columns with a leading 1 on the first free axis
    m = basis.T.copy()
    row = 0
    for col in range(3):
        if row >= m.shape[0]:
            break
        pivot = row + int(np.argmax(np.abs(m[row:, col])))
        if abs(m[pivot, col]) < 1e-8:
            continue
        m[[row, pivot]] = m[[pivot, row]]
        m[row] /= m[row, col]
        for other in range(m.shape[0]):
            if other != row:
                m[other] -= m[other, col] * m[row]
        row += 1
    m[np.abs(m) < 1e-10] = 0.0
    return m.T


def build_phase(spec: PhaseSpec, where: str = "recipe") -> Phase:
    """A :class:`Phase` from a recipe phase (space group + cell + sites, or a CIF through gemmi)."""
    if spec.cif is not None:
        return phase_from_cif(spec.cif, spec)
    sg = find_spacegroup(spec.space_group, f"{where}: phase {spec.name}")
    cell = constrain_cell(sg, dict(zip(CELL_NAMES, spec.cell)))
    if not np.allclose(cell, spec.cell, atol=1e-3):
        raise XRDError(f"{where}: phase {spec.name}: cell {list(spec.cell)} breaks the {sg.crystal_system_str()} "
                       f"symmetry of {sg.xhm()} (expected {cell.round(4).tolist()})")
    if not math.isfinite(volume(cell)):
        raise XRDError(f"{where}: phase {spec.name}: cell angles give no valid cell")
    sites = [make_site(s, sg, spec.name) for s in spec.sites]
    return Phase(spec.name, sg, cell, sites, free_cell_names(sg), spec.size_um, spec.mustrain,
                 spec.preferred_orientation, source=str(where))


def read_cif(path) -> tuple[gemmi.SpaceGroup, tuple[float, ...], list[SiteSpec], str]:
    """The one CIF reader of both engines: space group, cell, sites and name of a CIF, via gemmi.

    One site per CIF atom site; ion labels from the CIF charges (``O2-``); Uiso 0.01 when absent.
    The space group comes from the CIF's symmetry operations, else its H-M symbol, else its number.

    Returns
    -------
    (gemmi.SpaceGroup, (a, b, c, alpha, beta, gamma), list of SiteSpec, name)
    """
    path = Path(path)
    try:
        small = gemmi.read_small_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise XRDError(f"{path}: not a readable CIF ({exc})") from None
    sg = small.spacegroup
    if sg is None and small.spacegroup_hm:
        sg = gemmi.find_spacegroup_by_name(small.spacegroup_hm)
    if sg is None and small.spacegroup_number:
        sg = gemmi.find_spacegroup_by_number(small.spacegroup_number)
    if sg is None:
        raise XRDError(f"{path}: CIF names no known space group")
    cell = (small.cell.a, small.cell.b, small.cell.c, small.cell.alpha, small.cell.beta, small.cell.gamma)
    sites = []
    for atom in small.sites:
        symbol = atom.element.name
        label = f"{symbol}{abs(atom.charge)}{'+' if atom.charge > 0 else '-'}" if atom.charge else symbol
        uiso = atom.u_iso if atom.u_iso > 0 else 0.01
        xyz = (float(atom.fract.x), float(atom.fract.y), float(atom.fract.z))
        sites.append(SiteSpec(atom.label, xyz, float(uiso), {label: float(atom.occ)}))
    if not sites:
        raise XRDError(f"{path}: CIF has no atom sites")
    return sg, cell, sites, small.name or path.stem


def phase_from_cif(path: Path, spec: PhaseSpec | None = None) -> Phase:
    """A phase read from a CIF by :func:`read_cif` (one site per CIF atom site)."""
    path = Path(path)
    sg, cell, site_specs, cif_name = read_cif(path)
    name = spec.name if spec else cif_name
    sites = [make_site(s, sg, spec.name if spec else path.stem) for s in site_specs]
    return Phase(name, sg, np.array(cell), sites, free_cell_names(sg), spec.size_um if spec else None,
                 spec.mustrain if spec else None, spec.preferred_orientation if spec else None, source=str(path))


# ----------------------------------------------------------------------------------------------------
# Scattering factors


def form_factor_coefficients(species: str) -> np.ndarray:
    """IT92 coefficients ``[a1..a4, b1..b4, c]`` of an element or ion label; an ion IT92 does not
    tabulate (e.g. ``B3+``) is a ``ValueError``, never the neutral atom in disguise.

    ``f0(0) = a1 + a2 + a3 + a4 + c`` is the electron count (Li+ -> 2, O2- -> 10).
    """
    symbol, charge = parse_species(species)
    element = gemmi.Element(symbol)
    if element.atomic_number == 0:
        raise ValueError(f"unknown element '{symbol}'")
    coef = None
    if charge:
        gemmi.IT92_set_ignore_charge(False)  # gemmi's default ignores charges; ion tables need this
        coef = gemmi.IT92_get_exact(element, charge)
        if coef is None:
            # falling back to the neutral atom would silently change the electron count (B3+: 2 e,
            # neutral B: 5 e), which is exactly the contrast a dopant refinement depends on
            raise ValueError(f"no X-ray form factor is tabulated for the ion '{species}' (IT92); "
                             f"write '{symbol}' for the neutral atom")
    coef = coef or element.it92
    if coef is None:
        raise ValueError(f"no X-ray form factor for '{species}'")
    return np.array(coef.get_coefs(), float)


def form_factor(species: str, stol2) -> np.ndarray:
    """Non-dispersive X-ray form factor ``f0(s) = sum_i a_i exp(-b_i s^2) + c`` with ``s = sin(theta)/lambda``."""
    c = form_factor_coefficients(species)
    s2 = np.asarray(stol2, float)[..., None]
    return np.sum(c[:4] * np.exp(-c[4:8] * s2), axis=-1) + c[8]


def anomalous(species: str, wavelength: float) -> complex:
    """Cromer-Liberman ``f' + i f''`` of an element at ``wavelength`` (Å)."""
    symbol, _ = parse_species(species)
    z = gemmi.Element(symbol).atomic_number
    fp, fpp = gemmi.cromer_liberman(z=z, energy=gemmi.hc / wavelength)
    return complex(fp, fpp)


def atomic_weight(species: str) -> float:
    """Standard atomic weight (g/mol) of the element of a species label."""
    return float(gemmi.Element(parse_species(species)[0]).weight)


def cell_mass(phase: Phase, occupancies: list[dict[str, float]] | None = None) -> float:
    """Mass of the unit-cell contents (g/mol of cells), occupancies included."""
    total = 0.0
    for k, site in enumerate(phase.sites):
        occ = occupancies[k] if occupancies is not None else site.occupancy
        total += site.multiplicity * sum(o * atomic_weight(s) for s, o in occ.items())
    return total


def site_multiplicity(phase: PhaseSpec, site: SiteSpec) -> int:
    """Multiplicity (positions per cell) of a recipe site in its phase's space group."""
    return make_site(site, find_spacegroup(phase.space_group, phase.name), phase.name).multiplicity
