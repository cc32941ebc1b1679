"""GSAS-II driver: run a doptrace recipe through GSASIIscriptable, return the shared XRD result Dataset.

The recipe (:func:`xrd.recipe.load_recipe`) is translated one to one into a GSAS-II project (.gpx) in
a work folder: the pattern is written as a three-column ``.xye`` (2theta, counts, esd) and the
instrument as a ``.instprm``, so GSAS-II fits exactly the points and weights the built-in engine fits;
phases are built from space group + cell + sites (a mixed site is one GSAS-II atom per species at
the same xyz, tied by equivalences on Uiso and the free coordinates); each dopant becomes one extra
atom per candidate site with the constraint equations

    sum_i Afrac(host_i) + sum_j Afrac(dopant_j) = site total,   Afrac(host_i) = (o_i / o_1) Afrac(host_1),

so one fraction per dopant and site (or per shared group) is refined, as in :mod:`xrd.dopant`. A
Le Bail phase is a phase without atoms with GSAS-II's HAP ``LeBail`` flag on (:meth:`_Project.lebail_start`). Stages are run
cumulatively (the GSAS-II convention), then the values, esds (constrained ones from
``Covariance['depSigDict']``), residuals, curves, reflections and the correlation matrix are read
back into :func:`doptrace.xrd.rietveld.build_result` so both engines return the same layout (``engine="gsas2"``).

GSAS-II is optional: :func:`available` says whether ``import GSASII`` works; :func:`refine` raises
:class:`~xrd.errors.XRDError` with the reason when it does not.

Conventions kept from GSAS-II: ``scale`` is GSAS-II's histogram scale x phase fraction (about 100x
the built-in engine's, whose profiles are per degree rather than per centidegree); esds are
GSAS-II's covariance as GSAS-II computes it. Known GSAS-II quirks (version at git 013259a0), stated
so nobody mistakes them for doptrace's: ``getCellEsd`` contracts d(cell)/dA over the wrong index
(hexagonal a, b esds 5/3 too large; this driver propagates the A_ij covariance itself and keeps
GSAS-II's numbers in ``attrs["gsas2_cell_esd"]``); and the analytic position derivative of a
symmetry-tied A0 (cubic, tetragonal, hexagonal/trigonal) keeps only the h^2 term, so GSAS-II's own
covariance overstates those cell esds (measured here: hexagonal FAP a x2.7, cubic LaB6 a x1.6
against the Fisher information of GSAS-II's own pattern; c, monoclinic cells unaffected) and its
Marquardt fixed point is not the chi² minimum (FAP a 4 esd off, Li-rich B fractions 0.2 esd; see
tests/test_xrd_gsas2_trace.py). That is left as GSAS-II reports it.

Example
-------
>>> from xrd import gsas2
>>> if gsas2.available():                                        # doctest: +SKIP
...     result = gsas2.refine("examples/xrd/fluorapatite.toml")
...     float(result.rwp)
9.83
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.atomic import write_text

from .errors import XRDError
from .profiles import DEFAULT_SIZE_UM, SIZE_BOUNDS_UM

#: GSAS-II atom-flag letter of each recipe group that lives on atoms.
_ATOM_FLAGS = {"xyz": "X", "uiso": "U"}
#: with Le Bail phases each stage is refined again until Rwp moves less than this (points), at most this often
LEBAIL_RWP_TOLERANCE = 0.002
LEBAIL_REPEATS = 8
#: GSAS-II Le Bail extraction cycles (DoLeBail, nothing else refined) before the first stage
LEBAIL_START_CYCLES = 10
_XYZ = ("x", "y", "z")


# ----------------------------------------------------------------------------------------- import


_G2 = None
_IMPORT_ERROR = ""


def _gsas2():
    """The ``GSASII.GSASIIscriptable`` module (imported once, its start-up chatter swallowed)."""
    global _G2, _IMPORT_ERROR
    if _G2 is None and not _IMPORT_ERROR:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                import GSASII.GSASIIscriptable as G2sc  # noqa: N813 - GSAS-II's customary alias

                G2sc.SetPrintLevel("none")
            _G2 = G2sc
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
            _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
    return _G2


def available() -> bool:
    """True when GSAS-II (``import GSASII.GSASIIscriptable``) can be used in this Python."""
    return _gsas2() is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False ("" when GSAS-II is usable)."""
    _gsas2()
    return "" if _G2 is not None else f"GSAS-II is not installed or not importable ({_IMPORT_ERROR})"


# ------------------------------------------------------------------------------------ file writers


def write_xye(path, two_theta, counts, esd) -> Path:
    """Write a pattern as three columns (2theta deg, counts, esd) that GSAS-II's xye reader takes.

    Weights follow :func:`xrd.read.weights`: a zero or non-finite esd means weight 0, written as an
    infinite esd (GSAS-II's reader computes 1/esd^2 = 0; a 0 there would mean 1/counts instead).
    """
    path = Path(path)
    lines = ["/* doptrace pattern for GSAS-II: 2theta(deg) counts esd */"]
    for x, y, s in zip(np.asarray(two_theta, float), np.asarray(counts, float), np.asarray(esd, float)):
        lines.append(f"{x:.8f} {y:.10g} {s:.10g}" if np.isfinite(s) and s > 0 else f"{x:.8f} {y:.10g} inf")
    write_text(path, "\n".join(lines) + "\n")
    return path


def write_instprm(path, inst) -> Path:
    """Write a GSAS-II ``.instprm`` (lab X-ray, constant wavelength) from an instrument spec.

    ``inst`` has ``wavelengths``, ``ka2_ratio``, ``polarization`` (or ``monochromator_angle``),
    ``zero``, ``U V W X Y Z SH_L`` (GSAS-II units).
    """
    path = Path(path)
    pol = _polarization(inst)
    lam1, lam2 = float(inst.wavelengths[0]), float(inst.wavelengths[1])
    lines = ["#GSAS-II instrument parameter file; do not add/delete items!", "Type:PXC", "Bank:1.0"]
    if math.isfinite(lam2) and lam2 > 0 and inst.ka2_ratio > 0:
        lines += [f"Lam1:{lam1!r}", f"Lam2:{lam2!r}", f"I(L2)/I(L1):{float(inst.ka2_ratio)!r}"]
    else:
        lines += [f"Lam:{lam1!r}"]
    lines += [f"Zero:{float(inst.zero)!r}", f"Polariz.:{pol!r}", "Azimuth:0.0"]
    lines += [f"{k}:{float(getattr(inst, k))!r}" for k in ("U", "V", "W", "X", "Y", "Z")]
    lines += [f"SH/L:{float(inst.SH_L)!r}"]
    write_text(path, "\n".join(lines) + "\n")
    return path


def _polarization(inst) -> float:
    """GSAS-II ``Polariz.`` p; a monochromator angle 2theta_m maps exactly onto it.

    (1 + cos^2 2theta_m cos^2 2theta) / (1 + cos^2 2theta_m) = p + (1 - p) cos^2 2theta with
    p = 1 / (1 + cos^2 2theta_m): the same angular shape, the normalisation goes into the scale.
    """
    pol = getattr(inst, "polarization", None)
    if pol is not None:
        return float(pol)
    mono = getattr(inst, "monochromator_angle", None)
    if mono is None:
        return 0.5
    c2 = math.cos(math.radians(float(mono))) ** 2
    return 1.0 / (1.0 + c2)


# ------------------------------------------------------------------------------------- structures


def _species(label: str) -> tuple[str, int]:
    from .recipe import parse_species

    return parse_species(label)


def _g2_type(label: str) -> str:
    """GSAS-II atom type of a recipe species: ``"Li+"`` -> ``"Li+1"``, ``"O2-"`` -> ``"O-2"``, ``"Mn"``.

    An ion is used only where the built-in engine uses one too (gemmi's IT92 table has it, see
    :func:`xrd.structure.form_factor_coefficients`) and GSAS-II tabulates it; otherwise the neutral
    atom, so both engines compute the same structure factors.
    """
    import gemmi

    from GSASII import atmdata

    symbol, charge = _species(label)
    if gemmi.Element(symbol).atomic_number == 0 or symbol not in atmdata.XrayFF:
        # GSAS-II would silently turn an unknown symbol into H
        raise ValueError(f"'{label}' is not a chemical element")
    if charge == 0:
        return symbol
    name = f"{symbol}{'+' if charge > 0 else '-'}{abs(charge)}"
    if gemmi.IT92_get_exact(gemmi.Element(symbol), charge) is not None and name in atmdata.XrayFF:
        return name
    return symbol


def _phase_model(spec, where: str):
    """Space-group name, cell and :class:`~xrd.recipe.SiteSpec` list of a recipe phase.

    A CIF phase is read by the built-in engine's reader (:func:`xrd.structure.read_cif`), so both
    engines see the same sites.
    """
    from .structure import read_cif

    if spec.cif is None:  # also every Le Bail phase (the recipe keeps only its space group and cell)
        return spec.space_group, tuple(spec.cell), list(spec.sites)
    sg, cell, sites, _ = read_cif(spec.cif)
    return sg.xhm(), cell, sites


def _g2_space_group(name: str, where: str, same_setting: bool = True):
    """GSAS-II space-group symbol for a (gemmi-style) name, checked to give the same operations.

    ``same_setting=False`` (Le Bail phases) skips that check: an origin shift changes no reflection
    condition, so ``F d -3 m`` in origin choice 1 or 2 extracts the same reflections.
    """
    import gemmi

    from GSASII import GSASIIspc as G2spc

    try:  # gemmi's reading of the name, as the built-in engine (xrd.structure.find_spacegroup)
        sg = gemmi.find_spacegroup_by_name(str(name).strip())
        if sg is None and str(name).strip().isdigit():
            sg = gemmi.find_spacegroup_by_number(int(name))
    except (RuntimeError, ValueError):
        sg = None
    if sg is None:
        raise XRDError(f"{where}: '{name}' is not a space group")
    symbol = sg.hm + (" r" if sg.ext == "R" else "")
    err, sgdata = G2spc.SpcGroup(symbol)
    if err:
        raise XRDError(f"{where}: GSAS-II does not know space group '{symbol}'")
    # same setting? compare the orbit of a general point under both operation sets
    point = np.array([0.1234, 0.3456, 0.2789])
    ours = {tuple(np.round(np.mod(op.apply_to_xyz(point.tolist()), 1.0), 5) % 1.0) for op in sg.operations()}
    theirs = {tuple(np.round(np.mod(p, 1.0), 5) % 1.0) for p, *_ in G2spc.GenAtom(point, sgdata, All=True)}
    if ours != theirs and same_setting:
        raise XRDError(
            f"{where}: space group '{name}' is a setting GSAS-II does not use for '{symbol}' "
            "(give the standard setting, e.g. origin choice 2)"
        )
    return symbol


class _Site:
    """One recipe site in the GSAS-II project: its atoms (species -> atom index) and dopant role."""

    def __init__(self, phase: str, phase_index: int, spec, g2_symbol: str):
        self.phase = phase
        self.phase_index = phase_index
        self.label = spec.label
        self.key = f"{phase}:{spec.label}"
        self.spec = spec
        self.atoms: dict[str, int] = {}  # species label -> GSAS-II atom index in its phase
        self.dopants: dict[str, str] = {}  # dopant element -> its atom key when this is a candidate site
        self.free_axes: list[int] = _free_axes(spec.xyz, g2_symbol)

    def var(self, name: str, species: str) -> str:
        return f"{self.phase_index}::{name}:{self.atoms[species]}"


def _free_axes(xyz, symbol: str) -> list[int]:
    """Indices (0, 1, 2 = x, y, z) of the independent free coordinates of a position."""
    from GSASII import GSASIIspc as G2spc

    _, sgdata = G2spc.SpcGroup(symbol)
    sym = G2spc.SytSym(list(xyz), sgdata)[0]
    codes = G2spc.GetCSxinel(sym)[0]
    seen, axes = set(), []
    for axis, code in enumerate(codes):
        if code and code not in seen:
            seen.add(code)
            axes.append(axis)
    return axes


class _Project:
    """Builds and runs the GSAS-II project of one recipe (state: the project, its sites and names)."""

    def __init__(self, recipe, pattern: xr.DataArray, inst, workdir: Path):
        self.G2 = _gsas2()
        self.recipe = recipe
        self.where = str(recipe.path)
        self.workdir = workdir
        self.log = io.StringIO()
        x = np.asarray(pattern["two_theta"].values, float)
        y = np.asarray(pattern.values, float)
        esd = np.asarray(pattern["esd"].values, float) if "esd" in pattern.coords else np.sqrt(np.clip(y, 0, None))
        lo, hi = recipe.two_theta_range or (float(x.min()), float(x.max()))
        inside = (x >= lo - 1e-9) & (x <= hi + 1e-9)
        if inside.sum() < 10:
            raise XRDError(f"{self.where}: fewer than 10 data points inside the 2theta range [{lo}, {hi}]")
        self.x, self.y, self.esd = x, y, esd
        self.limits = (float(x[inside].min()), float(x[inside].max()))
        self.inst = inst
        try:
            with self._quiet():
                self._build()
        except XRDError:
            raise
        except Exception as exc:  # noqa: BLE001 - GSAS-II raises bare Exceptions (bad element, ...)
            raise XRDError(f"{self.where}: GSAS-II could not build the project ({type(exc).__name__}: {exc})") from None

    @contextlib.contextmanager
    def _quiet(self):
        """GSAS-II prints progress with print(); keep it in a log instead of the user's terminal."""
        with contextlib.redirect_stdout(self.log):
            yield

    # -------------------------------------------------------------------------------- building
    def _build(self):
        G2 = self.G2
        recipe = self.recipe
        data_file = write_xye(self.workdir / "pattern.xye", self.x, self.y, self.esd)
        inst_file = write_instprm(self.workdir / "instrument.instprm", self.inst)
        self.gpx = G2.G2Project(newgpx=str(self.workdir / "doptrace.gpx"))
        self.hist = self.gpx.add_powder_histogram(str(data_file), str(inst_file), fmthint="xye")
        sample = self.hist.data["Sample Parameters"]
        sample["Type"] = "Bragg-Brentano"
        sample["Gonio. radius"] = float(self.inst.radius_mm)
        self.hist.Limits("lower", self.limits[0])
        self.hist.Limits("upper", self.limits[1])
        if recipe.exclude:
            self.hist.Excluded([[lo, hi] for lo, hi in recipe.exclude
                                if hi > self.limits[0] and lo < self.limits[1]])
        bkg = self.hist.data["Background"][0]
        coeffs = list(recipe.background_coefficients)[: recipe.background_terms]
        coeffs += [0.0] * (recipe.background_terms - len(coeffs))
        if not recipe.background_coefficients:
            coeffs[0] = float(np.median(self.y[self.y > 0])) if np.any(self.y > 0) else 1.0
        bkg[:] = ["chebyschev-1", False, recipe.background_terms, *coeffs]

        self.phases = []  # (name, G2Phase)
        self.sh_terms: list[list[str]] = []  # per phase: GSAS-II harmonic names refined as PHASE:C(L,N)
        self.sites: list[_Site] = []
        for index, spec in enumerate(recipe.phases):
            self._add_phase(index, spec)
        self._add_dopant()
        self._add_occupancy_parameters()
        self._align_ties()
        self.gpx.index_ids()  # saves and indexes every atom, so constraint variables resolve
        self._add_constraints()
        self._add_occupancy_constraints()
        self._add_ties()

    def _add_occupancy_parameters(self):
        """Atoms for every species an ``[[exchange]]``/``[[substitution]]`` moves, at the start amounts.

        The amount ``x`` of each parameter is the Afrac of its first term's atom; the other moved
        occupancies follow by constraint equations (:meth:`_add_occupancy_constraints`).
        """
        self.occupancy_vars = {}  # parameter name -> (site, species) whose Afrac is x
        ops = self.recipe.occupancy_parameters
        if not ops:
            return
        by_key = {s.key: s for s in self.sites}
        phases = dict(self.phases)
        moved: dict[tuple[str, str], float] = {}
        for op in ops:
            for key, species, coef in op.terms:
                site = by_key.get(key)
                if site is None:
                    raise XRDError(f"{self.where}: {op.kind} {op.name}: unknown site '{key}' ({op.line})")
                if site.dopants:
                    raise XRDError(f"{self.where}: site {key} is both a dopant candidate and in {op.kind} {op.name}; "
                                   f"the GSAS-II driver keeps them apart ({op.line})")
                if species not in site.atoms:
                    self._add_atom(phases[site.phase], site, species, 0.0)
                moved[(key, species)] = moved.get((key, species), 0.0) + coef * op.start
            self.occupancy_vars[op.name] = (by_key[op.terms[0][0]], op.terms[0][1])
        for (key, species), delta in moved.items():
            site = by_key[key]
            phase = phases[site.phase]
            cx = phase.data["General"]["AtomPtrs"][0]
            base = site.spec.occupancy.get(species, 0.0)
            phase.data["Atoms"][site.atoms[species]][cx + 3] = base + delta
        self.occupancy_atoms = set(moved)  # (site, species) whose Afrac an occupancy parameter moves

    def _add_occupancy_constraints(self):
        """Afrac(site, species) - sum_i coef_i x_i = recipe occupancy, for every moved non-representative atom."""
        ops = self.recipe.occupancy_parameters
        if not ops:
            return
        by_key = {s.key: s for s in self.sites}
        rep = {(site.key, species): name for name, (site, species) in self.occupancy_vars.items()}
        equations: dict[tuple[str, str], list[tuple[str, float]]] = {}
        for op in ops:
            for key, species, coef in op.terms:
                if rep.get((key, species)) == op.name:
                    continue
                equations.setdefault((key, species), []).append((op.name, coef))
        for (key, species), terms in equations.items():
            if (key, species) in rep:
                raise XRDError(f"{self.where}: {species} on {key} is both the amount of {rep[(key, species)]} and "
                               "moved by another occupancy parameter; give them separate species")
            site = by_key[key]
            names = [site.var("Afrac", species)]
            mults = [1.0]
            for pname, coef in terms:
                rsite, rspecies = self.occupancy_vars[pname]
                names.append(rsite.var("Afrac", rspecies))
                mults.append(-coef)
            self.gpx.add_EqnConstr(float(site.spec.occupancy.get(species, 0.0)), names, mults, reloadIdx=False)

    def _tie_var(self, name: str, line: str) -> str:
        """GSAS-II variable of a built-in parameter name that a ``[[tie]]`` may use."""
        parts = name.split(":")
        phase_index = {n: i for i, (n, _) in enumerate(self.phases)}
        by_key = {s.key: s for s in self.sites}
        if name in getattr(self, "occupancy_vars", {}):
            site, species = self.occupancy_vars[name]
            return site.var("Afrac", species)
        if len(parts) == 2 and parts[0] in phase_index:
            index = phase_index[parts[0]]
            if parts[1] == "scale" and len(self.phases) > 1:
                return f"{index}:0:Scale"
            if parts[1] in self.sh_terms[index]:
                return f"{index}:0:{parts[1]}"
            if parts[1] in ("size", "mustrain", "size_axial", "mustrain_axial"):
                return f"{index}:0:{'Size' if parts[1].startswith('size') else 'Mustrain'};" + \
                    ("a" if parts[1].endswith("axial") else "i")
        if len(parts) == 3 and f"{parts[0]}:{parts[1]}" in by_key:
            site = by_key[f"{parts[0]}:{parts[1]}"]
            first = next(iter(site.atoms))
            if parts[2] == "uiso":
                return site.var("AUiso", first)
            if parts[2] in _XYZ and _XYZ.index(parts[2]) in site.free_axes:
                return site.var(f"dA{parts[2]}", first)
        raise XRDError(f"{self.where}: [[tie]] on '{name}' is not supported by the GSAS-II driver ({line})")

    def _align_ties(self):
        """Start values satisfying every tie (as the built-in engine sets them), before GSAS-II shifts them."""
        for tie in self.recipe.ties:
            parts, src = tie.parameter.split(":"), tie.same_as.split(":")
            by_key = {s.key: s for s in self.sites}
            if len(parts) == 3 and len(src) == 3 and parts[2] in ("uiso",) + _XYZ:
                site, source = by_key.get(":".join(parts[:2])), by_key.get(":".join(src[:2]))
                if site is None or source is None:
                    continue
                phase = dict(self.phases)[site.phase]
                sphase = dict(self.phases)[source.phase]
                cx, _, _, cia = phase.data["General"]["AtomPtrs"]
                offset = cia + 1 if parts[2] == "uiso" else cx + _XYZ.index(parts[2])
                soff = cia + 1 if src[2] == "uiso" else cx + _XYZ.index(src[2]) if src[2] in _XYZ else None
                if soff is None:
                    continue
                value = tie.factor * float(sphase.data["Atoms"][next(iter(source.atoms.values()))][soff])
                for index in site.atoms.values():
                    phase.data["Atoms"][index][offset] = value

    def _add_ties(self):
        for tie in self.recipe.ties:
            self.gpx.add_EqnConstr(0.0, [self._tie_var(tie.parameter, tie.line), self._tie_var(tie.same_as, tie.line)],
                                   [1.0, -float(tie.factor)], reloadIdx=False)

    def _add_phase(self, index: int, spec):
        where = f"{self.where}: phase {spec.name}"
        space_group, cell, sites = _phase_model(spec, where)
        symbol = _g2_space_group(space_group, where, same_setting=not spec.lebail)
        phase = self.gpx.add_phase(phasename=spec.name, spacegroup=symbol, cell=list(cell), histograms=[self.hist])
        if phase.name != spec.name:
            raise XRDError(f"{where}: GSAS-II renamed the phase to {phase.name}")
        for site_spec in sites:
            site = _Site(spec.name, index, site_spec, symbol)
            for species, occ in site_spec.occupancy.items():
                self._add_atom(phase, site, species, occ)
            self.sites.append(site)
        hap = phase.data["Histograms"][self.hist.name]
        # a Le Bail phase: no atoms, GSAS-II's LeBail flag (Fc^2 = extracted Fo^2 at every cycle); its
        # scale stays fixed (the extracted intensities carry it)
        hap["LeBail"] = bool(spec.lebail)
        # GSAS-II's isotropic size (µm) and mustrain (ppm) with their LGmix, exactly the recipe's; no
        # size given means 10 µm in both engines (GSAS-II's default and the upper end of the range it
        # clamps refined sizes to, 0.001-10 µm), so no default depends on a GSAS-II clamp
        # uniaxial: GSAS-II's [equatorial (;i), axial (;a), LGmix] about the axis hkl (HAP item [3])
        size = spec.size_um if spec.size_um is not None else DEFAULT_SIZE_UM
        strain = spec.mustrain if spec.mustrain is not None else 0.0
        for key, value, axis, axial, mix in (("Size", size, spec.size_axis, spec.size_axial, spec.size_mix),
                                             ("Mustrain", strain, spec.mustrain_axis, spec.mustrain_axial,
                                              spec.mustrain_mix)):
            hap[key][0] = "isotropic" if axis is None else "uniaxial"
            hap[key][1] = [float(value), float(value if axis is None else axial), float(mix)]
            hap[key][2] = [False, False, False]
            if axis is not None:
                hap[key][3] = [int(v) for v in axis]
        hap["Scale"] = [float(spec.scale) if spec.scale is not None else 1.0, False]
        if spec.preferred_orientation is not None:
            hkl, ratio = spec.preferred_orientation
            hap["Pref.Ori."][0] = "MD"
            hap["Pref.Ori."][1] = float(ratio)
            hap["Pref.Ori."][3] = [int(h) for h in hkl]
        self.sh_terms.append([])
        if spec.sh_order or spec.size_axis is not None or spec.mustrain_axis is not None:
            self._add_texture(spec, phase, hap, where)
        self.phases.append((spec.name, phase))

    def _add_texture(self, spec, phase, hap, where: str):
        """Spherical-harmonics PO (GSAS-II 'SH', cylindrical sample symmetry) and the symmetry checks of
        the recipe loader (:func:`xrd.recipe._texture_symmetry`, also for CIF phases)."""
        from GSASII import GSASIIlattice as G2lat

        from .recipe import _texture_symmetry
        from .structure import find_spacegroup
        from .texture import gsas2_laue, sh_names

        space_group, cell, _sites = _phase_model(spec, where)
        sg = find_spacegroup(str(space_group), where)
        problems = _texture_symmetry(spec, sg, cell)
        if problems:
            raise XRDError(f"{self.where}: " + "; ".join(m for _, m in problems))
        if not spec.sh_order:
            return
        sgdata = phase.data["General"]["SGData"]
        names = G2lat.GenSHCoeffT(sgdata["SGLaue"], "0", int(spec.sh_order), False)
        if names != sh_names(gsas2_laue(sg)[0], spec.sh_order):  # the engines must name the same harmonics
            raise XRDError(f"{where}: GSAS-II's harmonics {names} differ from the built-in engine's")
        hap["Pref.Ori."][0] = "SH"
        hap["Pref.Ori."][4] = int(spec.sh_order)
        hap["Pref.Ori."][5] = {name: float(spec.sh_coefficients.get(name, 0.0)) for name in names}
        self.sh_terms[-1] = list(names)

    def _add_atom(self, phase, site: _Site, species: str, occ: float, key: str | None = None):
        symbol = _species(species)[0]
        taken = {a[0] for a in phase.data["Atoms"]}
        label = site.label if not site.atoms and len(site.spec.occupancy) == 1 else f"{site.label}_{symbol}"
        label = label.replace(" ", "_")
        while label in taken:
            label += "d"
        x, y, z = site.spec.xyz
        try:
            g2_type = _g2_type(species)
        except ValueError as exc:
            raise XRDError(f"{self.where}: site {site.key}: {exc}") from None
        phase.add_atom(x, y, z, g2_type, label, occ=float(occ), uiso=float(site.spec.uiso))
        site.atoms[key or species] = len(phase.data["Atoms"]) - 1

    def _add_dopant(self):
        by_key = {s.key: s for s in self.sites}
        phases = dict(self.phases)
        starts: dict[str, float] = {}
        for dopant in self.recipe.dopants:
            for key in dopant.sites:
                starts[key] = starts.get(key, 0.0) + float(dopant.start)
        for dopant in self.recipe.dopants:
            for key in dopant.sites:
                site = by_key.get(key)
                if site is None:
                    raise XRDError(f"{self.where}: dopant {dopant.element} site '{key}' does not exist "
                                   f"(sites: {', '.join(sorted(by_key))}) ({dopant.line})")
                total = site.spec.total
                if total <= 0 or not 0.0 <= starts[key] <= total:
                    raise XRDError(f"{self.where}: dopant starts {starts[key]} do not fit site '{key}' "
                                   f"(total {total}) ({dopant.line})")
                phase = phases[site.phase]
                cx = phase.data["General"]["AtomPtrs"][0]
                for species, occ in site.spec.occupancy.items():  # hosts keep total - sum d (xrd.dopant rule)
                    phase.data["Atoms"][site.atoms[species]][cx + 3] = occ * (total - starts[key]) / total
                site.dopants[dopant.element] = f"{dopant.element} (dopant)"
                self._add_atom(phase, site, dopant.element, float(dopant.start), key=site.dopants[dopant.element])

    def _add_constraints(self):
        """Dopant occupancy equations, shared groups, and mixed-site Uiso/xyz equivalences."""
        gpx = self.gpx
        for site in self.sites:
            if len(site.atoms) < 2:
                continue
            species = list(site.atoms)
            gpx.add_EquivConstr([site.var("AUiso", s) for s in species], reloadIdx=False)
            for axis in site.free_axes:
                gpx.add_EquivConstr([site.var(f"dA{_XYZ[axis]}", s) for s in species], reloadIdx=False)
            if not site.dopants:
                continue
            hosts = [s for s in species if s not in site.dopants.values()]
            gpx.add_EqnConstr(site.spec.total, [site.var("Afrac", s) for s in species], reloadIdx=False)
            first = hosts[0]
            for other in hosts[1:]:
                ratio = site.spec.occupancy[other] / site.spec.occupancy[first] if site.spec.occupancy[first] else 0.0
                gpx.add_EqnConstr(0.0, [site.var("Afrac", other), site.var("Afrac", first)], [1.0, -ratio],
                                  reloadIdx=False)
        by_key = {s.key: s for s in self.sites}
        for dopant in self.recipe.dopants:
            atom = f"{dopant.element} (dopant)"
            for group in dopant.shared:
                first = by_key[group[0]]
                for key in group[1:]:
                    other = by_key[key]
                    gpx.add_EqnConstr(0.0, [other.var("Afrac", atom), first.var("Afrac", atom)],
                                      [1.0, -1.0], reloadIdx=False)

    # -------------------------------------------------------------------------------- refining
    def set_flags(self, groups: list[str]):
        """Refinement flags of the cumulative group list ``groups`` (everything else fixed)."""
        groups = set(groups)
        single = len(self.phases) == 1
        sample = self.hist.data["Sample Parameters"]
        sample["Scale"][1] = "scale" in groups and single
        sample["Shift"][1] = "displacement" in groups
        self.hist.data["Background"][0][1] = "background" in groups
        inst = self.hist.data["Instrument Parameters"][0]
        inst["Zero"][2] = "zero" in groups
        for key in ("U", "V", "W", "X", "Y"):
            inst[key][2] = "profile" in groups
        inst["Z"][2] = "Z" in groups
        inst["SH/L"][2] = "SH_L" in groups
        for (name, phase), spec in zip(self.phases, self.recipe.phases):
            phase.data["General"]["Cell"][0] = "cell" in groups
            hap = phase.data["Histograms"][self.hist.name]
            hap["Scale"][1] = "scale" in groups and not single and not spec.lebail
            textured = spec.preferred_orientation is not None or bool(spec.sh_order)
            hap["Pref.Ori."][2] = ("preferred_orientation" in groups and textured
                                   and "preferred_orientation" not in spec.fixed_groups)
            size = "size" in groups and "size" not in spec.fixed_groups
            strain = "mustrain" in groups and "mustrain" not in spec.fixed_groups
            hap["Size"][2] = [size, size and spec.size_axis is not None, False]
            hap["Mustrain"][2] = [strain, strain and spec.mustrain_axis is not None, False]
        flags = "".join(_ATOM_FLAGS[g] for g in ("xyz", "uiso") if g in groups)
        for site in self.sites:
            phase = dict(self.phases)[site.phase]
            occ = "F" if ("occupancy" in groups and site.dopants) else ""
            records = phase.atoms()
            for species, index in site.atoms.items():
                moved = "occupancy" in groups and (site.key, species) in getattr(self, "occupancy_atoms", set())
                records[index].refinement_flags = ("F" if moved else occ) + flags

    def lebail_start(self, cycles: int = 10):
        """Starting intensities of the Le Bail phases, as one would start them in GSAS-II's GUI.

        1. scales and background refined with the Le Bail phases switched off (HAP ``Use``), so the
           extraction does not start against a wrong background;
        2. a zero-cycle ``GSASIIstrMain.Refine`` with ``newLeBail=True`` (``G2Project.refine`` never
           passes it, and without it a Le Bail phase has no reflection list: "RefList" error);
        3. ``GSASIIstrMain.DoLeBail``: extraction with every parameter fixed.

        A first least-squares cycle straight from GSAS-II's equal starting intensities diverges
        (GSAS-II aborts the stage), hence this order.
        """
        from GSASII import GSASIIstrIO as G2stIO
        from GSASII import GSASIIstrMain as G2strMain

        lebail = set(self.recipe.lebail_phases)
        haps = {name: phase.data["Histograms"][self.hist.name] for name, phase in self.phases}
        with self._quiet():
            for name in lebail:
                haps[name]["Use"] = False
            self.set_flags(["scale", "background"])
            self.gpx.set_Controls("cycles", int(cycles))
            self.gpx.refine()
            for name in lebail:
                haps[name]["Use"] = True
            self.set_flags([])
            self.gpx.set_Controls("cycles", 0)
            self.gpx.index_ids()  # saves the project
            errmsg, _warnmsg = G2stIO.ReadCheckConstraints(self.gpx.filename)
            if errmsg:
                raise XRDError(f"{self.where}: GSAS-II constraint error ({errmsg})")
            G2strMain.Refine(self.gpx.filename, makeBack=False, newLeBail=True)
            self.gpx.reload()
            ok, rvals = G2strMain.DoLeBail(self.gpx.filename, cycles=LEBAIL_START_CYCLES)
            if not ok:
                raise XRDError(f"{self.where}: GSAS-II Le Bail start failed ({rvals.get('msg', '')})")
            self.gpx.reload()

    def run_stage(self, groups: list[str], cycles: int, name: str) -> dict:
        """Refine with the flags of ``groups``; returns the stage's history entry.

        With Le Bail phases GSAS-II re-extracts their intensities once per least-squares cycle and
        its refinement may stop while they still move, so the stage is repeated (as one does in
        GSAS-II's GUI) until Rwp changes by less than ``LEBAIL_RWP_TOLERANCE`` points, at most
        ``LEBAIL_REPEATS`` times.
        """
        import time

        tic = time.perf_counter()
        self.set_flags(groups)
        self.gpx.set_Controls("cycles", int(cycles))
        repeats = LEBAIL_REPEATS if self.recipe.lebail_phases else 1
        last = math.inf
        try:
            for _ in range(repeats):
                with self._quiet():
                    self.gpx.refine()
                rwp = float(self.hist.residuals.get("wR", math.nan))
                if not math.isfinite(rwp) or abs(last - rwp) < LEBAIL_RWP_TOLERANCE:
                    break
                last = rwp
        except XRDError:
            raise
        except Exception as exc:  # noqa: BLE001 - GSAS-II raises bare Exceptions
            raise XRDError(f"{self.where}: GSAS-II refinement failed in stage '{name}' ({exc})") from None
        cov = self.gpx["Covariance"]["data"]
        if "Rvals" not in cov or not np.isfinite(float(cov["Rvals"].get("Rwp", np.nan))):
            raise XRDError(f"{self.where}: GSAS-II stage '{name}' gave no result (see {self.workdir}/doptrace.lst)")
        rvals = cov["Rvals"]
        return {"stage": name, "rwp": round(float(self.hist.residuals["wR"]), 4), "gof": round(float(rvals["GOF"]), 4),
                "nvar": int(rvals["Nvars"]), "seconds": round(time.perf_counter() - tic, 3),
                "converged": bool(rvals.get("converged", False)), "aborted": bool(rvals.get("Aborted", False)),
                "message": str(rvals.get("msg", "")).strip()}

    # -------------------------------------------------------------------------------- results
    def covariance(self):
        """GSAS-II's covariance with every parameter written as a linear map of its variables.

        GSAS-II's covariance ``C`` is over its independent variables (the vary list, holding
        generated ``::constr:n`` combinations when constraint equations are used); every
        constrained or symmetry-generated parameter is linear in them (``GSASIImapvars``).
        Returns ``(rows, values, C)``: ``rows[name]`` is the gradient of parameter ``name`` over
        the vary list, ``values[name]`` its value; covariance of any set = R C R^T.
        """
        from GSASII import GSASIImapvars as G2mv

        cov = self.gpx["Covariance"]["data"]
        vary = list(cov["varyList"])
        n = len(vary)
        matrix = cov.get("covMatrix")
        matrix = np.full((n, n), np.nan) if matrix is None or np.shape(matrix) != (n, n) else np.asarray(matrix, float)
        values = dict(cov.get("parmDict", {}))
        values.update({name: float(v[0]) for name, v in cov.get("depSigDict", {}).items()})
        values.update(zip(vary, (float(v) for v in cov["variables"])))
        rows = {name: np.eye(n)[i] for i, name in enumerate(vary)}
        for dep, ind, inv in zip(G2mv.dependentParmList, G2mv.indParmList, G2mv.invarrayList):
            for name, vec in zip(dep, inv):
                row = np.zeros(n)
                for weight, iname in zip(np.atleast_1d(vec), ind):
                    if isinstance(iname, str) and iname in rows:
                        row += weight * rows[iname]
                rows.setdefault(str(name), row)
        return rows, values, matrix

    def phase_index(self, name: str) -> int:
        return [n for n, _ in self.phases].index(name)

    def phase_hap(self, name: str) -> dict:
        """The histogram-and-phase (HAP) record of phase ``name``."""
        return dict(self.phases)[name].data["Histograms"][self.hist.name]

    def atom_value(self, site: _Site, species: str, offset: int) -> float:
        """Current value of an atom entry (offset from x: 0-2 xyz, 3 occupancy) in the project."""
        phase = dict(self.phases)[site.phase]
        cx = phase.data["General"]["AtomPtrs"][0]
        return float(phase.data["Atoms"][site.atoms[species]][cx + offset])

    def parameter_table(self, rows: dict, values: dict, n: int):
        """The refined parameters under the built-in engine's names, each as (name, value, row).

        Names follow :class:`xrd.model.PatternModel`: ``PHASE:scale``, ``PHASE:a`` (free cell
        parameters; GSAS-II refines the reciprocal metric A_ij, mapped here through its gradient),
        ``PHASE:SITE:uiso``, ``PHASE:SITE:x``, ``PHASE:po_ratio``, ``bkg:i``, ``zero``,
        ``displacement``, ``U``..``Y`` and one ``B@PHASE:SITE[+...]`` per dopant parameter.
        """
        from GSASII import GSASIIlattice as G2lat
        from GSASII import GSASIIstrIO as G2stIO

        from .structure import CELL_NAMES, find_spacegroup, free_cell_names

        out = []
        zero = np.zeros(n)
        self.cell_gradients = {}  # phase -> (a b c alpha beta gamma, their gradient rows)

        def add(name, gname, value=None, factor=1.0):
            if gname in rows and np.any(rows[gname]):
                val = values.get(gname, np.nan) if value is None else value
                out.append((name, float(val), factor * rows[gname]))

        single = len(self.phases) == 1
        hist_scale = float(self.hist.data["Sample Parameters"]["Scale"][0])
        for index, ((name, phase), spec) in enumerate(zip(self.phases, self.recipe.phases)):
            frac = float(phase.data["Histograms"][self.hist.name]["Scale"][0])
            if single:
                add(f"{name}:scale", ":0:Scale", hist_scale * frac, frac)
            else:
                add(f"{name}:scale", f"{index}:0:Scale", hist_scale * frac, hist_scale)
            # cell: a b c alpha beta gamma from the six A_ij, differentiated along each variable
            a_vals = np.array(G2lat.cell2A(phase.data["General"]["Cell"][1:7]), float)
            a_rows = np.array([rows.get(f"{index}::A{i}", zero) for i in range(6)])
            if np.any(a_rows):
                # GSAS-II fills the symmetry-equal A_ij itself (cellFill), so go through it
                sgdata = phase.data["General"]["SGData"]

                def cell_of(avec, sgdata=sgdata, index=index):
                    filled = G2stIO.cellFill(f"{index}::", sgdata, {f"{index}::A{i}": v for i, v in enumerate(avec)},
                                             {})[0]
                    return np.array(G2lat.A2cell(filled), float)

                cell0 = cell_of(a_vals)
                step = 1e-7 * np.max(np.abs(a_vals))
                grad = np.zeros((6, n))
                for j in np.flatnonzero(np.any(a_rows != 0, axis=0)):
                    grad[:, j] = (cell_of(a_vals + step * a_rows[:, j]) - cell0) / step
                self.cell_gradients[name] = (cell0, grad)
                sg_name = spec.space_group if spec.cif is None else _phase_model(spec, self.where)[0]
                for cname in free_cell_names(find_spacegroup(sg_name, self.where)):
                    k = CELL_NAMES.index(cname)
                    out.append((f"{name}:{cname}", float(cell0[k]), grad[k]))
            add(f"{name}:po_ratio", f"{index}:0:MD")
            add(f"{name}:size", f"{index}:0:Size;i")
            add(f"{name}:mustrain", f"{index}:0:Mustrain;i")
            add(f"{name}:size_axial", f"{index}:0:Size;a")
            add(f"{name}:mustrain_axial", f"{index}:0:Mustrain;a")
            for term in self.sh_terms[index]:
                add(f"{name}:{term}", f"{index}:0:{term}")
        for site in self.sites:
            first = next(iter(site.atoms))
            for axis in site.free_axes:
                add(f"{site.key}:{_XYZ[axis]}", site.var(f"dA{_XYZ[axis]}", first), self.atom_value(site, first, axis))
            add(f"{site.key}:uiso", site.var("AUiso", first))
        for pname, (site, species) in getattr(self, "occupancy_vars", {}).items():
            add(pname, site.var("Afrac", species), self.atom_value(site, species, 3))
        by_key = {s.key: s for s in self.sites}
        for dopant in self.recipe.dopants:
            atom = f"{dopant.element} (dopant)"
            for group in dopant.groups():
                site = by_key[group[0]]
                add(dopant.parameter(group), site.var("Afrac", atom), self.atom_value(site, atom, 3))
        for i in range(self.recipe.background_terms):
            add(f"bkg:{i}", f":0:Back;{i}")
        add("zero", ":0:Zero")
        add("displacement", ":0:Shift")
        for key in ("U", "V", "W", "X", "Y", "Z"):
            add(key, f":0:{key}")
        add("SH_L", ":0:SH/L")
        return out

    def curves(self):
        x = np.asarray(self.hist.getdata("x"), float)
        inside = (x >= self.limits[0] - 1e-9) & (x <= self.limits[1] + 1e-9)
        used = inside.copy()
        for lo, hi in self.recipe.exclude:
            used &= ~((x >= lo) & (x <= hi))
        get = {k: np.asarray(np.ma.filled(self.hist.getdata(k), np.nan), float)[inside]
               for k in ("yobs", "ycalc", "background")}
        order = np.argsort(self.x)
        esd = np.interp(x[inside], self.x[order], self.esd[order])
        return x[inside], get["yobs"], get["ycalc"], get["background"], esd, used[inside]

    def texture_notes(self, cells) -> list[tuple[str, str]]:
        """:func:`xrd.texture.negative_factor_note` for each SH phase, at GSAS-II's own reflections."""
        from .texture import negative_factor_note, sh_factor

        notes = []
        lists = self.hist.reflections()
        for (name, phase), terms, cell in zip(self.phases, self.sh_terms, cells):
            refl = np.asarray(lists.get(name, {}).get("RefList", np.zeros((0, 6))), float)
            if not terms or refl.size == 0:
                continue
            keep = (refl[:, 5] >= self.limits[0]) & (refl[:, 5] <= self.limits[1])
            sgdata = phase.data["General"]["SGData"]
            coef = {t: float(self.phase_hap(name)["Pref.Ori."][5][t]) for t in terms}
            factors = sh_factor(refl[keep, :3], cell, sgdata["SGLaue"], sgdata.get("SGUniq", ""), coef)
            notes += negative_factor_note(name, factors)
        return notes

    def lebail_reflections(self) -> dict:
        """Extracted reflections of the Le Bail phases (``rietveld.build_result``'s ``lebail_reflections``).

        GSAS-II's reflection list holds per reflection ``Fo^2`` (col 8, = ``Fc^2`` col 9 for a Le Bail
        phase) and ``Icorr`` (col 11: scales, Lorentz-polarisation, multiplicity); its peak area is
        ``Icorr Fc^2`` in counts·centidegree, so /100 gives the built-in engine's counts·deg.
        """
        out = {"phase": [], "hkl": [], "two_theta": [], "d": [], "intensity": []}
        lists = self.hist.reflections()
        for name in self.recipe.lebail_phases:
            refl = np.asarray(lists.get(name, {}).get("RefList", np.zeros((0, 12))), float)
            if refl.size == 0:
                continue
            keep = (refl[:, 5] >= self.limits[0]) & (refl[:, 5] <= self.limits[1])
            for row in refl[keep]:
                out["phase"].append(name)
                out["hkl"].append(f"{int(round(row[0]))} {int(round(row[1]))} {int(round(row[2]))}")
                out["two_theta"].append(float(row[5]))
                out["d"].append(float(row[4]))
                out["intensity"].append(float(row[11] * row[9]) / 100.0)
        return out

    def reflections(self):
        tt, hkl, phase_of = [], [], []
        lists = self.hist.reflections()
        for name, _phase in self.phases:
            refl = np.asarray(lists.get(name, {}).get("RefList", np.zeros((0, 6))), float)
            if refl.size == 0:
                continue
            keep = (refl[:, 5] >= self.limits[0]) & (refl[:, 5] <= self.limits[1])
            for row in refl[keep]:
                tt.append(float(row[5]))
                hkl.append(f"{int(round(row[0]))} {int(round(row[1]))} {int(round(row[2]))}")
                phase_of.append(name)
        return tt, hkl, phase_of


# ------------------------------------------------------------------------------------ the driver


def _load_inputs(recipe, data, instrument):
    from .recipe import Recipe, load_recipe

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if isinstance(instrument, (str, os.PathLike)):
        recipe = recipe.with_instrument(instrument)
        inst = recipe.instrument
    elif instrument is not None:
        inst = instrument
    else:
        inst = recipe.instrument
    if isinstance(data, xr.DataArray):
        pattern = data
    else:
        path = data if data is not None else recipe.data_file
        if path is None:
            raise XRDError(f"{recipe.path}: no data file (give [data] file in the recipe or --data)")
        from .read import read

        pattern = read(path)
    values = np.asarray(pattern.values, float)
    if values.ndim != 1 or values.size < 10:
        raise XRDError(f"{pattern.attrs.get('source', recipe.path)}: pattern has {values.size} points (need >= 10)")
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(pattern["two_theta"].values)):
        raise XRDError(f"{pattern.attrs.get('source', recipe.path)}: pattern holds NaN or infinite values")
    return recipe, pattern, inst


def refine(recipe, data=None, instrument=None, workdir=None, progress: bool = False) -> xr.Dataset:
    """Run a recipe's staged refinement through GSAS-II; the result has the built-in engine's layout.

    Parameters
    ----------
    recipe : Recipe or str or Path
        A recipe from :func:`xrd.recipe.load_recipe`, or the TOML path.
    data : str, Path or xarray.DataArray, optional
        The pattern (``xrd.read`` output) or its file; default: the recipe's ``[data] file``.
    instrument : str, Path or instrument spec, optional
        Instrument file (``.prm``/``.instprm``) or an object with the instrument fields;
        default: the recipe's instrument.
    workdir : str or Path, optional
        Folder for the GSAS-II project (``doptrace.gpx``, ``.lst``, the written pattern and
        ``.instprm``); kept when given, a temporary folder (removed afterwards) otherwise.
    progress : bool
        Show a tqdm bar over the stages.

    Returns
    -------
    xarray.Dataset
        :func:`doptrace.xrd.rietveld.build_result` layout, ``attrs["engine"] = "gsas2"``, plus
        ``attrs["stages"]`` (Rwp, GOF, Nvar, seconds after each stage) and ``attrs["gsas2_version"]``.

    Raises
    ------
    XRDError
        GSAS-II missing, bad recipe/data, or a failed GSAS-II refinement (message names the file).

    Examples
    --------
    >>> ds = refine("examples/xrd/fluorapatite.toml")   # doctest: +SKIP
    >>> round(float(ds.rwp), 2)                          # doctest: +SKIP
    9.83
    """
    if not available():
        raise XRDError(f"{getattr(recipe, 'path', recipe)}: {unavailable_reason()}")
    recipe, pattern, inst = _load_inputs(recipe, data, instrument)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="doptrace-gsas2-") as tmp:
            result = _refine(recipe, pattern, inst, Path(tmp), progress)
        result.attrs.pop("gsas2_project", None)  # the folder is gone
        return result
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return _refine(recipe, pattern, inst, workdir, progress)


def _refine(recipe, pattern, inst, workdir: Path, progress: bool) -> xr.Dataset:
    from tqdm.auto import tqdm

    project = _Project(recipe, pattern, inst, workdir)
    if recipe.lebail_phases:
        try:
            project.lebail_start()
        except XRDError:
            raise
        except Exception as exc:  # noqa: BLE001 - GSAS-II raises bare Exceptions
            raise XRDError(f"{recipe.path}: GSAS-II Le Bail start failed ({exc})") from None
    history = []
    groups_per_stage = recipe.cumulative_groups()
    for stage, groups in tqdm(list(zip(recipe.stages, groups_per_stage)), desc="GSAS-II stages",
                              disable=not progress, unit="stage"):
        history.append(project.run_stage(groups, stage.max_cycles, stage.name))
    return _assemble(project, pattern, groups_per_stage[-1], history)


def _assemble(project: _Project, pattern, final_groups, history) -> xr.Dataset:
    from .dopant import correlation_words
    from .rietveld import build_result
    from .texture import texture_index, texture_index_gradient

    recipe = project.recipe
    cov = project.gpx["Covariance"]["data"]
    rvals = cov["Rvals"]
    gof = float(rvals["GOF"])
    rows, values, matrix = project.covariance()
    table = project.parameter_table(rows, values, matrix.shape[0])
    par_names = [t[0] for t in table]
    par_values = np.array([t[1] for t in table])
    jac = np.array([t[2] for t in table]).reshape(len(table), matrix.shape[0])
    par_cov = jac @ matrix @ jac.T
    par_esd = np.sqrt(np.clip(np.diag(par_cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = par_cov / np.outer(par_esd, par_esd)
    index = {name: k for k, name in enumerate(par_names)}

    # per phase: cell, scale, weight fraction. Cell esds are propagated here from the covariance of
    # GSAS-II's A_ij; GSAS-II's own GSASIIlattice.getCellEsd (this version) contracts dcell/dA over
    # the wrong index, which inflates hexagonal/trigonal a, b esds by 5/3 (cubic and orthorhombic
    # cells are unaffected); its numbers are kept in attrs["gsas2_cell_esd"] for comparison.
    cells, cell_esds, scales, scale_esds, g2_cell_esd = [], [], [], [], {}
    hist_scale = float(project.hist.data["Sample Parameters"]["Scale"][0])
    for name, phase in project.phases:
        with project._quiet():
            _cell, cell_sig = phase.get_cell_and_esd()
        keys = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
        g2_cell_esd[name] = [float(cell_sig[k]) for k in keys]
        if name in project.cell_gradients:
            cell0, grad = project.cell_gradients[name]
            cells.append([float(v) for v in cell0])
            esd = [math.sqrt(max(float(g @ matrix @ g), 0.0)) for g in grad]
            cell_esds.append([e if e > 1e-9 else 0.0 for e in esd])  # symmetry-fixed: exactly 0
        else:
            cells.append([float(v) for v in phase.data["General"]["Cell"][1:7]])
            cell_esds.append([0.0] * 6)
        k = index.get(f"{name}:scale")
        scales.append(hist_scale * float(phase.data["Histograms"][project.hist.name]["Scale"][0]))
        scale_esds.append(float(par_esd[k]) if k is not None else 0.0)
    wf, wf_esd = _weight_fractions(project)

    # dopant sites: one value per candidate site, the parameter of its group
    sites, frac, frac_esd, words, dmin, elements, site_keys = [], [], [], [], [], [], []
    several = len({d.element for d in recipe.dopants}) > 1
    by_key = {s.key: s for s in project.sites}
    for dopant in recipe.dopants:
        atom = f"{dopant.element} (dopant)"
        for group in dopant.groups():
            pname = dopant.parameter(group)
            for key in group:
                sites.append(f"{dopant.element}@{key}" if several else key)
                elements.append(dopant.element)
                site_keys.append(key)
                k = index.get(pname)
                if k is not None:
                    frac.append(float(par_values[k]))
                    frac_esd.append(float(par_esd[k]))
                    words.append(correlation_words(par_names, corr, k))
                else:
                    frac.append(project.atom_value(by_key[key], atom, 3))
                    frac_esd.append(float("nan"))
                    words.append("not refined")

    occupancies = {site.key: {("dopant " if species in site.dopants.values() else "") + species.split(" ")[0]:
                              project.atom_value(site, species, 3) for species in site.atoms}
                   for site in project.sites}
    two_theta, obs, calc, background, esd, used = project.curves()
    refl_tt, refl_hkl, refl_phase = project.reflections()
    extracted = project.lebail_reflections()
    rwp, rp = float(project.hist.residuals["wR"]), float(project.hist.residuals["R"])
    nobs, nvar = int(rvals["Nobs"]), int(rvals["Nvars"])
    if sites:  # last: the what-if cycle it may run changes the project
        dmin = _min_detectable(project, final_groups, sites, frac_esd)
    texture = {}  # texture index J = 1 + sum C^2/(2L+1) and its esd, as the built-in engine
    for (name, _phase), terms in zip(project.phases, project.sh_terms):
        if terms:
            coef = {t: float(project.phase_hap(name)["Pref.Ori."][5][t]) for t in terms}
            grad = texture_index_gradient(coef)
            row = sum(grad[t] * rows.get(f"{project.phase_index(name)}:0:{t}", np.zeros(matrix.shape[0]))
                      for t in terms)
            j_esd = math.sqrt(max(float(row @ np.nan_to_num(matrix) @ row), 0.0)) if np.any(row) else 0.0
            texture[name] = [texture_index(coef), j_esd]
    extra = {"stages": history, "wavelength": float(project.inst.wavelengths[0]),
             "dopant_element": " ".join(d.element for d in recipe.dopants), "dopant_min_detectable_sigma": 3.0,
             "gsas2_version": _version(), "gsas2_cell_esd": g2_cell_esd, "site_occupancies": occupancies,
             "gsas2_project": str(project.workdir / "doptrace.gpx"),
             **({"simulated": pattern.attrs["simulated"]} if pattern.attrs.get("simulated") else {})}
    if texture:
        extra["texture_index"] = texture
    return build_result(
        two_theta=two_theta, obs=obs, calc=calc, background=background, esd=esd, used=used,
        phases=[name for name, _ in project.phases], cell=cells, cell_stderr=cell_esds,
        weight_fraction=wf, weight_fraction_stderr=wf_esd, scale=scales, scale_stderr=scale_esds,
        sites=sites, dopant_fraction=frac, dopant_fraction_stderr=frac_esd, dopant_correlations=words,
        dopant_min_detectable=dmin,
        reflection_two_theta=refl_tt, reflection_hkl=refl_hkl, reflection_phase=refl_phase,
        parameter_names=par_names, parameter_values=par_values, parameter_stderr=par_esd, correlation=corr,
        rwp=rwp, rp=rp, rexp=rwp / gof if gof > 0 else float("nan"), gof=gof, nobs=nobs, nvar=nvar,
        engine="gsas2", source=str(pattern.attrs.get("source", recipe.data_file or "")), recipe=str(recipe.path),
        extra_attrs=extra, quality_notes=_quality_notes(history) + project.texture_notes(cells),
        parameter_bounds={f"{name}:{key}": bounds for name, _ in project.phases
                          for key, bounds in (("size", SIZE_BOUNDS_UM), ("size_axial", SIZE_BOUNDS_UM),
                                              ("mustrain", (0.0, math.inf)), ("mustrain_axial", (0.0, math.inf)))},
        site_totals=[by_key[key].spec.total for key in site_keys] if sites else None, site_dopants=elements,
        lebail_phases=recipe.lebail_phases, lebail_reflections=extracted,
    )


def _quality_notes(history) -> list[tuple[str, str]]:
    """GSAS-II's own findings for :func:`xrd.quality.assess`: aborted stages, an unconverged last stage."""
    notes = []
    for entry in history:
        if entry.get("aborted"):
            notes.append(("failed", f"GSAS-II stage '{entry['stage']}' aborted ({entry.get('message') or 'no message'})"))
    if history and not history[-1].get("converged", True):
        notes.append(("warning", f"GSAS-II stage '{history[-1]['stage']}' stopped at its cycle limit: not converged"))
    return notes


def _weight_fractions(project: _Project):
    """GSAS-II's weight fractions; a Le Bail phase gets NaN and the others are relative to the Rietveld phases."""
    lebail = set(project.recipe.lebail_phases)
    if lebail:
        rietveld = [(name, p) for name, p in project.phases if name not in lebail]
        mass = np.array([float(p.data["General"]["Mass"]) for _, p in rietveld])
        frac = np.array([float(p.data["Histograms"][project.hist.name]["Scale"][0]) for _, p in rietveld])
        w = dict(zip([name for name, _ in rietveld], mass * frac / np.sum(mass * frac))) if rietveld else {}
        # esds from the scales' covariance are the built-in engine's rule; GSAS-II's ComputeMassFracs counts
        # the Le Bail phase, so only the single-Rietveld-phase case (w = 1 exactly) has one here
        return ([w.get(name, float("nan")) for name, _ in project.phases],
                [0.0 if name in w and len(w) == 1 else float("nan") for name, _ in project.phases])
    n = len(project.phases)
    if n == 1:
        return [1.0], [0.0]
    try:
        with project._quiet():
            fracs = project.hist.ComputeMassFracs()
        return [float(fracs[name][0]) for name, _ in project.phases], \
               [float(fracs[name][1]) for name, _ in project.phases]
    except Exception:  # noqa: BLE001 - fall back to the GSAS-II formula without esds
        mass = np.array([float(p.data["General"]["Mass"]) for _, p in project.phases])
        frac = np.array([float(p.data["Histograms"][project.hist.name]["Scale"][0]) for _, p in project.phases])
        w = mass * frac / np.sum(mass * frac)
        return list(w), [float("nan")] * n


def _min_detectable(project: _Project, final_groups, sites, frac_esd):
    """3-sigma detection limit of each dopant fraction from the Fisher information of the pattern.

    Same rule as the built-in engine (:func:`xrd.dopant.min_detectable` on J^T W J / GOF^2): three
    times the marginal esd of the fraction with every other refined parameter free. When the
    recipe never refines the occupancy, one extra GSAS-II cycle at the final model with the
    fractions free gives that esd (a what-if: the reported values are taken before it).
    """
    if all(np.isfinite(frac_esd)):
        return [3.0 * e for e in frac_esd]
    try:
        project.run_stage(list(final_groups) + ["occupancy"], 1, "what-if: dopant detectability")
    except XRDError:
        return [float("nan")] * len(sites)
    rows, values, matrix = project.covariance()
    esd = {name: math.sqrt(max(float(row @ matrix @ row), 0.0))
           for name, _value, row in project.parameter_table(rows, values, matrix.shape[0])}
    parameter_of = [dopant.parameter(group) for dopant in project.recipe.dopants
                    for group in dopant.groups() for _key in group]  # in the order of ``sites``
    return [3.0 * esd.get(name, float("nan")) for name in parameter_of]


def _version() -> str:
    try:
        from GSASII import GSASIIpath

        return str(GSASIIpath.GetVersionNumber())
    except Exception:  # noqa: BLE001 - version is informative only
        return "unknown"


def simulate(recipe, *, counts: float = 30000.0, seed: int | None = 0, step: float = 0.02, noise: bool = True,
             workdir=None) -> xr.DataArray:
    """A pattern computed by GSAS-II for the recipe's model (its starting values), for round trips.

    GSAS-II calculates the phases' pattern (zero refinement cycles) on the recipe's 2theta grid;
    it is scaled so that its strongest point has ``counts`` above background, the recipe's
    background (counts at a 10000-count strongest peak, as :func:`xrd.simulate.simulate`) is
    added, and Poisson noise drawn. Size, mustrain, occupancies and profile are the recipe's.

    Returns
    -------
    xarray.DataArray
        Counts over ``two_theta`` with ``esd`` (sqrt counts), ``attrs["source"]`` naming GSAS-II.
    """
    from .background import chebyshev_design
    from .simulate import BACKGROUND_REFERENCE, grid_pattern

    if not available():
        raise XRDError(f"{getattr(recipe, 'path', recipe)}: {unavailable_reason()}")
    from .recipe import Recipe, load_recipe

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if recipe.lebail_phases:
        raise XRDError(f"{recipe.path}: Le Bail phase(s) {', '.join(recipe.lebail_phases)} have no structure to "
                       "compute a pattern from")
    recipe, _pattern, inst = _load_inputs(recipe, grid_pattern(recipe, step), None)
    if not np.isfinite(counts) or counts <= 0:
        raise XRDError(f"{recipe.path}: counts must be a positive number, got {counts}")
    with contextlib.ExitStack() as stack:
        folder = Path(workdir) if workdir is not None else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="doptrace-gsas2-sim-")))
        folder.mkdir(parents=True, exist_ok=True)
        project = _Project(recipe, _pattern, inst, folder)
        project.hist.data["Background"][0][3:] = [0.0] * recipe.background_terms
        project.set_flags([])
        project.gpx.set_Controls("cycles", 0)
        try:
            with project._quiet():
                project.gpx.refine()
        except Exception as exc:  # noqa: BLE001 - GSAS-II raises bare Exceptions
            raise XRDError(f"{recipe.path}: GSAS-II could not compute the pattern ({exc})") from None
        x = np.asarray(project.hist.getdata("x"), float)
        phases = np.asarray(np.ma.filled(project.hist.getdata("ycalc"), np.nan), float)
    if not np.all(np.isfinite(phases)) or phases.max() <= 0:
        raise XRDError(f"{recipe.path}: GSAS-II computed no peaks on {x[0]:g}-{x[-1]:g} deg")
    coeffs = np.zeros(recipe.background_terms)
    given = list(recipe.background_coefficients)[: recipe.background_terms]
    coeffs[: len(given)] = given
    background = chebyshev_design(x, recipe.background_terms, x[0], x[-1]) @ coeffs * (counts / BACKGROUND_REFERENCE)
    expected = phases * (counts / phases.max()) + background
    if np.any(expected < 0):
        raise XRDError(f"{recipe.path}: the background goes negative; check background.coefficients")
    y = np.random.default_rng(seed).poisson(expected).astype(float) if noise else expected
    return xr.DataArray(
        y, dims="two_theta",
        coords={"two_theta": ("two_theta", x, {"units": "deg"}), "esd": ("two_theta", np.sqrt(y), {"units": "counts"})},
        name="intensity",
        attrs={"source": f"GSAS-II simulation of {recipe.path}", "format": "simulation", "technique": "XRD",
               "units": "counts", "wavelength": float(inst.wavelengths[0]), "seed": -1 if seed is None else int(seed),
               "counts": float(counts), "step": float(step)},
    )
