"""Quantification: atomic % per etch level from region areas, sensitivity factors and analyser corrections.

``X_i = (I_i / (RSF_i T_i KE_i^g)) / sum_j (I_j / (RSF_j T_j KE_j^g))``

- ``I_i``: area of region i above its Shirley background (counts/s x eV; a linear background where
  no Shirley background joins the region's end levels, recorded in ``area_background``),
- ``RSF_i``: relative sensitivity factor from a table (``scofield``, ``kratos`` or a user TOML with
  ``[rsf] "B 1s" = 0.486 ...``),
- ``T_i``: mean transmission over the region when the file stores one (else 1),
- ``KE_i^g``: the kinetic-energy dependence of the inelastic mean free path (``g = 0.6`` by
  default; 0 switches it off, e.g. for vendor RSFs that already include it).

Uncertainties: Poisson variance of every count, propagated through the area and its Shirley
background (:func:`region_area`); the at% stderr propagates the area stderrs through the
normalisation (``dX_i/dc_k = (delta_ik - X_i) / sum c``).
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import xarray as xr

from doptrace.core.quality import set_quality
from doptrace.core.tomlfile import Problems, parse_toml, read_toml

from . import backgrounds as bgs
from .errors import XPSError
from .quality import DETECTION_SIGMAS, level_labels, quant_quality
from .series import _norm, region_levels


def load_rsf_table(table: str = "scofield") -> tuple[dict[str, float], str]:
    """``({line: rsf}, source)`` of a bundled table (``scofield``, ``kratos``) or a user TOML file."""
    if table.lower() in ("scofield", "kratos"):
        text = resources.files("doptrace.xps.rsf").joinpath(f"{table.lower()}.toml").read_text(encoding="utf-8")
        doc = parse_toml(text, f"xps/rsf/{table.lower()}.toml", XPSError, "RSF table")
    else:
        doc = read_toml(table, XPSError, "RSF table")
    raw, where, problems = doc.data, doc.path, Problems(doc)
    rsf = raw.get("rsf")
    if not isinstance(rsf, dict) or not rsf:
        raise XPSError(f"{where}: needs an [rsf] table of \"<line>\" = <factor>")
    out = {}
    for line, value in rsf.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            problems.add(("rsf", line), f"RSF of {line!r} must be a positive number")
        else:
            out[_norm(line)] = float(value)
    problems.raise_if_any(XPSError)
    return out, str(raw.get("source", where))


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


def quantify(blocks: list[xr.DataArray], regions: list[str], table: str = "scofield", ke_exponent: float = 0.6,
             source: str = "") -> xr.Dataset:
    """Atomic % of every region's element at every etch level, with uncertainties.

    ``X_i = (I_i / (RSF_i T_i KE_i^g)) / sum_j (I_j / (RSF_j T_j KE_j^g))`` with ``I_i`` the area
    above a Shirley background; see the module docstring for every term.

    Parameters
    ----------
    blocks : list of xarray.DataArray
        Spectra as :func:`doptrace.xps.read` returns them.
    regions : list of str
        At least two regions, one per element (``["B 1s", "O 1s", "Mn 2p"]``).
    table : str
        RSF table: ``"scofield"`` (Al Ka cross-sections), ``"kratos"`` or a TOML file path.
    ke_exponent : float
        ``g`` of the IMFP kinetic-energy dependence ``KE^g`` (0 switches it off).
    source : str
        File name for error messages.

    Returns
    -------
    xarray.Dataset
        ``atomic_percent`` ± ``atomic_percent_stderr`` and ``area`` ± ``area_stderr`` over
        (level, ``element``); coords ``line``, ``rsf``, ``area_background``.

    References
    ----------
    J. H. Scofield, J. Electron Spectrosc. Relat. Phenom. 8 (1976) 129-137 (cross-sections).
    M. P. Seah and W. A. Dench, Surf. Interface Anal. 1 (1979) 2-11 (IMFP ~ KE^0.5-0.75).
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
    rsf, rsf_source = load_rsf_table(table)
    regions = [r.strip() for r in regions if r.strip()]
    if len(regions) < 2:
        raise XPSError(f"{source}: quantification needs at least two regions (got {regions})")
    if len({_norm(r) for r in regions}) != len(regions):
        raise XPSError(f"{source}: a region is named twice in {regions}")
    # IMFP ~ KE^g: published g lie near 0.5-0.8; outside [0, 2] it is a typing error, not physics.
    if not (isinstance(ke_exponent, (int, float)) and 0 <= ke_exponent <= 2):
        raise XPSError(f"{source}: KE exponent must be a number in [0, 2] (IMFP ~ KE^g), not {ke_exponent}")
    from .formats._spectrum import require_binding_energy

    for b in blocks:  # AES blocks first: "no RSF for 'C KLL'" would hide the real reason
        if _norm(b.attrs.get("region", "")) in {_norm(r) for r in regions}:
            require_binding_energy(b, "XPS quantification")
    corrected, corrected_err, raw_area, raw_err, level_sets, background_kinds = [], [], [], [], [], []
    dim, levels, level_units = None, None, None
    for region in regions:
        if _norm(region) not in rsf:
            raise XPSError(f"{source}: no RSF for {region!r} in table {table!r} (has: {', '.join(sorted(rsf))})")
        chosen, d, lv, units = region_levels(blocks, region, source)
        if dim is None:
            dim, levels, level_units = d, lv, units
        elif d != dim or lv.shape != levels.shape or (d == "etch_time" and not np.allclose(lv, levels)):
            raise XPSError(f"{source}: region {region!r} has levels {lv.tolist()}, {regions[0]!r} has {levels.tolist()}")
        areas, errs, factors, kinds = [], [], [], []
        for b in chosen:
            x = np.asarray(b["binding_energy"].values, float)
            y = np.asarray(b.values, float)
            if not np.all(np.isfinite(y)):
                raise XPSError(f"{source}: block {b.attrs.get('block_index')} ({region}) holds NaN counts")
            cpu = float(b.attrs.get("counts_per_unit", 1.0) or 1.0)
            sigma = np.sqrt(np.maximum(y * cpu, 1.0)) / cpu
            a, e, shirley_ok = region_area(x, y[None], sigma[None], with_background=True)
            kinds.append("shirley" if shirley_ok[0] else "linear")
            transmission = float(np.mean(b["transmission"].values)) if "transmission" in b.coords else 1.0
            hv = float(b.attrs.get("excitation_energy", math.nan))
            ke = hv - float(np.mean(x)) if math.isfinite(hv) else math.nan
            ke_factor = ke**ke_exponent if (ke_exponent and math.isfinite(ke) and ke > 0) else 1.0
            areas.append(a[0])
            errs.append(e[0])
            factors.append(rsf[_norm(region)] * transmission * ke_factor)
        areas, errs, factors = np.array(areas), np.array(errs), np.array(factors)
        raw_area.append(areas)
        background_kinds.append(kinds)
        raw_err.append(errs)
        corrected.append(areas / factors)
        corrected_err.append(errs / factors)
    c = np.array(corrected).T  # (level, element)
    ce = np.array(corrected_err).T
    total = c.sum(axis=1, keepdims=True)
    frac = c / total
    # independent areas: var(X_i) = sum_k ((delta_ik - X_i) / total)^2 var(c_k)
    grad = (np.eye(c.shape[1])[None] - frac[:, :, None]) / total[:, :, None]
    var = np.einsum("lik,lk->li", grad**2, ce**2)
    elements = [r.split()[0] for r in regions]
    ds = xr.Dataset(coords={dim: (dim, levels, {"units": level_units}), "element": ("element", elements),
                            "line": ("element", regions),
                            "rsf": ("element", [rsf[_norm(r)] for r in regions], {"units": "1"})})
    ds["atomic_percent"] = ((dim, "element"), 100 * frac, {"units": "percent"})
    ds["atomic_percent_stderr"] = ((dim, "element"), 100 * np.sqrt(var), {"units": "percent"})
    ds["area"] = ((dim, "element"), np.array(raw_area).T, {"units": "counts/s*eV"})
    ds["area_stderr"] = ((dim, "element"), np.array(raw_err).T, {"units": "counts/s*eV"})
    ds = ds.assign_coords(area_background=((dim, "element"), np.array(background_kinds).T,
                                           {"long_name": "background under the region area (linear where no "
                                                         "Shirley background joins the end levels)"}))
    failed, warnings, detected = quant_quality(ds["atomic_percent"].values, ds["atomic_percent_stderr"].values,
                                               elements, level_labels(dim, levels, level_units))
    ds["detected"] = ((dim, "element"), detected.astype("i1"),
                      {"units": "1", "long_name": f"1 where the atomic % exceeds {DETECTION_SIGMAS:g} esd"})
    ds.attrs.update({"technique": "XPS", "source": source, "fitted": "atomic_percent area",
                     "rsf_table": rsf_source, "ke_exponent": float(ke_exponent),
                     "background": "shirley (linear where the Shirley iteration does not converge)",
                     "level_dim": dim, "detection_sigmas": DETECTION_SIGMAS})
    return set_quality(ds, failed, warnings)
