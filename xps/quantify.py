"""Quantification: atomic % per etch level from region areas or fitted components.

For every quantified peak ``p`` (a region's area above its background, optionally within an
energy window, or a fitted component's area)::

    corrected_area_p = A_p / (RSF_p * T_p * IMFP(KE_p))          (CasaXPS "Area/(RSF*T*MFP)")
    X_e = sum_{p of e} corrected_area_p / sum_p corrected_area_p    (atomic fraction of element e)

- ``A_p``: area (counts/s x eV). Regions: above a Shirley background (linear where no Shirley
  background joins the window's end levels, recorded in ``area_background``); components: the
  fit's area.
- ``RSF_p``: the factor of the peak's line from a table (:mod:`doptrace.xps.rsf`): Scofield (1976)
  cross-sections (Al or Mg Ka, picked from the file), Kratos factors or a user table. Doublet
  components use the whole orbital's factor each (their corrected areas add up to the orbital's);
  a component that stands for one spin-orbit line only can be given that line's factor
  (``lines={"Mo 3d5/2 MoS2": "Mo 3d5/2"}``); all peaks of one element must use one line.
- ``T_p``: analyser transmission from the file (the ``transmission`` coordinate VAMAS and SPECS
  files carry), averaged over a region's window or taken at a component's centre; 1 without one.
- ``IMFP(KE_p)``: ``KE^n`` or TPP-2M (:mod:`doptrace.xps.imfp`) at ``KE = hv - BE`` of the peak;
  tables whose factors already include it (Kratos, a user table with ``ke_correction = false``)
  get none.

Uncertainties: regions carry the Poisson variance of every count propagated through the area and
its own Shirley background (:func:`region_area`); components carry the fit's area esd. Peaks are
treated as independent (components of one fit are usually anti-correlated, so the esd of their
sum is overstated, not understated). The at% stderr propagates the corrected-area stderrs through
the normalisation (``dX_i/dc_k = (delta_ik - X_i) / sum c``). Negative areas and at% below
``DETECTION_SIGMAS`` esd are flagged (:func:`doptrace.xps.quality.quant_quality`) and reported as
not detected, never as concentrations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

from doptrace.core.quality import set_quality
from doptrace.core.simulated import carry, simulated

from . import backgrounds as bgs
from .errors import XPSError
from .imfp import TPP2M, KEPower, parse_imfp
from .quality import DETECTION_SIGMAS, level_labels, peak_quality, quant_quality
from .rsf import RSFTable, line_key, load_table, orbital_key
from .series import _norm, region_levels

#: default IMFP model for tables that need one (CasaXPS's default too)
DEFAULT_KE_EXPONENT = 0.6


def load_rsf_table(table: str = "scofield", excitation_energy: float = 1486.6) -> tuple[dict[str, float], str]:
    """``({line_key: rsf}, source)`` of a table at ``excitation_energy`` (see :func:`doptrace.xps.rsf.load_table`)."""
    t = load_table(table, excitation_energy)
    return dict(t.values), t.source


def _area_background(x, y, average: int, shirley_ok: bool | None = None):
    """Shirley background of the rows of ``y``, or a linear one when Shirley is not (or was not) found."""
    background, converged = bgs.shirley_status(x, y, average=average)
    use_shirley = converged if shirley_ok is None else np.broadcast_to(shirley_ok, converged.shape)
    if not np.all(use_shirley):
        background = np.where(use_shirley[..., None], background, bgs.linear(x, y, average=average))
    return background, use_shirley


def region_area(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, average: int = 3, with_background: bool = False):
    """Area above the Shirley background and its stderr, per row of ``y`` (S, N).

    ``A = integral (y - B[y]) dx``,  ``stderr^2 = sum_i (dA/dy_i)^2 sigma_i^2``

    The background ``B`` is computed from the same counts (its end levels are means of ``average``
    noisy points), so ``dA/dy_i`` is taken through the background, by a finite difference of one
    ``sigma_i`` at every point: counting only the points' own Poisson noise (``dA/dy_i = dx``)
    would understate the stderr several-fold. Where no Shirley background joins the window's end
    levels (the iteration does not converge, common on real survey-like windows) a linear
    background is used instead; ``with_background=True`` also returns which rows kept Shirley.
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), y.shape)
    background, shirley_ok = _area_background(x, y, average)
    area = np.trapezoid(y - background, x, axis=-1)
    n = y.shape[-1]
    chunk = max(1, 2_000_000 // n)  # perturbed spectra per batch: bounds memory to ~16 MB
    variance = np.zeros(y.shape[0])
    for s in range(y.shape[0]):
        step = np.where(sigma[s] > 0, sigma[s], 1.0)
        for first in range(0, n, chunk):
            idx = np.arange(first, min(first + chunk, n))
            perturbed = np.repeat(y[s][None], idx.size, axis=0)
            perturbed[np.arange(idx.size), idx] += step[idx]
            moved_bg, _ = _area_background(x, perturbed, average, shirley_ok[s])
            moved = np.trapezoid(perturbed - moved_bg, x, axis=-1)
            variance[s] += np.sum(((moved - area[s]) / step[idx] * sigma[s, idx]) ** 2)
    if with_background:
        return area, np.sqrt(variance), shirley_ok
    return area, np.sqrt(variance)


@dataclass
class Peak:
    """One quantified peak: a region's area (optionally in a window) or a fitted component's."""

    name: str
    element: str
    line: str
    kind: str                 # "region" or "component"
    area: np.ndarray          # (L,)
    area_stderr: np.ndarray
    binding_energy: np.ndarray  # (L,) measured (uncorrected) BE of the peak, for KE = hv - BE
    transmission: np.ndarray
    excitation_energy: float
    background: list          # per level: shirley / linear / fit
    window: tuple = (math.nan, math.nan)
    index: np.ndarray | None = None  # position of each level among the region's blocks (a fit may skip some)


_WINDOW = re.compile(r"^(?P<name>[^:]+?)\s*(?::\s*(?P<lo>[-+]?\d+(?:\.\d*)?)\s*(?:-|\.\.|to)\s*(?P<hi>[-+]?\d+(?:\.\d*)?))?\s*$")


def parse_region(spec: str, source: str = "") -> tuple[str, tuple[float, float] | None]:
    """``"O 1s"`` -> ``("O 1s", None)``; ``"Mo 3d5/2: 226-231"`` -> ``("Mo 3d5/2", (226.0, 231.0))`` (BE, eV)."""
    m = _WINDOW.match(str(spec))
    if not m:
        raise XPSError(f"{source}: region {spec!r}: write NAME or NAME:LOW-HIGH (binding energies, eV)")
    if m.group("lo") is None:
        return m.group("name").strip(), None
    lo, hi = sorted((float(m.group("lo")), float(m.group("hi"))))
    if hi - lo <= 0:
        raise XPSError(f"{source}: region {spec!r}: the window is empty")
    return m.group("name").strip(), (lo, hi)


def _region_name(blocks, name: str) -> str:
    """The file's region for ``name``: the same name, else the orbital of a spin-orbit line (Mo 3d5/2 -> Mo 3d)."""
    present = {_norm(b.attrs.get("region", "")): str(b.attrs.get("region", "")) for b in blocks}
    if _norm(name) in present:
        return present[_norm(name)]
    orbital = orbital_key(name)
    for key, region in present.items():
        if line_key(region) == orbital:
            return region
    return name


def _shifts(shift, n: int, source: str) -> np.ndarray:
    out = np.zeros(n) if shift is None else np.broadcast_to(np.asarray(shift, float), (n,)).copy()
    if not np.all(np.isfinite(out)):
        raise XPSError(f"{source}: charge shifts must be finite numbers")
    return out


def region_peak(blocks, spec: str, shift=None, source: str = "", levels_out=None) -> Peak:
    """A region's area above its background per level, within the window of ``spec`` (corrected BE)."""
    name, window = parse_region(spec, source)
    region = _region_name(blocks, name)
    chosen, dim, levels, units = region_levels(blocks, region, source)
    if levels_out is not None:
        levels_out.append((spec, dim, levels, units))
    shifts = _shifts(shift, len(chosen), source)
    areas, errs, kinds, centres, trans = [], [], [], [], []
    for b, s in zip(chosen, shifts):
        x = np.asarray(b["binding_energy"].values, float)
        y = np.asarray(b.values, float)
        if not np.all(np.isfinite(y)):
            raise XPSError(f"{source}: block {b.attrs.get('block_index')} ({region}) holds NaN counts")
        keep = np.ones(x.size, bool)
        if window is not None:
            keep = (x + s >= window[0]) & (x + s <= window[1])
            if keep.sum() < 7:
                raise XPSError(f"{source}: region {spec!r}: the window {window[0]:g}-{window[1]:g} eV holds "
                               f"{int(keep.sum())} points of block {b.attrs.get('block_index')} (range "
                               f"{x.min() + s:.2f}-{x.max() + s:.2f} eV after the charge shift {s:+.2f} eV); "
                               "at least 7 are needed")
        xw, yw = x[keep], y[keep]
        cpu = float(b.attrs.get("counts_per_unit", 1.0) or 1.0)
        sigma = np.sqrt(np.maximum(yw * cpu, 1.0)) / cpu
        a, e, shirley_ok = region_area(xw, yw[None], sigma[None], with_background=True)
        areas.append(a[0])
        errs.append(e[0])
        kinds.append("shirley" if shirley_ok[0] else "linear")
        centres.append(float(np.mean(xw)))
        trans.append(float(np.mean(b["transmission"].values[keep])) if "transmission" in b.coords else 1.0)
    hv = float(chosen[0].attrs.get("excitation_energy", math.nan))
    return Peak(name, name.split()[0], name, "region", np.array(areas), np.array(errs), np.array(centres),
                np.array(trans), hv, kinds, window or (math.nan, math.nan), np.arange(len(chosen)))


def component_peaks(blocks, fit: xr.Dataset, lines: dict | None = None, source: str = "",
                    levels_out=None) -> list[Peak]:
    """One peak per component of a fit result (:func:`doptrace.xps.fit_region`, :func:`doptrace.xps.fit_casa`),
    with the file's transmission at each component's measured (uncorrected) centre. The fit may
    cover some of the region's blocks only (a CasaXPS refit skips blocks with another model)."""
    lines = dict(lines or {})
    region = str(fit.attrs.get("region", ""))
    dim = fit.attrs.get("level_dim", "etch_time")
    all_blocks, bdim, blevels, bunits = region_levels(blocks, _region_name(blocks, region), source)
    levels = np.asarray(fit[dim].values)
    index = [int(np.nonzero(np.isclose(np.asarray(blevels, float), float(v)))[0][0])
             if bdim == dim and np.isclose(np.asarray(blevels, float), float(v)).any() else -1 for v in levels]
    if -1 in index:
        raise XPSError(f"{source}: the {region} fit's levels ({dim} {levels.tolist()}) are not among the file's "
                       f"{region} blocks ({bdim} {np.asarray(blevels).tolist()}): was it fitted on this file?")
    if levels_out is not None:
        levels_out.append((f"fit {region}", bdim, blevels, bunits))
    chosen = [all_blocks[i] for i in index]
    shift = np.asarray(fit["charge_shift"].values, float) if "charge_shift" in fit else np.zeros(len(levels))
    hv = float(chosen[0].attrs.get("excitation_energy", math.nan))
    peaks = []
    for comp in [str(c) for c in fit["component"].values]:
        line = lines.pop(comp, None) or region
        if line.strip() == "-":  # left out: e.g. the S 2s line inside a Mo 3d window
            continue
        if not re.match(r"^[A-Za-z]{1,2}\s*\d\s*[spdf]", line):
            raise XPSError(f"{source}: component {comp!r} of region {region!r}: name its core level "
                           f"(lines={{{comp!r}: 'Mo 3d5/2'}})")
        one = fit.sel(component=comp)
        centre = np.asarray(one["center"].values, float) - shift  # back on the measured axis
        trans = []
        for b, c in zip(chosen, centre):
            if "transmission" in b.coords:
                x = np.asarray(b["binding_energy"].values, float)
                trans.append(float(np.interp(c, x, np.asarray(b["transmission"].values, float))))
            else:
                trans.append(1.0)
        peaks.append(Peak(f"{region}: {comp}", line.split()[0], line, "component",
                          np.asarray(one["area"].values, float), np.asarray(one["area_stderr"].values, float),
                          centre, np.array(trans), hv, ["fit"] * len(levels), index=np.asarray(index)))
    if lines:
        raise XPSError(f"{source}: lines given for components the {region} fit does not have: {', '.join(lines)}")
    return peaks


def _imfp_model(table: RSFTable, imfp, ke_exponent, source: str):
    """The IMFP model for ``table``: none for tables that include it (an explicit one is refused)."""
    if imfp is not None and ke_exponent is not None:
        raise XPSError(f"{source}: give an IMFP model or a KE exponent, not both")
    model = parse_imfp(imfp, source) if isinstance(imfp, str) else imfp
    if model is None and ke_exponent is not None:
        model = KEPower(ke_exponent).check(source)
    if model is not None and not isinstance(model, (KEPower, TPP2M)):
        raise XPSError(f"{source}: unknown IMFP model {model!r}")
    explicit = model is not None and not (isinstance(model, KEPower) and model.exponent == 0)
    if not table.ke_correction:
        if explicit:
            raise XPSError(f"{source}: table {table.name!r} already includes the IMFP and analyser energy "
                           f"dependence (ke_correction = false); {model.describe()} would apply it twice")
        return KEPower(0.0)
    return model if model is not None else KEPower(DEFAULT_KE_EXPONENT)


def _percent(c, ce):
    """At% and stderr of corrected areas ``c`` (L, K) with independent stderrs ``ce``."""
    total = c.sum(axis=1, keepdims=True)
    frac = c / total
    grad = (np.eye(c.shape[1])[None] - frac[:, :, None]) / total[:, :, None]
    var = np.einsum("lik,lk->li", grad**2, ce**2)
    return 100 * frac, 100 * np.sqrt(var)


def quantify(blocks: list[xr.DataArray], regions=(), table: str = "scofield", ke_exponent: float | None = None,
             source: str = "", *, imfp=None, fits=(), lines: dict | None = None, shift=None) -> xr.Dataset:
    """Atomic % of every element at every level, from regions and/or fitted components, with esds.

    Parameters
    ----------
    blocks : list of xarray.DataArray
        Spectra as :func:`doptrace.xps.read` returns them.
    regions : sequence of str
        Regions to integrate, ``"NAME"`` or ``"NAME:LOW-HIGH"`` (binding-energy window in eV on the
        charge-corrected scale; ``NAME`` may be a spin-orbit line of the file's region, ``"Mo 3d5/2:
        226-231"``, whose factor is then used).
    table : str
        RSF table: ``"scofield"`` (cross-sections, Al or Mg Ka from the file), ``"kratos"``, with
        ``-al``/``-mg`` to force the source, or a user TOML file (:mod:`doptrace.xps.rsf`).
    ke_exponent : float, optional
        IMFP ~ ``KE^g`` (0 switches it off). Default: 0.6 for tables that need an IMFP factor,
        none for tables that include it (giving one for those is refused).
    source : str
        File name for error messages.
    imfp : str or IMFP model, optional
        Instead of ``ke_exponent``: ``"tpp2m"`` / ``"tpp2m:density=..,nv=..,m=..,eg=.."``
        (:class:`doptrace.xps.imfp.TPP2M`) or ``"ke:0.7"``.
    fits : sequence of xarray.Dataset
        Fit results of this file (:func:`doptrace.xps.fit_region`); each component becomes a peak.
    lines : dict, optional
        ``{component: line}`` for components whose factor is not their region's orbital;
        ``"-"`` leaves a component out (another element's line inside the window, e.g. S 2s under
        Mo 3d, quantified from its own region instead).
    shift : float or array, optional
        Charge shift per level added to the binding energies before region windows are applied.

    Returns
    -------
    xarray.Dataset
        Per (level, ``peak``): ``area``, ``area_stderr``, ``transmission``, ``imfp_factor``,
        ``kinetic_energy``, ``corrected_area`` (= area / (rsf * transmission * imfp_factor)),
        ``corrected_area_stderr``, ``peak_percent`` (share of the corrected areas) with stderr;
        per (level, ``element``): ``atomic_percent``, ``atomic_percent_stderr``, ``detected``;
        coords ``line`` and ``rsf`` per element and per peak (``peak_line``, ``peak_rsf``).

    References
    ----------
    J. H. Scofield, J. Electron Spectrosc. Relat. Phenom. 8 (1976) 129-137 (cross-sections).
    S. Tanuma, C. J. Powell, D. R. Penn, Surf. Interface Anal. 21 (1994) 165-176 (TPP-2M).
    D. A. Shirley, Phys. Rev. B 5 (1972) 4709-4714 (background).

    Examples
    --------
    >>> from doptrace import xps
    >>> _ = xps.simulate_series("series.vms", etch_times=[0.0, 200.0], regions=("B 1s", "O 1s"), seed=1)
    >>> q = xps.quantify(xps.read("series.vms"), ["B 1s", "O 1s"])
    >>> q["atomic_percent"].dims, q["element"].values.tolist()
    (('etch_time', 'element'), ['B', 'O'])
    >>> bool(abs(q["atomic_percent"].sum("element") - 100).max() < 1e-9)
    True
    """
    from .formats._spectrum import require_binding_energy

    regions = [r.strip() for r in regions if str(r).strip()]
    names = [_norm(parse_region(r, source)[0]) for r in regions]
    if len(set(names)) != len(names):
        raise XPSError(f"{source}: a region is named twice in {regions}")
    for b in blocks:  # AES blocks first: "no RSF for 'C KLL'" would hide the real reason
        if _norm(b.attrs.get("region", "")) in {_norm(_region_name(blocks, n)) for n in names}:
            require_binding_energy(b, "XPS quantification")
    # the photon energy of the quantified regions only (a file may hold He I UPS blocks beside them)
    used = {_norm(_region_name(blocks, n)) for n in names}
    used |= {_norm(_region_name(blocks, str(f.attrs.get("region", "")))) for f in fits}
    hvs = {round(float(b.attrs.get("excitation_energy", math.nan)), 1) for b in blocks
           if "binding_energy" in b.dims and _norm(b.attrs.get("region", "")) in used}
    finite = sorted(h for h in hvs if math.isfinite(h))
    if len(finite) > 1 and max(finite) - min(finite) > 1.5:
        raise XPSError(f"{source}: the quantified regions were measured at different photon energies "
                       f"({', '.join(f'{h:g}' for h in finite)} eV): quantify each source on its own")
    hv = finite[0] if finite else math.nan
    rsf = load_table(table, hv, source)
    model = _imfp_model(rsf, imfp, ke_exponent, source)
    level_info = []
    peaks = [region_peak(blocks, r, shift, source, level_info) for r in regions]
    for fit in fits:
        peaks.extend(component_peaks(blocks, fit, lines, source, level_info))
    if not peaks:
        raise XPSError(f"{source}: nothing to quantify: give regions or fit results")
    _, dim, levels, level_units = level_info[0]
    for what, d, lv, _ in level_info[1:]:
        if d != dim or lv.shape != levels.shape or (d == "etch_time" and not np.allclose(lv, levels)):
            raise XPSError(f"{source}: {what!r} has levels {np.asarray(lv).tolist()}, {level_info[0][0]!r} has "
                           f"{np.asarray(levels).tolist()}")
    # levels every peak has (a fit that skipped blocks leaves those levels out, and says so)
    common = sorted(set.intersection(*(set(p.index.tolist()) for p in peaks)))
    left_out = [i for i in range(len(levels)) if i not in common]
    if not common:
        raise XPSError(f"{source}: no level is covered by every region and fit")
    for p in peaks:
        pick = [p.index.tolist().index(i) for i in common]
        for name in ("area", "area_stderr", "binding_energy", "transmission"):
            setattr(p, name, getattr(p, name)[pick])
        p.background = [p.background[i] for i in pick]
    all_labels = level_labels(dim, levels, level_units)
    levels = np.asarray(levels)[common]
    origin = {}
    for p in peaks:  # one orbital from two places (a region and a fit of it, two fits) counts its atoms twice
        where = p.name.split(":")[0] if p.kind == "component" else f"region {p.name}"
        first = origin.setdefault(orbital_key(p.line if p.kind == "region" else p.name.split(":")[0]), where)
        if first != where:
            raise XPSError(f"{source}: {where} and {first} quantify the same orbital: give one of them")
    elements = list(dict.fromkeys(p.element for p in peaks))
    if len(elements) < 2:
        raise XPSError(f"{source}: quantification needs at least two elements (got {', '.join(elements)})")
    element_line = {}
    for p in peaks:
        first = element_line.setdefault(p.element, p.line)
        if line_key(first) != line_key(p.line):
            raise XPSError(f"{source}: {p.element} is quantified from {first!r} and {p.line!r}: one element, one "
                           "line (two lines of one element would count its atoms twice)")
    factors = np.array([rsf.factor(p.line, source) for p in peaks])
    hv_peak = np.array([p.excitation_energy for p in peaks])
    ke = hv_peak[None, :] - np.stack([p.binding_energy for p in peaks], axis=1)  # (L, P)
    if isinstance(model, KEPower) and model.exponent == 0:
        imfp_factor = np.ones_like(ke)
    else:
        if not np.all(np.isfinite(ke) & (ke > 0)):
            raise XPSError(f"{source}: the IMFP factor needs the excitation energy of every region (kinetic "
                           "energy = hv - BE); the file does not state it for all of them")
        imfp_factor = model.imfp(ke)
    area = np.stack([p.area for p in peaks], axis=1)
    area_se = np.stack([p.area_stderr for p in peaks], axis=1)
    transmission = np.stack([p.transmission for p in peaks], axis=1)
    divisor = factors[None, :] * transmission * imfp_factor
    corrected, corrected_se = area / divisor, area_se / divisor
    # a fitted area held at a bound has no esd (NaN on purpose): it counts with its value and adds no
    # variance to the others; its own share and an element made only of such peaks keep NaN
    unknown = ~np.isfinite(corrected_se)
    known_se = np.where(unknown, 0.0, corrected_se)
    peak_pct, peak_se = _percent(corrected, known_se)
    peak_se = np.where(unknown, np.nan, peak_se)
    member = np.array([[p.element == e for e in elements] for p in peaks], float)  # (P, E)
    c_el = corrected @ member
    ce_el = np.sqrt(known_se**2 @ member)
    pct, pct_se = _percent(c_el, ce_el)
    pct_se = np.where((~unknown).astype(float) @ member > 0, pct_se, np.nan)
    peak_names = [p.name for p in peaks]
    ds = xr.Dataset(coords={
        dim: (dim, levels, {"units": level_units}),
        "element": ("element", elements),
        "line": ("element", [element_line[e] for e in elements]),
        "rsf": ("element", [rsf.factor(element_line[e], source) for e in elements], {"units": "1"}),
        "peak": ("peak", peak_names),
        "peak_element": ("peak", [p.element for p in peaks]),
        "peak_line": ("peak", [p.line for p in peaks]),
        "peak_kind": ("peak", [p.kind for p in peaks]),
        "peak_rsf": ("peak", factors, {"units": "1"}),
        "window_low": ("peak", [p.window[0] for p in peaks], {"units": "eV"}),
        "window_high": ("peak", [p.window[1] for p in peaks], {"units": "eV"}),
    })
    pl = (dim, "peak")
    ds["area"] = (pl, area, {"units": "counts/s*eV"})
    ds["area_stderr"] = (pl, area_se, {"units": "counts/s*eV"})
    ds["transmission"] = (pl, transmission, {"units": "1", "long_name": "analyser transmission (1: the file has none)"})
    ds["kinetic_energy"] = (pl, ke, {"units": "eV", "long_name": "hv - measured binding energy of the peak"})
    ds["imfp_factor"] = (pl, imfp_factor, {"units": "nm" if isinstance(model, TPP2M) else "1",
                                           "long_name": f"IMFP factor: {model.describe()}"})
    ds["corrected_area"] = (pl, corrected, {"units": "counts/s*eV", "long_name":
                                            "area / (RSF * T * IMFP factor), CasaXPS's Area/(RSF*T*MFP)"})
    ds["corrected_area_stderr"] = (pl, corrected_se, {"units": "counts/s*eV"})
    ds["peak_percent"] = (pl, peak_pct, {"units": "percent", "long_name": "share of the corrected areas"})
    ds["peak_percent_stderr"] = (pl, peak_se, {"units": "percent"})
    ds["atomic_percent"] = ((dim, "element"), pct, {"units": "percent"})
    ds["atomic_percent_stderr"] = ((dim, "element"), pct_se, {"units": "percent"})
    ds = ds.assign_coords(area_background=(pl, np.array([p.background for p in peaks]).T,
                                           {"long_name": "background under the area: shirley, linear (where no "
                                                         "Shirley background joins the end levels) or fit"}))
    labels = level_labels(dim, levels, level_units)
    failed, warnings, detected = quant_quality(pct, pct_se, elements, labels)
    if left_out:
        warnings.append(f"Not quantified at {', '.join(all_labels[i] for i in left_out)}: a fit does not cover "
                        "those levels.")
    more_failed, more_warnings = peak_quality(peak_names, [p.element for p in peaks], area, area_se, labels)
    failed, warnings = failed + more_failed, warnings + more_warnings
    ds["peak_detected"] = (pl, (peak_pct > DETECTION_SIGMAS * peak_se).astype("i1"),
                           {"units": "1", "long_name": f"1 where the peak's share exceeds {DETECTION_SIGMAS:g} esd"})
    ds["detected"] = ((dim, "element"), detected.astype("i1"),
                      {"units": "1", "long_name": f"1 where the atomic % exceeds {DETECTION_SIGMAS:g} esd"})
    ds.attrs.update({"technique": "XPS", "source": source, "fitted": "atomic_percent corrected_area area",
                     "rsf_table": rsf.source, "rsf_excitation": rsf.excitation,
                     "ke_correction": int(rsf.ke_correction), "imfp_model": model.describe(),
                     "ke_exponent": float(model.exponent) if isinstance(model, KEPower) else float("nan"),
                     "background": "regions: shirley (linear where the Shirley iteration does not converge); "
                                   "components: the fit's",
                     "level_dim": dim, "detection_sigmas": DETECTION_SIGMAS})
    # a simulated file's marker (doptrace.core.simulated) stays with its numbers
    carry(next((b for b in blocks if simulated(b)), ""), ds)
    return set_quality(ds, failed, warnings)
