"""ToF-SIMS processing on in-memory stacks in the reader layout, against known truths."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from doptrace.report.conventions import check_result
from doptrace.tofsims import processing as P
from doptrace.tofsims.errors import ToFSIMSError


def grains(shape, seed, sigma=3.0, fraction=0.4):
    """A binary grain texture: smoothed Gaussian noise thresholded to ``fraction`` of the pixels."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma, mode="wrap")
    return (field > np.quantile(field, 1 - fraction)).astype(float)


def make_stack(rates: dict, total_extra=None, seed=0, dt=10.0, pitch=0.5, shots=None, corrected=1,
               chunks=None) -> xr.Dataset:
    """Poisson counts in the reader layout from expected counts per (scan, y, x) for each fragment."""
    rng = np.random.default_rng(seed)
    names = list(rates)
    shape = np.shape(rates[names[0]])
    lam = np.stack([np.broadcast_to(rates[n], shape) for n in names])
    counts = rng.poisson(lam).astype(np.uint32)
    nf, ns, ny, nx = counts.shape
    ds = xr.Dataset(
        {"counts": (("fragment", "scan", "y", "x"), counts, {"units": "counts"})},
        coords={
            "fragment": names,
            "fragment_mass": ("fragment", 26.0 + np.arange(nf), {"units": "u"}),
            "scan": ("scan", np.arange(ns), {"units": "1"}),
            "sputter_time": ("scan", (np.arange(ns) + 1) * dt, {"units": "s"}),
            "depth": ("scan", np.full(ns, np.nan), {"units": "nm"}),
            "x": ("x", (np.arange(nx) + 0.5) * pitch, {"units": "um"}),
            "y": ("y", (np.arange(ny) + 0.5) * pitch, {"units": "um"}),
        },
        attrs={"source": "memory.ita", "technique": "ToF-SIMS", "dead_time_corrected": corrected,
               "shots_per_pixel": shots or 0, "sputter_time_total": ns * dt, "sample": f"S{seed}",
               "polarity": "negative"},
    )
    if total_extra is not None:
        other = rng.poisson(np.broadcast_to(total_extra, shape)).astype(np.uint32)
        ds["total"] = (("scan", "y", "x"), counts.sum(0) + other, {"units": "counts"})
    if chunks:
        ds = ds.chunk({"scan": chunks})
    return ds


def uniform_stack(seed=0, ns=12, n=32, chunks=None):
    return make_stack({"BO-": np.full((ns, n, n), 2.0), "MnO-": np.full((ns, n, n), 5.0)}, total_extra=20.0,
                      seed=seed, chunks=chunks)


# ----------------------------------------------------------------------------- dead time
def test_dead_time_recovers_true_counts_and_respects_the_file_flag():
    shots, true_mean = 100, 60.0
    rng = np.random.default_rng(4)
    # Each shot detects at most one ion: detected ~ Binomial(shots, 1 - exp(-lambda/shots)).
    detected = rng.binomial(shots, 1 - np.exp(-true_mean / shots), size=(1, 20, 32, 32)).astype(np.uint32)
    ds = make_stack({"O-": np.zeros((20, 32, 32))}, shots=shots, corrected=0)
    ds["counts"].values[:] = detected
    assert float(ds["counts"].mean()) < 0.8 * true_mean  # saturation hides ~ a quarter of the ions
    out = P.dead_time_correct(ds)
    assert out.attrs["dead_time_corrected"] == 1
    assert float(out["counts"].mean()) == pytest.approx(true_mean, rel=0.01)
    np.testing.assert_allclose(out["counts"].values, -shots * np.log(1 - detected / shots))
    # The file says it was applied: returned untouched.
    done = ds.assign_attrs(dead_time_corrected=1)
    assert P.dead_time_correct(done) is done


def test_dead_time_corrected_counts_carry_their_larger_variance():
    # var of -n ln(1 - D/n) with D ~ Binomial(n, 1 - exp(-lambda/n)) is n (exp(lambda/n) - 1), here
    # 200 (e^0.3 - 1) = 70 per voxel, not the Poisson 60: the profile and map esds must say so.
    from doptrace.tofsims.maps import fragment_maps
    from doptrace.tofsims.profiles import depth_profile

    shots, true_mean, n_scans = 200, 60.0, 1000
    rng = np.random.default_rng(11)
    detected = rng.binomial(shots, -np.expm1(-true_mean / shots), size=(1, n_scans, 8, 8)).astype(np.uint32)
    ds = make_stack({"O-": np.zeros((n_scans, 8, 8))}, shots=shots, corrected=0)
    ds["counts"].values[:] = detected
    out = P.dead_time_correct(ds)
    profile = depth_profile(out, ["O-"])
    scatter = float(profile["counts"].std())  # 1000 independent per-scan sums of 64 voxels
    stated = float(profile["counts_stderr"].mean())
    assert stated == pytest.approx(scatter, rel=0.07)  # sd of a 1000-sample sd: 2.2 %
    assert stated == pytest.approx(np.sqrt(64 * shots * np.expm1(true_mean / shots)), rel=0.02)
    maps = fragment_maps(out, ["O-"], bin=2)
    manual = (shots * np.expm1(out["counts"].values / shots)).reshape(1, n_scans, 4, 2, 4, 2).sum(axis=(1, 3, 5))
    np.testing.assert_allclose(maps["counts_stderr"].values, np.sqrt(manual), rtol=1e-10)
    # raw counts keep sqrt(N)
    raw = fragment_maps(ds, ["O-"])
    np.testing.assert_allclose(raw["counts_stderr"].values, np.sqrt(raw["counts"].values))


def test_dead_time_refuses_saturated_voxels_and_missing_shots():
    ds = make_stack({"O-": np.full((2, 4, 4), 5.0)}, shots=3, corrected=0)
    ds["counts"].values[0, 0, 0, 0] = 3
    with pytest.raises(ToFSIMSError, match="memory.ita: .*saturated"):
        P.dead_time_correct(ds)
    with pytest.raises(ToFSIMSError, match="shots per pixel"):
        P.dead_time_correct(ds.assign_attrs(shots_per_pixel=0))


# ----------------------------------------------------------------------------- normalisation
def test_ratio_errors_match_the_scatter_of_simulated_counts():
    rng = np.random.default_rng(1)
    total = rng.poisson(400, 20000)
    nested_num = rng.binomial(total, 0.1)
    r, s = P.ratio_with_stderr(nested_num, total, nested=True)
    assert np.std(r) == pytest.approx(np.sqrt(np.mean(s**2)), rel=0.03)
    num, den = rng.poisson(50, 20000), rng.poisson(200, 20000)
    r, s = P.ratio_with_stderr(num, den, nested=False)
    assert np.std(r) == pytest.approx(np.sqrt(np.mean(s**2)), rel=0.05)


def test_normalize_to_total_fragments_and_reference_fragment():
    ds = uniform_stack()
    out = P.normalize(ds, "total")
    c, t = ds["counts"].values.astype(float), ds["total"].values.astype(float)
    expected = np.where(t > 0, c / np.where(t > 0, t, 1), np.nan)
    np.testing.assert_allclose(out["intensity"].values, expected)
    ref = P.normalize(ds, "MnO-")["intensity"].sel(fragment="BO-").values
    mn = c[1]
    np.testing.assert_allclose(ref, np.where(mn > 0, c[0] / np.where(mn > 0, mn, 1), np.nan))
    frag = P.normalize(ds, "fragments")["intensity"].sum("fragment", skipna=False)
    np.testing.assert_allclose(frag.values[np.isfinite(frag.values)], 1.0)
    with pytest.raises(ToFSIMSError, match="no total-ion image"):
        P.normalize(ds.drop_vars("total"), "total")
    with pytest.raises(ToFSIMSError, match="'XX-'"):
        P.normalize(ds, "XX-")


# ----------------------------------------------------------------------------- binning
def test_binning_preserves_counts_stays_lazy_and_averages_coordinates():
    ds = uniform_stack(chunks=4)
    lateral = P.bin_lateral(ds, 4)
    assert lateral["counts"].chunks is not None  # still a dask array
    assert lateral.sizes["x"] == lateral.sizes["y"] == 8
    np.testing.assert_array_equal(lateral["counts"].values,
                                  ds["counts"].values.reshape(2, 12, 8, 4, 8, 4).sum(axis=(3, 5)))
    assert float(lateral["x"][0]) == pytest.approx(float(ds["x"][:4].mean()))
    depth = P.bin_depth(ds, 5)  # 12 scans -> 2 full blocks, the rest trimmed
    assert depth.sizes["scan"] == 2
    np.testing.assert_array_equal(depth["total"].values, ds["total"].values[:10].reshape(2, 5, 32, 32).sum(1))
    assert float(depth["sputter_time"][1]) == pytest.approx(80.0)
    assert depth.attrs["binning_applied"] == {"scan": 5}
    with pytest.raises(ToFSIMSError, match="exceeds"):
        P.bin_lateral(ds, 64)
    with pytest.raises(ToFSIMSError, match="positive integer"):
        P.bin_depth(ds, 0)


# ----------------------------------------------------------------------------- ROIs
def test_roi_masks_and_their_sums():
    ds = uniform_stack()
    circle = P.roi_mask(ds, circle=(8.0, 8.0, 4.0))
    # pitch 0.5 um: the circle covers about pi 8^2 pixels.
    assert int(circle.sum()) == pytest.approx(np.pi * 64, rel=0.05)
    rect = P.roi_mask(ds, rect=(0.0, 4.0, 2.0, 6.0))
    assert int(rect.sum()) == 8 * 8
    masked = P.apply_roi(ds, rect)
    assert masked["counts"].dtype == ds["counts"].dtype
    assert int(masked["counts"].sum()) == int(ds["counts"].values[:, :, 4:12, 0:8].sum())
    bimodal = np.where(grains((32, 32), 3), 50.0, 5.0)
    level = P.otsu_threshold(bimodal + np.random.default_rng(0).normal(0, 2, bimodal.shape))
    assert 10 < level < 45
    grain_roi = P.roi_mask(ds, image=xr.DataArray(bimodal, dims=("y", "x")), threshold="otsu")
    assert int(grain_roi.sum()) == int((bimodal > 20).sum())
    with pytest.raises(ToFSIMSError, match="contains no pixel"):
        P.roi_mask(ds, rect=(100.0, 200.0, 100.0, 200.0))


# ----------------------------------------------------------------------------- drift
def test_drift_estimated_to_subpixel_and_corrected():
    n, ns = 64, 6
    texture = ndimage.gaussian_filter(np.random.default_rng(2).random((n, n)), 2.0, mode="wrap")
    texture = 40 * (texture - texture.min()) / np.ptp(texture)
    true = np.array([[0, 0], [1, 2], [2, -3], [-3, 4], [4.5, -1.5], [-2.25, 3.75]])  # (dy, dx) px
    frames = np.stack([ndimage.shift(texture, s, order=3, mode="grid-wrap") for s in true])
    ds = make_stack({"MnO-": frames}, seed=5, chunks=2)
    drift = P.estimate_drift(ds, "MnO-")
    check_result(drift)
    np.testing.assert_allclose(drift["shift_y"].values, true[:, 0], atol=0.3)
    np.testing.assert_allclose(drift["shift_x"].values, true[:, 1], atol=0.3)
    np.testing.assert_allclose(drift["shift_x_um"].values, true[:, 1] * 0.5, atol=0.15)
    fixed = P.correct_drift(ds, drift)
    assert fixed["counts"].chunks is not None
    values = fixed["counts"].values[0]
    inner = (slice(8, -8), slice(8, -8))
    raw = ds["counts"].values[0]
    for k in range(1, 4):  # integer shifts: scan k moved back exactly onto scan 0's frame
        dy, dx = true[k].astype(int)
        np.testing.assert_array_equal(values[k][inner], np.roll(raw[k], (-dy, -dx), axis=(0, 1))[inner])
        after = np.corrcoef(values[k][inner].ravel(), values[0][inner].ravel())[0, 1]
        before = np.corrcoef(raw[k][inner].ravel(), raw[0][inner].ravel())[0, 1]
        assert after > 0.7 and after > before + 0.1


def test_integer_shift_moves_counts_exactly():
    image = np.arange(30, dtype=np.uint32).reshape(5, 6)
    moved = P._shift_image(image, 1, -2)
    np.testing.assert_array_equal(moved[1:, :4], image[:-1, 2:])
    assert moved[0].sum() == 0 and moved[:, 4:].sum() == 0


# ----------------------------------------------------------------------------- depth
def test_sputter_time_to_depth_constant_and_per_layer_rates():
    ds = uniform_stack()  # sputter times 10..120 s, total 120 s
    out = P.sputter_to_depth(ds, crater_depth_nm=480.0)
    np.testing.assert_allclose(out["depth"].values, 4.0 * ds["sputter_time"].values)
    assert out["depth"].attrs["method"].startswith("crater depth 480 nm")
    assert out["depth"].attrs["units"] == "nm"
    layered = P.sputter_to_depth(ds, rates=[(30.0, 1.0), (60.0, 2.0), (0.0, 0.5)])
    # 30 s at 1 nm/s, 30 s at 2 nm/s, then 0.5 nm/s: t = 20, 50, 100 s -> 20, 70, 110 nm.
    depth = layered["depth"].values
    assert (depth[1], depth[4], depth[9]) == pytest.approx((20.0, 70.0, 110.0))
    assert layered["depth"].attrs["method"] == "per-layer sputter rates"
    with pytest.raises(ToFSIMSError, match="either a crater depth or"):
        P.sputter_to_depth(ds)
    with pytest.raises(ToFSIMSError, match="positive number"):
        P.sputter_to_depth(ds, crater_depth_nm=float("nan"))
    with pytest.raises(ToFSIMSError, match="increase"):
        P.sputter_to_depth(ds, rates=[(50.0, 1.0), (40.0, 1.0), (0.0, 1.0)])


def test_empty_or_misshaped_stacks_are_refused():
    ds = uniform_stack()
    with pytest.raises(ToFSIMSError, match="memory.ita: the image stack is empty"):
        P.select_fragments(ds.isel(scan=slice(0, 0)))
    with pytest.raises(ToFSIMSError, match="expected \\(fragment, scan, y, x\\)"):
        P.check_stack(ds.transpose("scan", "fragment", "y", "x"))
    with pytest.raises(ToFSIMSError, match="not in the peak list"):
        P.select_fragments(ds, "BO-,ClO-")
