"""Processing of ToF-SIMS image stacks: dead time, normalisation, binning, ROIs, drift, depth scale.

Every function takes the reader's Dataset (``counts`` over ``fragment, scan, y, x``; optional
``total`` over ``scan, y, x``) and returns a new Dataset with the same layout; nothing is
modified in place. Operations stay lazy when ``counts`` is a dask array (the readers chunk large
cubes by scan); only the small checks that must see data (saturation, drift estimation) compute.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ToFSIMSError

COUNT_VARS = ("counts", "total")


def source_of(ds: xr.Dataset) -> str:
    """The file name a Dataset came from, for error messages."""
    return str(ds.attrs.get("source", "<dataset>"))


def check_stack(ds: xr.Dataset) -> None:
    """Raise :class:`ToFSIMSError` unless ``ds`` holds a ``counts`` stack in the reader layout."""
    if "counts" not in ds:
        raise ToFSIMSError(f"{source_of(ds)}: no image stack ('counts') in this file")
    if tuple(ds["counts"].dims) != ("fragment", "scan", "y", "x"):
        raise ToFSIMSError(
            f"{source_of(ds)}: counts has dims {tuple(ds['counts'].dims)}, expected (fragment, scan, y, x)"
        )
    if ds.sizes["fragment"] == 0 or ds.sizes["scan"] == 0 or ds.sizes["x"] == 0 or ds.sizes["y"] == 0:
        raise ToFSIMSError(f"{source_of(ds)}: the image stack is empty ({dict(ds.sizes)})")


def select_fragments(ds: xr.Dataset, fragments=None) -> xr.Dataset:
    """Subset of ``ds`` holding only ``fragments`` (names such as ``"BO-"``), in that order.

    Examples
    --------
    >>> sub = select_fragments(ds, ["BO-", "MnO-"])  # doctest: +SKIP
    """
    check_stack(ds)
    if fragments is None:
        return ds
    if isinstance(fragments, str):
        fragments = [f.strip() for f in fragments.split(",") if f.strip()]
    names = [str(n) for n in ds["fragment"].values]
    missing = [f for f in fragments if f not in names]
    if missing:
        raise ToFSIMSError(
            f"{source_of(ds)}: fragment(s) {', '.join(missing)} not in the peak list (has: {', '.join(names)})"
        )
    if not fragments:
        raise ToFSIMSError(f"{source_of(ds)}: no fragment selected")
    return ds.sel(fragment=list(fragments))


# ----------------------------------------------------------------------------- dead time
def dead_time_correct(ds: xr.Dataset, shots_per_pixel: int | None = None, force: bool = False) -> xr.Dataset:
    """Poisson dead-time correction of every voxel, unless the file says it was already applied.

    With one primary pulse per shot and at most one detected ion per shot and mass window, the
    detected count ``N`` out of ``n`` shots relates to the true count by

        N_true = -n * ln(1 - N / n)

    Parameters
    ----------
    ds : Dataset
        Reader output; ``attrs["dead_time_corrected"]`` (0/1) says whether the file applied it.
    shots_per_pixel : int, optional
        ``n``; defaults to ``attrs["shots_per_pixel"]``.
    force : bool
        Correct even when the file says it was already applied (never needed for real files).

    Returns
    -------
    Dataset
        ``counts`` (and ``total``) as float64 true counts; ``attrs["dead_time_corrected"] = 1``.

    Examples
    --------
    >>> corrected = dead_time_correct(ds)  # doctest: +SKIP
    """
    check_stack(ds)
    if int(ds.attrs.get("dead_time_corrected", 0)) == 1 and not force:
        return ds
    n = shots_per_pixel if shots_per_pixel is not None else ds.attrs.get("shots_per_pixel")
    if n is None or not np.isfinite(float(n)) or float(n) < 1:
        raise ToFSIMSError(f"{source_of(ds)}: dead-time correction needs the shots per pixel (got {n!r})")
    n = float(n)
    out = ds.copy()
    for name in COUNT_VARS:
        if name not in ds:
            continue
        peak = float(ds[name].max().compute()) if ds[name].size else 0.0
        if peak >= n:
            raise ToFSIMSError(
                f"{source_of(ds)}: {name} reaches {peak:.0f} counts in a voxel with only {n:.0f} shots: "
                "detector saturated, dead-time correction impossible"
            )
        corrected = -n * np.log1p(-ds[name].astype("float64") / n)
        corrected.attrs = dict(ds[name].attrs, units="counts")
        out[name] = corrected
    out.attrs["dead_time_corrected"] = 1
    out.attrs["dead_time_shots_per_pixel"] = n
    return out


def count_variance(ds: xr.Dataset, name: str = "counts") -> xr.DataArray:
    """Variance of each voxel's count in ``ds[name]``.

    Raw counts are Poisson, ``var = N``. After :func:`dead_time_correct` (``n`` shots, detected
    ``D ~ Binomial(n, 1 - exp(-lambda/n))``, corrected ``N = -n ln(1 - D/n)``) the delta method
    gives ``var N = D / (1 - D/n) = n (exp(N/n) - 1)``, larger than ``N``. Valid on unbinned voxels only.

    Examples
    --------
    >>> stderr = np.sqrt(count_variance(dead_time_correct(ds)).sum("scan"))  # doctest: +SKIP
    """
    n = ds.attrs.get("dead_time_shots_per_pixel")
    if n is None or int(ds.attrs.get("dead_time_corrected", 0)) != 1:
        # the counts themselves: integer sums stay exact and cost no float copy of the cube
        return ds[name]
    return float(n) * np.expm1(ds[name].astype("float64") / float(n))


def dead_time_auto(ds: xr.Dataset) -> xr.Dataset:
    """:func:`dead_time_correct` when the file says it was not applied and the correction is defined.

    Defined means the file gives the shots per pixel ``n`` and every voxel holds fewer than ``n``
    counts (``N_true = -n ln(1 - N/n)`` diverges at ``N = n``). Otherwise the counts are returned
    unchanged and ``attrs["dead_time_note"]`` says why, so a result never hides the choice.

    Examples
    --------
    >>> ds = dead_time_auto(tofsims.read("sample.ita"))  # doctest: +SKIP
    """
    check_stack(ds)
    if int(ds.attrs.get("dead_time_corrected", 0)) == 1:
        return ds
    n = ds.attrs.get("shots_per_pixel")
    reason = None
    if n is None or not np.isfinite(float(n)) or float(n) < 1:
        reason = "not applied: the file gives no shots per pixel"
    else:
        peak = max(float(ds[v].max().compute()) for v in COUNT_VARS if v in ds and ds[v].size)
        if peak >= float(n):
            reason = (f"not applied: a voxel holds {peak:.0f} counts with {float(n):.0f} shots per pixel "
                      "(per-voxel correction undefined)")
    if reason is None:
        return dead_time_correct(ds)
    out = ds.copy()
    out.attrs["dead_time_note"] = reason
    return out


# ----------------------------------------------------------------------------- normalisation
def reference_counts(ds: xr.Dataset, to: str) -> tuple[xr.DataArray, bool]:
    """Denominator voxels for normalisation and whether the numerator counts are part of it.

    ``to`` is ``"total"`` (the file's total-ion image), ``"fragments"`` (sum of every fragment in
    the peak list) or a fragment name (a reference fragment, e.g. ``"MnO-"``). The flag says the
    numerator is a subset of the denominator (binomial rather than independent Poisson errors).
    """
    check_stack(ds)
    if to == "total":
        if "total" not in ds:
            raise ToFSIMSError(f"{source_of(ds)}: no total-ion image in this file; normalise to 'fragments' or a fragment")
        return ds["total"], True
    if to == "fragments":
        return ds["counts"].sum("fragment"), True
    names = [str(n) for n in ds["fragment"].values]
    if to not in names:
        raise ToFSIMSError(
            f"{source_of(ds)}: normalisation reference '{to}' is neither 'total', 'fragments' nor a fragment "
            f"({', '.join(names)})"
        )
    return ds["counts"].sel(fragment=to, drop=True), False


def ratio_with_stderr(num, den, nested: bool):
    """Ratio ``r = N / D`` of Poisson counts and its standard error.

    Nested (``N`` counted inside ``D``, e.g. a fragment over total ions): binomial,
    ``s = sqrt(r (1 - r) / D)``. Independent: ``s = r sqrt(1/N + 1/D)``. Where ``D == 0`` the
    ratio is NaN. Works on numpy arrays and DataArrays alike.
    """
    num = num.astype("float64") if hasattr(num, "astype") else np.float64(num)
    den = den.astype("float64") if hasattr(den, "astype") else np.float64(den)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_den = xr.where(den > 0, den, np.nan) if isinstance(den, xr.DataArray) else np.where(den > 0, den, np.nan)
        ratio = num / safe_den
        if nested:
            stderr = np.sqrt(np.clip(ratio * (1 - ratio), 0, None) / safe_den)
        else:
            # r sqrt(1/N + 1/D) = sqrt(N/D^2 + N^2/D^3); an empty numerator keeps the scale of one count.
            stderr = np.sqrt(np.maximum(num, 1.0) / safe_den**2 + num**2 / safe_den**3)
    return ratio, stderr


def normalize(ds: xr.Dataset, to: str = "total") -> xr.Dataset:
    """Voxel-wise normalised intensities ``counts / reference`` (NaN where the reference is 0).

    Prefer normalising *after* summing (``fragment_maps(..., normalize=)``,
    ``depth_profile(..., normalize=)``): single voxels hold a few counts and their ratios are noisy.

    Examples
    --------
    >>> normalize(ds, "total")["intensity"]  # doctest: +SKIP
    """
    ref, nested = reference_counts(ds, to)
    ratio, stderr = ratio_with_stderr(ds["counts"], ref, nested)
    out = ds.copy()
    out["intensity"] = ratio.assign_attrs(units="1", normalization=to)
    out["intensity_stderr"] = stderr.assign_attrs(units="1")
    out.attrs["normalization"] = to
    return out


# ----------------------------------------------------------------------------- binning
def _coarsen(ds: xr.Dataset, factors: dict) -> xr.Dataset:
    for dim, factor in factors.items():
        if int(factor) != factor or factor < 1:
            raise ToFSIMSError(f"{source_of(ds)}: bin factor for {dim} must be a positive integer, got {factor}")
        if factor > ds.sizes[dim]:
            raise ToFSIMSError(f"{source_of(ds)}: bin factor {factor} exceeds the {ds.sizes[dim]} {dim} points")
    factors = {d: int(f) for d, f in factors.items() if f > 1}
    if not factors:
        return ds
    count_vars = [v for v in COUNT_VARS if v in ds]
    out = ds[count_vars].coarsen(factors, boundary="trim", coord_func="mean").sum(keep_attrs=True)
    for name in ds.data_vars:
        if name not in count_vars and not set(factors) & set(ds[name].dims):
            out[name] = ds[name]
    for name, coord in ds.coords.items():
        if name not in out.coords and not set(factors) & set(coord.dims):
            out = out.assign_coords({name: coord})
    for name in out.variables:
        if name in ds.variables:
            out[name].attrs = dict(ds[name].attrs)
    out.attrs = dict(ds.attrs)
    binning = dict(ds.attrs.get("binning_applied", {}) or {})
    for dim, factor in factors.items():
        binning[dim] = binning.get(dim, 1) * factor
    out.attrs["binning_applied"] = binning
    return out


def bin_lateral(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Sum ``factor x factor`` pixel blocks (edges that do not fill a block are dropped).

    Examples
    --------
    >>> bin_lateral(ds, 4).sizes["x"]  # doctest: +SKIP
    64
    """
    return _coarsen(ds, {"x": factor, "y": factor})


def bin_depth(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Sum ``factor`` consecutive scans; ``sputter_time`` and ``depth`` become block means."""
    return _coarsen(ds, {"scan": factor})


# ----------------------------------------------------------------------------- ROIs
def roi_mask(
    ds: xr.Dataset,
    *,
    rect: tuple[float, float, float, float] | None = None,
    circle: tuple[float, float, float] | None = None,
    image: xr.DataArray | None = None,
    threshold: float | str | None = None,
) -> xr.DataArray:
    """Boolean region of interest over ``(y, x)``.

    Parameters
    ----------
    rect : (x0, x1, y0, y1) in um, pixel centres inside the closed rectangle.
    circle : (xc, yc, r) in um.
    image, threshold : pixels of ``image`` (a (y, x) map) above ``threshold``; ``"otsu"`` picks
        the threshold separating the image histogram into two classes of maximal between-class variance.
    Several criteria combine with logical AND.

    Examples
    --------
    >>> mask = roi_mask(ds, circle=(50.0, 50.0, 20.0))  # doctest: +SKIP
    """
    check_stack(ds)
    mask = xr.DataArray(np.ones((ds.sizes["y"], ds.sizes["x"]), bool), dims=("y", "x"),
                        coords={"y": ds["y"], "x": ds["x"]})
    x, y = ds["x"], ds["y"]
    if rect is not None:
        x0, x1, y0, y1 = rect
        mask = mask & (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
    if circle is not None:
        xc, yc, r = circle
        mask = mask & ((x - xc) ** 2 + (y - yc) ** 2 <= r**2)
    if image is not None:
        values = np.asarray(image, dtype="float64")
        level = otsu_threshold(values) if threshold in (None, "otsu") else float(threshold)
        mask = mask & xr.DataArray(values > level, dims=("y", "x"), coords=mask.coords)
    mask = mask.transpose("y", "x")
    if not bool(mask.any()):
        raise ToFSIMSError(f"{source_of(ds)}: the region of interest contains no pixel")
    return mask.rename("roi")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the level maximising the between-class variance of the histogram.

    sigma_b^2(t) = w0(t) w1(t) (mu0(t) - mu1(t))^2 (written here: scikit-image is not a dependency).
    """
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float(values.min()) if values.size else 0.0
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (m0[-1] - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    return float(centres[int(np.argmax(between))])


def apply_roi(ds: xr.Dataset, mask: xr.DataArray) -> xr.Dataset:
    """Counts outside ``mask`` set to zero (dtype kept, stays lazy)."""
    check_stack(ds)
    out = ds.copy()
    keep = mask.astype(ds["counts"].dtype)
    for name in COUNT_VARS:
        if name in ds:
            out[name] = (ds[name] * keep.astype(ds[name].dtype)).transpose(*ds[name].dims).assign_attrs(ds[name].attrs)
    out.attrs["roi_pixels"] = int(mask.sum())
    return out


# ----------------------------------------------------------------------------- drift
def phase_correlation(reference: np.ndarray, moving: np.ndarray, smooth_px: float = 1.0) -> tuple[float, float]:
    """Shift ``(dy, dx)`` in pixels such that ``moving`` ~ ``reference`` translated by it.

    Normalised cross-power spectrum ``R = F_ref* F_mov / |F_ref* F_mov|`` whose inverse transform
    peaks at the translation; a Gaussian taper of width ``smooth_px`` tames shot noise and a
    parabola through the peak and its neighbours gives the sub-pixel part. Written with numpy FFT
    (scikit-image's ``phase_cross_correlation`` is not a dependency).
    """
    a = np.asarray(reference, float)
    b = np.asarray(moving, float)
    a = a - a.mean()
    b = b - b.mean()
    cross = np.conj(np.fft.fft2(a)) * np.fft.fft2(b)
    cross /= np.maximum(np.abs(cross), 1e-12)
    if smooth_px > 0:
        fy = np.fft.fftfreq(a.shape[0])[:, None]
        fx = np.fft.fftfreq(a.shape[1])[None, :]
        cross *= np.exp(-2 * (np.pi * smooth_px) ** 2 * (fy**2 + fx**2))
    corr = np.fft.ifft2(cross).real
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)

    def vertex(c_m, c_0, c_p):
        denom = c_m - 2 * c_0 + c_p
        return 0.0 if denom == 0 else 0.5 * (c_m - c_p) / denom

    ny, nx = corr.shape
    dy = iy + vertex(corr[(iy - 1) % ny, ix], corr[iy, ix], corr[(iy + 1) % ny, ix])
    dx = ix + vertex(corr[iy, (ix - 1) % nx], corr[iy, ix], corr[iy, (ix + 1) % nx])
    dy = dy - ny if dy > ny / 2 else dy
    dx = dx - nx if dx > nx / 2 else dx
    return float(dy), float(dx)


def estimate_drift(ds: xr.Dataset, fragment: str | None = None, reference_scans: int = 1, smooth_px: float = 1.0,
                   progress: bool = False) -> xr.Dataset:
    """Lateral drift of every scan against the first ``reference_scans`` scans (phase correlation).

    The image used is ``fragment`` when given, else the total-ion image, else the sum of all
    fragments. Returns ``shift_y``/``shift_x`` (px, sub-pixel) and ``shift_y_um``/``shift_x_um``
    over ``scan``: scan ``k`` shows the sample moved by that amount relative to the reference.
    """
    from tqdm import tqdm

    check_stack(ds)
    if fragment is not None:
        stack = select_fragments(ds, [fragment])["counts"].isel(fragment=0)
    elif "total" in ds:
        stack = ds["total"]
    else:
        stack = ds["counts"].sum("fragment")
    reference = np.asarray(stack.isel(scan=slice(0, max(1, reference_scans))).sum("scan"), float)
    if reference.sum() == 0:
        raise ToFSIMSError(f"{source_of(ds)}: the reference image for drift correction is empty")
    shifts = np.zeros((ds.sizes["scan"], 2))
    for k in tqdm(range(ds.sizes["scan"]), desc="drift", unit="scan", disable=not progress):
        image = np.asarray(stack.isel(scan=k), float)
        if image.sum() > 0:
            shifts[k] = phase_correlation(reference, image, smooth_px)
    pitch_x = _pitch(ds, "x")
    pitch_y = _pitch(ds, "y")
    scan = ds["scan"]
    from doptrace.core.quality import set_quality

    return set_quality(xr.Dataset(
        {
            "shift_y": ("scan", shifts[:, 0], {"units": "px"}),
            "shift_x": ("scan", shifts[:, 1], {"units": "px"}),
            "shift_y_um": ("scan", shifts[:, 0] * pitch_y, {"units": "um"}),
            "shift_x_um": ("scan", shifts[:, 1] * pitch_x, {"units": "um"}),
        },
        coords={"scan": scan},
        attrs={"technique": "ToF-SIMS", "source": source_of(ds), "method": "phase correlation (numpy FFT)"},
    ), warnings=[] if np.all(np.isfinite(shifts)) else ["A scan's drift could not be estimated (not finite)."])


def _pitch(ds: xr.Dataset, dim: str) -> float:
    values = np.asarray(ds[dim].values, float)
    return float(np.mean(np.diff(values))) if values.size > 1 else 1.0


def _shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by whole pixels, filling uncovered pixels with zero (counts are not invented)."""
    out = np.zeros_like(image)
    ny, nx = image.shape[-2:]
    ys, yd = (slice(0, ny - dy), slice(dy, ny)) if dy >= 0 else (slice(-dy, ny), slice(0, ny + dy))
    xs, xd = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
    if abs(dy) < ny and abs(dx) < nx:
        out[..., yd, xd] = image[..., ys, xs]
    return out


def correct_drift(ds: xr.Dataset, drift: xr.Dataset) -> xr.Dataset:
    """Move every scan back by its estimated drift (rounded to whole pixels).

    Whole-pixel shifts keep counts integer and Poisson; the sub-pixel estimate stays in ``drift``.
    Pixels uncovered by the shift are set to zero. Lazy inputs stay lazy (one task per scan chunk).
    """
    check_stack(ds)
    sy = np.rint(np.asarray(drift["shift_y"].reindex(scan=ds["scan"]).values)).astype(int)
    sx = np.rint(np.asarray(drift["shift_x"].reindex(scan=ds["scan"]).values)).astype(int)

    def shift_block(block, block_info=None):
        scans = range(*block_info[0]["array-location"][-3]) if block_info else range(block.shape[-3])
        out = np.empty_like(block)
        for i, k in enumerate(scans):
            out[..., i, :, :] = _shift_image(block[..., i, :, :], -sy[k], -sx[k])
        return out

    out = ds.copy()
    for name in COUNT_VARS:
        if name not in ds:
            continue
        data = ds[name].data
        if hasattr(data, "map_blocks"):
            import dask.array as da

            # Shifts mix pixels, so every chunk must hold whole images.
            data = data.rechunk({data.ndim - 1: -1, data.ndim - 2: -1})
            moved = da.map_blocks(shift_block, data, dtype=data.dtype)
        else:
            moved = shift_block(np.asarray(data))
        out[name] = (ds[name].dims, moved, ds[name].attrs)
    out.attrs["drift_corrected"] = 1
    return out


# ----------------------------------------------------------------------------- depth scale
def sputter_to_depth(
    ds: xr.Dataset,
    crater_depth_nm: float | None = None,
    rates: list[tuple[float, float]] | None = None,
    crater_depth_stderr_nm: float = 0.0,
) -> xr.Dataset:
    """Give ``depth`` (nm) to every scan from its ``sputter_time``.

    Either one constant rate, ``rate = crater_depth / total sputter time`` (``attrs
    ["sputter_time_total"]``, else the last scan's sputter time), so ``depth = rate * t``; or
    per-layer rates ``[(t_end_1, r_1), (t_end_2, r_2), ...]`` (s, nm/s, layers in order, the last
    layer extending to the end) with ``depth(t) = integral_0^t r(t') dt'``.
    ``depth.attrs["method"]`` names the choice and ``depth.attrs["rate_nm_per_s"]`` the rate(s).

    Examples
    --------
    >>> from doptrace.tofsims.simulate import phantom, poisson_counts
    >>> ds = poisson_counts(phantom((10, 4, 4), sputter_time_total=1000.0))
    >>> out = sputter_to_depth(ds, crater_depth_nm=500.0)
    >>> out["depth"].values[:3].tolist(), out["depth"].attrs["method"]
    ([0.0, 50.0, 100.0], 'crater depth 500 nm / total sputter time 1000 s')
    """
    if "sputter_time" not in ds.coords:
        raise ToFSIMSError(f"{source_of(ds)}: no sputter_time coordinate; cannot convert to depth")
    t = np.asarray(ds["sputter_time"].values, float)
    if not np.all(np.isfinite(t)):
        raise ToFSIMSError(f"{source_of(ds)}: sputter times are not all finite")
    if (crater_depth_nm is None) == (rates is None):
        raise ToFSIMSError(f"{source_of(ds)}: give either a crater depth or per-layer sputter rates")
    attrs = {"units": "nm"}
    if crater_depth_nm is not None:
        crater = float(crater_depth_nm)
        if not np.isfinite(crater) or crater <= 0:
            raise ToFSIMSError(f"{source_of(ds)}: crater depth must be a positive number of nm, got {crater_depth_nm}")
        total = float(ds.attrs.get("sputter_time_total") or (t.max() if t.size else 0.0))
        if not np.isfinite(total) or total <= 0:
            raise ToFSIMSError(f"{source_of(ds)}: total sputter time is {total}; cannot derive a sputter rate")
        rate = crater / total
        depth = rate * t
        attrs.update(method=f"crater depth {crater:g} nm / total sputter time {total:g} s",
                     rate_nm_per_s=rate, rate_stderr_nm_per_s=float(crater_depth_stderr_nm) / total)
    else:
        layers = [(float(te), float(r)) for te, r in rates]
        if not layers or any(r <= 0 or not np.isfinite(r) for _, r in layers):
            raise ToFSIMSError(f"{source_of(ds)}: sputter rates must be positive")
        ends = np.array([te for te, _ in layers[:-1]] + [np.inf])
        if np.any(np.diff(ends) <= 0):
            raise ToFSIMSError(f"{source_of(ds)}: layer end times must increase")
        starts = np.concatenate([[0.0], ends[:-1]])
        layer_rates = np.array([r for _, r in layers])
        spent = np.clip(t[:, None] - starts[None, :], 0, (ends - starts)[None, :])
        depth = spent @ layer_rates
        attrs.update(method="per-layer sputter rates", rate_nm_per_s=layer_rates.tolist(),
                     layer_end_s=[te for te, _ in layers[:-1]])
    return ds.assign_coords(depth=("scan", depth, attrs))
