"""Peak models: TOML model files, links between components, and compilation to a parameter vector.

A model file (binding energies in eV)::

    region = "In 3d"
    window = [440.0, 458.0]
    background = "shirley"              # or "linear", "tougaard", "none", "shirley_active",
                                        # { shirley = "active", average = 5 },
                                        # { tougaard = "U3", B = 551, C = 436, D = 2, active = true }
    [[component]]
    name = "In3d5/2 chloride"
    shape = "GL(30)"
    center = [446.0, 445.0, 447.0]      # value, min, max; a bare number is held fixed
    fwhm = [1.5, 0.8, 2.5]
    area = [1000, 0, 1e9]               # optional; estimated from the data when absent
    group = "In chloride"               # optional chemical state; its share is reported too
    [[component]]
    name = "In3d3/2 chloride"
    center = { offset_from = "In3d5/2 chloride", by = 7.54 }
    fwhm = { same_as = "In3d5/2 chloride" }            # or { ratio_to = ..., by = ... }
    area = { ratio_to = "In3d5/2 chloride", by = 0.6667 }

Every problem of a file is reported at once in one :class:`XPSError` naming the file and each line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from doptrace.core.tomlfile import Problems, TomlFile, parse_toml, read_toml

from .errors import XPSError
from .lineshapes import shape_function

KINDS = ("area", "center", "fwhm")
DEFAULT_FWHM = (1.5, 0.3, 5.0)


@dataclass
class Param:
    """One of a component's area/center/fwhm: free in [min, max], fixed, or linked to another component.

    ``link`` is ``(target_name, mode, by)`` with mode ``"offset"`` (value = target + by) or
    ``"ratio"`` (value = target * by). ``value is None`` means "estimate from the data" (areas).
    """

    value: float | None
    min: float = -math.inf
    max: float = math.inf
    vary: bool = True
    link: tuple[str, str, float] | None = None


@dataclass
class Component:
    name: str
    shape: str
    area: Param
    center: Param
    fwhm: Param
    line: int = 0  # line of ``name = ...`` in the model file (0: not from a file)
    group: str = ""  # chemical state the component belongs to (doublet partners share one); default: name

    def __post_init__(self):
        self.group = self.group or self.name

    def function(self):
        return shape_function(self.shape)


@dataclass
class Background:
    """``kind`` in linear/shirley/tougaard/none; ``active`` refines it with the peaks."""

    kind: str = "shirley"
    active: bool = False
    average: int = 3
    tougaard: str = "U2"
    B: float | None = None
    C: float | None = None
    D: float | None = None


@dataclass
class Model:
    region: str
    window: tuple[float, float] | None
    background: Background
    components: list[Component]
    path: str = "<model>"
    lines: dict = field(default_factory=dict)  # key -> line number, for error messages

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}: line {line}" if line else f"{self.path}"


def _number(raw, what: str, where: str, allow_inf: bool = False) -> float:
    """``raw`` as a float; anything else (text, list, bool, NaN, +-inf unless allowed) is refused."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise XPSError(f"{where}: {what} must be a number, not {raw!r}")
    value = float(raw)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise XPSError(f"{where}: {what} must be a finite number, not {raw!r}")
    return value


def _param(raw, kind: str, where: str) -> Param:
    if raw is None:
        if kind == "area":
            return Param(None, 0.0, math.inf)
        if kind == "fwhm":
            return Param(*DEFAULT_FWHM)
        raise XPSError(f"{where}: component needs a center")
    param = _param_value(raw, kind, where)
    # A line needs a positive width: FWHM <= 0 makes every line shape undefined.
    if kind == "fwhm" and param.link is None and not param.min > 0:
        raise XPSError(f"{where}: fwhm must stay above 0 eV (got minimum {param.min})")
    if kind == "fwhm" and param.link is not None and param.link[1] == "ratio" and not param.link[2] > 0:
        raise XPSError(f"{where}: fwhm ratio must be above 0 (got {param.link[2]})")
    return param


def _param_value(raw, kind: str, where: str) -> Param:
    if isinstance(raw, bool):
        raise XPSError(f"{where}: {kind} must be a number, [value, min, max] or a link table")
    if isinstance(raw, (int, float)):
        value = _number(raw, kind, where)
        return Param(value, value, value, vary=False)
    if isinstance(raw, list):
        if len(raw) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            raise XPSError(f"{where}: {kind} = [value, min, max] needs three numbers")
        value = _number(raw[0], f"{kind} value", where)
        lo = _number(raw[1], f"{kind} min", where, allow_inf=True)
        hi = _number(raw[2], f"{kind} max", where, allow_inf=True)
        if not lo <= value <= hi:
            raise XPSError(f"{where}: {kind} value {value} is outside [{lo}, {hi}]")
        return Param(value, lo, hi)
    if isinstance(raw, dict):
        if "offset_from" in raw:
            if kind != "center":
                raise XPSError(f"{where}: offset_from only applies to center")
            return Param(None, link=(str(raw["offset_from"]), "offset", _number(raw.get("by", 0.0), "by", where)))
        if "same_as" in raw:
            mode = "offset" if kind == "center" else "ratio"
            return Param(None, link=(str(raw["same_as"]), mode, 0.0 if mode == "offset" else 1.0))
        if "ratio_to" in raw:
            if kind == "center":
                raise XPSError(f"{where}: a center links with offset_from, not ratio_to")
            return Param(None, link=(str(raw["ratio_to"]), "ratio", _number(raw.get("by", 1.0), "by", where)))
        if "value" in raw:
            value = _number(raw["value"], f"{kind} value", where)
            lo = _number(raw.get("min", -math.inf), f"{kind} min", where, allow_inf=True)
            hi = _number(raw.get("max", math.inf), f"{kind} max", where, allow_inf=True)
            vary = raw.get("vary", True)
            if not isinstance(vary, bool):
                raise XPSError(f"{where}: vary must be true or false")
            if vary and not lo <= value <= hi:
                raise XPSError(f"{where}: {kind} value {value} is outside [{lo}, {hi}]")
            return Param(value, lo if vary else value, hi if vary else value, vary=vary)
        raise XPSError(f"{where}: {kind} table needs offset_from, same_as, ratio_to or value")
    raise XPSError(f"{where}: {kind} must be a number, [value, min, max] or a link table")


def _background(raw, where: str) -> Background:
    if raw is None:
        return Background()
    if isinstance(raw, str):
        name = raw.strip().lower()
        if name in ("shirley", "linear", "tougaard", "none"):
            return Background(kind=name)
        if name in ("shirley_active", "active_shirley"):
            return Background(kind="shirley", active=True)
        if name in ("u2", "u3", "tougaard_u2", "tougaard_u3"):
            return Background(kind="tougaard", tougaard=name[-2:].upper())
        raise XPSError(f"{where}: unknown background '{raw}' (shirley, linear, tougaard, none, shirley_active)")
    if isinstance(raw, dict):
        average = raw.get("average", 3)
        if isinstance(average, bool) or not isinstance(average, int) or average < 1:
            raise XPSError(f"{where}: average must be a whole number of points >= 1, not {average!r}")
        active = raw.get("active", False)
        if not isinstance(active, bool):
            raise XPSError(f"{where}: active must be true or false")
        bg = Background(average=average, active=active)
        if "tougaard" in raw:
            bg.kind = "tougaard"
            bg.tougaard = str(raw["tougaard"]).upper()
            if bg.tougaard not in ("U2", "U3"):
                raise XPSError(f"{where}: tougaard must be \"U2\" or \"U3\"")
            for key in ("B", "C", "D"):
                if key in raw:
                    value = _number(raw[key], f"Tougaard {key}", where)
                    if not value > 0:
                        raise XPSError(f"{where}: Tougaard {key} must be above 0 (got {value})")
                    setattr(bg, key, value)
        elif "shirley" in raw:
            bg.kind = "shirley"
            mode = str(raw["shirley"]).lower()
            if mode == "active":
                bg.active = True
            elif mode not in ("static", "data", "true"):
                raise XPSError(f"{where}: shirley must be \"active\" or \"static\"")
        elif "type" in raw:
            bg.kind = str(raw["type"]).lower()
            if bg.kind not in ("shirley", "linear", "tougaard", "none"):
                raise XPSError(f"{where}: unknown background type '{raw['type']}'")
        else:
            raise XPSError(f"{where}: background table needs shirley, tougaard or type")
        if bg.active and bg.kind not in ("shirley", "tougaard"):
            raise XPSError(f"{where}: only shirley and tougaard backgrounds can be active")
        return bg
    raise XPSError(f"{where}: background must be a name or a table")


def load_model(path) -> Model:
    """Read and check a model TOML file; every problem is reported at once, each naming its line."""
    return _model(read_toml(path, XPSError, "model file"))


def parse_model(text: str, path: str = "<model>") -> Model:
    """Model from TOML text (see module docstring); ``path`` is used in error messages."""
    return _model(parse_toml(text, path, XPSError, "model file"))


def _model(doc: TomlFile) -> Model:
    """Check a parsed model file, collecting every problem (each at its line) before raising."""
    raw, path, problems = doc.data, doc.path, Problems(doc)

    def record(exc: XPSError) -> None:
        # the checks below name "path: line N: problem"; keep the line, drop the repeated path
        text = str(exc).removeprefix(f"{path}: ")
        line, sep, rest = text.partition(": ")
        if sep and line.startswith("line ") and line[5:].isdigit():
            problems.add_line(int(line[5:]), rest)
        else:
            problems.add_line(0, text)

    where = {key: doc.lines.get((key,), 0) for key in ("region", "window", "background")}

    def at(key):
        return f"{path}: line {where[key]}" if where.get(key) else path

    for key in raw:
        if key not in ("region", "window", "background", "component", "description"):
            problems.add((key,), f"unknown key '{key}'")
    window = raw.get("window")
    if window is not None:
        if (not isinstance(window, list) or len(window) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)):
            problems.add(("window",), "window must be [low, high] binding energies in eV")
            window = None
        else:
            window = (float(window[0]), float(window[1]))
            if not window[0] < window[1]:
                problems.add(("window",), f"empty window [{window[0]}, {window[1]}] (low must be below high)")
    background = Background()
    try:
        background = _background(raw.get("background"), at("background"))
    except XPSError as exc:
        record(exc)
    raw_components = raw.get("component", [])
    if not isinstance(raw_components, list) or not raw_components:
        problems.add((), "no [[component]] tables")
        raw_components = []
    components = []
    for number, comp in enumerate(raw_components):
        try:
            component = _component(doc, number, comp, [c.name for c in components], where)
        except XPSError as exc:
            record(exc)
            continue
        components.append(component)
        where[component.name] = component.line
    problems.raise_if_any(XPSError)
    model = Model(str(raw.get("region", "")), window, background, components, path, where)
    check_links(model)
    return model


def _component(doc: TomlFile, number: int, comp, taken: list[str], where: dict) -> Component:
    """One ``[[component]]`` table checked; its first problem raises :class:`XPSError` with its line."""
    path, at = doc.path, ("component", number)
    name = comp.get("name") if isinstance(comp, dict) else None
    name_line = doc.line(*at, "name")
    if not isinstance(name, str) or not name.strip():
        raise XPSError(f"{path}: line {name_line}: component {number + 1} has no name")
    if name in taken:
        raise XPSError(f"{path}: line {name_line}: component name '{name}' used twice")
    for key in comp:
        if key not in ("name", "shape", "group", *KINDS):
            raise XPSError(f"{path}: line {doc.line(*at, key)}: unknown key '{key}' in component '{name}'")
    params = {}
    for kind in KINDS:
        line = doc.lines.get(at + (kind,)) or name_line
        where[f"{name}.{kind}"] = line
        params[kind] = _param(comp.get(kind), kind, f"{path}: line {line}")
    shape = str(comp.get("shape", "GL(30)"))
    try:
        shape_function(shape)
    except XPSError as exc:
        raise XPSError(f"{path}: line {doc.line(*at, 'shape')}: {exc}") from None
    group = comp.get("group", name)
    if not isinstance(group, str) or not group.strip():
        raise XPSError(f"{path}: line {doc.line(*at, 'group')}: group of '{name}' must be a non-empty string")
    return Component(name, shape, params["area"], params["center"], params["fwhm"], name_line, group)


def check_links(model: Model) -> None:
    """Refuse links to unknown components and circular links (naming the offending line)."""
    names = set(model.names)
    for comp in model.components:
        for kind in KINDS:
            link = getattr(comp, kind).link
            if link and link[0] not in names:
                raise XPSError(f"{model.where(f'{comp.name}.{kind}')}: {kind} of '{comp.name}' links to "
                               f"unknown component '{link[0]}' (known: {', '.join(model.names)})")
    for comp in model.components:
        for kind in KINDS:
            seen = [comp.name]
            current = comp
            while getattr(current, kind).link:
                target = getattr(current, kind).link[0]
                if target in seen:
                    raise XPSError(f"{model.where(f'{comp.name}.{kind}')}: circular {kind} link "
                                   + " -> ".join(seen + [target]))
                seen.append(target)
                current = model.components[model.names.index(target)]


@dataclass
class Compiled:
    """A model as a free-parameter vector and, per component and kind, ``value = scale * p[index] + offset``.

    ``index[k, j] = -1`` marks a fixed value (``offset``); k runs over ``KINDS``.
    """

    model: Model
    names: list[str]         # free parameter names, "<component>.<kind>"
    p0: np.ndarray           # (P,) start values (NaN: estimate from data)
    lower: np.ndarray
    upper: np.ndarray
    index: np.ndarray        # (3, C) int
    scale: np.ndarray        # (3, C)
    offset: np.ndarray       # (3, C)
    functions: list          # per component f(x, center, fwhm)

    def values(self, p: np.ndarray) -> np.ndarray:
        """(3, S, C) area/center/fwhm of every component for free parameters ``p`` (S, P)."""
        p = np.atleast_2d(p)
        padded = np.concatenate([p, np.zeros((p.shape[0], 1))], axis=1)  # index -1 -> the zero column
        return self.scale[:, None, :] * padded[:, self.index].transpose(1, 0, 2) + self.offset[:, None, :]

    def area_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(M, o)`` with component areas ``= M @ p + o`` (M of shape (C, P))."""
        n_comp = len(self.model.components)
        matrix = np.zeros((n_comp, len(self.names)))
        for j in range(n_comp):
            if self.index[0, j] >= 0:
                matrix[j, self.index[0, j]] = self.scale[0, j]
        return matrix, self.offset[0].copy()

    def kind_matrix(self, k: int) -> np.ndarray:
        n_comp = len(self.model.components)
        matrix = np.zeros((n_comp, len(self.names)))
        for j in range(n_comp):
            if self.index[k, j] >= 0:
                matrix[j, self.index[k, j]] = self.scale[k, j]
        return matrix


def compile_model(model: Model) -> Compiled:
    """Resolve links (chains allowed) into the affine map from free parameters to component values."""
    check_links(model)
    by_name = {c.name: c for c in model.components}
    names, p0, lower, upper = [], [], [], []
    n_comp = len(model.components)
    index = np.full((3, n_comp), -1, dtype=int)
    scale = np.zeros((3, n_comp))
    offset = np.zeros((3, n_comp))
    own: dict[tuple[str, str], int] = {}

    def resolve(comp: Component, kind: str):
        """(index, scale, offset) of ``comp``'s ``kind`` in terms of a root free parameter."""
        param = getattr(comp, kind)
        if param.link:
            target, mode, by = param.link
            i, s, o = resolve(by_name[target], kind)
            return (i, s, o + by) if mode == "offset" else (i, s * by, o * by)
        if not param.vary:
            return -1, 0.0, float(param.value)
        key = (comp.name, kind)
        if key not in own:
            own[key] = len(names)
            names.append(f"{comp.name}.{kind}")
            p0.append(np.nan if param.value is None else float(param.value))
            lo, hi = param.min, param.max
            if kind == "fwhm":
                lo = max(lo, 1e-3)
            lower.append(lo)
            upper.append(hi)
        return own[key], 1.0, 0.0

    for j, comp in enumerate(model.components):
        for k, kind in enumerate(KINDS):
            index[k, j], scale[k, j], offset[k, j] = resolve(comp, kind)
    return Compiled(model, names, np.array(p0, float), np.array(lower, float), np.array(upper, float),
                    index, scale, offset, [c.function() for c in model.components])


def simple_model(region: str, components: list[dict], window=None, background="shirley") -> Model:
    """Build a model in code from dicts with the keys of a ``[[component]]`` table."""
    comps = []
    for comp in components:
        params = {kind: _param(comp.get(kind), kind, f"<model>: component {comp['name']}") for kind in KINDS}
        comps.append(Component(comp["name"], comp.get("shape", "GL(30)"), params["area"], params["center"],
                               params["fwhm"], group=comp.get("group", "")))
    bg = background if isinstance(background, Background) else _background(background, "<model>")
    model = Model(region, tuple(window) if window else None, bg, comps)
    check_links(model)
    return model


def from_casa(info, excitation_energy: float, region: str | None = None, source: str = "<casa>") -> Model:
    """Model from a CasaXPS block comment (:class:`xps.formats.casa.CasaInfo`).

    Kinetic energies become binding energies (``BE = hv - KE``, in CasaXPS's calibrated scale);
    a position link ``KE_i = KE_ref + offset`` becomes ``BE_i = BE_ref - offset``; area and FWHM
    links keep their factor; Shirley/Linear/``U 2 Tougaard`` (B = p1, C = -p2)/``U 3 Tougaard``
    (B, C, D = p1, p2, p3) backgrounds carry over with CasaXPS's end-point averaging width.
    Component names repeated in CasaXPS (doublet partners) get " #<index>" appended.
    """
    regions = list(info.regions)
    if region is not None:
        regions = [r for r in regions if " ".join(r.name.split()).lower() == " ".join(region.split()).lower()]
    if not regions:
        raise XPSError(f"{source}: no CASA region" + (f" named {region!r}" if region else "") + " in the block comment")
    if not info.comps:
        raise XPSError(f"{source}: the block comment holds no CASA comp lines to refit")
    reg = regions[0]
    hv = float(excitation_energy)
    references = [c for c in info.comps if c.is_reference_shape]
    if references:
        listed = ", ".join(f"{c.name!r} (line shape {c.lineshape!r}, comment line {c.line})" for c in references)
        raise XPSError(
            f"{source}: cannot refit CASA comp(s) {listed}: the line shape is a CasaXPS reference spectrum "
            "(measured data of another block), not a formula doptrace can fit; refit this block in CasaXPS "
            "or give a model file with synthetic line shapes (--model)")
    for comp in info.comps:
        try:
            shape_function(comp.lineshape)
        except XPSError as exc:
            raise XPSError(f"{source}: CASA comp {comp.name!r} (comment line {comp.line}): {exc}") from None
    kind = reg.background_kind
    p1, p2, p3, _ = reg.parameters
    # Old CasaXPS 2.x region lines may lack the averaging width: CasaXPS then averages 1 channel.
    average = max(1, int(round(reg.average_width))) if math.isfinite(reg.average_width) else 1
    if kind == "shirley":
        background = Background("shirley", average=average)
    elif kind == "linear":
        background = Background("linear", average=average)
    elif kind == "tougaard_u2":
        background = Background("tougaard", average=average, tougaard="U2", B=float(p1), C=abs(float(p2)))
    elif kind == "tougaard_u3":
        background = Background("tougaard", average=average, tougaard="U3", B=float(p1), C=float(p2), D=float(p3))
    else:
        raise XPSError(f"{source}: CASA region {reg.name!r} (comment line {reg.line}): background "
                       f"'{reg.background}' is not supported (Shirley, Linear, U 2 Tougaard, U 3 Tougaard)")
    needed = {"tougaard_u2": (("B", p1), ("C", p2)), "tougaard_u3": (("B", p1), ("C", p2), ("D", p3))}
    for name, value in needed.get(kind, ()):
        if not math.isfinite(value):
            raise XPSError(f"{source}: CASA region {reg.name!r} (comment line {reg.line}): {reg.background} "
                           f"background without its {name} parameter")
    names = [c.name for c in info.comps]
    unique = [n if names.count(n) == 1 else f"{n} #{i}" for i, n in enumerate(names)]
    comps = []
    for i, comp in enumerate(info.comps):
        where = f"{source}: CASA comp line {comp.line or i + 1}"
        if comp.area.ref >= 0:
            if comp.area.ref >= len(names):
                raise XPSError(f"{where}: area links to comp {comp.area.ref}, which does not exist")
            area = Param(None, link=(unique[comp.area.ref], "ratio", float(comp.area.factor)))
        else:
            lo, hi = max(0.0, comp.area.min), max(comp.area.max, comp.area.value)
            area = Param(min(max(comp.area.value, lo), hi), lo, hi)
        if comp.fwhm.ref >= 0:
            if comp.fwhm.ref >= len(names):
                raise XPSError(f"{where}: FWHM links to comp {comp.fwhm.ref}, which does not exist")
            fwhm = Param(None, link=(unique[comp.fwhm.ref], "ratio", float(comp.fwhm.factor)))
        else:
            lo, hi = comp.fwhm.min, comp.fwhm.max
            if not lo < hi:
                fwhm = Param(comp.fwhm.value, comp.fwhm.value, comp.fwhm.value, vary=False)
            else:
                fwhm = Param(min(max(comp.fwhm.value, lo), hi), lo, hi)
        if comp.position.ref >= 0:
            if comp.position.ref >= len(names):
                raise XPSError(f"{where}: position links to comp {comp.position.ref}, which does not exist")
            center = Param(None, link=(unique[comp.position.ref], "offset", -float(comp.position.offset)))
        else:
            be = hv - comp.position.value
            lo, hi = hv - comp.position.max, hv - comp.position.min
            if not lo < hi:
                center = Param(be, be, be, vary=False)
            else:
                center = Param(min(max(be, lo), hi), lo, hi)
        comps.append(Component(unique[i], comp.lineshape, area, center, fwhm, comp.line, names[i]))
    model = Model(reg.name, reg.binding_window(hv), background, comps, source)
    check_links(model)
    return model
