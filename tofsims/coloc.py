"""Colocalization of two fragments: Pearson, Manders with Costes thresholds, spatial-null significance.

Neighbouring pixels of ion images are correlated (grains span many pixels), so the textbook
p-value of a Pearson coefficient over N pixels is far too small. Significance here comes from a
spatial null: the second image is moved by random toroidal shifts combined with rotations/flips,
which keeps each image's own texture and destroys only their registration; the p-value is
``(k + 1) / (N + 1)`` with ``k`` the null statistics at least as large as the observed one.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ToFSIMSError
from .quality import finish
from .maps import fragment_maps
from .processing import otsu_threshold, source_of


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation ``r = sum(da db) / sqrt(sum(da^2) sum(db^2))`` over all pixels.

    Examples
    --------
    >>> pearson(np.arange(4.0), np.arange(4.0) * 2)
    1.0
    """
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.sum(da * db) / denom) if denom > 0 else float("nan")


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson of two (k, n) arrays."""
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt(np.sum(da * da, axis=1) * np.sum(db * db, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(da * db, axis=1) / denom


def costes_threshold(a: np.ndarray, b: np.ndarray, levels: int = 256) -> dict:
    """Costes automatic thresholds.

    Orthogonal (total least squares) regression ``b = m a + c``; thresholds ``(t, m t + c)``
    are lowered from the top until the Pearson coefficient of the pixels below both thresholds
    is <= 0. Returns ``threshold_a``, ``threshold_b``, ``slope``, ``intercept``, ``converged``.
    Without a positive regression slope (or no threshold reaching r <= 0) there is no Costes
    threshold: each image is then thresholded on its own by Otsu's method (signal vs
    background), ``converged`` False.
    """
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    va, vb = a.var(), b.var()
    cov = np.mean((a - a.mean()) * (b - b.mean()))
    fallback = {"threshold_a": otsu_threshold(a), "threshold_b": otsu_threshold(b), "converged": False}
    if va == 0 or vb == 0 or cov <= 0:
        return dict(fallback, slope=np.nan, intercept=np.nan)
    slope = (vb - va + np.sqrt((vb - va) ** 2 + 4 * cov**2)) / (2 * cov)
    intercept = b.mean() - slope * a.mean()
    candidates = np.unique(np.quantile(a, np.linspace(1, 0, levels)))[::-1]
    # Chunked so the (levels, pixels) masks stay small for large images.
    for start in range(0, candidates.size, 32):
        ta = candidates[start:start + 32]
        tb = slope * ta + intercept
        below = (a[None, :] < ta[:, None]) & (b[None, :] < tb[:, None])
        n = below.sum(axis=1)
        sa, sb = below @ a, below @ b
        saa, sbb, sab = below @ (a * a), below @ (b * b), below @ (a * b)
        with np.errstate(invalid="ignore", divide="ignore"):
            num = sab - sa * sb / n
            den = np.sqrt((saa - sa * sa / n) * (sbb - sb * sb / n))
            r = num / den
        hit = np.nonzero((n > 2) & np.isfinite(r) & (r <= 0))[0]
        if hit.size:
            t = float(ta[hit[0]])
            return {"threshold_a": t, "threshold_b": float(slope * t + intercept), "slope": float(slope),
                    "intercept": float(intercept), "converged": True}
    return dict(fallback, slope=float(slope), intercept=float(intercept))


def manders(a: np.ndarray, b: np.ndarray, threshold_a: float, threshold_b: float) -> tuple[float, float]:
    """Thresholded Manders coefficients.

    ``M1 = sum(a_i : a_i > ta, b_i > tb) / sum(a_i : a_i > ta)``, ``M2`` the same with roles
    swapped: the fraction of each fragment's signal found where the other one is present.
    """
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    above_a, above_b = a > threshold_a, b > threshold_b
    both = above_a & above_b
    sa, sb = a[above_a].sum(), b[above_b].sum()
    m1 = float(a[both].sum() / sa) if sa > 0 else float("nan")
    m2 = float(b[both].sum() / sb) if sb > 0 else float("nan")
    return m1, m2


def spatial_null_images(b: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` copies of ``b`` under random toroidal shifts combined with rotations/flips.

    Square images use all 8 symmetries of the square, others the 4 that keep the shape. The
    untouched identity (no shift, no symmetry) is never drawn.
    """
    b = np.asarray(b, float)
    ny, nx = b.shape
    ops = [lambda m: m, np.flipud, np.fliplr, lambda m: m[::-1, ::-1]]
    if ny == nx:
        ops += [np.transpose, lambda m: np.rot90(m, 1), lambda m: np.rot90(m, 3), lambda m: np.rot90(m.T, 2)]
    out = np.empty((n, ny, nx))
    for i in range(n):
        while True:
            op, dy, dx = rng.integers(len(ops)), rng.integers(ny), rng.integers(nx)
            if op or dy or dx:
                break
        out[i] = np.roll(ops[op](b), (dy, dx), axis=(0, 1))
    return out


def colocalize_images(a: np.ndarray, b: np.ndarray, n_null: int = 199, seed: int = 0) -> dict:
    """Pearson, Costes-thresholded Manders and spatial-null p-values for two (y, x) images.

    Returns a dict with ``pearson_r``, ``manders_m1``, ``manders_m2``, ``threshold_a``,
    ``threshold_b``, ``costes_converged``, ``p_pearson``, ``p_m1``, ``p_m2`` (one-sided, for
    colocalization above chance) and the null distributions ``null_r``, ``null_m1``, ``null_m2``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a = rng.poisson(5, (32, 32)).astype(float)
    >>> colocalize_images(a, a + rng.poisson(1, a.shape), n_null=19)["p_pearson"]
    0.05
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2:
        raise ToFSIMSError(f"images must be two 2D arrays of one shape, got {a.shape} and {b.shape}")
    if a.size < 16:
        raise ToFSIMSError(f"only {a.size} pixels: too few for colocalization")
    if n_null < 19:
        raise ToFSIMSError(f"n_null={n_null}: at least 19 null images are needed for p <= 0.05")
    rng = np.random.default_rng(seed)
    r = pearson(a, b)
    costes = costes_threshold(a, b)
    ta, tb = costes["threshold_a"], costes["threshold_b"]
    m1, m2 = manders(a, b, ta, tb)
    null = spatial_null_images(b, n_null, rng).reshape(n_null, -1)
    flat_a = a.ravel()
    null_r = _pearson_rows(np.broadcast_to(flat_a, null.shape), null)
    above_a = flat_a > ta
    above_null = null > tb
    sa = flat_a[above_a].sum()
    null_m1 = ((above_null & above_a) @ flat_a) / sa if sa > 0 else np.full(n_null, np.nan)
    sb = np.where(above_null, null, 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        null_m2 = np.where(above_null & above_a, null, 0).sum(axis=1) / sb

    def p_of(observed, distribution):
        if not np.isfinite(observed):
            return float("nan")
        return float((np.sum(np.nan_to_num(distribution, nan=-np.inf) >= observed) + 1) / (n_null + 1))

    return {
        "pearson_r": r, "manders_m1": m1, "manders_m2": m2, "threshold_a": ta, "threshold_b": tb,
        "costes_converged": costes["converged"], "costes_slope": costes["slope"],
        "p_pearson": p_of(r, null_r), "p_m1": p_of(m1, null_m1), "p_m2": p_of(m2, null_m2),
        "null_r": null_r, "null_m1": null_m1, "null_m2": null_m2,
    }


def colocalization(ds: xr.Dataset, pair=("BO-", "MnO-"), bin: int = 4, scans=None, n_null: int = 199,
                   seed: int = 0) -> xr.Dataset:
    """Colocalization of two fragments' maps (summed over ``scans``, binned ``bin x bin``).

    Parameters
    ----------
    pair : (str, str) or "A:B"
    bin : lateral binning before the statistics (Pearson on single few-count pixels is mostly
        shot noise).
    n_null : number of spatial-null images (199 gives p down to 0.005).

    Returns
    -------
    Dataset with ``image_a``, ``image_b`` (y, x) binned counts, scalars ``pearson_r``,
    ``manders_m1``, ``manders_m2``, ``threshold_a``, ``threshold_b`` (counts), ``p_value``
    (Pearson vs spatial null), ``p_m1``, ``p_m2``, and ``null_r`` over ``null``.

    References
    ----------
    E. M. M. Manders, F. J. Verbeek and J. A. Aten, J. Microsc. 169 (1993) 375-382 (M1, M2).
    S. V. Costes et al., Biophys. J. 86 (2004) 3993-4003 (automatic thresholds, randomised
    images as the null).

    Examples
    --------
    Below the surface layer, boron doped into the bulk sits with Mn in the oxide grains; boron
    confined to the surface leaves only background there, unrelated to MnO-:

    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> for name, bulk in (("bulk.ita", True), ("surface.ita", False)):
    ...     _ = write_ita(name, shape=(8, 48, 48), bulk_doped=bulk, seed=2)
    ...     c = tofsims.colocalization(tofsims.read(name), "BO-:MnO-", bin=4, scans=(4, 7))
    ...     print(name, round(float(c["pearson_r"]), 2), float(c["p_value"]) < 0.01)
    bulk.ita 0.99 True
    surface.ita -0.07 False
    """
    if isinstance(pair, str):
        pair = tuple(p.strip() for p in pair.split(":"))
    if len(pair) != 2 or not all(pair):
        raise ToFSIMSError(f"{source_of(ds)}: a pair is two fragments 'A:B', got {pair!r}")
    maps = fragment_maps(ds, list(pair), scans=scans, bin=bin)
    image_a = maps["counts"].sel(fragment=pair[0], drop=True)
    image_b = maps["counts"].sel(fragment=pair[1], drop=True)
    for name, image in zip(pair, (image_a, image_b)):
        if float(image.sum()) == 0:
            raise ToFSIMSError(f"{source_of(ds)}: fragment {name} has no counts in the selected scans")
    try:
        res = colocalize_images(image_a.values, image_b.values, n_null=n_null, seed=seed)
    except ToFSIMSError as exc:
        raise ToFSIMSError(f"{source_of(ds)}: {exc}") from None
    scalar = lambda key, units="1": ((), float(res[key]), {"units": units})  # noqa: E731
    out = xr.Dataset(
        {
            "image_a": image_a.assign_attrs(units="counts", fragment=pair[0]),
            "image_b": image_b.assign_attrs(units="counts", fragment=pair[1]),
            "pearson_r": scalar("pearson_r"),
            "manders_m1": scalar("manders_m1"),
            "manders_m2": scalar("manders_m2"),
            "threshold_a": scalar("threshold_a", "counts"),
            "threshold_b": scalar("threshold_b", "counts"),
            "p_value": scalar("p_pearson"),
            "p_m1": scalar("p_m1"),
            "p_m2": scalar("p_m2"),
            "null_r": ("null", res["null_r"], {"units": "1"}),
        },
        coords={"x": maps["x"], "y": maps["y"], "null": ("null", np.arange(n_null), {"units": "1"})},
        attrs={
            "technique": "ToF-SIMS", "source": source_of(ds), "fragment_a": pair[0], "fragment_b": pair[1],
            "binning": int(bin), "n_null": int(n_null), "seed": int(seed),
            "costes_converged": int(res["costes_converged"]),
            "threshold_method": "Costes" if res["costes_converged"] else "Otsu per image (no Costes threshold)",
            "null_model": "random toroidal shifts combined with rotations/flips of image_b",
            "scan_first": maps.attrs["scan_first"], "scan_last": maps.attrs["scan_last"],
        },
    )
    return finish(out, ds)
