"""Multivariate analysis (PCA, NMF) of ToF-SIMS images and depth profiles, with Poisson scaling.

The data matrix ``D`` has one row per pixel (images: counts summed over the chosen scans) or per
scan (depth profiles: counts summed over the pixels) and one column per mass interval
(fragment). SurfaceLab-style Poisson scaling (Keenan & Kotula, Surf. Interface Anal. 36 (2004)
203) divides every element by the square root of its row mean and its column mean,

    D~ = G^-1/2 D H^-1/2,   G = diag(mean image, i.e. row means),  H = diag(mean spectrum),

which makes counting noise the same size everywhere, so components follow chemistry rather
than the brightest peaks. PCA then optionally centres the columns (mean-centring, the usual
choice for SIMS PCA; :class:`sklearn.decomposition.PCA`) or decomposes the scaled matrix as it is
(:class:`sklearn.decomposition.TruncatedSVD`); NMF (:class:`sklearn.decomposition.NMF`) never
centres (it needs non-negative data). Scores and loadings are those of the scaled matrix, as
SurfaceLab shows them.

>>> from doptrace.tofsims.simulate import phantom, poisson_counts
>>> truth = poisson_counts(phantom((2, 32, 32), rim_px=0, fragments=("MnO-", "InO-", "ClO-", "O-")), seed=1)
>>> result = mva(truth, "pca", n_components=2)
>>> r = np.corrcoef(result["scores"].isel(component=0).values.ravel(), truth["oxide"].values.ravel())[0, 1]
>>> bool(abs(r) > 0.9)
True
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ToFSIMSError
from .processing import select_fragments, source_of
from .quality import finish

METHODS = ("pca", "nmf")
SCALINGS = ("poisson", "none")


def data_matrix(ds: xr.Dataset, over: str = "image", fragments=None, scans=None):
    """The (observations x fragments) count matrix of an image stack or a depth profile.

    Parameters
    ----------
    ds : xarray.Dataset
        ``counts`` over (fragment, scan, y, x) from :func:`doptrace.tofsims.read`, or a depth
        profile (``counts`` over fragment, scan) from :func:`doptrace.tofsims.depth_profile`.
    over : {"image", "depth"}
        Observations are pixels (counts summed over ``scans``) or scans (summed over pixels).
    fragments : list of str, optional
        Mass intervals used (default: all).
    scans : (first, last), optional
        Scan range of an image (inclusive; default all).

    Returns
    -------
    matrix : numpy.ndarray
        float64, shape (n_observations, n_fragments).
    observation_coords : dict
        Coordinates that reshape one score column back to the map or profile.
    sub : xarray.Dataset
        The selected fragments (for their masses).
    """
    if "counts" not in ds or "fragment" not in ds["counts"].dims:
        raise ToFSIMSError(f"{source_of(ds)}: no counts over fragment to decompose")
    sub = select_fragments(ds, fragments) if fragments else ds
    counts = sub["counts"]
    if over == "image":
        if not {"x", "y"} <= set(counts.dims):
            raise ToFSIMSError(f"{source_of(ds)}: an image MVA needs counts over x and y (this is a profile)")
        if scans is not None and "scan" in counts.dims:
            from .maps import scan_selection

            counts = scan_selection(sub, scans)["counts"]
        image = counts.sum("scan") if "scan" in counts.dims else counts
        image = image.transpose("y", "x", "fragment").astype(np.float64).compute()
        matrix = np.asarray(image.values).reshape(-1, image.sizes["fragment"])
        coords = {"y": ds["y"], "x": ds["x"]}
    elif over == "depth":
        if "scan" not in counts.dims:
            raise ToFSIMSError(f"{source_of(ds)}: a depth MVA needs counts over scan")
        spatial = [d for d in counts.dims if d not in ("fragment", "scan")]
        profile = (counts.sum(spatial) if spatial else counts).transpose("scan", "fragment").astype(np.float64)
        matrix = np.asarray(profile.compute().values)
        coords = {name: ds[name] for name in ("scan", "sputter_time", "depth") if name in ds.coords
                  and ds[name].dims == ("scan",)}
    else:
        raise ToFSIMSError(f"MVA over {over!r}: expected 'image' or 'depth'")
    if matrix.shape[1] < 2:
        raise ToFSIMSError(f"{source_of(ds)}: MVA needs at least two mass intervals (have {matrix.shape[1]})")
    if not np.all(np.isfinite(matrix)) or matrix.min() < 0:
        raise ToFSIMSError(f"{source_of(ds)}: counts must be finite and non-negative for MVA")
    return matrix, coords, sub


def poisson_scale(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keenan-Kotula Poisson scaling ``D / sqrt(g h^T)`` with g the row means and h the column means.

    Rows or columns without a single count get weight 1 (they stay zero).

    Returns
    -------
    scaled, row_weight, column_weight : numpy.ndarray
        ``scaled = matrix / (row_weight[:, None] * column_weight[None, :])``, weights ``sqrt(mean)``.

    Examples
    --------
    >>> scaled, g, h = poisson_scale(np.array([[4.0, 0.0], [0.0, 4.0]]))
    >>> np.round(scaled, 12).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    g = np.sqrt(matrix.mean(axis=1))
    h = np.sqrt(matrix.mean(axis=0))
    g = np.where(g > 0, g, 1.0)
    h = np.where(h > 0, h, 1.0)
    return matrix / g[:, None] / h[None, :], g, h


def _decompose(scaled: np.ndarray, method: str, n: int, centre: bool, seed: int):
    """``(scores, loadings, explained_variance_ratio, column_mean)`` of the scaled matrix."""
    from sklearn.decomposition import NMF, PCA, TruncatedSVD

    if method == "pca":
        if centre:
            model = PCA(n_components=n, svd_solver="full")
            scores = model.fit_transform(scaled)
            return scores, model.components_, model.explained_variance_ratio_, model.mean_
        # uncentred: explained fraction of the total sum of squares (TruncatedSVD's variance ratio
        # is of the centred variance, which is not what an uncentred decomposition explains)
        model = TruncatedSVD(n_components=n, algorithm="arpack" if n < min(scaled.shape) else "randomized",
                             random_state=seed)
        scores = model.fit_transform(scaled)
        ratio = model.singular_values_**2 / float(np.sum(scaled**2))
        return scores, model.components_, ratio, np.zeros(scaled.shape[1])
    model = NMF(n_components=n, init="nndsvda", max_iter=2000, random_state=seed)
    scores = model.fit_transform(scaled)
    loadings = model.components_
    # share of the total sum of squares each rank-1 part W_k H_k holds (NMF parts are not orthogonal,
    # so these need not add up to the explained total)
    ratio = np.array([np.sum(np.outer(scores[:, k], loadings[k]) ** 2) for k in range(n)]) / float(np.sum(scaled**2))
    return scores, loadings, ratio, np.zeros(scaled.shape[1])


def _orient(scores: np.ndarray, loadings: np.ndarray) -> None:
    """PCA signs are arbitrary: make each loading's largest-magnitude entry positive (in place)."""
    for k in range(loadings.shape[0]):
        if loadings[k, np.argmax(np.abs(loadings[k]))] < 0:
            loadings[k] *= -1
            scores[:, k] *= -1


def mva(ds: xr.Dataset, method: str = "pca", n_components: int = 4, *, over: str = "image",
        scaling: str = "poisson", centre: bool | None = None, fragments=None, scans=None, seed: int = 0) -> xr.Dataset:
    """PCA or NMF of an image stack or a depth profile.

    Parameters
    ----------
    ds : xarray.Dataset
        Image stack (``counts`` over fragment, scan, y, x) or depth profile (fragment, scan).
    method : {"pca", "nmf"}
    n_components : int
        Components kept (at most the number of mass intervals).
    over : {"image", "depth"}
        Decompose the pixels of the summed image, or the scans of the depth profile.
    scaling : {"poisson", "none"}
        Keenan-Kotula Poisson scaling (:func:`poisson_scale`) or the raw counts.
    centre : bool, optional
        Mean-centre the columns before PCA (default True for PCA; NMF never centres).
    fragments, scans
        As for :func:`data_matrix`.
    seed : int
        Random state of NMF's and the uncentred SVD's initialisation.

    Returns
    -------
    xarray.Dataset
        ``scores`` over (component, y, x) or (component, scan), ``loadings`` over (component,
        fragment) with ``fragment_mass`` (u), ``explained_variance_ratio`` over component, and the
        ``mean_spectrum`` / ``column_weight`` used; attrs name the method, scaling and centring.
    """
    method, scaling = str(method).lower(), str(scaling).lower()
    if method not in METHODS:
        raise ToFSIMSError(f"MVA method {method!r}: expected one of {', '.join(METHODS)}")
    if scaling not in SCALINGS:
        raise ToFSIMSError(f"MVA scaling {scaling!r}: expected one of {', '.join(SCALINGS)}")
    centre = (method == "pca") if centre is None else bool(centre)
    if method == "nmf" and centre:
        raise ToFSIMSError("NMF needs non-negative data: it cannot be mean-centred")
    matrix, coords, sub = data_matrix(ds, over, fragments, scans)
    n_obs, n_frag = matrix.shape
    n = int(n_components)
    if not 1 <= n <= min(n_obs, n_frag):
        raise ToFSIMSError(f"{source_of(ds)}: {n} components requested; between 1 and {min(n_obs, n_frag)} possible "
                           f"({n_frag} mass intervals, {n_obs} {'pixels' if over == 'image' else 'scans'})")
    if scaling == "poisson":
        scaled, g, h = poisson_scale(matrix)
    else:
        scaled, g, h = matrix, np.ones(n_obs), np.ones(n_frag)
    if not np.any(scaled):
        raise ToFSIMSError(f"{source_of(ds)}: no counts to decompose")
    scores, loadings, ratio, mean = _decompose(scaled, method, n, centre, seed)
    scores, loadings = np.array(scores, float), np.array(loadings, float)
    if method == "pca":
        _orient(scores, loadings)
    obs_dims = ("y", "x") if over == "image" else ("scan",)
    shape = tuple(coords[d].size for d in obs_dims)
    out = xr.Dataset(
        {
            "scores": (("component",) + obs_dims, scores.T.reshape((n,) + shape),
                       {"units": "1", "long_name": f"{method.upper()} scores ({scaling}-scaled data)"}),
            "loadings": (("component", "fragment"), loadings,
                         {"units": "1", "long_name": f"{method.upper()} loadings ({scaling}-scaled data)"}),
            "explained_variance_ratio": ("component", np.asarray(ratio, float),
                                         {"units": "1", "long_name": "fraction of the (centred) variance explained"
                                          if centre else "fraction of the total sum of squares"}),
            "mean_spectrum": ("fragment", matrix.mean(axis=0), {"units": "counts",
                                                                "long_name": "mean counts per observation"}),
            "column_weight": ("fragment", h, {"units": "counts^0.5", "long_name": "sqrt(mean spectrum) divisor"}),
            "column_mean": ("fragment", np.asarray(mean, float), {"units": "1", "long_name": "mean removed (scaled)"}),
        },
        coords={"component": ("component", np.arange(1, n + 1), {"units": "1"}),
                "fragment": ("fragment", [str(f) for f in sub["fragment"].values])},
    )
    for name in ("fragment_mass", "mass_low", "mass_high"):
        if name in sub.coords and sub[name].dims == ("fragment",):
            out = out.assign_coords({name: ("fragment", np.asarray(sub[name].values, float), {"units": "u"})})
    for name, coord in coords.items():
        out = out.assign_coords({name: coord.assign_attrs(units=coord.attrs.get("units", "um" if name in "xy" else "1"))})
    keep = ("polarity", "primary_ion", "sample", "field_of_view_um", "dead_time_corrected", "dead_time_note")
    out.attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    out.attrs.update(technique="ToF-SIMS", source=source_of(ds), method=method, scaling=scaling,
                     centred=int(centre), over=over, n_observations=int(n_obs),
                     reference="Poisson scaling: Keenan & Kotula, Surf. Interface Anal. 36 (2004) 203"
                     if scaling == "poisson" else "")
    if method == "nmf":
        rebuilt = scores @ loadings
        out.attrs["reconstruction_error"] = float(np.linalg.norm(scaled - rebuilt) / np.linalg.norm(scaled))
    warn = []
    if over == "image" and np.sum(matrix) / max(n_obs, 1) < 1.0:
        warn.append(f"Fewer than one count per pixel on average ({np.sum(matrix) / n_obs:.2g}): the components are "
                    "mostly counting noise; bin the image first.")
    return finish(out, ds, warnings=warn)
