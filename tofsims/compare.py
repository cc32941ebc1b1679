"""Sample comparison: normalised integrated intensities with Poisson and bootstrap intervals, and ratios.

Poisson intervals describe counting noise only. Two areas of one sample differ by more than that
(grains, cracks, coating patches), so a tile bootstrap (the field of view cut into tiles that are
resampled with replacement) gives the interval that also holds the lateral heterogeneity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats

from .errors import ToFSIMSError
from .quality import finish
from .maps import scan_selection
from .processing import apply_roi, bin_lateral, reference_counts, select_fragments, source_of


def integrated_intensities(ds: xr.Dataset, fragments=None, normalize: str | None = "total", scans=None,
                           roi: xr.DataArray | None = None, tile: int = 8) -> xr.Dataset:
    """Integrated counts of each fragment over the selected scans, normalised, with tile sums.

    ``intensity = N / D`` with ``D`` the summed reference (``"total"``, ``"fragments"``, a
    fragment, or ``None``: the number of voxels, i.e. mean counts per voxel). ``tile_counts``
    (fragment, tile) and ``tile_reference`` (tile) keep the sums per ``tile x tile`` pixel block
    for the bootstrap of :func:`compare_samples`.

    Examples
    --------
    >>> integ = integrated_intensities(ds, "InO-,ClO-", normalize="total")  # doctest: +SKIP
    """
    sub = scan_selection(ds, scans)
    if roi is not None:
        sub = apply_roi(sub, roi)
    tile = max(1, min(int(tile), sub.sizes["x"], sub.sizes["y"]))
    tiled = bin_lateral(sub, tile) if tile > 1 else sub
    counts = select_fragments(tiled, fragments)["counts"].sum("scan").compute()
    counts = counts.stack(tile=("y", "x")).reset_index("tile", drop=True)
    counts = counts.drop_vars([c for c in ("x", "y") if c in counts.coords])
    if normalize is None:
        ny, nx = tiled.sizes["y"], tiled.sizes["x"]
        inside = np.ones((sub.sizes["y"], sub.sizes["x"])) if roi is None else np.asarray(roi.values, float)
        pixels = inside[: ny * tile, : nx * tile].reshape(ny, tile, nx, tile).sum(axis=(1, 3))
        reference = np.ravel(pixels) * sub.sizes["scan"]
        nested = False
        exact_reference = True
    else:
        ref, nested = reference_counts(tiled, normalize)
        reference = np.asarray(ref.sum("scan").compute()).ravel().astype(float)
        exact_reference = False
    n = counts.sum("tile").astype("float64")
    d = float(np.sum(reference))
    if d <= 0:
        raise ToFSIMSError(f"{source_of(ds)}: the normalisation reference has no counts")
    intensity = n / d
    if exact_reference:
        stderr = np.sqrt(np.maximum(n, 1.0)) / d
    elif nested:
        stderr = np.sqrt(intensity * (1 - intensity) / d)
    else:
        stderr = np.sqrt(np.maximum(n, 1.0) / d**2 + n**2 / d**3)
    out = xr.Dataset(
        {
            "counts": counts.sum("tile").assign_attrs(units="counts"),
            "reference": ((), d, {"units": "counts" if not exact_reference else "1", "normalization": normalize or "voxels"}),
            "intensity": intensity.assign_attrs(units="1"),
            "intensity_stderr": stderr.assign_attrs(units="1"),
            "tile_counts": counts.assign_attrs(units="counts"),
            "tile_reference": ("tile", reference, {"units": "counts" if not exact_reference else "1"}),
        },
        coords={"tile": ("tile", np.arange(counts.sizes["tile"]), {"units": "1"})},
        attrs={"technique": "ToF-SIMS", "source": source_of(ds), "normalization": normalize or "voxels",
               "nested_reference": int(nested), "exact_reference": int(exact_reference), "tile_px": tile,
               "sample": str(ds.attrs.get("sample") or Path(source_of(ds)).stem)},
    )
    for name in ("fragment_mass", "mass_low", "mass_high"):
        if name in out.coords:
            out[name].attrs.setdefault("units", "u")
    return finish(out, ds)


def _bootstrap(integ: xr.Dataset, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(fragment, n_boot) bootstrap replicates of the normalised intensity (tiles resampled)."""
    tiles = np.asarray(integ["tile_counts"].values, float)
    ref = np.asarray(integ["tile_reference"].values, float)
    n_tiles = ref.size
    idx = rng.integers(0, n_tiles, size=(n_boot, n_tiles))
    # Tile counts as a multiplicity vector: replicate sums are then one matrix product.
    weights = np.zeros((n_boot, n_tiles))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n_tiles), idx.ravel()), 1.0)
    num = tiles @ weights.T
    den = ref @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den[None, :]


def compare_samples(a: xr.Dataset, b: xr.Dataset, n_boot: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> xr.Dataset:
    """Normalised intensities of two samples with confidence intervals, and their ratio ``B / A``.

    Poisson interval: ``I +- z s`` (normal approximation, counts are large). Bootstrap: percentile
    interval of ``n_boot`` tile-resampled replicates. Ratio ``R = I_B / I_A`` with
    ``s_R = R sqrt((s_A/I_A)^2 + (s_B/I_B)^2)``, its Poisson interval on the log scale, its
    bootstrap interval from the replicate ratios, and ``p_equal``: two-sided p of ``R = 1`` from the
    bootstrap spread of ``ln R`` (the larger of the Poisson and bootstrap errors).

    Parameters
    ----------
    a, b : Datasets from :func:`integrated_intensities` with the same fragments and normalisation.

    Examples
    --------
    >>> cmp = compare_samples(integrated_intensities(ds_a, "InO-"), integrated_intensities(ds_b, "InO-"))  # doctest: +SKIP
    >>> float(cmp["ratio"].sel(fragment="InO-"))  # doctest: +SKIP
    """
    frags_a = [str(f) for f in a["fragment"].values]
    frags_b = [str(f) for f in b["fragment"].values]
    if frags_a != frags_b:
        raise ToFSIMSError(f"{b.attrs.get('source')}: fragments {frags_b} differ from {a.attrs.get('source')}: {frags_a}")
    if a.attrs.get("normalization") != b.attrs.get("normalization"):
        raise ToFSIMSError(f"{b.attrs.get('source')}: normalisation differs between the two samples")
    if not 0 < confidence < 1 or n_boot < 100:
        raise ToFSIMSError(f"confidence must lie in (0, 1) and n_boot >= 100, got {confidence}, {n_boot}")
    rng = np.random.default_rng(seed)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
    names = [a.attrs.get("sample", "A"), b.attrs.get("sample", "B")]
    if names[0] == names[1]:
        names = [f"{names[0]} (A)", f"{names[1]} (B)"]
    values = np.stack([a["intensity"].values, b["intensity"].values])
    errors = np.stack([a["intensity_stderr"].values, b["intensity_stderr"].values])
    boots = [_bootstrap(a, n_boot, rng), _bootstrap(b, n_boot, rng)]
    boot_ci = np.stack([np.nanpercentile(bt, q, axis=1) for bt in boots])  # (sample, 2, fragment)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = values[1] / values[0]
        rel = np.sqrt((errors[0] / values[0]) ** 2 + (errors[1] / values[1]) ** 2)
        ratio_boot = boots[1] / boots[0]
        log_boot_sd = np.nanstd(np.log(ratio_boot), axis=1, ddof=1)
        log_sd = np.fmax(rel, log_boot_sd)
        p_equal = 2 * stats.norm.sf(np.abs(np.log(ratio)) / log_sd)
    ratio_boot_ci = np.nanpercentile(ratio_boot, q, axis=1)
    units = {"units": "1"}
    out = xr.Dataset(
        {
            "intensity": (("sample", "fragment"), values, units),
            "intensity_stderr": (("sample", "fragment"), errors, units),
            "poisson_low": (("sample", "fragment"), values - z * errors, units),
            "poisson_high": (("sample", "fragment"), values + z * errors, units),
            "boot_low": (("sample", "fragment"), boot_ci[:, 0, :], units),
            "boot_high": (("sample", "fragment"), boot_ci[:, 1, :], units),
            "counts": (("sample", "fragment"), np.stack([a["counts"].values, b["counts"].values]), {"units": "counts"}),
            "ratio": ("fragment", ratio, units),
            "ratio_stderr": ("fragment", ratio * rel, units),
            "ratio_poisson_low": ("fragment", ratio * np.exp(-z * rel), units),
            "ratio_poisson_high": ("fragment", ratio * np.exp(z * rel), units),
            "ratio_boot_low": ("fragment", ratio_boot_ci[0], units),
            "ratio_boot_high": ("fragment", ratio_boot_ci[1], units),
            "p_equal": ("fragment", p_equal, units),
        },
        coords={"sample": names, "fragment": frags_a},
        attrs={"technique": "ToF-SIMS", "source": f"{a.attrs.get('source')} ; {b.attrs.get('source')}",
               "normalization": a.attrs.get("normalization"), "confidence": confidence, "n_boot": n_boot,
               "seed": seed, "ratio": f"{names[1]} / {names[0]}", "tile_px": int(a.attrs.get("tile_px", 0))},
    )
    return finish(out, a, b)


def compare(ds_a: xr.Dataset, ds_b: xr.Dataset, fragments, normalize: str | None = "total", scans=None,
            tile: int = 8, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> xr.Dataset:
    """Integrate both samples (:func:`integrated_intensities`) and compare them (:func:`compare_samples`).

    Examples
    --------
    Two simulated samples with the same grains: boron in the bulk (A) and boron in a surface layer
    only (B). Over these 6 scans B holds 2.5 times A's BO-, while MnO- does not differ:

    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> _ = write_ita("a.ita", shape=(6, 32, 32), bulk_doped=True, seed=1)
    >>> _ = write_ita("b.ita", shape=(6, 32, 32), bulk_doped=False, seed=1)
    >>> result = compare(tofsims.read("a.ita"), tofsims.read("b.ita"), "BO-,MnO-")
    >>> result["ratio"].values.round(2).tolist(), (result["p_equal"].values < 0.01).tolist()
    ([2.55, 0.95], [True, False])
    """
    return compare_samples(
        integrated_intensities(ds_a, fragments, normalize, scans, tile=tile),
        integrated_intensities(ds_b, fragments, normalize, scans, tile=tile),
        n_boot=n_boot, confidence=confidence, seed=seed,
    )
