"""Forward simulator: a recipe's model -> a Poisson-noisy pattern with known truth, written as .xye.

The calculation is the built-in engine's own model (:class:`xrd.model.PatternModel`), so a refinement
of a simulated file is a round trip with known ground truth.

Example
-------
>>> from xrd.recipe import load_recipe
>>> pattern = simulate(load_recipe("examples/xrd/li-rich-two-phase.toml"),
...                    dopant={"LiTMO2:Li": 0.06}, counts=30000, seed=1)   # doctest: +SKIP
>>> write_xye(pattern, "li-rich.xye")                                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.atomic import write_text

from .errors import XRDError
from .recipe import Recipe

#: Background coefficients of a recipe are counts for a pattern whose strongest peak is this high.
BACKGROUND_REFERENCE = 10000.0
#: Largest simulated pattern (points); a step of 1e-4 deg over 10-100 deg is still below it.
MAX_POINTS = 2_000_000


def dopant_values(recipe: Recipe, fractions: dict[str, float]) -> dict[str, float]:
    """Model parameter values (``B@PHASE:SITE+...``) for dopant fractions given per site.

    Keys are ``PHASE:SITE`` (recipes with one dopant element) or ``ELEMENT@PHASE:SITE``. A shared
    group takes the value given for any of its sites; sites not named get 0.
    """
    if not recipe.dopants:
        if fractions:
            raise XRDError(f"{recipe.path}: dopant fractions given but the recipe has no [dopant]")
        return {}
    single = len(recipe.dopants) == 1
    known = {f"{d.element}@{site}": d for d in recipe.dopants for site in d.sites}
    given = {}
    for key, value in fractions.items():
        full = f"{recipe.dopants[0].element}@{key}" if single and "@" not in key else key
        if full not in known:
            raise XRDError(f"{recipe.path}: dopant site(s) ['{key}'] are not candidates in [dopant]"
                           + ("" if single else " (with several dopants write ELEMENT@PHASE:SITE)"))
        given[full] = value
    by_site: dict[str, float] = {}
    for full, value in given.items():
        site = full.split("@", 1)[1]
        by_site[site] = by_site.get(site, 0.0) + value
    for site, value in by_site.items():
        phase_name, label = site.split(":", 1)
        total = next((s.total for s in recipe.phase(phase_name).sites if s.label == label), 1.0)
        if not (np.isfinite(value) and 0.0 <= value <= total):
            # a true fraction outside 0..site total would give a negative host occupancy
            raise XRDError(f"{recipe.path}: dopant fraction {value} on {site} is outside 0..{total:g} "
                           "(the site total)")
    out = {}
    for dopant in recipe.dopants:
        for group in dopant.groups():
            values = [given[f"{dopant.element}@{s}"] for s in group if f"{dopant.element}@{s}" in given]
            out[dopant.parameter(group)] = float(values[0]) if values else 0.0
    return out


def grid_pattern(recipe: Recipe, step: float = 0.02) -> xr.DataArray:
    """An empty pattern on the recipe's 2theta range (used to build a model without data)."""
    lo, hi = recipe.two_theta_range or (10.0, 90.0)
    if not (np.isfinite(step) and step > 0 and (hi - lo) / step <= MAX_POINTS):
        raise XRDError(f"{recipe.path}: 2theta step {step} deg must be positive and give at most "
                       f"{MAX_POINTS} points over {lo:g}-{hi:g} deg")
    x = np.round(np.arange(lo, hi + step / 2, step), 6)
    return xr.DataArray(np.ones_like(x), dims="two_theta",
                        coords={"two_theta": ("two_theta", x, {"units": "deg"}),
                                "esd": ("two_theta", np.ones_like(x), {"units": "counts"})},
                        attrs={"source": f"simulation of {recipe.path}"})


def simulate(recipe: Recipe, *, dopant: dict[str, float] | None = None, values: dict[str, float] | None = None,
             counts: float = 30000.0, seed: int | None = 0, step: float = 0.02, noise: bool = True,
             return_truth: bool = False):
    """Simulate the recipe's pattern with Poisson noise.

    Parameters
    ----------
    recipe : Recipe
        Phases, instrument and background (coefficients are counts at a 10000-count strongest peak).
    dopant : dict, optional
        True dopant fraction per candidate site ``PHASE:SITE``.
    values : dict, optional
        Any other model parameter to set (``zero``, ``displacement``, ``LiTMO2:a`` ...).
    counts : float
        Counts of the strongest point of the noise-free pattern above background.
    seed : int, optional
        Seed of the Poisson noise.
    step : float
        2theta step (deg).
    noise : bool
        False returns the expected counts.
    return_truth : bool
        Also return the dict of true parameter values.

    Returns
    -------
    xarray.DataArray
        Counts over ``two_theta`` with ``esd`` (sqrt counts), as :func:`xrd.read` returns.
    """
    from .model import PatternModel

    if not np.isfinite(counts) or counts <= 0:
        raise XRDError(f"{recipe.path}: counts must be a positive number, got {counts}")
    if recipe.lebail_phases:
        raise XRDError(f"{recipe.path}: Le Bail phase(s) {', '.join(recipe.lebail_phases)} have no structure to "
                       "simulate a pattern from")
    model = PatternModel(recipe, grid_pattern(recipe, step))
    truth = model.values
    truth.update(dopant_values(recipe, dopant or {}))
    unknown = set(values or {}) - set(truth)
    if unknown:
        raise XRDError(f"{recipe.path}: unknown model parameter(s) {sorted(unknown)}")
    truth.update(values or {})
    model.freeze(truth)
    phases = sum(truth[f"{p.name}:scale"] * model.phase_pattern(k, truth) for k, p in enumerate(model.phases))
    factor = counts / float(np.max(phases))
    for p in model.phases:
        truth[f"{p.name}:scale"] *= factor
    for i in range(recipe.background_terms):
        truth[f"bkg:{i}"] *= counts / BACKGROUND_REFERENCE
    model.freeze(truth)
    expected = model.calculate(truth)
    if np.any(expected < 0):
        raise XRDError(f"{recipe.path}: the background goes negative; check background.coefficients")
    rng = np.random.default_rng(seed)
    y = rng.poisson(expected).astype(float) if noise else expected
    da = xr.DataArray(
        y, dims="two_theta",
        coords={"two_theta": ("two_theta", model.x, {"units": "deg"}),
                "esd": ("two_theta", np.sqrt(y), {"units": "counts"})},
        name="intensity",
        attrs={"source": f"simulation of {recipe.path}", "format": "simulation", "technique": "XRD",
               "units": "counts", "wavelength": recipe.instrument.wavelengths[0],
               "wavelength2": recipe.instrument.wavelengths[1], "ka2_ratio": recipe.instrument.ka2_ratio,
               "step": step, "range_index": 0, "n_ranges": 1, "sample": "simulated", "count_time": 1.0,
               "seed": -1 if seed is None else int(seed), "counts": float(counts)},
    )
    return (da, truth) if return_truth else da


def write_xye(pattern: xr.DataArray, path, truth: dict | None = None) -> Path:
    """Write ``two_theta counts esd`` columns with a comment header, atomically (temp file + rename)."""
    return write_text(path, xye_text(pattern, truth))


def xye_text(pattern: xr.DataArray, truth: dict | None = None) -> str:
    """``.xye`` text: comment header (source, wavelengths, seed, true parameter values) + 3 columns."""
    lines = [f"# doptrace XRD simulation: {pattern.attrs.get('source', '')}",
             f"# wavelength = {pattern.attrs.get('wavelength', float('nan'))}",
             f"# wavelength2 = {pattern.attrs.get('wavelength2', float('nan'))}",
             f"# seed = {pattern.attrs.get('seed', '')}  counts = {pattern.attrs.get('counts', '')}",
             f"# points = {pattern.sizes['two_theta']}"]
    for key, value in sorted((truth or {}).items()):
        lines.append(f"# truth {key} = {value:.8g}")
    body = np.column_stack([pattern["two_theta"].values, pattern.values, pattern["esd"].values])
    return "\n".join(lines) + "\n" + "\n".join(f"{a:.4f} {b:.1f} {c:.4f}" for a, b, c in body) + "\n"
