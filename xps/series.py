"""Fit one region in every block of a file (an etch series), with charge correction, into a result Dataset.

The result follows the doptrace conventions: dims (``etch_time`` or ``block``, ``component``) for
``area``, ``center``, ``fwhm``, ``fraction`` with ``*_stderr``; ``redchi`` and ``charge_shift``
per level; the curves ``data``, ``background``, ``envelope`` over (level, ``binding_energy``) and
``component_curve`` over (level, ``component``, ``binding_energy``). When the levels' energy grids
differ (per-level charge shifts, CasaXPS calibrations) the curves run over a ``channel`` dim with a
2-D ``binding_energy`` coordinate instead.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from doptrace.core.quality import add_quality, set_quality

from .errors import XPSError
from .fit import FitResult, fit_series, fit_spectra
from .model import Model, from_casa, simple_model
from .quality import casa_quality, fit_quality, level_labels

ADVENTITIOUS_C = 284.8  # eV


def _norm(text) -> str:
    return " ".join(str(text).split()).lower()


def region_blocks(blocks: list[xr.DataArray], region: str, source: str = "") -> list[xr.DataArray]:
    """The blocks of ``region`` in file order; :class:`XPSError` listing the regions present if none."""
    from .formats._spectrum import require_binding_energy

    chosen = [b for b in blocks if _norm(b.attrs.get("region", "")) == _norm(region)]
    if not chosen:
        present = sorted({str(b.attrs.get("region", "")) for b in blocks})
        raise XPSError(f"{source}: no blocks of region {region!r} (regions present: {', '.join(present)})")
    for b in chosen:
        require_binding_energy(b, "fitting and quantification")
        if b.size == 0:
            raise XPSError(f"{source}: block {b.attrs.get('block_index')} ({region}) is empty")
    return chosen


_POSITION_WORDS = ("index", "position", "x ", "y ", "z ")


def region_levels(blocks: list[xr.DataArray], region: str, source: str = ""):
    """``(chosen, dim, levels, units)``: the blocks of ``region`` sorted along their level dimension."""
    chosen = region_blocks(blocks, region, source)
    dim, levels, units = _levels(chosen)
    order = np.argsort(levels, kind="stable")
    return [chosen[i] for i in order], dim, levels[order], units


def _levels(chosen: list[xr.DataArray]) -> tuple[str, np.ndarray, str]:
    """The level dimension: etch time when every block has a distinct one; else an experimental
    variable that distinguishes the blocks (e.g. "Angle" of an angle-resolved series, not stage
    indices or positions); else the block index."""
    times = np.array([float(b.attrs.get("etch_time", math.nan)) for b in chosen])
    if np.all(np.isfinite(times)) and np.unique(times).size == times.size:
        return "etch_time", times, "s"
    labels = list(dict(chosen[0].attrs.get("experimental_variables") or {}))
    for label in labels:
        if any(_norm(label).startswith(w.strip()) for w in _POSITION_WORDS):
            continue
        try:
            values = np.array([float((b.attrs.get("experimental_variables") or {}).get(label, math.nan))
                               for b in chosen])
        except (TypeError, ValueError):
            continue
        if np.all(np.isfinite(values)) and np.unique(values).size == values.size:
            units = dict(chosen[0].attrs.get("experimental_variable_units") or {}).get(label, "")
            units = str(units).strip()
            units = "1" if units in ("", "d", "n") else units
            name = "_".join(_norm(label).replace("[", " ").replace("]", " ").split()) or "level"
            return name, values, units
    return "block", np.array([int(b.attrs.get("block_index", i)) for i, b in enumerate(chosen)]), "1"


def c1s_shifts(blocks: list[xr.DataArray], chosen: list[xr.DataArray], source: str = "") -> np.ndarray:
    """Charge shift (eV) per chosen block: 284.8 eV minus the fitted C 1s peak of the same level.

    The C 1s block of the same etch time is used (without etch times: the closest C 1s block
    before the chosen block in the file). One GL(30) peak on a Shirley background is fitted within
    +-6 eV of the C 1s maximum.
    """
    c1s = [b for b in blocks if _norm(b.attrs.get("region", "")) == "c 1s"]
    if not c1s:
        raise XPSError(f"{source}: --c1s needs a C 1s block for the charge correction; the file has none")
    shifts = []
    for block in chosen:
        t = float(block.attrs.get("etch_time", math.nan))
        same = [c for c in c1s if math.isfinite(t) and float(c.attrs.get("etch_time", math.nan)) == t]
        if not same:
            before = [c for c in c1s if int(c.attrs.get("block_index", 0)) <= int(block.attrs.get("block_index", 0))]
            same = before[-1:] or c1s[:1]
        c = same[0]
        x = np.asarray(c["binding_energy"].values, float)
        y = np.asarray(c.values, float)
        peak = float(x[np.argmax(y)])
        window = (max(x[0], peak - 6.0), min(x[-1], peak + 6.0))
        model = simple_model("C 1s", [
            {"name": "C-C", "center": [peak, window[0], window[1]], "fwhm": [1.4, 0.4, 4.0]},
            {"name": "C-O", "center": {"offset_from": "C-C", "by": 1.6}, "fwhm": {"same_as": "C-C"}},
        ], window=window, background="shirley")
        res = fit_spectra(model, x, y[None], counts_per_unit=float(c.attrs.get("counts_per_unit", 1.0) or 1.0),
                          source=source)
        shifts.append(ADVENTITIOUS_C - float(res.values()["center"][0][0, 0]))
    return np.array(shifts)


def fit_region(blocks: list[xr.DataArray], model: Model, region: str | None = None, shift: float | None = None,
               c1s: bool = False, source: str = "", chain: bool = True) -> xr.Dataset:
    """Fit one peak model to a region in every block (etch level) of a file.

    The levels are fitted together (one batched Levenberg-Marquardt over all spectra; each level
    starts from the previous level's result when ``chain``), with Poisson weights and the model's
    background (Shirley, static or active, Tougaard or linear) under the components.

    Parameters
    ----------
    blocks : list of xarray.DataArray
        Spectra as :func:`doptrace.xps.read` returns them.
    model : doptrace.xps.model.Model
        Peak model, usually from :func:`doptrace.xps.load_model` (TOML: window, background,
        components with bounds and links).
    region : str, optional
        Region to fit (default the model's ``region``).
    shift : float, optional
        Charge correction added to every binding energy, eV.
    c1s : bool
        Charge-correct each level so that its adventitious C 1s C-C peak sits at 284.8 eV
        (needs C 1s blocks at the same levels).
    source : str
        File name for error messages.
    chain : bool
        Start each level from the previous level's fit.

    Returns
    -------
    xarray.Dataset
        ``area``, ``center``, ``fwhm``, ``fraction`` (share of the region's area) over
        (level, ``component``) with ``*_stderr``; ``redchi`` and ``charge_shift`` per level;
        ``data``, ``background``, ``envelope`` and ``component_curve`` over binding energy. The
        level dim is ``etch_time`` (s) when the file gives etch times, else ``block``.

    References
    ----------
    D. A. Shirley, Phys. Rev. B 5 (1972) 4709-4714 (background). N. Fairley et al., Appl. Surf.
    Sci. Adv. 5 (2021) 100112 (CasaXPS line shapes, GL(m)).

    Examples
    --------
    The B 1s model of ``examples/xps/b1s.toml`` fitted to a simulated etch series whose TM-O-B
    share is 0.10, 0.37 and 0.50 at the three levels:

    >>> from importlib.resources import files
    >>> from doptrace import xps
    >>> truth = xps.simulate_series("b1s.vms", etch_times=[0.0, 100.0, 200.0], regions=("B 1s",), seed=1)
    >>> model = xps.load_model(files("doptrace.examples") / "xps" / "b1s.toml")
    >>> result = xps.fit_region(xps.read("b1s.vms"), model)
    >>> share = result["fraction"].sel(component="TM-O-B")
    >>> truth["regions"]["B 1s"]["fraction"][:, 1].round(2).tolist(), share.values.round(2).tolist()
    ([0.1, 0.37, 0.5], [0.1, 0.36, 0.49])
    >>> bool(np.all(abs(share - truth["regions"]["B 1s"]["fraction"][:, 1]) < 3 * result["fraction_stderr"].sel(component="TM-O-B")))
    True
    """
    region = region or model.region
    if not region:
        raise XPSError(f"{model.path}: the model names no region; pass --region")
    chosen, dim, levels, level_units = region_levels(blocks, region, source)
    if c1s:
        shifts = c1s_shifts(blocks, chosen, source)
    else:
        # one shift for every level, or one per level (a charge reference measured level by level)
        shifts = np.broadcast_to(np.asarray(0.0 if shift is None else shift, dtype=float), (len(chosen),)).copy()
    # the index, not b["binding_energy"]: that builds a DataArray per block (0.1 s for 2000 levels)
    grids = [np.asarray(b.get_index("binding_energy"), float) for b in chosen]
    n = min(g.size for g in grids)
    if any(g.size != n for g in grids):
        # Different grids: fit level by level (each from the previous level's result).
        results, previous = [], None
        for b, g, s in zip(chosen, grids, shifts):
            res = fit_spectra(model, g + s, np.asarray(b.values, float)[None],
                              counts_per_unit=float(b.attrs.get("counts_per_unit", 1.0) or 1.0), p0=previous,
                              source=source)
            previous = res.params if chain else None
            results.append(res)
        return result_dataset(results, model, dim, levels, level_units, chosen, shifts, source)
    energy = np.stack(grids) + shifts[:, None]
    y = np.stack([np.asarray(b.values, float) for b in chosen])
    cpu = np.array([float(b.attrs.get("counts_per_unit", 1.0) or 1.0) for b in chosen])
    res = fit_series(model, energy, y, counts_per_unit=cpu, chain=chain, source=source)
    return result_dataset([res], model, dim, levels, level_units, chosen, shifts, source)


def fit_casa(blocks: list[xr.DataArray], region: str | None = None, source: str = "") -> xr.Dataset:
    """Refit every block of ``region`` with the CasaXPS model stored in that block's comment.

    Energies are put on CasaXPS's calibrated scale (its ``Calib ... BE ADD`` shift); CasaXPS's own
    component areas are kept as ``casa_area`` beside ours. Without ``region`` the region of the
    first block holding a model is refit. Blocks holding a model that is not refit (another
    region, or a model with other components than the first block's) are named in
    ``attrs["notes"]``; nothing is skipped without a word.

    Raises
    ------
    XPSError
        Naming the file and block: no model in the chosen blocks; a component whose line shape is
        a CasaXPS reference spectrum (``%COMETAL`` ...) or a background doptrace cannot rebuild
        (``Min Limits``); AES blocks (kinetic-energy axis).
    """
    from .formats import casa
    from .formats._spectrum import require_binding_energy

    def where(b) -> str:
        name = b.attrs.get("region", "")
        return f"{source}: block {b.attrs.get('block_index', '?')}" + (f" ({name})" if name else "")

    candidates, with_model = [], []
    for b in blocks:
        info = casa.from_block(b)
        if info is None or not info.comps or not info.regions:
            continue
        with_model.append(b)
        if region is not None and _norm(b.attrs.get("region", "")) != _norm(region) and not any(
                _norm(r.name) == _norm(region) for r in info.regions):
            continue
        candidates.append((b, info))
    if not candidates:
        what = f"region {region!r}" if region else "any block"
        present = sorted({str(b.attrs.get("region", "")) for b in with_model})
        hint = f" (blocks with a model: regions {', '.join(present)})" if present else ""
        raise XPSError(f"{source}: no CASA comp lines (a CasaXPS fit model) in {what}{hint}")
    notes = []
    first_region = _norm(candidates[0][0].attrs.get("region", ""))
    if region is None:
        others = [b for b, _ in candidates if _norm(b.attrs.get("region", "")) != first_region]
        if others:
            names = sorted({str(b.attrs.get("region", "")) for b in others})
            notes.append(f"refit region {candidates[0][0].attrs.get('region', '')!r} only; models of "
                         f"{len(others)} block(s) of {', '.join(map(repr, names))} not refit (choose with --region)")
    candidates = [(b, i) for b, i in candidates if _norm(b.attrs.get("region", "")) == first_region]
    results, models, shifts, chosen, casa_areas, casa_redchi, differing = [], [], [], [], [], [], []
    for b, info in candidates:
        require_binding_energy(b, "a CasaXPS refit")
        model = from_casa(info, float(b.attrs.get("excitation_energy", math.nan)), None, where(b))
        if models and model.names != models[0].names:
            differing.append(int(b.attrs.get("block_index", -1)))
            continue
        shift = info.calibration_shift
        x = np.asarray(b["binding_energy"].values, float) + shift
        res = fit_spectra(model, x, np.asarray(b.values, float)[None],
                          counts_per_unit=float(b.attrs.get("counts_per_unit", 1.0) or 1.0), source=where(b))
        results.append(res)
        models.append(model)
        shifts.append(shift)
        chosen.append(b)
        casa_areas.append([c.area.value for c in info.comps])
        casa_redchi.append(_stored_redchi(res, info, float(b.attrs.get("excitation_energy", math.nan))))
        ours = float(res.chi2[0]) / max(res.nfree, 1)
        total_ratio = float(res.values()["area"][0].sum()) / max(sum(casa_areas[-1]), 1e-300)
        if abs(total_ratio - 1) > 0.1 and casa_redchi[-1] > 2.0 * ours:
            notes.append(f"block {b.attrs.get('block_index')}: refit total area {total_ratio:.3g} x CasaXPS's; "
                         f"CasaXPS's stored model describes the stored data worse than the refit (reduced chi2 "
                         f"{casa_redchi[-1]:.3g} vs {ours:.3g}): it is not a converged fit of these data")
    if differing:
        notes.append(f"block(s) {differing} hold a model with other components than block "
                     f"{chosen[0].attrs.get('block_index')} ({', '.join(models[0].names)}): not refit")
    dim, levels, level_units = _levels(chosen)
    ds = result_dataset(results, models[0], dim, levels, level_units, chosen, np.array(shifts), source)
    ds["casa_area"] = ((dim, "component"), np.array(casa_areas, float), {"units": ds["area"].attrs["units"],
                       "long_name": "area stored by CasaXPS in the block comment"})
    ds["casa_redchi"] = ((dim,), np.array(casa_redchi, float), {"units": "1", "long_name":
                         "reduced chi-square of CasaXPS's stored model on the same data, background and sigma"})
    ds.attrs["model"] = "CasaXPS block comment"
    ds.attrs["notes"] = "; ".join(filter(None, [str(ds.attrs.get("notes", "")), *notes]))
    # every note (models not refit, a stored model that is not a fit of its data) is a warning too,
    # beside the area comparison: a refit that leaves blocks out says so in the quality record
    warnings = casa_quality(ds["area"].values, ds["area_stderr"].values, ds["casa_area"].values,
                            [str(c) for c in ds["component"].values], level_labels(dim, levels, level_units))
    warnings += [note[:1].upper() + note[1:] + "." for note in notes]
    if differing:
        ds.attrs["casa_skipped_blocks"] = differing
    return add_quality(ds, warnings=warnings)


def _stored_redchi(res: FitResult, info, excitation_energy: float) -> float:
    """Reduced chi-square of the CasaXPS model as stored (its areas, positions, FWHMs) on the data,
    background and sigma of the refit ``res``: tells whether the stored model is a converged fit.

    The old CasaXPS 2.x example (feranick/xps examples/casaxps.vms, block 0, two GL(30) on Shirley):
    stored areas 22608 + 17771 = 40379 cps eV, while the data above the same Shirley integrate to
    50272 cps eV; the refit's 26995 + 22458 = 49453 (ratios 1.194, 1.264) has reduced chi2 42
    against 160 for the stored model, whose FWHMs (1.92, 2.23 eV) are 11-15 % narrower than the
    data's peaks (2.16, 2.62 eV): the stored model is not a least-squares fit of the stored data.
    """
    from .lineshapes import shape_function

    x = res.energy[0]
    curve = res.background[0].copy()
    for comp in info.comps:
        curve = curve + comp.area.value * shape_function(comp.lineshape)(
            x, excitation_energy - comp.position.value, comp.fwhm.value)
    chi2 = float(np.sum(((res.data[0] - curve) / res.sigma[0]) ** 2))
    return chi2 / max(res.nfree, 1)


def _cat(results: list[FitResult], name: str) -> np.ndarray:
    arrays = [getattr(r, name) for r in results]
    return np.concatenate(arrays, axis=0)


def result_dataset(results: list[FitResult], model: Model, dim: str, levels, level_units: str,
                   chosen: list[xr.DataArray], shifts, source: str) -> xr.Dataset:
    """Assemble fits (one result per batch, rows = levels in order) into the conventions' Dataset."""
    units = str(chosen[0].attrs.get("units", "counts/s"))
    area_units = f"{units}*eV"
    values = {k: [] for k in ("area", "center", "fwhm")}
    for r in results:
        for k, (v, s) in r.values().items():
            values[k].append((v, s))
    fracs = [r.fractions() for r in results]
    components = model.names
    ds = xr.Dataset(coords={
        dim: (dim, np.asarray(levels), {"units": level_units}),
        "component": ("component", components),
        "shape": ("component", [c.shape for c in model.components]),
        "component_group": ("component", [c.group for c in model.components]),
        # the file's block each level was fitted from (xps.casa_export writes the fit back onto it)
        "block_index": (dim, np.array([int(b.attrs.get("block_index", -1)) for b in chosen], dtype=int),
                        {"units": "1"}),
    })
    for k, unit in (("area", area_units), ("center", "eV"), ("fwhm", "eV")):
        v = np.concatenate([a for a, _ in values[k]])
        s = np.concatenate([b for _, b in values[k]])
        ds[k] = ((dim, "component"), v, {"units": unit})
        ds[f"{k}_stderr"] = ((dim, "component"), s, {"units": unit})
    ds["fraction"] = ((dim, "component"), np.concatenate([f for f, _ in fracs]),
                      {"units": "1", "long_name": "share of the fitted area"})
    ds["fraction_stderr"] = ((dim, "component"), np.concatenate([s for _, s in fracs]), {"units": "1"})
    groups = [c.group for c in model.components]
    group_parts = [r.group_fractions(groups) for r in results]
    ds = ds.assign_coords(group=("group", group_parts[0][0]))
    ds["group_fraction"] = ((dim, "group"), np.concatenate([g[1] for g in group_parts]),
                            {"units": "1", "long_name": "share of the fitted area per chemical state (group)"})
    ds["group_fraction_stderr"] = ((dim, "group"), np.concatenate([g[2] for g in group_parts]), {"units": "1"})
    ds["redchi"] = ((dim,), np.concatenate([r.redchi for r in results]), {"units": "1"})
    ds["charge_shift"] = ((dim,), np.asarray(shifts, float), {"units": "eV",
                          "long_name": "shift added to the measured binding energies"})
    ds["iterations"] = ((dim,), np.concatenate([r.iterations for r in results]), {"units": "1"})
    ds["converged"] = ((dim,), np.concatenate([r.converged for r in results]).astype("i1"),
                       {"units": "1", "long_name": "1 where the fit stopped because chi-square stopped falling"})
    energy = [r.energy for r in results]
    n = {e.shape[1] for e in energy}
    stacked = {name: None for name in ("data", "background", "envelope", "components")}
    if len(n) == 1:
        stacked = {"data": _cat(results, "data"), "background": _cat(results, "background"),
                   "components": _cat(results, "components"),
                   "envelope": np.concatenate([r.envelope for r in results])}
        grid = np.concatenate(energy)
    else:
        width = max(n)

        def pad(a):
            out = np.full(a.shape[:-1] + (width,), np.nan)
            out[..., : a.shape[-1]] = a
            return out

        stacked = {"data": np.concatenate([pad(r.data) for r in results]),
                   "background": np.concatenate([pad(r.background) for r in results]),
                   "components": np.concatenate([pad(r.components) for r in results]),
                   "envelope": np.concatenate([pad(r.envelope) for r in results])}
        grid = np.concatenate([pad(e) for e in energy])
    common = np.allclose(grid, grid[:1], equal_nan=True)
    if common:
        edim = "binding_energy"
        ds = ds.assign_coords(binding_energy=(edim, grid[0], {"units": "eV"}))
    else:
        edim = "channel"
        ds = ds.assign_coords(binding_energy=((dim, edim), grid, {"units": "eV"}))
    ds["data"] = ((dim, edim), stacked["data"], {"units": units})
    ds["background"] = ((dim, edim), stacked["background"], {"units": units})
    ds["envelope"] = ((dim, edim), stacked["envelope"], {"units": units})
    ds["component_curve"] = ((dim, "component", edim), stacked["components"], {"units": units})
    ds.attrs.update({
        "technique": "XPS",
        "source": source,
        "region": model.region or str(chosen[0].attrs.get("region", "")),
        "fitted": "area center fwhm fraction group_fraction",
        "model": model.path,
        "background": model.background.kind + (" (active)" if model.background.active else ""),
        "window": list(model.window) if model.window else [],
        "level_dim": dim,
        # what the file says measured it (a simulator names itself here, and the report says so)
        **{k: str(chosen[0].attrs[k]) for k in ("instrument", "simulated") if chosen[0].attrs.get(k)},
    })
    failed, warnings = fit_quality(results, level_labels(dim, levels, level_units), model)
    return set_quality(ds, failed, warnings)


__all__ = ["fit_region", "fit_casa", "c1s_shifts", "result_dataset", "region_blocks"]


#: component whose share is the headline of a fit when the fit does not name one: none (no dopant is
#: a default in code; a project's xps_component becomes the fit's ``headline``), so the last component
HEADLINE_DEFAULT = ""


def headline_component(ds: xr.Dataset, default: str = HEADLINE_DEFAULT) -> str:
    """The component (or group of components, e.g. ``"In-O"``) whose share is a fit's headline.

    Parameters
    ----------
    ds : xarray.Dataset
        A fit result of :func:`fit_region` or :func:`fit_casa`.
    default : str
        Used when ``ds.attrs["headline"]`` is not set.

    Returns
    -------
    str
        ``attrs["headline"]`` (else ``default``) when the fit has such a component or group;
        otherwise the last component (the only one for a one-component fit).
    """
    names = [str(n) for n in ds["component"].values]
    groups = [str(g) for g in ds["group"].values] if "group" in ds.coords else []
    wanted = ds.attrs.get("headline") or default
    if wanted in names or wanted in groups:
        return wanted
    return names[-1] if len(names) > 1 else names[0]


def headline_share(ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(share, stderr)`` per level of one component or of a group of components of a fit."""
    if ("group" in ds.coords and name in [str(g) for g in ds["group"].values]
            and name not in [str(n) for n in ds["component"].values]):
        return ds["group_fraction"].sel(group=name).values, ds["group_fraction_stderr"].sel(group=name).values
    return ds["fraction"].sel(component=name).values, ds["fraction_stderr"].sel(component=name).values
