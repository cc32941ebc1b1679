"""Homogeneity of element distributions: block dispersion index, chi-square test, correlations, profiles.

Always computed on composition (at% with k-factors, else intensity fractions), never on raw
counts, which follow thickness. Quantitative elements are expressed among the quantitative
elements only; a qualitative light element (B K) as its share of itself plus those, so that its
uncertain numbers do not leak into the Mn/Co/Ni verdicts. For block size ``b`` the intensities are summed in b x b blocks
and the composition recomputed per block (a ratio of sums, so no small-count bias); then

    CV_observed = std_i(x_i) / |mean_i x_i|,  CV_Poisson = sqrt(mean_i sigma_i^2) / |mean_i x_i|,
    H(b) = CV_observed / CV_Poisson = std_i(x_i) / sqrt(mean_i sigma_i^2),   se(H) ~ H / sqrt(2 (n - 1))
    chi^2 = sum_i (x_i - xbar_w)^2 / sigma_i^2  with n - 1 degrees of freedom,

``sigma_i`` being each block's propagated Poisson error. A homogeneous map has H ~ 1 at every
scale; a real variation raises H at the scales where it is larger than counting noise.

Verdict per element: ``inhomogeneous at scale s`` when some block size is significant
(p < 0.001 / number of sizes), reported at the scale of largest H; otherwise ``homogeneous`` if
the test could have flagged a relative variation (CV) of ``tolerance`` at some block size, else
``too few counts to tell``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from doptrace.core.quality import get_quality, set_quality

from .errors import EDSError
from .quality import homogeneity_quality
from . import lines as xl

BLOCK_SIZES = (2, 4, 8, 16, 32)
ALPHA = 0.001


def _weights(ds: xr.Dataset) -> np.ndarray:
    """Per-element factor turning intensities into atom-proportional terms (k/A with k-factors)."""
    elements = [str(e) for e in ds["element"].values]
    if "factor" in ds and ds.attrs.get("quantification", "cl") == "cl":
        return np.asarray(ds["factor"].values, float) / np.array([xl.atomic_weight(e) for e in elements])
    return np.ones(len(elements))


def fractions(u: np.ndarray, var: np.ndarray, qualitative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Composition of each element among the quantitative ones (a qualitative element joins only its own).

    x_i = u_i / U_i with U_i = u_i + sum_{j quantitative, j != i} u_j, and first-order Poisson variance
    [var_i (U_i - u_i)^2 + u_i^2 sum_{j in U_i, j != i} var_j] / U_i^4: a light element (B K) whose
    numbers are qualitative then cannot imprint its own noise or bias on the Mn/Co/Ni maps.
    """
    quant = ~np.asarray(qualitative, bool)
    if not quant.any():
        quant = np.ones_like(quant)
    shape = (-1,) + (1,) * (u.ndim - 1)
    q = quant.reshape(shape)
    u_q, var_q = np.where(q, u, 0.0).sum(axis=0), np.where(q, var, 0.0).sum(axis=0)
    denominator = np.where(q, u_q, u_q + u)
    others_var = np.where(q, var_q - var, var_q)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = u / denominator
        var_x = (var * (denominator - u) ** 2 + u**2 * others_var) / denominator**4
    return x, np.sqrt(np.maximum(var_x, 0.0))


def _qualitative(ds: xr.Dataset) -> np.ndarray:
    if "qualitative" in ds.coords:
        return np.asarray(ds["qualitative"].values, bool)
    return np.zeros(ds.sizes["element"], bool)


def composition_maps(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values %, stderr %, valid mask) of the per-pixel composition over (element, y, x)."""
    u, var = _terms(ds)
    x, err = fractions(u, var, _qualitative(ds))
    total = u.sum(axis=0)
    valid = np.isfinite(total) & (total > 0.1 * np.nanmedian(np.where(total > 0, total, np.nan)))
    return 100 * x, 100 * err, valid


def _terms(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    source = ds.attrs.get("source", "map")
    if "intensity" not in ds or "intensity_stderr" not in ds:
        raise EDSError(f"{source}: homogeneity needs line intensities with their stderr (an eds maps/quantify "
                       "result), not a bare composition or counts image")
    if ds["intensity"].dims[1:] != ("y", "x"):
        raise EDSError(f"{source}: homogeneity needs maps over (y, x), got dims {ds['intensity'].dims}")
    intensity = np.asarray(ds["intensity"].values, float)
    if not np.all(np.isfinite(intensity)):
        raise EDSError(f"{source}: the maps hold NaN intensities")
    if np.nansum(np.abs(intensity)) == 0:
        raise EDSError(f"{source}: the maps hold zero counts; nothing to test")
    w = _weights(ds)[:, None, None]
    return w * intensity, w**2 * np.asarray(ds["intensity_stderr"].values, float) ** 2


def block_dispersion(u: np.ndarray, var: np.ndarray, valid: np.ndarray, size: int, qualitative=None) -> dict | None:
    """H, its stderr, CVs and the chi-square p-value of every element for one block size."""
    n_el, ny, nx = u.shape
    by, bx = ny // size, nx // size
    if by * bx < 4:
        return None
    crop = (slice(None), slice(0, by * size), slice(0, bx * size))

    def blocks(a):
        return a[crop].reshape(a.shape[0], by, size, bx, size).sum(axis=(2, 4)).reshape(a.shape[0], -1)

    ok = blocks(valid[None].astype(float))[0] == size * size
    if ok.sum() < 4:
        return None
    qualitative = np.zeros(n_el, bool) if qualitative is None else qualitative
    x, err = fractions(blocks(u)[:, ok], blocks(var)[:, ok], qualitative)
    n = x.shape[1]
    mean = x.mean(axis=1)
    rms_err = np.sqrt(np.mean(err**2, axis=1))
    std = x.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = std / rms_err
        w = 1.0 / err**2
        xbar = (x * w).sum(axis=1) / w.sum(axis=1)
        chi2 = ((x - xbar[:, None]) ** 2 * w).sum(axis=1)
    return {
        # CV relative to |mean|: an absent element (B with no boron) has a mean near or below zero, and a
        # signed CV would turn negative and pass as "could detect 5 %" -> a false "homogeneous".
        "H": h, "H_stderr": h / np.sqrt(2.0 * (n - 1)), "cv_observed": std / np.abs(mean),
        "cv_poisson": rms_err / np.abs(mean),
        "p_value": stats.chi2.sf(chi2, n - 1), "n_blocks": n,
    }


def _weighted_slope(coord: np.ndarray, values: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    good = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    if good.sum() < 3:
        return float("nan"), float("nan")
    w = 1.0 / errors[good] ** 2
    design = np.stack([np.ones(good.sum()), coord[good]], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    beta = cov @ design.T @ (w * values[good])
    resid = values[good] - design @ beta
    redchi = float(np.sum(w * resid**2) / max(1, good.sum() - 2))
    # Scatter beyond Poisson (a real profile shape) widens the slope's error.
    return float(beta[1]), float(np.sqrt(cov[1, 1] * max(1.0, redchi)))


def _profile(u, var, valid, axis_sum, qualitative) -> tuple[np.ndarray, np.ndarray]:
    um = np.where(valid[None], u, 0.0).sum(axis=axis_sum)
    vm = np.where(valid[None], var, 0.0).sum(axis=axis_sum)
    x, err = fractions(um, vm, qualitative)
    return 100 * x, 100 * err


def homogeneity(ds: xr.Dataset, block_sizes=BLOCK_SIZES, tolerance: float = 0.05, n_radial: int = 8) -> xr.Dataset:
    """Homogeneity statistics and verdicts for the element maps in ``ds``.

    Parameters
    ----------
    ds : xarray.Dataset
        ``intensity`` + ``intensity_stderr`` over (``element``, ``y``, ``x``), optionally
        ``factor`` (k-factors) from :func:`stem_eds.quantify.quantify`.
    block_sizes : sequence of int
        Block edges in pixels (sizes leaving fewer than 4 blocks are skipped).
    tolerance : float
        Relative variation (CV) the data must be able to reveal for a ``homogeneous`` verdict.

    Returns
    -------
    xarray.Dataset
        ``H`` (+stderr), ``cv_observed``, ``cv_poisson``, ``p_value`` over (element, block_size);
        ``correlation`` (element, element_b); ``profile_x``/``profile_y``/``profile_radial`` with
        fitted ``slope_*`` (+stderr); ``verdict`` and ``scale`` per element.

    Examples
    --------
    A uniform simulated oxide, and one with Mn-rich inclusions (+30 % Mn):

    >>> from importlib.resources import files
    >>> from doptrace import stem_eds
    >>> from doptrace.stem_eds.simulate import simulate_spectrum_image
    >>> factors = stem_eds.load_factors(files("doptrace.examples") / "eds" / "lrmo_simulated.toml")
    >>> for kind in ("uniform", "inclusion"):
    ...     _ = simulate_spectrum_image(f"{kind}.hspy", shape=(16, 16), kind=kind, element="Mn", amplitude=0.3, seed=1)
    ...     da = stem_eds.read(f"{kind}.hspy")
    ...     q = stem_eds.quantify(stem_eds.line_intensities(da, stem_eds.parse_elements("Mn,Co,Ni,O", 20.0)), factors)
    ...     print(kind, stem_eds.homogeneity(q)["verdict"].sel(element="Mn").item())
    uniform homogeneous
    inclusion inhomogeneous at scale 4 px (8 nm)
    """
    source = ds.attrs.get("source", "map")
    u, var = _terms(ds)
    elements = [str(e) for e in ds["element"].values]
    qual = _qualitative(ds)
    x_map, err_map, valid = composition_maps(ds)
    if valid.sum() < 4:
        raise EDSError(f"{source}: fewer than 4 pixels with counts; nothing to test")
    pixel = float(ds["x"][1] - ds["x"][0]) if ds.sizes["x"] > 1 else 1.0
    pixel_units = ds["x"].attrs.get("units", "px")
    rows = {}
    for size in block_sizes:
        result = block_dispersion(u, var, valid, int(size), qual)
        if result is not None:
            rows[int(size)] = result
    if not rows:
        raise EDSError(f"{source}: the map is too small for block sizes {list(block_sizes)}")
    sizes = list(rows)
    stack = {key: np.stack([rows[s][key] for s in sizes], axis=1) for key in ("H", "H_stderr", "cv_observed", "cv_poisson", "p_value")}
    alpha = ALPHA / len(sizes)
    # Smallest CV the test would flag at each block size: H_crit^2 = chi2_{1-alpha}(n-1) / (n-1),
    # CV_detectable = CV_Poisson sqrt(H_crit^2 - 1); the best block size sets the sensitivity.
    n_blocks = np.array([rows[s]["n_blocks"] for s in sizes], float)
    h_crit2 = stats.chi2.isf(alpha, n_blocks - 1) / (n_blocks - 1)
    detectable = np.nanmin(stack["cv_poisson"] * np.sqrt(h_crit2 - 1.0)[None, :], axis=1)
    verdicts, scales = [], []
    for i, element in enumerate(elements):
        significant = [j for j in range(len(sizes)) if stack["p_value"][i, j] < alpha and stack["H"][i, j] > 1]
        if significant:
            j = max(significant, key=lambda j: stack["H"][i, j])
            scales.append(sizes[j] * pixel)
            verdicts.append(f"inhomogeneous at scale {sizes[j]} px ({sizes[j] * pixel:.3g} {pixel_units})")
        elif detectable[i] > tolerance:
            scales.append(np.nan)
            verdicts.append("too few counts to tell")
        else:
            scales.append(np.nan)
            verdicts.append("homogeneous")
    # Correlations between composition maps over valid pixels.
    flat = x_map[:, valid]
    corr = np.corrcoef(flat) if flat.shape[0] > 1 else np.ones((1, 1))
    # Line profiles (mean along the other axis) and a radial profile about the count-weighted centre.
    px, px_err = _profile(u, var, valid, 1, qual)  # over y -> along x
    py, py_err = _profile(u, var, valid, 2, qual)
    xs = np.asarray(ds["x"].values, float)
    ys = np.asarray(ds["y"].values, float)
    total = np.where(valid, u.sum(axis=0), 0.0)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    cy, cx = (yy * total).sum() / total.sum(), (xx * total).sum() / total.sum()
    r = np.hypot(yy - cy, xx - cx)
    edges = np.linspace(0.0, r[valid].max() * (1 + 1e-9), n_radial + 1)
    which = np.digitize(r, edges) - 1
    ur = np.stack([np.where(valid & (which == k), u, 0.0).sum(axis=(1, 2)) for k in range(n_radial)], axis=1)
    vr = np.stack([np.where(valid & (which == k), var, 0.0).sum(axis=(1, 2)) for k in range(n_radial)], axis=1)
    pr, pr_err = fractions(ur, vr, qual)
    pr, pr_err = 100 * pr, 100 * pr_err
    radius = 0.5 * (edges[1:] + edges[:-1])
    slopes = {
        key: np.array([_weighted_slope(coord, prof[i], perr[i]) for i in range(len(elements))])
        for key, coord, prof, perr in (("x", xs, px, px_err), ("y", ys, py, py_err), ("radial", radius, pr, pr_err))
    }
    units = "%" if "factor" in ds else "1"
    value_units = "%"
    out = xr.Dataset(
        {
            "H": (("element", "block_size"), stack["H"], {"units": "1", "long_name": "CV_observed / CV_Poisson"}),
            "H_stderr": (("element", "block_size"), stack["H_stderr"], {"units": "1"}),
            "cv_observed": (("element", "block_size"), stack["cv_observed"], {"units": "1"}),
            "cv_poisson": (("element", "block_size"), stack["cv_poisson"], {"units": "1"}),
            "p_value": (("element", "block_size"), stack["p_value"], {"units": "1", "long_name": "chi-square dispersion test"}),
            "n_blocks": ("block_size", [rows[s]["n_blocks"] for s in sizes], {"units": "1"}),
            "correlation": (("element", "element_b"), corr, {"units": "1", "long_name": "Pearson r of composition maps"}),
            "composition": (("element", "y", "x"), np.where(valid[None], x_map, np.nan), {"units": value_units}),
            "composition_stderr": (("element", "y", "x"), np.where(valid[None], err_map, np.nan), {"units": value_units}),
            "profile_x": (("element", "x"), px, {"units": value_units}),
            "profile_x_stderr": (("element", "x"), px_err, {"units": value_units}),
            "profile_y": (("element", "y"), py, {"units": value_units}),
            "profile_y_stderr": (("element", "y"), py_err, {"units": value_units}),
            "profile_radial": (("element", "radius"), pr, {"units": value_units}),
            "profile_radial_stderr": (("element", "radius"), pr_err, {"units": value_units}),
            "verdict": ("element", np.array(verdicts, dtype=object)),
            "scale": ("element", np.array(scales, float), {"units": pixel_units}),
            "detectable_cv": ("element", detectable, {"units": "1", "long_name": "smallest CV the test detects"}),
        },
        coords={
            "element": elements,
            "element_b": elements,
            "block_size": ("block_size", sizes, {"units": "px"}),
            "x": ("x", xs, {"units": pixel_units}),
            "y": ("y", ys, {"units": pixel_units}),
            "radius": ("radius", radius, {"units": pixel_units}),
        },
    )
    for key in ("x", "y", "radial"):
        out[f"slope_{key}"] = ("element", slopes[key][:, 0], {"units": f"% {pixel_units}-1"})
        out[f"slope_{key}_stderr"] = ("element", slopes[key][:, 1], {"units": f"% {pixel_units}-1"})
    if "qualitative" in ds.coords:
        out = out.assign_coords(qualitative=("element", np.asarray(ds["qualitative"].values, np.int8), {"units": "1"}))
    out.attrs.update(
        technique="stem_eds", source=source, analysis="homogeneity", tolerance=tolerance, alpha=alpha,
        basis="atomic percent (k-factors)" if "factor" in ds else "intensity fraction (no k-factors)",
        fitted="H slope_x slope_y slope_radial", pixel_size=pixel, composition_units=units,
    )
    # a failed map makes a failed homogeneity; the maps' warnings stay with the maps
    failed, warned = homogeneity_quality(out)
    inherited, reasons = get_quality(ds)
    if inherited == "failed":
        failed = [f"The maps it rests on failed: {r}" for r in reasons] + failed
    return set_quality(out, failed, warned)
