"""The built-in powder-pattern model: parameters, structure factors, sparse peak evaluation.

A :class:`PatternModel` holds what does not change during a refinement (data, reflection lists,
orbits, form-factor coefficients) and evaluates the calculated pattern for a parameter dict.
Speed comes from evaluating each peak only inside its window (GSAS-II's limits: 50 FWHM on the
low-angle side, 75 on the high-angle side, swapped above 90°) as one flat vectorised array, and
from keeping the layout of those windows fixed while derivatives are taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from doptrace.core.simulated import simulated

from .background import chebyshev_design
from .dopant import doped_occupancies
from .errors import XRDError
from .profiles import (DEFAULT_SIZE_UM, GAMMA_FLOOR, SIGMA2_FLOOR, SIZE_BOUNDS_UM, fcj_offsets, gaussian_variance,
                       lorentz_polarization, lorentzian_fwhm, march_dollase, peak_position, sample_broadening,
                       tch_fwhm_eta, uniaxial_mustrain, uniaxial_size)
from .recipe import Recipe
from .reflections import generate_reflections, inverse_d_squared
from .structure import (CELL_NAMES, Phase, anomalous, build_phase, cell_mass, form_factor_coefficients, metric,
                        volume)
from .texture import axis_cosines, gsas2_laue, gsas2_representatives, sh_factor, sh_names

#: Finite-difference steps per parameter group (absolute, in the parameter's units).
STEPS = {"cell": 2e-5, "angle": 2e-4, "zero": 1e-4, "displacement": 0.05, "profile": 1e-3, "uiso": 1e-4,
         "xyz": 1e-5, "occupancy": 1e-4, "preferred_orientation": 1e-4, "mustrain": 1.0}
PROFILE_NAMES = ("U", "V", "W", "X", "Y")
FCJ_NODES = 8
#: Peak window in FWHM on the low- and high-angle side (swapped above 90 deg), as GSAS-II
#: (``GSASIIpwd.getWidthsCW``, git 013259a0). Pseudo-Voigt tails are long: a Lorentzian cut at
#: -10/+15 FWHM loses ~2.5 % of its area, asymmetrically, which the background and the
#: cell/displacement then absorb (FAP: a off by 4 esd from the full-tail fit).
WINDOW_FWHM = (50.0, 75.0)


_LN2 = math.log(2.0)
_GAUSS_NORM = 2.0 * math.sqrt(_LN2 / math.pi)


def flat_pseudo_voigt(lay: "_Layout", centre, fwhm, eta, amplitude) -> np.ndarray:
    """``amplitude * pseudo_voigt(x - centre, fwhm, eta)`` of every sub-peak over its window, flat.

    The same function as :func:`xrd.profiles.pseudo_voigt`, with the per-peak factors formed once
    per sub-peak and repeated over its (contiguous) window instead of per point.
    """
    c = lay.counts
    z = np.repeat(centre, c)
    np.subtract(lay.x_flat, z, out=z)
    z *= np.repeat(2.0 / fwhm, c)
    np.square(z, out=z)
    g = np.multiply(z, -_LN2)
    np.exp(g, out=g)
    g *= np.repeat(amplitude * (1.0 - eta) * _GAUSS_NORM / fwhm, c)
    z += 1.0
    out = np.repeat(amplitude * eta * (2.0 / np.pi) / fwhm, c)
    out /= z
    out += g
    return out


def flat_pseudo_voigt_partials(lay: "_Layout", centre, fwhm, eta, amplitude, factor) -> np.ndarray:
    """``(4, n_flat)``: profile, d/d centre (times ``factor``), d/d FWHM, d/d eta, each times ``amplitude``.

    Formulas of :func:`xrd.profiles.pseudo_voigt_derivatives` with ``t = 2 dx / F``, ``z = t^2``:
    ``Lu = (2/(pi F)) / (1 + z)``, ``Gu = (2/F) sqrt(ln2/pi) exp(-ln2 z)``, profile ``eta Lu + (1-eta) Gu``,
    d/d dx ``= -(4t/F) (eta Lu / (1 + z) + ln2 (1 - eta) Gu)``,
    d/dF ``= (eta Lu (2z/(1+z) - 1) + (1-eta) Gu (2 ln2 z - 1)) / F``, d/d eta ``= Lu - Gu``.
    """
    c = lay.counts
    out = np.empty((4, lay.x_flat.size))
    t = np.repeat(centre, c)
    np.subtract(lay.x_flat, t, out=t)
    t *= np.repeat(2.0 / fwhm, c)
    z = t * t
    onez = z + 1.0
    lu = np.repeat(amplitude * (2.0 / np.pi) / fwhm, c)
    lu /= onez
    gu = np.multiply(z, -_LN2)
    np.exp(gu, out=gu)
    gu *= np.repeat(amplitude * _GAUSS_NORM / fwhm, c)
    e = np.repeat(eta, c)
    le = np.multiply(e, lu)  # eta Lu
    ge = gu - e * gu  # (1 - eta) Gu
    np.add(le, ge, out=out[0])
    np.subtract(lu, gu, out=out[3])
    # d/d centre = -d/d dx, times the Ka2 dispersion factor
    d = le / onez
    d += _LN2 * ge
    d *= t
    d *= np.repeat(4.0 * factor / fwhm, c)
    out[1] = d
    # d/dF
    frac = 2.0 * z
    frac /= onez
    frac -= 1.0
    le *= frac
    z *= 2.0 * _LN2
    z -= 1.0
    ge *= z
    le += ge
    le *= np.repeat(1.0 / fwhm, c)
    out[2] = le
    return out


@dataclass
class Parameter:
    """One model parameter: its group (recipe vocabulary), kind and the phases it touches.

    ``kind`` is ``linear`` (scale, background: exact derivatives), ``intensity`` (changes only the
    integrated intensities) or ``shape`` (moves or reshapes peaks).
    """

    name: str
    value: float
    group: str
    kind: str
    phases: tuple[int, ...] = ()
    units: str = "1"
    bounds: tuple[float, float] = (-np.inf, np.inf)  # hard limits the model clamps to (e.g. size > 0)
    fixed: bool = False  # held even by stages refining its group (``refine = false`` in the recipe)

    @property
    def step(self) -> float:
        if self.group == "cell":
            return STEPS["angle"] if self.name.split(":")[-1] in ("alpha", "beta", "gamma") else STEPS["cell"]
        if self.group == "size":
            return max(1e-4 * abs(self.value), 1e-6)  # relative: sizes span 0.001-10 µm
        return STEPS.get(self.group, 1e-4)


@dataclass
class _Layout:
    """Frozen peak windows of one phase: flat (point, sub-peak) pairs, grouped by reflection.

    The sub-peaks (Ka1/Ka2 line x FCJ node of each reflection) are sorted by reflection, so the flat
    entries of one reflection are contiguous: the flat arrays are directly the column-compressed
    (CSC) storage of the sparse ``point x reflection`` profile matrix (``indptr``), which the
    Jacobian multiplies without building or sorting a sparse matrix each time.
    """

    refl: np.ndarray  # reflections kept (indices into the phase's reflection list)
    asym: np.ndarray  # (n_keep,) whether FCJ nodes are used for that reflection
    sub_refl: np.ndarray  # (n_sub,) position in `refl` of each sub-peak
    sub_line: np.ndarray  # (n_sub,) 0 = Ka1, 1 = Ka2
    sub_node: np.ndarray  # (n_sub,) FCJ node or -1
    flat_point: np.ndarray  # (n_flat,) pattern point of each flat entry (int32)
    flat_sub: np.ndarray  # (n_flat,) sub-peak of each flat entry
    counts: np.ndarray  # (n_sub,) points in each sub-peak's window (its flat entries are contiguous)
    starts: np.ndarray  # (n_sub,) first point of each window
    x_flat: np.ndarray  # (n_flat,) 2theta of each flat entry
    indptr: np.ndarray  # (n_refl_total + 1,) flat entries of reflection j: indptr[j]:indptr[j + 1] (int32)

    def block_structure(self, blocks: int):
        """``(indices, indptr)`` of ``blocks`` profile matrices side by side (CSC), cached."""
        cache = self.__dict__.setdefault("_blocks", {})
        if blocks not in cache:
            nnz = self.flat_point.size
            indptr = np.concatenate([self.indptr[:-1] + b * nnz for b in range(blocks)]
                                    + [np.array([blocks * nnz])]).astype(np.int32 if blocks * nnz < 2**31 else np.int64)
            cache[blocks] = (np.tile(self.flat_point, blocks), indptr)
        return cache[blocks]


class PatternModel:
    """Calculated powder pattern of a recipe's phases on a measured 2theta grid.

    Parameters
    ----------
    recipe : Recipe
    pattern : xarray.DataArray
        Measured counts over ``two_theta`` (deg) with an ``esd`` coordinate (from :func:`xrd.read`).

    Examples
    --------
    >>> model = PatternModel(load_recipe("examples/xrd/fluorapatite.toml"), xrd.read(path))  # doctest: +SKIP
    >>> calc = model.calculate(model.values)                                                 # doctest: +SKIP
    """

    def __init__(self, recipe: Recipe, pattern: xr.DataArray):
        self.recipe = recipe
        source = pattern.attrs.get("source", str(recipe.data_file))
        self.source = source
        self.simulated = simulated(pattern)  # the file's simulator marker, carried into the result
        x = np.asarray(pattern["two_theta"].values, float)
        y = np.asarray(pattern.values, float)
        esd = np.asarray(pattern["esd"].values, float) if "esd" in pattern.coords else np.sqrt(np.abs(y))
        if x.size < 10:
            raise XRDError(f"{source}: only {x.size} points; not a powder pattern")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.isnan(esd)):
            bad = int(np.sum(~np.isfinite(y)) + np.sum(~np.isfinite(x)) + np.sum(np.isnan(esd)))
            raise XRDError(f"{source}: {bad} NaN or infinite value(s) in the pattern")
        if np.any(np.diff(x) <= 0):
            raise XRDError(f"{source}: 2theta is not strictly increasing")
        lo, hi = recipe.two_theta_range or (x[0], x[-1])
        inside = (x >= lo - 1e-9) & (x <= hi + 1e-9)
        if inside.sum() < 10:
            raise XRDError(f"{source}: fewer than 10 points inside the range {lo}-{hi} deg")
        self.x, self.y, self.esd = x[inside], y[inside], esd[inside]
        used = np.ones(self.x.size, bool)
        for a, b in recipe.exclude:
            used &= ~((self.x >= a) & (self.x <= b))
        self.used = used
        # esd 0 (zero counts) or inf marks a weightless point, as in GSAS-II (xrd.read.weights)
        good = np.isfinite(self.esd) & (self.esd > 0)
        self.weight = np.where(used & good, 1.0 / np.where(good, self.esd, 1.0) ** 2, 0.0)
        self.used = used & (self.weight > 0)
        if self.used.sum() < 10:
            raise XRDError(f"{source}: fewer than 10 points with a usable esd inside the refinement range")
        self.inst = recipe.instrument
        self.lam1, lam2 = self.inst.wavelengths
        self.ka2 = (not self.inst.single_wavelength)
        self.lam_ratio = 360.0 * (lam2 - self.lam1) / (np.pi * self.lam1) if self.ka2 else 0.0
        self.bkg_design = chebyshev_design(self.x, recipe.background_terms, self.x[0], self.x[-1])
        self.phases: list[Phase] = [build_phase(p, str(recipe.path)) for p in recipe.phases]
        self._prepare_reflections()
        #: Le Bail phases: extracted ``|F|^2``-like intensity per reflection (the structure factor's place)
        self.lebail: dict[int, np.ndarray] = {k: np.ones(len(self.reflections[k]))
                                              for k, spec in enumerate(recipe.phases) if spec.lebail}
        self.parameters: dict[str, Parameter] = {}
        self._make_parameters()
        self._layouts: list[_Layout] | None = None
        self.asymmetry_everywhere = False  # set by the least squares while SH/L is refined
        self._key_names: dict[int, list[str]] = {}
        self._f2_cache: dict[int, tuple] = {}
        self._f0_cache: dict[int, tuple] = {}
        self._geometry_cache: dict[tuple, tuple] = {}

    def set_observed(self, counts, esd=None) -> None:
        """Replace the observed counts (same grid), e.g. for Monte-Carlo draws; esd defaults to sqrt(counts)."""
        y = np.asarray(counts, float)
        if y.shape != self.x.shape or not np.all(np.isfinite(y)):
            raise XRDError(f"{self.source}: observed counts must be {self.x.size} finite values")
        self.y = y
        self.esd = np.sqrt(np.clip(y, 0, None)) if esd is None else np.asarray(esd, float)
        good = np.isfinite(self.esd) & (self.esd > 0)
        used = np.ones(self.x.size, bool)
        for a, b in self.recipe.exclude:
            used &= ~((self.x >= a) & (self.x <= b))
        self.weight = np.where(used & good, 1.0 / np.where(good, self.esd, 1.0) ** 2, 0.0)
        self.used = used & good

    # ------------------------------------------------------------------ set-up
    def _prepare_reflections(self):
        # upper cut: GSAS-II's d_min = lambda1 / (2 sin(theta_max)) at the upper data limit (margin 0),
        # or reflections up to ``margin`` deg beyond it (their tails reach into the data); never past 180
        tt_max = min(self.x[-1] + self.recipe.reflection_margin, 179.9)
        d_min = self.lam1 / (2.0 * math.sin(math.radians(tt_max / 2.0)))
        self.reflections = []
        self._species = []
        self._coef = []
        self._anom = []
        for phase in self.phases:
            refl = generate_reflections(phase.spacegroup, phase.cell, d_min)
            self.reflections.append(refl)
            species = sorted({s for site in phase.sites for s in site.occupancy} | {
                d.element for d in self.recipe.dopants if any(s.split(":", 1)[0] == phase.name for s in d.sites)} | {
                sp for op in self.recipe.occupancy_parameters for key, sp, _ in op.terms
                if key.split(":", 1)[0] == phase.name})
            try:
                coef = np.array([form_factor_coefficients(s) for s in species])
                anom = np.array([anomalous(s, self.lam1) for s in species])
            except ValueError as exc:
                raise XRDError(f"{self.recipe.path}: phase {phase.name}: {exc}") from None
            self._species.append(species)
            self._coef.append(coef)
            self._anom.append(anom)

    def _add(self, name, value, group, kind, phases=(), units="1", bounds=(-np.inf, np.inf)):
        fixed = any(group in spec.fixed_groups for k, spec in enumerate(self.recipe.phases) if k in phases)
        self.parameters[name] = Parameter(name, float(value), group, kind, tuple(phases), units, tuple(bounds), fixed)

    def _texture_set_up(self):
        """Per phase: GSAS-II Laue class, harmonic names and uniaxial axes, checked against the symmetry."""
        from .recipe import _texture_symmetry

        self.sh_terms: list[list[str]] = []
        self.laue: list[tuple[str, str]] = []
        self.sh_hkl: list[np.ndarray | None] = []
        for k, (phase, spec) in enumerate(zip(self.phases, self.recipe.phases)):
            problems = _texture_symmetry(spec, phase.spacegroup, phase.cell)
            if problems:
                raise XRDError(f"{self.recipe.path}: " + "; ".join(m for _, m in problems))
            laue = gsas2_laue(phase.spacegroup)
            self.laue.append(laue)
            self.sh_terms.append(sh_names(laue[0], spec.sh_order) if spec.sh_order else [])
            # the member of each reflection GSAS-II evaluates the harmonics at (they differ between
            # members in Laue classes -1, 2/m, 31m, 3R, 3mR; elsewhere any member gives the same value)
            self.sh_hkl.append(gsas2_representatives(self.reflections[k], *laue) if spec.sh_order else None)

    def _make_parameters(self):
        recipe = self.recipe
        self._texture_set_up()
        for k, (phase, spec) in enumerate(zip(self.phases, recipe.phases)):
            self._add(f"{phase.name}:scale", spec.scale if spec.scale is not None else 1.0, "scale", "linear", (k,))
            size = spec.size_um if spec.size_um is not None else DEFAULT_SIZE_UM
            self._add(f"{phase.name}:size", size, "size", "shape", (k,), "µm", SIZE_BOUNDS_UM)
            self._add(f"{phase.name}:mustrain", spec.mustrain or 0.0, "mustrain", "shape", (k,), "ppm", (0.0, np.inf))
            # uniaxial (GSAS-II Size;a / Mustrain;a): PHASE:size / PHASE:mustrain are then the equatorial values
            if spec.size_axis is not None:
                self._add(f"{phase.name}:size_axial", spec.size_axial, "size", "shape", (k,), "µm", SIZE_BOUNDS_UM)
            if spec.mustrain_axis is not None:
                self._add(f"{phase.name}:mustrain_axial", spec.mustrain_axial, "mustrain", "shape", (k,), "ppm",
                          (0.0, np.inf))
            for name in self.sh_terms[k]:
                self._add(f"{phase.name}:{name}", spec.sh_coefficients.get(name, 0.0), "preferred_orientation",
                          "intensity", (k,))
            for name in phase.cell_free:
                units = "deg" if name in ("alpha", "beta", "gamma") else "Å"
                self._add(f"{phase.name}:{name}", phase.cell[CELL_NAMES.index(name)], "cell", "shape", (k,), units)
            for site in phase.sites:
                self._add(f"{phase.name}:{site.label}:uiso", site.uiso, "uiso", "intensity", (k,), "Å²")
                for j, axis in enumerate(site.free_names):
                    col = site.free_basis[:, j]
                    self._add(f"{phase.name}:{site.label}:{axis}", site.xyz @ col / (col @ col), "xyz",
                              "intensity", (k,))
            if phase.preferred_orientation is not None:
                self._add(f"{phase.name}:po_ratio", phase.preferred_orientation[1], "preferred_orientation",
                          "intensity", (k,))
        for i in range(recipe.background_terms):
            value = recipe.background_coefficients[i] if i < len(recipe.background_coefficients) else 0.0
            self._add(f"bkg:{i}", value, "background", "linear", (), "counts")
        inst = self.inst
        self._add("zero", inst.zero, "zero", "shape", (), "deg")
        self._add("displacement", 0.0, "displacement", "shape", (), "µm")
        for name in PROFILE_NAMES:
            units = "centideg²" if name in ("U", "V", "W") else "centideg"
            self._add(name, getattr(inst, name), "profile", "shape", (), units)
        self._add("Z", inst.Z, "Z", "shape", (), "centideg")
        # FCJ axial divergence changes the profile itself, not the per-reflection terms: kind "pattern"
        self._add("SH_L", inst.SH_L, "SH_L", "pattern", (), "1", (1e-5, 0.5))
        self.dopant_params: list[tuple[str, list[str]]] = []
        self.dopant_element: dict[str, str] = {}  # dopant parameter -> its element
        names = {p.name: k for k, p in enumerate(self.phases)}
        for dopant in recipe.dopants:
            for group in dopant.groups():
                for site_name in group:
                    phase_name, label = site_name.split(":", 1)
                    try:
                        self.phases[names[phase_name]].site(label)
                    except KeyError:
                        raise XRDError(f"{recipe.path}: dopant {dopant.element}: site '{site_name}' does not exist "
                                       f"in phase {phase_name} ({dopant.line})") from None
                pname = dopant.parameter(group)
                phases = tuple(sorted({names[s.split(':')[0]] for s in group}))
                self._add(pname, dopant.start, "occupancy", "intensity", phases)
                self.dopant_params.append((pname, group))
                self.dopant_element[pname] = dopant.element
        for spec in recipe.phases:  # a Le Bail phase's scale is never refined: its extracted intensities carry it
            if spec.lebail:
                self.parameters[f"{spec.name}:scale"].fixed = True
        self._occupancy_terms: dict[str, list[tuple[str, str, float]]] = {}  # PHASE:SITE -> (param, species, coef)
        names = {p.name: k for k, p in enumerate(self.phases)}
        for op in recipe.occupancy_parameters:
            phases = set()
            for key, species, coef in op.terms:
                phase_name, label = key.split(":", 1)
                try:
                    self.phases[names[phase_name]].site(label)
                except KeyError:
                    raise XRDError(f"{recipe.path}: {op.kind} {op.name}: unknown site '{key}' ({op.line})") from None
                phases.add(names[phase_name])
                self._occupancy_terms.setdefault(key, []).append((op.name, species, coef))
            self._add(op.name, op.start, "occupancy", "intensity", sorted(phases), "1")
        self._check_occupancy_parameters()
        self._make_ties()

    @property
    def values(self) -> dict[str, float]:
        """Current parameter values."""
        return {name: p.value for name, p in self.parameters.items()}

    def names_in_groups(self, groups) -> list[str]:
        """Parameter names refined by the given recipe groups, in model order (tied ones follow their source)."""
        return [n for n, p in self.parameters.items()
                if p.group in groups and not p.fixed and n not in getattr(self, "ties", {})]

    # ------------------------------------------------------------------ phase state from values
    def cell(self, k: int, values) -> np.ndarray:
        phase = self.phases[k]
        return phase.constrained_cell({n: values[f"{phase.name}:{n}"] for n in phase.cell_free})

    def site_state(self, k: int, values):
        """Per site of phase ``k``: (xyz, uiso, occupancy dict) under ``values`` (dopant applied)."""
        phase = self.phases[k]
        dopant: dict[str, dict[str, float]] = {}  # site -> {element: fraction}
        for pname, group in self.dopant_params:
            for site_name in group:
                dopant.setdefault(site_name, {})[self.dopant_element[pname]] = values[pname]
        out = []
        for site in phase.sites:
            xyz = site.xyz.copy()
            for j, axis in enumerate(site.free_names):
                col = site.free_basis[:, j]
                v0 = site.xyz @ col / (col @ col)
                xyz = xyz + col * (values[f"{phase.name}:{site.label}:{axis}"] - v0)
            occ = site.occupancy
            key = f"{phase.name}:{site.label}"
            if key in dopant:
                occ = doped_occupancies(occ, dopant[key])
            terms = self._occupancy_terms.get(key)
            if terms:
                occ = dict(occ)
                for pname, species, coef in terms:
                    occ[species] = occ.get(species, 0.0) + coef * values[pname]
            out.append((xyz, values[f"{phase.name}:{site.label}:uiso"], occ))
        return out

    def _check_occupancy_parameters(self):
        """Each occupancy parameter's start must leave every occupancy inside [0, 1] (a usable model)."""
        values = self.values
        for k, phase in enumerate(self.phases):
            for site, (_, _, occ) in zip(phase.sites, self.site_state(k, values)):
                if f"{phase.name}:{site.label}" not in self._occupancy_terms:
                    continue
                bad = {s: o for s, o in occ.items() if o < -1e-9 or o > 1 + 1e-9}
                if bad or sum(occ.values()) > 1 + 1e-6:
                    names = sorted({p for p, _, _ in self._occupancy_terms[f"{phase.name}:{site.label}"]})
                    lines = "; ".join(op.line for op in self.recipe.occupancy_parameters if op.name in names)
                    raise XRDError(f"{self.recipe.path}: the start of {', '.join(names)} gives site "
                                   f"{phase.name}:{site.label} occupancies {occ} outside 0-1 ({lines})")

    def occupancy_checks(self, values, esd: dict[str, float]):
        """``(label, value, esd, 0, 1)`` of every occupancy an occupancy parameter moves (quality bounds)."""
        out = []
        for k, phase in enumerate(self.phases):
            for site, (_, _, occ) in zip(phase.sites, self.site_state(k, values)):
                key = f"{phase.name}:{site.label}"
                for pname, species, coef in self._occupancy_terms.get(key, []):
                    e = abs(coef) * esd.get(pname, np.nan)
                    if np.isfinite(e):
                        out.append((f"occupancy of {species} on {key}", occ[species], e, 0.0, 1.0))
        return out

    # ------------------------------------------------------------------ ties
    def _make_ties(self):
        """``[[tie]]``: parameter = factor * same_as, checked against the model's parameter names."""
        self.ties: dict[str, tuple[str, float]] = {}
        for tie in self.recipe.ties:
            for name in (tie.parameter, tie.same_as):
                if name not in self.parameters:
                    near = [n for n in self.parameters if n.split(":")[0] == name.split(":")[0]][:8]
                    raise XRDError(f"{self.recipe.path}: [[tie]] names unknown parameter '{name}' ({tie.line}); "
                                   f"known e.g. {', '.join(near) or ', '.join(list(self.parameters)[:8])}")
            a, b = self.parameters[tie.parameter], self.parameters[tie.same_as]
            if a.kind != b.kind or (a.kind == "linear" and a.group != b.group):
                raise XRDError(f"{self.recipe.path}: [[tie]] {tie.parameter} ({a.group}) cannot follow "
                               f"{tie.same_as} ({b.group}) ({tie.line})")
            self.ties[tie.parameter] = (tie.same_as, tie.factor)
        # resolve chains a -> b -> c into a -> c (the recipe loader refused cycles)
        for name in list(self.ties):
            source, factor = self.ties[name]
            while source in self.ties:
                nxt, f = self.ties[source]
                source, factor = nxt, factor * f
            self.ties[name] = (source, factor)
        for name, (source, factor) in self.ties.items():
            self.parameters[name].value = factor * self.parameters[source].value

    def apply_ties(self, values) -> dict[str, float]:
        """``values`` with every tied parameter set from its source."""
        if not self.ties:
            return values
        out = dict(values)
        for name, (source, factor) in self.ties.items():
            out[name] = factor * out[source]
        return out

    def dependents(self, name: str) -> list[tuple[str, float]]:
        """``name`` itself (factor 1) and every parameter tied to it with its factor."""
        return [(name, 1.0)] + [(n, f) for n, (src, f) in self.ties.items() if src == name]

    def touched_phases(self, name: str) -> set[int]:
        """Phases whose pattern a change of ``name`` (and of everything tied to it) changes."""
        return {k for dep, _ in self.dependents(name) for k in self.parameters[dep].phases}

    def mass(self, k: int, values) -> float:
        return cell_mass(self.phases[k], [s[2] for s in self.site_state(k, values)])

    # ------------------------------------------------------------------ intensities
    def _intensity_key(self, k: int, values) -> tuple:
        names = self._key_names.get(k)
        if names is None:
            names = [n for n, p in self.parameters.items()
                     if k in p.phases and (p.kind == "intensity" or p.group == "cell")]
            self._key_names[k] = names
        return tuple(values[n] for n in names)

    def structure_factor_sq(self, k: int, values, hkl=None, inv_d2=None) -> np.ndarray:
        """``|F|^2`` (electrons²) averaged over h and -h (anomalous dispersion included).

        For a Le Bail phase: its extracted intensities (:meth:`lebail_update`), in the same place.
        """
        if k in self.lebail:
            if hkl is not None:
                raise XRDError(f"{self.recipe.path}: phase {self.phases[k].name} is a Le Bail phase: "
                               "no structure factors")
            return self.lebail[k]
        if hkl is None:
            # the last result per phase is kept: profile and position parameters do not change it
            key = self._intensity_key(k, values)
            cached = self._f2_cache.get(k)
            if cached is not None and cached[0] == key:
                return cached[1]
            f2 = self._structure_factor_sq(k, values, None, inv_d2)
            self._f2_cache[k] = (key, f2)
            return f2
        return self._structure_factor_sq(k, values, hkl, inv_d2)

    def _structure_factor_sq(self, k: int, values, hkl=None, inv_d2=None) -> np.ndarray:
        phase = self.phases[k]
        refl = self.reflections[k]
        hkl = refl.hkl if hkl is None else hkl
        cell = self.cell(k, values)
        inv_d2 = inverse_d_squared(cell, hkl) if inv_d2 is None else inv_d2
        stol2 = inv_d2 / 4.0
        own = hkl is refl.hkl
        cached = self._f0_cache.get(k) if own else None
        if cached is not None and np.array_equal(cached[0], stol2):
            f = cached[1]
        else:
            c = self._coef[k]
            f0 = np.sum(c[None, :, :4] * np.exp(-c[None, :, 4:8] * stol2[:, None, None]), axis=2) + c[None, :, 8]
            f = f0 + self._anom[k][None, :]  # (n_refl, n_species)
            if own:
                self._f0_cache[k] = (stol2, f)
        index = {s: i for i, s in enumerate(self._species[k])}
        fplus = np.zeros(hkl.shape[0], complex)
        fminus = np.zeros(hkl.shape[0], complex)
        for j, (site, (xyz, uiso, occ)) in enumerate(zip(phase.sites, self.site_state(k, values))):
            fsite = sum(o * f[:, index[s]] for s, o in occ.items())
            dw = np.exp(-8.0 * np.pi**2 * uiso * stol2)
            key = tuple(xyz)
            geo = self._geometry_cache.get((k, j)) if own else None
            if geo is not None and geo[0] == key:
                geometry = geo[1]
            else:
                # sum over the orbit of exp(2 pi i h.x): the costly part, kept while the site does not move
                geometry = np.exp(2j * np.pi * (hkl @ site.orbit(xyz).T)).sum(axis=1)
                if own:
                    self._geometry_cache[(k, j)] = (key, geometry)
            fplus += fsite * dw * geometry
            fminus += fsite * dw * np.conj(geometry)
        return 0.5 * (np.abs(fplus) ** 2 + np.abs(fminus) ** 2)

    def preferred_orientation(self, k: int, values) -> np.ndarray:
        """Texture factor of each reflection (1 without PO): March-Dollase averaged over the equivalents,
        or GSAS-II's spherical harmonics (:func:`xrd.texture.sh_factor`) at the member GSAS-II lists."""
        phase = self.phases[k]
        refl = self.reflections[k]
        if self.sh_terms[k]:
            coefficients = {n: values[f"{phase.name}:{n}"] for n in self.sh_terms[k]}
            return sh_factor(self.sh_hkl[k], self.cell(k, values), *self.laue[k], coefficients)
        if phase.preferred_orientation is None:
            return np.ones(len(refl))
        axis = np.asarray(phase.preferred_orientation[0], float)
        gstar = np.linalg.inv(metric(self.cell(k, values)))
        members = refl.members.astype(float)
        num = members @ gstar @ axis
        norm = np.sqrt(np.einsum("ni,ij,nj->n", members, gstar, members) * (axis @ gstar @ axis))
        md = march_dollase(num / norm, values[f"{phase.name}:po_ratio"])
        return np.bincount(refl.member_of, md, len(refl)) / refl.multiplicity

    def clamp(self, values) -> dict[str, float]:
        """``values`` with ties applied and every bounded parameter clipped into its bounds (hard limits)."""
        out = self.apply_ties(values)
        for name, par in self.parameters.items():
            lo, hi = par.bounds
            if name in out and (out[name] < lo or out[name] > hi):
                out[name] = float(min(max(out[name], lo), hi))
        return out

    def valid_positions(self, pos) -> np.ndarray:
        """Reflections whose Ka1 (and Ka2) position is defined and strictly inside 0-180 deg 2theta.

        The others (beyond the wavelength limit, or pushed past 180 deg by a cell or displacement
        step) are dropped from that evaluation: zero intensity, no derivative.
        """
        ok = np.isfinite(pos) & (pos > 0.0) & (pos < 180.0)
        if self.ka2:
            with np.errstate(invalid="ignore"):
                p2 = pos + self.lam_ratio * np.tan(np.radians(np.where(ok, pos, 0.0) / 2.0))
            ok &= p2 < 180.0
        return ok

    def peaks(self, k: int, values):
        """Positions (deg), Gaussian variance (centideg²), Lorentzian FWHM (centideg), unit-scale intensities.

        Reflections without a valid position (:meth:`valid_positions`) get position NaN, intensity 0
        and finite widths, so nothing non-finite reaches a profile or a derivative.
        """
        phase = self.phases[k]
        spec = self.recipe.phases[k]
        refl = self.reflections[k]
        cell = self.cell(k, values)
        inv_d2 = inverse_d_squared(cell, refl.hkl)
        d = 1.0 / np.sqrt(inv_d2)
        raw = peak_position(d, self.lam1, values["zero"], values["displacement"], self.inst.radius_mm)
        ok = self.valid_positions(raw)
        pos = np.where(ok, raw, 90.0)
        size = min(max(values[f"{phase.name}:size"], SIZE_BOUNDS_UM[0]), SIZE_BOUNDS_UM[1])
        strain = max(values[f"{phase.name}:mustrain"], 0.0)
        if spec.size_axis is not None:
            axial = min(max(values[f"{phase.name}:size_axial"], SIZE_BOUNDS_UM[0]), SIZE_BOUNDS_UM[1])
            size = uniaxial_size(axis_cosines(refl.hkl, spec.size_axis, cell), size, axial)
        if spec.mustrain_axis is not None:
            axial = max(values[f"{phase.name}:mustrain_axial"], 0.0)
            strain = uniaxial_mustrain(axis_cosines(refl.hkl, spec.mustrain_axis, cell), strain, axial)
        s_sig2, s_gam = sample_broadening(pos, self.lam1, size, strain, spec.size_mix, spec.mustrain_mix)
        sig2 = gaussian_variance(pos, values["U"], values["V"], values["W"], s_sig2)
        gam = lorentzian_fwhm(pos, values["X"], values["Y"], values["Z"], self.lam1, sample=s_gam)
        lp = lorentz_polarization(pos, self.inst.polarization, self.inst.monochromator_angle)
        intensity = (refl.multiplicity * self.structure_factor_sq(k, values, inv_d2=inv_d2) * lp
                     * self.preferred_orientation(k, values) / volume(cell))
        intensity = np.where(ok & np.isfinite(intensity), intensity, 0.0)
        return np.where(ok, raw, np.nan), sig2, gam, intensity

    def width_floor_counts(self, values) -> list[tuple[int, int, int]]:
        """Per phase ``(reflections in range, at the Gaussian floor, at the Lorentzian floor)``."""
        out = []
        for k in range(len(self.phases)):
            pos, sig2, gam, _ = self.peaks(k, values)
            inside = np.isfinite(pos) & (pos >= self.x[0]) & (pos <= self.x[-1])
            out.append((int(inside.sum()), int(np.sum(inside & (sig2 <= SIGMA2_FLOOR * (1 + 1e-9)))),
                        int(np.sum(inside & (gam <= GAMMA_FLOOR * (1 + 1e-9))))))
        return out

    # ------------------------------------------------------------------ profiles
    def _layout(self, k: int, values, old: _Layout | None = None) -> _Layout:
        pos, sig2, gam, _ = self.peaks(k, values)
        shl = values["SH_L"]
        fwhm_est = 2.355 * np.sqrt(sig2) / 100.0 + gam / 100.0
        lines = [(0, pos)]
        if self.ka2:
            lines.append((1, pos + self.lam_ratio * np.tan(np.radians(pos / 2.0))))
        x = self.x
        fcj = np.zeros_like(pos)
        if shl > 0:
            offsets, _ = fcj_offsets(np.nan_to_num(pos, nan=90.0), shl, FCJ_NODES)
            fcj = np.abs(offsets).max(axis=1)
        low = np.where(pos < 90.0, WINDOW_FWHM[0], WINDOW_FWHM[1]) * fwhm_est + fcj
        high = np.where(pos < 90.0, WINDOW_FWHM[1], WINDOW_FWHM[0]) * fwhm_est + fcj
        keep = np.zeros(pos.size, bool)
        for _, p in lines:
            keep |= np.isfinite(p) & (p + high > x[0]) & (p - low < x[-1])
        refl = np.nonzero(keep)[0]
        # FCJ nodes where the asymmetry matters; everywhere while SH/L itself is refined (else no gradient)
        asym = (fcj[refl] > 0.02 * fwhm_est[refl]) | (self.asymmetry_everywhere & (fcj[refl] > 0))
        sub_refl, sub_line, sub_node, starts, stops = [], [], [], [], []
        nodes = np.where(asym, FCJ_NODES, 1)
        for line, p in lines:
            r = np.repeat(np.arange(refl.size), nodes)
            node = np.concatenate([np.arange(n) if a else [-1] for n, a in zip(nodes, asym)]) if refl.size else \
                np.zeros(0, int)
            centre = p[refl][r]
            starts.append(np.searchsorted(x, centre - low[refl][r]))
            stops.append(np.searchsorted(x, centre + high[refl][r]))
            sub_refl.append(r)
            sub_line.append(np.full(r.size, line))
            sub_node.append(node.astype(int))
        sub_refl, sub_line, sub_node = (np.concatenate(a) for a in (sub_refl, sub_line, sub_node))
        starts, stops = np.concatenate(starts), np.concatenate(stops)
        order = np.lexsort((sub_node, sub_line, sub_refl))  # group sub-peaks by reflection (CSC columns)
        sub_refl, sub_line, sub_node, starts, stops = (a[order] for a in (sub_refl, sub_line, sub_node, starts, stops))
        counts = np.maximum(stops - starts, 0)
        if (old is not None and np.array_equal(refl, old.refl) and np.array_equal(asym, old.asym)
                and np.array_equal(starts, old.starts) and np.array_equal(counts, old.counts)):
            return old  # same windows: keep the flat arrays (and their cached block structure)
        flat_sub = np.repeat(np.arange(counts.size), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        flat_point = (starts[flat_sub] + (np.arange(flat_sub.size) - first)).astype(np.int32)
        per_refl = np.bincount(refl[sub_refl], weights=counts, minlength=pos.size).astype(np.int64)
        indptr = np.concatenate([[0], np.cumsum(per_refl)]).astype(np.int32 if flat_point.size < 2**31 else np.int64)
        return _Layout(refl, asym, sub_refl, sub_line, sub_node, flat_point, flat_sub, counts, starts,
                       x[flat_point], indptr)

    def freeze(self, values) -> bool:
        """Fix the peak windows at ``values`` (done at the start of each least-squares cycle).

        Returns whether any window changed (a pattern calculated before under the old windows is
        still exact when none did).
        """
        old = self._layouts if self._layouts is not None else [None] * len(self.phases)
        new = [self._layout(k, values, o) for k, o in enumerate(old)]
        changed = any(n is not o for n, o in zip(new, old))
        self._layouts = new
        return changed

    def _sub_peaks(self, k: int, values):
        """Per sub-peak of the frozen layout: centre (deg), FWHM (deg), eta, weight, d centre / d Ka1 position;
        with the phase's reflection positions, widths and intensities."""
        if self._layouts is None:
            self.freeze(values)
        lay = self._layouts[k]
        pos, sig2, gam, intensity = self.peaks(k, values)
        # a frozen reflection that lost its position under these values (intensity 0 there) is put
        # far outside the pattern so its profile is 0 and finite
        pos = np.where(np.isfinite(pos), pos, -1.0e4)
        r = lay.refl[lay.sub_refl]
        centre = pos[r]
        factor = np.ones(r.size)
        if self.ka2:
            is2 = lay.sub_line == 1
            half = np.radians(centre / 2.0)
            centre = np.where(is2, centre + self.lam_ratio * np.tan(half), centre)
            factor = np.where(is2, 1.0 + self.lam_ratio * (np.pi / 360.0) / np.cos(half) ** 2, 1.0)
        weight = np.where(lay.sub_line == 1, self.inst.ka2_ratio, 1.0)
        if np.any(lay.sub_node >= 0):
            offsets, w_fcj = fcj_offsets(np.clip(pos[r], 1e-3, 179.9), values["SH_L"], FCJ_NODES)
            node = np.maximum(lay.sub_node, 0)
            has = lay.sub_node >= 0
            rows = np.arange(r.size)
            centre = centre + np.where(has, offsets[rows, node], 0.0)
            weight = weight * np.where(has, w_fcj[rows, node], 1.0)
        fwhm, eta = tch_fwhm_eta(sig2[r], gam[r])
        return lay, r, centre, fwhm, eta, weight, factor, intensity

    def profile_terms(self, k: int, values, partials: bool = False):
        """Flat arrays ``(point, reflection, value, intensities)``: the unit-area profile of each reflection
        at each point (Ka2 weighted by its ratio, FCJ nodes by their weights); with the phase intensities
        this is the sparse matrix of the pattern.

        With ``partials=True`` also ``(d value/d centre, d value/d FWHM, d value/d eta)`` per flat
        entry, the centre being the Ka1 position (the Ka2 dispersion term applied); FCJ node offsets
        are held fixed in these partials.
        """
        lay, r, centre, fwhm, eta, weight, factor, intensity = self._sub_peaks(k, values)
        refl = r[lay.flat_sub]
        if not partials:
            return lay.flat_point, refl, flat_pseudo_voigt(lay, centre, fwhm, eta, weight), intensity
        out = flat_pseudo_voigt_partials(lay, centre, fwhm, eta, weight, factor)
        return (lay.flat_point, refl, out[0], intensity, out[1], out[2], out[3])

    def profile_matrix(self, k: int, values, partials: bool = False):
        """``(matrix, intensities)``: the sparse (points x reflections) unit-area profile matrix of phase
        ``k`` (scipy CSC); with ``partials`` four such matrices side by side: profile, d/d centre,
        d/d FWHM, d/d eta (see :meth:`profile_terms`)."""
        import scipy.sparse

        lay, _, centre, fwhm, eta, weight, factor, intensity = self._sub_peaks(k, values)
        if partials:
            data = flat_pseudo_voigt_partials(lay, centre, fwhm, eta, weight, factor).ravel()
        else:
            data = flat_pseudo_voigt(lay, centre, fwhm, eta, weight)
        blocks = 4 if partials else 1
        indices, indptr = lay.block_structure(blocks)
        matrix = scipy.sparse.csc_matrix((data, indices, indptr), shape=(self.x.size, blocks * intensity.size))
        return matrix, intensity

    def lebail_update(self, values, iterations: int = 1) -> None:
        """Le Bail extraction: each Le Bail reflection's intensity is multiplied by the profile-weighted mean
        of ``obs / calc`` over its window (Le Bail, Duroy & Fourquet, Mat. Res. Bull. 23 (1988) 447):
        overlapping reflections share the observed counts in proportion to their calculated ones.

        The ratio is of total counts, background included, as in Le Bail's formula (it is also the
        expectation-maximisation step of the Poisson likelihood, so its fixed point is the best fit).
        GSAS-II's ``GetFobsSq`` uses net counts ``(obs - bkg) / (calc - bkg)`` and keeps only positive
        ratios (a phase's ``lebail_ratio = "net"`` follows it); in a reflection's far tails that ratio
        is counting noise over almost nothing, and keeping its positive half overstates weak
        reflections (a weak spinel 220 came out 5.4x stronger, 67.8 vs 12.5 counts·deg), so it is not the
        default. Peak windows are the frozen ones (:meth:`freeze`); points outside the refinement do
        not count.
        """
        if not self.lebail:
            return
        background = self.background(values)
        for _ in range(iterations):
            calc = self.calculate(values)
            ratios = {}
            for rule in {self.recipe.phases[k].lebail_ratio for k in self.lebail}:
                obs, model = (self.y, calc) if rule == "total" else (self.y - background, calc - background)
                positive = self.used & (model > 0)
                ratio = np.where(positive, obs / np.where(positive, model, 1.0), 0.0)
                ratios[rule] = (np.where(ratio > 0, ratio, 0.0), positive if rule == "total" else self.used)
            for k in self.lebail:
                ratio, counted = ratios[self.recipe.phases[k].lebail_ratio]
                point, refl, val, inten = self.profile_terms(k, values)
                mask = counted[point]
                num = np.bincount(refl, val * ratio[point], minlength=inten.size)
                den = np.bincount(refl[mask], val[mask], minlength=inten.size)
                self.lebail[k] = self.lebail[k] * np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)

    def lebail_intensities(self, k: int, values) -> np.ndarray:
        """Integrated intensity (counts·deg, Kα1 line) of each reflection of Le Bail phase ``k``."""
        return values[f"{self.phases[k].name}:scale"] * self.peaks(k, values)[3]

    def phase_pattern(self, k: int, values, intensity=None) -> np.ndarray:
        """Unit-scale pattern of phase ``k`` (multiply by its scale)."""
        lay, r, centre, fwhm, eta, weight, _, inten = self._sub_peaks(k, values)
        inten = inten if intensity is None else intensity
        values_flat = flat_pseudo_voigt(lay, centre, fwhm, eta, weight * inten[r])
        return np.bincount(lay.flat_point, values_flat, minlength=self.x.size)

    def background(self, values) -> np.ndarray:
        coeffs = np.array([values[f"bkg:{i}"] for i in range(self.recipe.background_terms)])
        return self.bkg_design @ coeffs

    def calculate(self, values) -> np.ndarray:
        """Calculated pattern (counts) on ``self.x``."""
        total = self.background(values)
        for k, phase in enumerate(self.phases):
            total = total + values[f"{phase.name}:scale"] * self.phase_pattern(k, values)
        return total

    def reflection_table(self, values):
        """``(two_theta, hkl label, phase name)`` of every Ka1 reflection inside the data range."""
        tts, labels, names = [], [], []
        for k, phase in enumerate(self.phases):
            pos = self.peaks(k, values)[0]
            inside = np.isfinite(pos) & (pos >= self.x[0]) & (pos <= self.x[-1])
            tts.append(pos[inside])
            labels += [lab for lab, ok in zip(self.reflections[k].labels(), inside) if ok]
            names += [phase.name] * int(inside.sum())
        return (np.concatenate(tts) if tts else np.zeros(0)), labels, names

