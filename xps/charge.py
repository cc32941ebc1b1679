"""Charge reference: shift every level's binding energies so that a reference sits where it belongs.

References (``parse_charge_ref``):

- ``"C 1s=284.8"``, ``"C 1s=285.0"``, ``"Au 4f7/2=84.0"``, ``"O 1s=529.6"``: the strongest peak of
  that region (a spin-orbit line names its orbital's region: Au 4f7/2 -> Au 4f) is fitted in every
  level with a GL(30) line plus one free GL(30) companion on its high binding-energy side (a
  chemical shoulder such as C-O, or the doublet partner) over a Shirley background;
- ``"component:C-C=285.0"``: a named component of the fitted model (fitted first on the measured
  scale, then refitted with the shift), or ``"component:C-C@c1s.toml=285.0"`` of another model
  fitted to its own region;
- a Fermi edge (``fermi_reference("Valence")``): a Fermi-Dirac step at ``kT`` of ``temperature``,
  times a linear density of states, convolved with a Gaussian (the instrument resolution, fitted)
  on a constant background, fitted with lmfit within +-2 eV of the lowest-BE steep rise; its midpoint
  is shifted to 0 eV.

The shift is ``reference energy - measured position`` per level; its esd is the position's esd.
:func:`annotate` stores the reference with a fit result: ``attrs["charge_reference"]`` (text),
``charge_reference_position`` and ``charge_reference_position_stderr`` (measured, uncorrected) and
``charge_shift_stderr`` per level beside the result's ``charge_shift``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.quality import add_quality

from .errors import XPSError
from .rsf import line_key, orbital_key

K_B = 8.617333262e-5  # Boltzmann constant, eV/K
#: half-width (eV) of the window fitted around a Fermi edge
FERMI_WINDOW = 2.0


@dataclass(frozen=True)
class ChargeReference:
    """What the binding-energy scale is referenced to."""

    kind: str                   # "region", "component" or "fermi"
    target: str                 # region / line, component name, or valence region
    energy: float               # where the reference belongs (eV)
    model: str | None = None    # model file of a component reference (None: the fitted model)
    temperature: float = 300.0  # K, Fermi edge

    def describe(self) -> str:
        if self.kind == "fermi":
            return (f"Fermi edge of region {self.target} at {self.energy:g} eV (Fermi-Dirac step at "
                    f"{self.temperature:g} K times a linear DOS, convolved with a fitted Gaussian)")
        if self.kind == "component":
            where = f" of model {Path(self.model).name}" if self.model else " of the fitted model"
            return f"component {self.target}{where} at {self.energy:g} eV"
        return f"{self.target} at {self.energy:g} eV (strongest peak of the region, GL(30) with a companion)"


_REF = re.compile(r"^\s*(?:(?P<kind>component|region)\s*:)?\s*(?P<target>[^=@]+?)\s*(?:@\s*(?P<model>[^=]+?))?\s*"
                  r"=\s*(?P<energy>[-+]?\d+(?:\.\d*)?)\s*(?:eV)?\s*$", re.IGNORECASE)


def parse_charge_ref(text: str, where: str = "") -> ChargeReference:
    """``"C 1s=284.8"``, ``"Au 4f7/2=84.0"``, ``"component:C-C=285.0"``, ``"component:C-C@c1s.toml=285.0"``."""
    m = _REF.match(str(text))
    if not m:
        raise XPSError(f"{where}: charge reference {text!r}: write \"C 1s=284.8\", \"component:C-C=285.0\" or "
                       "\"component:C-C@model.toml=285.0\"")
    kind = (m.group("kind") or "region").lower()
    if m.group("model") and kind != "component":
        raise XPSError(f"{where}: charge reference {text!r}: @model only goes with component:NAME")
    energy = float(m.group("energy"))
    if not -20 <= energy <= 2000:
        raise XPSError(f"{where}: charge reference {text!r}: {energy:g} eV is not a binding energy")
    return ChargeReference(kind, m.group("target").strip(), energy, m.group("model"))


def fermi_reference(region: str, temperature: float = 300.0, where: str = "") -> ChargeReference:
    """A Fermi-edge reference on the valence-band region ``region`` (its midpoint goes to 0 eV)."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature < 5000):
        raise XPSError(f"{where}: Fermi-edge temperature must be in (0, 5000) K, not {temperature!r}")
    return ChargeReference("fermi", str(region).strip(), 0.0, None, float(temperature))


def _region_blocks(blocks, name: str, where: str):
    from .series import _norm, region_levels

    present = {_norm(b.attrs.get("region", "")): str(b.attrs.get("region", "")) for b in blocks}
    region = present.get(_norm(name))
    if region is None:
        region = next((r for k, r in present.items() if line_key(r) == orbital_key(name)), None)
    if region is None:
        raise XPSError(f"{where}: the charge reference needs region {name!r}; the file has "
                       f"{', '.join(sorted(present.values()))}")
    return region_levels(blocks, region, where)


def _partners(ref_blocks, chosen) -> list[int]:
    """Index of the reference block for every chosen block: the same etch time, else the closest
    reference block before it in the file, else the first."""
    out = []
    for block in chosen:
        t = float(block.attrs.get("etch_time", math.nan))
        same = [i for i, c in enumerate(ref_blocks) if math.isfinite(t) and float(c.attrs.get("etch_time", math.nan)) == t]
        if not same:
            idx = int(block.attrs.get("block_index", 0))
            same = [i for i, c in enumerate(ref_blocks) if int(c.attrs.get("block_index", 0)) <= idx][-1:] or [0]
        out.append(same[0])
    return out


def _peak_position(block, where: str):
    """``(centre, esd, failed)`` of the strongest peak of one block (GL(30) + companion on Shirley)."""
    from .fit import fit_spectra
    from .model import simple_model

    x = np.asarray(block["binding_energy"].values, float)
    y = np.asarray(block.values, float)
    peak = float(x[np.argmax(y)])
    window = (max(x[0], peak - 3.5), min(x[-1], peak + 7.5))  # the companion and its tail inside
    hi = min(peak + 4.5, window[1] - 0.2)
    components = [{"name": "reference", "center": [peak, peak - 1.5, peak + 1.5], "fwhm": [1.4, 0.4, 4.0]}]
    if hi > peak + 1.0:
        components.append({"name": "companion", "center": [min(peak + 1.8, hi), peak + 0.8, hi],
                           "fwhm": {"same_as": "reference"}})
    model = simple_model(str(block.attrs.get("region", "")), components, window=window, background="shirley")
    res = fit_spectra(model, x, y[None], counts_per_unit=float(block.attrs.get("counts_per_unit", 1.0) or 1.0),
                      source=where)
    value, esd = res.values()["center"]
    return float(value[0, 0]), float(esd[0, 0]), not bool(res.converged[0])


def fermi_dirac_edge(energy, mu, fwhm, height, slope, background, kt):
    """Intensity at binding energies ``energy``: ``(height + slope (E - mu)) / (1 + exp(-(E - mu)/kT))``
    convolved with a Gaussian of ``fwhm``, plus ``background`` (occupied states lie at E > mu)."""
    e = np.asarray(energy, dtype=float)
    step = max(min(kt, fwhm / 8.0, 0.02), 1e-3)
    sigma = max(fwhm, 1e-6) / (2 * math.sqrt(2 * math.log(2)))
    pad = 6 * sigma + 20 * kt
    grid = np.arange(e.min() - pad, e.max() + pad + step, step)
    t = (grid - mu) / kt
    occupied = (height + slope * (grid - mu)) * 0.5 * (1 + np.tanh(t / 2))  # = 1/(1+exp(-t)), overflow-free
    half = int(math.ceil(5 * sigma / step))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * step / sigma) ** 2)
    smooth = np.convolve(occupied, k / k.sum(), mode="same")
    return np.interp(e, grid, smooth) + background


def fermi_edge(block, temperature: float = 300.0, where: str = ""):
    """Fit a Fermi edge to a valence-band block: ``(mu, mu_esd, fwhm, result)`` (eV, measured scale).

    The edge is looked for at the lowest binding energy where the smoothed spectrum rises at a
    quarter or more of its steepest rise (a local maximum of the slope); the model (:func:`fermi_dirac_edge`) is fitted by lmfit with Poisson weights within
    +-:data:`FERMI_WINDOW` eV of it.
    """
    import lmfit

    x = np.asarray(block["binding_energy"].values, float)
    y = np.asarray(block.values, float)
    cpu = float(block.attrs.get("counts_per_unit", 1.0) or 1.0)
    width = max(3, int(round(0.3 / max(np.median(np.diff(x)), 1e-6))))
    smooth = np.convolve(y, np.ones(width) / width, mode="same")
    grad = np.gradient(smooth, x)
    inner = np.arange(width, max(width + 1, x.size - width))
    g = grad[inner]
    # the edge is the lowest-BE rise of the spectrum: a d band further down is often steeper
    rising = (g > 0.25 * g.max()) & (g >= np.roll(g, 1)) & (g >= np.roll(g, -1))
    mu0 = float(x[inner][np.nonzero(rising)[0][0]] if rising.any() else x[inner][np.argmax(g)])
    keep = (x >= mu0 - FERMI_WINDOW) & (x <= mu0 + FERMI_WINDOW)
    if keep.sum() < 15:
        raise XPSError(f"{where}: the Fermi edge near {mu0:.2f} eV has {int(keep.sum())} points within "
                       f"+-{FERMI_WINDOW:g} eV; at least 15 are needed")
    xw, yw = x[keep], y[keep]
    sigma = np.sqrt(np.maximum(yw * cpu, 1.0)) / cpu
    low = float(np.median(yw[xw < mu0 - 0.5])) if np.any(xw < mu0 - 0.5) else float(yw.min())
    high = float(np.median(yw[xw > mu0 + 0.5])) if np.any(xw > mu0 + 0.5) else float(yw.max())
    model = lmfit.Model(fermi_dirac_edge, independent_vars=["energy"])
    params = model.make_params(mu=mu0, fwhm=0.5, height=max(high - low, 1e-9), slope=0.0, background=low)
    params["mu"].set(min=mu0 - 1.0, max=mu0 + 1.0)
    params["fwhm"].set(min=0.02, max=3.0)
    params.add("kt", value=K_B * temperature, vary=False)
    result = model.fit(yw, params, energy=xw, weights=1.0 / sigma)
    mu = result.params["mu"]
    esd = float(mu.stderr) if mu.stderr is not None and np.isfinite(mu.stderr) else math.nan
    return float(mu.value), esd, float(result.params["fwhm"].value), result


def measure(blocks, chosen, ref: ChargeReference, fitted_model=None, where: str = ""):
    """``(position, position_esd, failed, warnings)`` per chosen block: where the reference is measured
    (uncorrected binding energy) at each level."""
    failed, warnings = [], []
    if ref.kind == "component":
        from .model import load_model
        from .series import fit_region

        model = load_model(ref.model) if ref.model else fitted_model
        if model is None:
            raise XPSError(f"{where}: a component reference needs a model (component:NAME@model.toml=...)")
        if ref.target not in model.names:
            raise XPSError(f"{where}: charge reference component {ref.target!r} is not in model "
                           f"{Path(str(model.path)).name} (components: {', '.join(model.names)})")
        fit = fit_region(blocks, model, source=where)
        dim = fit.attrs.get("level_dim", "etch_time")
        ref_blocks, _, _, _ = _region_blocks(blocks, model.region, where)
        idx = _partners(ref_blocks, chosen)
        centre = fit["center"].sel(component=ref.target).values
        esd = fit["center_stderr"].sel(component=ref.target).values
        if fit.attrs.get("quality") == "failed":
            failed.append(f"The charge reference fit ({model.region}, component {ref.target}) failed: "
                          + " ".join(fit.attrs.get("quality_reasons", [])))
        if not np.all(np.isfinite(esd[idx])):
            warnings.append(f"The charge reference component {ref.target} sits at a bound of its centre at some "
                            f"level ({dim}): its position has no esd there.")
        return np.asarray(centre, float)[idx], np.asarray(esd, float)[idx], failed, warnings
    ref_blocks, _, _, _ = _region_blocks(blocks, ref.target, where)
    idx = _partners(ref_blocks, chosen)
    cache = {}
    for i in sorted(set(idx)):
        b = ref_blocks[i]
        here = f"{where}: block {b.attrs.get('block_index')} ({b.attrs.get('region', '')})"
        if ref.kind == "fermi":
            mu, esd, _, result = fermi_edge(b, ref.temperature, here)
            p, h, w = result.params["mu"], result.params["height"], result.params["fwhm"]
            at_bound = min(abs(p.value - p.min), abs(p.max - p.value)) < 1e-3
            # no edge: the step's height is not 3 esd above zero, or the broadening runs to its bound
            no_step = not (h.stderr is not None and np.isfinite(h.stderr) and h.value > 3 * h.stderr)
            wide = abs(w.value - w.max) < 1e-3
            if no_step or wide:
                failed.append(f"{here}: no Fermi edge found near {mu:.2f} eV (step height "
                              f"{h.value:.3g} ± {h.stderr if h.stderr is not None else float('nan'):.2g}, "
                              f"Gaussian FWHM {w.value:.2f} eV{' at its bound' if wide else ''}).")
            cache[i] = (mu, esd, not result.success or at_bound)  # an edge held by its bound was not found
        else:
            cache[i] = _peak_position(b, here)
    position = np.array([cache[i][0] for i in idx])
    esd = np.array([cache[i][1] for i in idx])
    if any(cache[i][2] for i in idx):
        failed.append(f"The charge reference fit ({ref.describe()}) did not converge, or its position sits at a "
                      "bound, at some level.")
    if not np.all(np.isfinite(esd)):
        warnings.append(f"The charge reference position ({ref.describe()}) has no esd at some level.")
    return position, esd, failed, warnings


def reference_shifts(blocks, chosen, ref: ChargeReference, fitted_model=None, where: str = "") -> dict:
    """Shift per chosen block and the record :func:`annotate` stores: ``{"shift", "shift_stderr",
    "position", "position_stderr", "reference", "failed", "warnings"}``."""
    position, esd, failed, warnings = measure(blocks, chosen, ref, fitted_model, where)
    return {"shift": ref.energy - position, "shift_stderr": esd, "position": position, "position_stderr": esd,
            "reference": ref, "failed": failed, "warnings": warnings}


def annotate(ds: xr.Dataset, record: dict) -> xr.Dataset:
    """Store a charge reference (:func:`reference_shifts`) with a fit or quantification result."""
    dim = ds.attrs.get("level_dim", "etch_time")
    ref: ChargeReference = record["reference"]
    ds["charge_reference_position"] = ((dim,), np.asarray(record["position"], float), {
        "units": "eV", "long_name": f"measured (uncorrected) binding energy of the charge reference: {ref.describe()}"})
    ds["charge_reference_position_stderr"] = ((dim,), np.asarray(record["position_stderr"], float), {"units": "eV"})
    if "charge_shift" not in ds:  # a quantification: the shift moved its region windows
        ds["charge_shift"] = ((dim,), np.asarray(record["shift"], float), {"units": "eV",
                              "long_name": "shift added to the measured binding energies"})
    ds["charge_shift_stderr"] = ((dim,), np.asarray(record["shift_stderr"], float), {"units": "eV"})
    ds.attrs.update({"charge_reference": ref.describe(), "charge_reference_kind": ref.kind,
                     "charge_reference_energy": float(ref.energy)})
    return add_quality(ds, failed=record["failed"], warnings=record["warnings"])


def fit_region_referenced(blocks, model, ref: ChargeReference, region: str | None = None, source: str = "",
                          chain: bool = True) -> xr.Dataset:
    """:func:`doptrace.xps.fit_region` with the binding energies charge-corrected to ``ref``; the
    reference (measured position with esd, shift applied) is stored with the result (:func:`annotate`)."""
    from .series import fit_region, region_levels

    region = region or model.region
    if not region:
        raise XPSError(f"{model.path}: the model names no region; pass --region")
    chosen, _, _, _ = region_levels(blocks, region, source)
    record = reference_shifts(blocks, chosen, ref, model, source)
    ds = fit_region(blocks, model, region=region, shift=record["shift"], source=source, chain=chain)
    return annotate(ds, record)
