"""Refinement recipes: one TOML file holding data, instrument, range, background, phases, dopant, stages.

Both engines (built-in :mod:`doptrace.xrd.rietveld` and the GSAS-II driver) consume the :class:`Recipe` that
:func:`load_recipe` returns; paths inside a recipe are relative to the recipe file.

Example
-------
>>> from importlib.resources import files
>>> recipe = load_recipe(files("doptrace.examples") / "xrd" / "li-rich-two-phase.toml")
>>> [phase.name for phase in recipe.phases], [d.element for d in recipe.dopants]
(['LiTMO2', 'Li2MnO3'], ['B'])
>>> [stage.name for stage in recipe.stages]
['scale+background', '+cell+displacement', '+profile', '+oxygen positions', '+B site fractions']
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from doptrace.core.tomlfile import Problems, TomlFile, key_lines, read_toml

from .errors import XRDError
from .instrument import Instrument

#: Parameter groups a stage may refine.
GROUPS = (
    "scale", "background", "cell", "zero", "displacement", "profile",
    "uiso", "xyz", "occupancy", "preferred_orientation", "size", "mustrain", "Z", "SH_L",
)

_ION = re.compile(r"^([A-Z][a-z]?)(\d*)([+-]?)$")


def parse_species(label: str) -> tuple[str, int]:
    """Element symbol and charge of an occupancy key: ``"Li"`` -> (Li, 0), ``"O2-"`` -> (O, -2).

    Examples
    --------
    >>> parse_species("Mn4+")
    ('Mn', 4)
    """
    match = _ION.match(label.strip())
    if not match or (match.group(2) and not match.group(3)):
        raise ValueError(f"'{label}' is not an element or ion label (e.g. Li, Li+, O2-)")
    symbol, number, sign = match.groups()
    charge = int(number or 1) * (1 if sign == "+" else -1) if sign else 0
    return symbol, charge


@dataclass
class SiteSpec:
    """One crystallographic site; several species share its xyz and Uiso (a mixed site)."""

    label: str
    xyz: tuple[float, float, float]
    uiso: float = 0.01
    occupancy: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.occupancy.values()))


@dataclass
class PhaseSpec:
    """A phase: either a CIF path or space group + cell + sites."""

    name: str
    space_group: str = ""
    cell: tuple[float, ...] = ()
    sites: list[SiteSpec] = field(default_factory=list)
    cif: Path | None = None
    size_um: float | None = None  # isotropic crystallite size (µm); None: GSAS-II's default 10 µm
    mustrain: float | None = None  # isotropic microstrain (ppm, GSAS-II's "mustrain"); None: 0
    size_mix: float = 1.0  # Lorentzian fraction of the size broadening (GSAS-II LGmix)
    mustrain_mix: float = 1.0  # Lorentzian fraction of the microstrain broadening
    preferred_orientation: tuple[tuple[int, int, int], float] | None = None  # March-Dollase (hkl, ratio)
    scale: float | None = None
    #: uniaxial size/mustrain (GSAS-II 'uniaxial'): the axis (indices in the reciprocal metric, as GSAS-II)
    #: and the axial value; ``size_um``/``mustrain`` then hold the equatorial value (GSAS-II ``;i``)
    size_axis: tuple[int, int, int] | None = None
    size_axial: float | None = None
    mustrain_axis: tuple[int, int, int] | None = None
    mustrain_axial: float | None = None
    #: spherical-harmonics preferred orientation (GSAS-II 'SH', cylindrical sample symmetry): order
    #: (0 = none) and start coefficients by GSAS-II name ``C(L,N)`` (missing ones start at 0)
    sh_order: int = 0
    sh_coefficients: dict[str, float] = field(default_factory=dict)
    #: ``refine = false`` in a size / mustrain / preferred_orientation table: held even in stages refining the group
    fixed_groups: tuple[str, ...] = ()
    #: Le Bail phase: space group + cell only, reflection intensities extracted (no atoms, no weight fraction)
    lebail: bool = False
    #: Le Bail ratio: "total" obs/calc (Le Bail 1988; default) or "net" (obs-bkg)/(calc-bkg) > 0 (GSAS-II's rule)
    lebail_ratio: str = "total"


@dataclass
class DopantSpec:
    """Dopant element, its candidate sites ``PHASE:SITE`` and groups refined as one parameter.

    A recipe may hold several (``[[dopant]]`` tables, one element each); dopants sharing a site
    each have their own fraction, and the host species keep ``site total - sum of fractions``.
    """

    element: str
    sites: list[str]
    shared: list[list[str]] = field(default_factory=list)
    start: float = 0.0
    line: str = ""  # the recipe line that defined it (for messages)

    def parameter(self, group: list[str]) -> str:
        """Model parameter name of one group of sites: ``B@PHASE:SITE[+PHASE:SITE...]``."""
        return f"{self.element}@" + "+".join(group)

    def groups(self) -> list[list[str]]:
        """Candidate sites grouped by parameter: shared groups first, the rest one per site."""
        grouped = [list(g) for g in self.shared]
        taken = {s for g in grouped for s in g}
        return grouped + [[s] for s in self.sites if s not in taken]


@dataclass
class OccupancyParameter:
    """One refined occupancy amount ``x`` and the occupancies it moves, linearly.

    ``terms`` lists ``(PHASE:SITE, species, coefficient)``: the occupancy of ``species`` on that
    site is its recipe value plus ``coefficient * x``. An exchange pair moves ``x`` of species B
    onto site 1 (replacing A) and ``x * m1/m2`` of A onto site 2 (replacing B), so the composition
    is kept; a substitution moves ``x`` of one species in for another on one site.
    """

    name: str
    terms: list[tuple[str, str, float]]
    start: float = 0.0
    kind: str = "exchange"
    line: str = ""  # the recipe line that defined it (for messages)


@dataclass
class Tie:
    """``parameter = factor * same_as`` (Uiso, xyz, occupancy, scale ... across sites and phases)."""

    parameter: str
    same_as: str
    factor: float = 1.0
    line: str = ""


@dataclass
class Stage:
    """One refinement stage; stages are cumulative (each adds its groups to the previous ones)."""

    refine: list[str]
    name: str = ""
    max_cycles: int = 10


@dataclass
class Recipe:
    """A parsed, checked recipe; ``path`` names the TOML file (errors cite it)."""

    path: Path
    data_file: Path | None
    instrument: Instrument
    two_theta_range: tuple[float, float] | None
    exclude: list[tuple[float, float]]
    background_type: str
    background_terms: int
    background_coefficients: list[float]
    phases: list[PhaseSpec]
    dopants: list[DopantSpec]
    stages: list[Stage]
    instrument_table: dict = field(default_factory=dict)  # the recipe's own [instrument] values
    #: reflections kept up to this many degrees beyond the upper 2theta limit (0: GSAS-II's cut at the limit)
    reflection_margin: float = 0.0
    #: refinable occupancy parameters from ``[[exchange]]`` and ``[[substitution]]`` tables
    occupancy_parameters: list["OccupancyParameter"] = field(default_factory=list)
    #: ``[[tie]]`` tables: parameter = factor * same_as
    ties: list["Tie"] = field(default_factory=list)

    @property
    def dopant(self) -> DopantSpec | None:
        """The first dopant (None without any); recipes with several use :attr:`dopants`."""
        return self.dopants[0] if self.dopants else None

    @property
    def lebail_phases(self) -> list[str]:
        """Names of the Le Bail phases (intensities extracted, no structure)."""
        return [p.name for p in self.phases if p.lebail]

    def cumulative_groups(self) -> list[list[str]]:
        """Refined groups of each stage, accumulated in order (GSAS-II convention)."""
        out, current = [], []
        for stage in self.stages:
            current = current + [g for g in stage.refine if g not in current]
            out.append(list(current))
        return out

    def phase(self, name: str) -> PhaseSpec:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise XRDError(f"{self.path}: no phase named '{name}'")

    def with_data(self, path) -> "Recipe":
        """Copy using another data file (``--data``)."""
        return dataclasses.replace(self, data_file=Path(path))

    def with_instrument(self, path) -> "Recipe":
        """Copy using an instrument file (``--instrument``); the recipe's table values still win."""
        return dataclasses.replace(self, instrument=_instrument(dict(self.instrument_table), self.path, Path(path)))


def load_recipe(path) -> Recipe:
    """Read and check a recipe TOML file; :class:`XRDError` lists every problem, each with its line.

    Parameters
    ----------
    path : str or Path
        The recipe. Relative paths inside it are taken relative to its folder.

    Returns
    -------
    Recipe
    """
    path = Path(path)
    return _parse(read_toml(path, XRDError, "recipe"), path)


def parse_recipe(raw: dict, path) -> Recipe:
    """A :class:`Recipe` from an already parsed TOML mapping (``path`` for errors and relative paths)."""
    return _parse(TomlFile(str(path), "", raw), Path(path))


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value, what: str, n: int | None = None) -> list[float]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise ValueError(f"{what} must be a list of {n or 'some'} numbers, got {value!r}")
    return [_number(v, what) for v in value]


class _At(ValueError):
    """Problems at keys below the one being checked (key paths relative to it)."""

    def __init__(self, keys: tuple, message: str, more=()):
        super().__init__(message)
        self.items = [(keys, message), *more]


def _parse(doc: TomlFile, path: Path) -> Recipe:
    """Check every section, collecting all problems (each at its key's line) before raising."""
    raw, base = doc.data, path.parent
    problems = Problems(doc)

    def check(keys: tuple, fn, *args, default=None):
        try:
            return fn(*args)
        except (TypeError, ValueError, KeyError) as exc:
            for below, text in exc.items if isinstance(exc, _At) else [((), str(exc))]:
                problems.add(keys + below, text.removeprefix(f"{path}: "))
            return default

    for key in sorted(set(raw) - {"data", "instrument", "range", "background", "phase", "dopant", "stage", "title",
                                  "exchange", "substitution", "tie"}):
        problems.add((key,), f"unknown recipe section(s): {key}")
    data = raw.get("data", {})
    data_file = (base / data["file"]) if isinstance(data, dict) and "file" in data else None

    table = dict(raw.get("instrument", {}))
    inst_file = base / table.pop("file") if "file" in table else None
    instrument = check(("instrument",), _instrument, table, path, inst_file, default=Instrument())

    rng = raw.get("range", {})
    two_theta, exclude, margin = check(("range",), _range, rng, default=(None, [], 0.0))

    bkg = raw.get("background", {})
    bkg_type, terms, coefficients = check(("background",), _background, bkg, default=("chebyshev", 6, []))

    phases_raw = raw.get("phase", [])
    phases = []
    if not isinstance(phases_raw, list) or not phases_raw:
        problems.add(("phase",), "no [[phase]] tables")
        phases_raw = []
    for number, phase in enumerate(phases_raw):
        phases.append(check(("phase", number), _phase, phase, base))
    names = [p.name for p in phases if p is not None]
    if len(set(names)) != len(names):
        problems.add(("phase",), f"phase names must be unique: {names}")

    dopants = []
    if "dopant" in raw and all(p is not None for p in phases):  # dopant sites name phases and their sites
        dopants = check((), _dopants, raw["dopant"], phases, path, default=[])

    stages = []
    for number, st in enumerate(raw.get("stage", [])):
        stages.append(check(("stage", number), _stage, st, number))
    stages = [s for s in stages if s is not None] or [Stage(["scale", "background"], "scale+background")]
    occupancy = []
    if all(p is not None for p in phases):  # exchange/substitution sites name phases and their sites
        occupancy = check((), _occupancy_parameters, raw, phases, path, default=[])
    ties = check((), _ties, raw, path, default=[])
    problems.raise_if_any(XRDError)
    return Recipe(path, data_file, instrument, two_theta, exclude, bkg_type, terms, coefficients,
                  phases, dopants, stages, table, margin, occupancy, ties)


def _range(rng: dict):
    if not isinstance(rng, dict):
        raise ValueError("[range] must be a table")
    two_theta = None
    if "two_theta" in rng:
        lo, hi = _numbers(rng["two_theta"], "range.two_theta", 2)
        if not 0 <= lo < hi <= 180:
            raise _At(("two_theta",), f"range.two_theta [{lo}, {hi}] is not an increasing range inside 0-180 deg")
        two_theta = (lo, hi)
    exclude = []
    for pair in rng.get("exclude", []):
        lo, hi = _numbers(pair, "range.exclude entry", 2)
        if lo >= hi:
            raise _At(("exclude",), f"range.exclude [{lo}, {hi}] is empty")
        exclude.append((lo, hi))

    margin = _number(rng.get("reflection_margin", 0.0), "range.reflection_margin")
    if not 0.0 <= margin <= 180.0:
        raise _At(("reflection_margin",),
                  f"range.reflection_margin = {margin} must be 0-180 deg (0 = GSAS-II's cut at the limit)")
    unknown_range = set(rng) - {"two_theta", "exclude", "reflection_margin"}
    if unknown_range:
        raise ValueError(f"unknown [range] key(s): {', '.join(sorted(unknown_range))}")
    return two_theta, exclude, margin


def _background(bkg: dict):
    if not isinstance(bkg, dict):
        raise ValueError("[background] must be a table")
    bkg_type = str(bkg.get("type", "chebyshev")).lower().replace("chebyschev-1", "chebyshev")
    if bkg_type != "chebyshev":
        raise _At(("type",), f"background type '{bkg_type}' is not supported (chebyshev)")
    coefficients = _numbers(bkg.get("coefficients", []), "background.coefficients")
    terms = int(bkg.get("terms", max(len(coefficients), 6)))
    if not 1 <= terms <= 36:
        raise _At(("terms",), f"background.terms = {terms} must be 1-36")
    return bkg_type, terms, coefficients


def _stage(st: dict, number: int) -> Stage:
    if not isinstance(st, dict):
        raise ValueError(f"stage {number + 1} must be a [[stage]] table")
    refine = st.get("refine", [])
    if not isinstance(refine, list) or not all(isinstance(g, str) for g in refine):
        raise _At(("refine",), f"stage {number + 1}: refine must be a list of group names")
    bad = [g for g in refine if g not in GROUPS]
    if bad:
        raise _At(("refine",), f"stage {number + 1}: unknown parameter group(s) {bad} (known: {', '.join(GROUPS)})")
    cycles = int(st.get("max_cycles", 10))
    if cycles < 1:
        raise _At(("max_cycles",), f"stage {number + 1}: max_cycles must be >= 1")
    return Stage(refine=list(refine), name=str(st.get("name", f"stage {number + 1}")), max_cycles=cycles)


_INSTRUMENT_KEYS = {"wavelengths", "ka2_ratio", "polarization", "monochromator_angle", "radius_mm", "zero",
                    "U", "V", "W", "X", "Y", "Z", "SH_L"}


def _instrument(table: dict, path: Path, inst_file: Path | None) -> Instrument:
    unknown = set(table) - _INSTRUMENT_KEYS
    if unknown:
        raise XRDError(f"{path}: unknown instrument key(s): {', '.join(sorted(unknown))}")
    spec = Instrument()
    if inst_file is not None:
        from . import read_instrument  # the readers' module; imported late to keep recipes light

        spec = dataclasses.replace(read_instrument(inst_file), file=inst_file)
    try:
        values = {}
        for key, value in table.items():
            if key == "wavelengths":
                wl = _numbers(value, "instrument.wavelengths")
                if not 1 <= len(wl) <= 2 or wl[0] <= 0:
                    raise ValueError("instrument.wavelengths must be [lambda1] or [lambda1, lambda2] in A")
                values[key] = (wl[0], wl[1] if len(wl) > 1 else float("nan"))
            else:
                values[key] = _number(value, f"instrument.{key}")
        if "monochromator_angle" in values and "polarization" not in values:
            values["polarization"] = None
        if len(values.get("wavelengths", spec.wavelengths)) == 2 and not math.isfinite(
            values.get("wavelengths", spec.wavelengths)[1]
        ):
            values.setdefault("ka2_ratio", 0.0)
        spec = dataclasses.replace(spec, **values)
    except ValueError as exc:
        raise XRDError(f"{path}: {exc}") from None
    if spec.radius_mm <= 0:
        raise XRDError(f"{path}: instrument.radius_mm must be positive")
    return spec


def _phase(raw: dict, base: Path) -> PhaseSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError("every [[phase]] needs a name")
    name = raw["name"]
    if ":" in name:
        raise ValueError(f"phase name '{name}' must not contain ':'")
    spec = PhaseSpec(name=name, scale=_number(raw["scale"], f"phase {name}: scale") if "scale" in raw else None)
    problems = []
    for key, parse in (("preferred_orientation", _orientation), ("size", _broadening), ("size_um", _broadening),
                       ("mustrain", _broadening)):
        if key in raw:
            try:
                parse(spec, key, raw[key], raw)
            except _At as exc:
                problems += [((key,) + k, m) for k, m in exc.items]
            except (TypeError, ValueError) as exc:
                problems.append(((key,), str(exc)))
    for key in ("size_mix", "mustrain_mix"):
        if key in raw:
            mix = _number(raw[key], f"phase {name}: {key}")
            if not 0.0 <= mix <= 1.0:
                raise ValueError(f"phase {name}: {key} = {mix} must be 0-1 (Lorentzian fraction, GSAS-II LGmix)")
            setattr(spec, key, mix)
    if problems:
        raise _At(*problems[0], more=problems[1:])
    lebail = raw.get("lebail", False)
    if not isinstance(lebail, bool):
        raise _At(("lebail",), f"phase {name}: lebail must be true or false, not {lebail!r}")
    spec.lebail = lebail
    if "lebail_ratio" in raw:
        if not lebail or raw["lebail_ratio"] not in ("total", "net"):
            raise _At(("lebail_ratio",), f"phase {name}: lebail_ratio = {raw['lebail_ratio']!r} needs lebail = true "
                                         "and is \"total\" (obs/calc) or \"net\" (GSAS-II's (obs-bkg)/(calc-bkg))")
        spec.lebail_ratio = raw["lebail_ratio"]
    if lebail:
        for key, what in (("site", "[[phase.site]] tables"), ("preferred_orientation", "preferred orientation")):
            if key in raw:
                raise _At((key,), f"phase {name}: a Le Bail phase (lebail = true) has no {what}: its reflection "
                                  "intensities are extracted from the pattern; give space_group + cell only")
    if "cif" in raw:
        spec.cif = base / raw["cif"]
        if not spec.cif.is_file():
            raise ValueError(f"phase {name}: CIF file {spec.cif} not found")
        if lebail:  # only the CIF's space group and cell are used
            from .structure import read_cif

            sg, cell, _sites, _ = read_cif(spec.cif)
            spec.space_group, spec.cell, spec.cif = sg.xhm(), tuple(float(v) for v in cell), None
        return spec
    spec.space_group = str(raw.get("space_group", ""))
    if not spec.space_group:
        raise ValueError(f"phase {name}: give cif or space_group + cell" + ("" if lebail else " + sites"))
    try:
        spec.cell = _cell(raw.get("cell"), spec.space_group, name)
    except ValueError as exc:
        raise _At(("cell",), str(exc)) from None
    if spec.sh_order or spec.size_axis or spec.mustrain_axis:
        from .structure import find_spacegroup

        try:
            problems = _texture_symmetry(spec, find_spacegroup(spec.space_group, f"phase {name}"), spec.cell)
        except XRDError:
            problems = []  # an unknown space group is reported when the phase is built
        if problems:
            raise _At(*problems[0], more=problems[1:])
    if lebail:
        return spec
    sites = raw.get("site", [])
    if not sites:
        raise ValueError(f"phase {name}: no [[phase.site]] tables")
    labels, bad = set(), []
    for number, site in enumerate(sites):
        try:
            _site(spec, site, labels)
        except (TypeError, ValueError) as exc:
            bad.append((("site", number), str(exc)))
    if bad:
        raise _At(*bad[0], more=bad[1:])
    return spec


def _refine_flag(spec: PhaseSpec, table: dict, key: str, group: str) -> None:
    refine = table.get("refine", True)
    if not isinstance(refine, bool):
        raise _At(("refine",), f"phase {spec.name}: {key}.refine must be true or false, got {refine!r}")
    if not refine:
        spec.fixed_groups = tuple(sorted(set(spec.fixed_groups) | {group}))


def _axis(spec: PhaseSpec, table: dict, key: str) -> tuple[int, int, int]:
    axis = table.get("axis")
    if (not isinstance(axis, list) or len(axis) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in axis)):
        raise _At(("axis",), f"phase {spec.name}: {key}.axis must be three integers [h, k, l], got {axis!r}")
    if axis == [0, 0, 0]:
        raise _At(("axis",), f"phase {spec.name}: {key}.axis [0, 0, 0] is no direction")
    return tuple(axis)


def _orientation(spec: PhaseSpec, key: str, table, raw: dict) -> None:
    """``preferred_orientation = {model = "march_dollase", hkl, ratio}`` or ``{model = "spherical_harmonics",
    order, coefficients}`` (both with ``refine``)."""
    name = spec.name
    if not isinstance(table, dict):
        raise ValueError(f"phase {name}: preferred_orientation must be a table {{model = ..., ...}}")
    model = table.get("model", "march_dollase")
    if model == "march_dollase":
        unknown = set(table) - {"model", "hkl", "ratio", "refine"}
        if unknown:
            raise ValueError(f"phase {name}: unknown March-Dollase key(s) {', '.join(sorted(unknown))} "
                             "(hkl, ratio, refine)")
        hkl = table.get("hkl", [0, 0, 1])
        if not (isinstance(hkl, list) and len(hkl) == 3 and all(isinstance(v, int) for v in hkl)) or hkl == [0, 0, 0]:
            raise _At(("hkl",), f"phase {name}: preferred_orientation.hkl must be three integers, not all 0")
        ratio = _number(table.get("ratio", 1.0), f"phase {name}: preferred_orientation.ratio")
        if ratio <= 0:
            raise _At(("ratio",), f"phase {name}: preferred_orientation.ratio must be > 0")
        spec.preferred_orientation = (tuple(hkl), ratio)
    elif model == "spherical_harmonics":
        unknown = set(table) - {"model", "order", "coefficients", "refine"}
        if unknown:
            raise ValueError(f"phase {name}: unknown spherical-harmonics key(s) {', '.join(sorted(unknown))} "
                             "(order, coefficients, refine)")
        order = table.get("order")
        if not isinstance(order, int) or isinstance(order, bool) or order not in (2, 4, 6):
            raise _At(("order",), f"phase {name}: preferred_orientation.order = {order!r} must be an even "
                                  "harmonic order 2, 4 or 6")
        coefficients = table.get("coefficients", {})
        if not isinstance(coefficients, dict):
            raise _At(("coefficients",), f"phase {name}: preferred_orientation.coefficients must be a table "
                                         "{\"C(L,N)\" = value}")
        spec.sh_order = order
        spec.sh_coefficients = {str(k): _number(v, f"phase {name}: coefficient {k}") for k, v in coefficients.items()}
    else:
        raise _At(("model",), f"phase {name}: unknown preferred_orientation model {model!r} "
                              "(march_dollase, spherical_harmonics)")
    _refine_flag(spec, table, key, "preferred_orientation")


def _broadening(spec: PhaseSpec, key: str, value, raw: dict) -> None:
    """``size_um = D`` / ``mustrain = mu`` (isotropic), or ``size``/``mustrain`` tables
    ``{model = "isotropic", value}`` or ``{model = "uniaxial", axis, equatorial, axial}`` (with ``refine``)."""
    name = spec.name
    what = "mustrain" if key == "mustrain" else "size"
    if key == "size_um" and "size" in raw:
        raise ValueError(f"phase {name}: give size_um or size, not both")
    units, lo, hi = ("ppm", 0.0, math.inf) if what == "mustrain" else ("µm", 0.001, 10.0)

    def check(number, label):
        number = _number(number, f"phase {name}: {label}")
        if not lo <= number <= hi:
            extra = "" if what == "mustrain" else " (GSAS-II's range; 10 µm is its 'no size broadening')"
            raise ValueError(f"phase {name}: {label} = {number} must be {lo:g}-{hi:g} {units}{extra}"
                             if math.isfinite(hi) else f"phase {name}: {label} = {number} must be >= 0 ({units})")
        return number

    if not isinstance(value, dict):
        if key == "size":
            raise ValueError(f"phase {name}: size must be a table {{model = ..., ...}} (or give size_um = D)")
        setattr(spec, "mustrain" if what == "mustrain" else "size_um", check(value, key))
        return
    model = value.get("model", "isotropic")
    keys = {"isotropic": {"model", "value", "refine"},
            "uniaxial": {"model", "axis", "equatorial", "axial", "refine"}}.get(model)
    if keys is None:
        raise _At(("model",), f"phase {name}: unknown {key} model {model!r} (isotropic, uniaxial)")
    unknown = set(value) - keys
    if unknown:
        raise ValueError(f"phase {name}: unknown {model} {key} key(s) {', '.join(sorted(unknown))} "
                         f"({', '.join(sorted(keys - {'model'}))})")
    target = "mustrain" if what == "mustrain" else "size_um"
    if model == "isotropic":
        if "value" not in value:
            raise ValueError(f"phase {name}: {key}.value missing ({units})")
        setattr(spec, target, check(value["value"], f"{key}.value"))
    else:
        missing = [k for k in ("axis", "equatorial", "axial") if k not in value]
        if missing:
            raise ValueError(f"phase {name}: uniaxial {key} needs {', '.join(missing)}")
        setattr(spec, f"{what}_axis", _axis(spec, value, key))
        setattr(spec, target, check(value["equatorial"], f"{key}.equatorial"))
        setattr(spec, f"{what}_axial", check(value["axial"], f"{key}.axial"))
    _refine_flag(spec, value, key, what)


def _texture_symmetry(spec: PhaseSpec, sg, cell) -> list[tuple[tuple, str]]:
    """Problems of a phase's spherical-harmonics terms and uniaxial axes under its space group."""
    from . import texture

    out = []
    if spec.sh_order:
        laue, _ = texture.gsas2_laue(sg)
        allowed = texture.sh_names(laue, spec.sh_order)
        bad = [k for k in spec.sh_coefficients if k not in allowed]
        if bad:
            out.append((("preferred_orientation", "coefficients"),
                        f"phase {spec.name}: harmonic(s) {', '.join(bad)} do not exist for Laue class {laue} up "
                        f"to order {spec.sh_order} (allowed: {', '.join(allowed)})"))
    for what in ("size", "mustrain"):
        axis = getattr(spec, f"{what}_axis")
        if axis is not None and not texture.axis_is_symmetric(sg, cell, axis):
            out.append(((what, "axis"), f"phase {spec.name}: uniaxial {what} axis {list(axis)} is not a symmetry axis "
                                        f"of {sg.xhm()}: equivalent reflections would be broadened differently "
                                        "(GSAS-II uses one arbitrary member)"))
    return out


def _cell(value, space_group: str, name: str) -> tuple[float, ...]:
    """``a b c alpha beta gamma`` from a list of six or a table of the free ones (``{a = 8.24}``)."""
    from .structure import CELL_NAMES, constrain_cell, find_spacegroup, free_cell_names

    if isinstance(value, dict):
        sg = find_spacegroup(space_group, f"phase {name}")
        free = free_cell_names(sg)
        unknown = sorted(set(value) - set(CELL_NAMES))
        fixed = sorted(set(value) - set(free) - set(unknown))
        missing = [k for k in free if k not in value]
        if unknown or fixed or missing:
            raise ValueError(f"phase {name}: cell table {value} must give exactly {', '.join(free)} for "
                             f"{sg.xhm()} ({sg.crystal_system_str()}); "
                             + "; ".join(filter(None, [unknown and f"unknown {unknown}",
                                                       fixed and f"fixed by symmetry {fixed}",
                                                       missing and f"missing {missing}"])))
        given = {k: _number(v, f"phase {name}: cell.{k}") for k, v in value.items()}
        start = {"a": given["a"], "b": given.get("b", given["a"]), "c": given.get("c", given["a"]),
                 "alpha": given.get("alpha", 90.0), "beta": given.get("beta", 90.0), "gamma": given.get("gamma", 90.0)}
        cell = [float(v) for v in constrain_cell(sg, start)]
    else:
        cell = _numbers(value, f"phase {name}: cell", 6)
    if min(cell[:3]) <= 0 or not all(0 < x < 180 for x in cell[3:]):
        raise ValueError(f"phase {name}: cell {cell} is not a valid a b c alpha beta gamma")
    return tuple(cell)


def _site(spec: PhaseSpec, site: dict, labels: set) -> str:
    """Check one ``[[phase.site]]`` table and add it to ``spec``; returns its label."""
    name = spec.name
    if not isinstance(site, dict):
        raise ValueError(f"phase {name}: every [[phase.site]] must be a table")
    label = str(site.get("label", ""))
    if not label or ":" in label or label in labels:
        raise ValueError(f"phase {name}: site label '{label}' missing, repeated or containing ':'")
    labels.add(label)
    occ = site.get("occupancy")
    if not isinstance(occ, dict) or not occ:
        raise ValueError(f"phase {name}: site {label} needs occupancy = {{ Element = fraction }}")
    occupancy = {}
    for species, frac in occ.items():
        parse_species(species)
        occupancy[species] = _number(frac, f"phase {name}: site {label} occupancy of {species}")
        if occupancy[species] < 0:
            raise ValueError(f"phase {name}: site {label}: negative occupancy of {species}")
    if sum(occupancy.values()) > 1.0 + 1e-6:
        raise ValueError(f"phase {name}: site {label}: occupancies sum to {sum(occupancy.values())} > 1")
    uiso = _number(site.get("uiso", 0.01), f"phase {name}: site {label} uiso")
    spec.sites.append(SiteSpec(label, tuple(_numbers(site.get("xyz"), f"phase {name}: site {label} xyz", 3)),
                               uiso, occupancy))
    return label


def _dopants(raw, phases: list[PhaseSpec], path) -> list[DopantSpec]:
    """``[dopant]`` (one element) or ``[[dopant]]`` (several), checked together.

    Each element once; each candidate site once per element and existing; on every site the
    dopants' start fractions together within the site total.
    """
    tables = raw if isinstance(raw, list) else [raw]
    array = isinstance(raw, list)
    out, bad = [], []
    for number, table in enumerate(tables):
        keys = ("dopant", number) if array else ("dopant",)
        try:
            out.append(_dopant(table, phases, path, number if array else None))
        except _At as exc:
            bad += [(keys + below, text) for below, text in exc.items]
        except (TypeError, ValueError) as exc:
            bad.append((keys, str(exc)))
    if not bad:
        seen = {}
        for number, dopant in enumerate(out):
            symbol = parse_species(dopant.element)[0]
            if symbol in seen:
                keys = ("dopant", number, "element") if array else ("dopant", "element")
                bad.append((keys, f"dopant {dopant.element} is given twice ({seen[symbol]} and {dopant.line}); "
                                  "list all its candidate sites in one [[dopant]] table"))
            seen.setdefault(symbol, dopant.line)
        totals = {f"{p.name}:{s.label}": s.total for p in phases for s in p.sites}
        starts: dict[str, list[DopantSpec]] = {}
        for dopant in out:
            for site in dopant.sites:
                starts.setdefault(site, []).append(dopant)
        for site, dopants in starts.items():
            total = sum(d.start for d in dopants)
            if site in totals and total > totals[site] + 1e-9:
                number = out.index(dopants[-1])
                keys = ("dopant", number, "start") if array else ("dopant", "start")
                bad.append((keys, f"dopant start fractions on {site} sum to {total:g} "
                                  f"({', '.join(f'{d.element} {d.start:g}' for d in dopants)}), above the site "
                                  f"total {totals[site]:g}"))
    if bad:
        raise _At(bad[0][0], bad[0][1], more=bad[1:])
    return out


def _dopant(raw: dict, phases: list[PhaseSpec], path, index: int | None) -> DopantSpec:
    if not isinstance(raw, dict):
        raise ValueError("every [[dopant]] must be a table")
    line = recipe_line(path, "element", "[[dopant]]" if index is not None else "[dopant]", index)
    element = str(raw.get("element", ""))
    try:
        parse_species(element)
    except ValueError as exc:
        raise _At(("element",), f"dopant element: {exc}") from None
    sites = raw.get("sites", [])
    if not isinstance(sites, list) or not sites:
        raise _At(("sites",), f"dopant {element}: sites must list candidate sites as 'PHASE:SITE'")
    known = {}
    for phase in phases:
        known.update({f"{phase.name}:{s.label}": s for s in phase.sites})
    phase_names = {p.name for p in phases}
    for site in sites:
        if ":" not in str(site) or str(site).split(":")[0] not in phase_names:
            raise _At(("sites",), f"dopant {element}: site '{site}' names no phase "
                                  f"(phases: {', '.join(sorted(phase_names))})")
        phase = next(p for p in phases if p.name == str(site).split(":")[0])
        if phase.lebail:
            raise _At(("sites",), f"dopant {element}: site '{site}' is in the Le Bail phase {phase.name}, "
                                  "which has no atoms")
        if phase.cif is None and site not in known:
            raise _At(("sites",), f"dopant {element}: site '{site}' does not exist "
                                  f"(sites: {', '.join(sorted(known))})")
    repeated = sorted({s for s in sites if sites.count(s) > 1})
    if repeated:
        raise _At(("sites",), f"dopant {element}: site(s) {repeated} listed twice")
    shared = raw.get("shared", [])
    for group in shared:
        missing = [s for s in group if s not in sites]
        if missing:
            raise _At(("shared",), f"dopant {element}: shared group {group} names sites not in its sites: {missing}")
    start = _number(raw.get("start", 0.0), f"dopant {element}: start")
    if start < 0:
        raise _At(("start",), f"dopant {element}: start = {start} must be >= 0")
    unknown = set(raw) - {"element", "sites", "shared", "start"}
    if unknown:
        raise ValueError(f"dopant {element}: unknown key(s) {', '.join(sorted(unknown))}")
    return DopantSpec(element=element, sites=list(sites), shared=[list(g) for g in shared], start=start, line=line)


def recipe_line(path, needle: str, section: str | None = None, index: int | None = 0) -> str:
    """``"line N: text"`` of key ``needle`` of recipe ``path`` ("" when not found).

    With ``section`` (e.g. ``"[[tie]]"``) the key is looked up in that table's ``index``-th
    element (``index=None``: a plain table such as ``[dopant]``), falling back to the element's
    header line; ``needle`` may also be the header itself.
    Lines come from the one TOML key locator (:func:`doptrace.core.tomlfile.key_lines`).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        lines = key_lines(text)
    except (OSError, UnicodeDecodeError):
        return ""
    table = ((section.strip("[] "),) + (() if index is None else (index,))) if section else ()
    number = lines.get(table + (needle,)) or lines.get(table, 0)
    return f"line {number}: {text.splitlines()[number - 1].strip()}" if number else ""


def _where(path, needle: str, section: str | None = None, index: int = 0) -> str:
    line = recipe_line(path, needle, section, index)
    return f" ({line})" if line else ""


def _site_table(phases: list[PhaseSpec], key: str, path, needle: str, sec=(None, 0)):
    """The :class:`SiteSpec` named ``PHASE:SITE`` (CIF phases are checked when the model is built)."""
    if ":" not in str(key):
        raise ValueError(f"'{key}' is not PHASE:SITE{_where(path, needle, *sec)}")
    phase_name, label = str(key).split(":", 1)
    phase = next((p for p in phases if p.name == phase_name), None)
    if phase is None:
        raise ValueError(f"'{key}' names no phase (phases: {', '.join(p.name for p in phases)})"
                         f"{_where(path, needle, *sec)}")
    if phase.cif is not None:
        return None
    site = next((s for s in phase.sites if s.label == label), None)
    if site is None:
        raise ValueError(f"unknown site '{key}' (sites of {phase_name}: "
                         f"{', '.join(s.label for s in phase.sites)}){_where(path, needle, *sec)}")
    return site


def _occupancy_parameters(raw: dict, phases: list[PhaseSpec], path) -> list[OccupancyParameter]:
    from .structure import site_multiplicity

    out = []
    for number, table in enumerate(raw.get("exchange", [])):
        sites = table.get("sites")
        species = table.get("species")
        needle = "sites" if isinstance(sites, list) and sites else "[[exchange]]"
        sec = ("[[exchange]]", number)
        if not (isinstance(sites, list) and len(sites) == 2 and isinstance(species, list) and len(species) == 2):
            raise ValueError(f"[[exchange]] needs sites = [SITE1, SITE2] and species = [A, B] (A native to "
                             f"SITE1, B to SITE2){_where(path, needle, *sec)}")
        if sites[0] == sites[1] or species[0] == species[1]:
            raise ValueError(f"[[exchange]] must swap two different species between two different sites"
                             f"{_where(path, needle, *sec)}")
        specs = [_site_table(phases, s, path, needle, sec) for s in sites]
        for spec, key, own in zip(specs, sites, species):
            parse_species(own)
            if spec is not None and own not in spec.occupancy:
                raise ValueError(f"[[exchange]]: {own} is not on site {key} (its species: "
                                 f"{', '.join(spec.occupancy)}){_where(path, 'species', *sec)}")
        ratio = 1.0
        if all(s is not None for s in specs):
            phase_of = {p.name: p for p in phases}
            m = [site_multiplicity(phase_of[k.split(':')[0]], spec) for k, spec in zip(sites, specs)]
            ratio = m[0] / m[1]
        a, b = species
        name = str(table.get("name", f"exchange:{b}@{sites[0]}"))
        start = _number(table.get("start", 0.0), f"[[exchange]] {name}: start")
        out.append(OccupancyParameter(name, [(sites[0], b, 1.0), (sites[0], a, -1.0),
                                             (sites[1], a, ratio), (sites[1], b, -ratio)], start, "exchange",
                                      recipe_line(path, needle, *sec)))
    for number, table in enumerate(raw.get("substitution", [])):
        site = table.get("site")
        needle = "site" if isinstance(site, str) else "[[substitution]]"
        sec = ("[[substitution]]", number)
        species, replaces = table.get("species"), table.get("replaces")
        if not (isinstance(site, str) and isinstance(species, str)):
            raise ValueError(f"[[substitution]] needs site = PHASE:SITE and species (and optionally replaces)"
                             f"{_where(path, needle, *sec)}")
        spec = _site_table(phases, site, path, needle, sec)
        parse_species(species)
        if replaces is not None and spec is not None and replaces not in spec.occupancy:
            raise ValueError(f"[[substitution]]: {replaces} is not on site {site} (its species: "
                             f"{', '.join(spec.occupancy)}){_where(path, 'replaces', *sec)}")
        name = str(table.get("name", f"occupancy:{species}@{site}"))
        start = _number(table.get("start", 0.0), f"[[substitution]] {name}: start")
        terms = [(site, species, 1.0)] + ([(site, str(replaces), -1.0)] if replaces else [])
        out.append(OccupancyParameter(name, terms, start, "substitution", recipe_line(path, needle, *sec)))
    names = [p.name for p in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"occupancy parameter name(s) used twice: {', '.join(sorted(dup))} (give name = ...)")
    return out


def _ties(raw: dict, path) -> list[Tie]:
    ties = []
    for number, table in enumerate(raw.get("tie", [])):
        parameter, same_as = table.get("parameter"), table.get("same_as")
        sec = ("[[tie]]", number)
        if not (isinstance(parameter, str) and isinstance(same_as, str)):
            raise ValueError(f"[[tie]] needs parameter = NAME and same_as = NAME{_where(path, '[[tie]]', *sec)}")
        if parameter == same_as:
            raise ValueError(f"[[tie]] ties {parameter} to itself{_where(path, 'parameter', *sec)}")
        factor = _number(table.get("factor", 1.0), f"[[tie]] {parameter}: factor")
        ties.append(Tie(parameter, same_as, factor, recipe_line(path, "parameter", *sec)))
    # one parameter tied twice, or a cycle of ties, has no solution
    target = {}
    for tie in ties:
        if tie.parameter in target:
            raise ValueError(f"{tie.parameter} is tied twice ({tie.line})")
        target[tie.parameter] = tie.same_as
    for start in target:
        seen, node = [start], target[start]
        while node in target:
            if node in seen:
                chain = " -> ".join(seen + [node])
                line = next(t.line for t in ties if t.parameter == start)
                raise ValueError(f"circular tie {chain} ({line})")
            seen.append(node)
            node = target[node]
    return ties
