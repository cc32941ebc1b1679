"""ToF-SIMS results (maps, profiles, uniformity, volumes, colocalization, comparison) against truths.

In-memory stacks in the reader layout test the statistics (their calibration over many seeds);
the round trip through real ITA files written by ``tofsims.simulate`` tests exactness.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from test_tofsims_processing import grains, make_stack

from doptrace.report.conventions import check_result
from doptrace.tofsims import coloc, compare, maps, processing, profiles, volume
from doptrace.tofsims.errors import ToFSIMSError


def oxide_stack(seed=0, ns=20, n=32, b_gradient=0.0, b_rate=0.6, mn_rate=3.0, independent=False, chunks=None):
    """BO- inside MnO- grains (or in an independent texture), optional linear BO- gradient with depth."""
    ox = grains((n, n), seed + 100)
    b_texture = grains((n, n), seed + 200) if independent else ox
    depth_factor = 1 + b_gradient * np.arange(ns) / (ns - 1)
    rates = {
        "BO-": b_rate * depth_factor[:, None, None] * b_texture[None] + 0.02,
        "MnO-": np.broadcast_to(mn_rate * ox + 0.1, (ns, n, n)),
        "InO-": np.broadcast_to(0.5 * (1 - ox) + 0.05, (ns, n, n)),
    }
    # total = fragments + other ions, as in an ITA total-ion image
    ds = make_stack(rates, total_extra=8.0, seed=seed, dt=25.0, chunks=chunks)
    return processing.sputter_to_depth(ds, crater_depth_nm=500.0)


# ----------------------------------------------------------------------------- maps
def test_maps_are_exact_sums_and_normalised_maps_their_ratios():
    ds = oxide_stack(chunks=5)
    result = maps.fragment_maps(ds, "BO-,MnO-", scans=(3, 12), normalize="total")
    check_result(result)
    c = ds["counts"].values
    np.testing.assert_array_equal(result["counts"].sel(fragment="MnO-").values, c[1, 3:13].sum(0))
    total = ds["total"].values[3:13].sum(0)
    np.testing.assert_allclose(result["intensity"].sel(fragment="BO-").values, c[0, 3:13].sum(0) / total)
    assert result.attrs["scan_first"] == 3 and result.attrs["scan_last"] == 12
    binned = maps.fragment_maps(ds, ["InO-"], bin=4)
    assert int(binned["counts"].sum()) == int(c[2].sum())
    ratio = maps.ratio_map(ds, "BO-", "MnO-", bin=2)
    check_result(ratio)
    num = c[0].sum(0).reshape(16, 2, 16, 2).sum((1, 3)).astype(float)
    den = c[1].sum(0).reshape(16, 2, 16, 2).sum((1, 3)).astype(float)
    ok = den > 0
    np.testing.assert_allclose(ratio["ratio"].values[ok], num[ok] / den[ok])
    # r sqrt(1/N + 1/D), with N = 0 counted as one count
    expected = num[ok] / den[ok] * np.sqrt(1 / np.maximum(num[ok], 1) + 1 / den[ok])
    np.testing.assert_allclose(ratio["ratio_stderr"].values[ok][num[ok] > 0], expected[num[ok] > 0])
    with pytest.raises(ToFSIMSError, match="scan range 5..40 outside the 20 scans"):
        maps.fragment_maps(ds, "BO-", scans=(5, 40))


# ----------------------------------------------------------------------------- profiles
def test_profile_is_exact_and_roi_restricts_it():
    ds = oxide_stack()
    prof = profiles.depth_profile(ds, None, normalize="total")
    check_result(prof)
    np.testing.assert_array_equal(prof["counts"].values, ds["counts"].values.sum((2, 3)))
    np.testing.assert_allclose(prof["depth"].values, 500.0 * np.arange(1, 21) / 20)
    roi = processing.roi_mask(ds, rect=(0.0, 5.0, 0.0, 5.0))
    inner = profiles.depth_profile(ds, "MnO-", roi=roi)
    assert inner.attrs["roi_pixels"] == 100
    np.testing.assert_array_equal(inner["counts"].values[0], ds["counts"].values[1, :, :10, :10].sum((1, 2)))


def test_uniform_boron_is_called_uniform_at_the_nominal_rate():
    calls = []
    for seed in range(40):
        prof = profiles.depth_profile(oxide_stack(seed=seed, n=32, b_rate=2.0), "BO-", normalize="total")
        test = profiles.uniformity_test(prof, "BO-")
        calls.append(int(test["uniform"].sel(fragment="BO-")))
    # alpha = 0.05 with a Bonferroni pair: at most ~5 % false alarms expected; allow sampling noise.
    assert np.mean(calls) >= 0.87


def test_a_20_percent_gradient_over_500_nm_is_detected_and_measured():
    changes, detected = [], []
    for seed in range(20):
        prof = profiles.depth_profile(oxide_stack(seed=seed, n=32, b_rate=2.0, b_gradient=0.2), "BO-,MnO-", normalize="total")
        test = profiles.uniformity_test(prof)
        check_result(test)
        detected.append(int(test["uniform"].sel(fragment="BO-")) == 0)
        changes.append(float(test["relative_change"].sel(fragment="BO-")))
        assert int(test["uniform"].sel(fragment="MnO-")) in (0, 1)
    assert np.mean(detected) >= 0.95
    # Truth: the BO- rate rises 20 % from the first to the last scan; the test range starts after
    # the first 10 % of the depth (surface layer) and the ratio to the total dilutes it slightly.
    z0, z1 = test.attrs["axis_range"]
    assert (z0, z1) == pytest.approx((75.0, 500.0))
    rate = lambda z: 1 + 0.2 * (z - 25.0) / 475.0  # noqa: E731  scan depths 25..500 nm
    truth_centre = rate((z0 + z1) / 2)
    truth = (rate(z1) - rate(z0)) / truth_centre
    assert np.mean(changes) == pytest.approx(truth, abs=0.03)


def test_uniformity_needs_enough_scans_and_counts():
    prof = profiles.depth_profile(oxide_stack(ns=4), "BO-")
    with pytest.raises(ToFSIMSError, match="need at least"):
        profiles.uniformity_test(prof)
    empty = oxide_stack(ns=12)
    empty["counts"].values[0] = 0
    with pytest.raises(ToFSIMSError, match="BO- has no counts"):
        profiles.uniformity_test(profiles.depth_profile(empty, "BO-"))


# ----------------------------------------------------------------------------- volume
def test_slices_projections_and_volume_are_exact():
    ds = oxide_stack(ns=8, chunks=3)
    c = ds["counts"].values[0]
    sl = volume.orthogonal_slices(ds, "BO-", x=5, y=7, scan=2)
    check_result(sl)
    np.testing.assert_array_equal(sl["slice_xy"].values, c[2])
    np.testing.assert_array_equal(sl["slice_xz"].values, c[:, 7, :])
    np.testing.assert_array_equal(sl["slice_yz"].values, c[:, :, 5])
    pr = volume.projections(ds, "BO-")
    check_result(pr)
    np.testing.assert_array_equal(pr["proj_xy"].values, c.sum(0))
    np.testing.assert_array_equal(pr["proj_xz"].values, c.sum(1))
    np.testing.assert_array_equal(pr["proj_yz"].values, c.sum(2))
    vol = volume.fragment_volume(ds, "BO-", lateral_bin=2, depth_bin=2)
    np.testing.assert_array_equal(vol["counts"].values, c.reshape(4, 2, 16, 2, 16, 2).sum((1, 3, 5)))
    with pytest.raises(ToFSIMSError, match="scan index 9 outside 0..7"):
        volume.orthogonal_slices(ds, "BO-", scan=9)


# ----------------------------------------------------------------------------- colocalization
def test_pearson_and_manders_against_direct_formulas():
    rng = np.random.default_rng(0)
    a = rng.poisson(5, (16, 16)).astype(float)
    b = a + rng.normal(0, 2, a.shape)
    assert coloc.pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    a = np.zeros((8, 8))
    a[:4] = 10.0  # top half
    b = np.zeros((8, 8))
    b[:2] = 3.0  # first quarter
    m1, m2 = coloc.manders(a, b, 0.0, 0.0)
    assert (m1, m2) == (0.5, 1.0)


def test_costes_threshold_splits_signal_from_uncorrelated_background():
    rng = np.random.default_rng(3)
    mask = grains((48, 48), 5).astype(bool)
    a = np.where(mask, rng.poisson(40, mask.shape), rng.poisson(3, mask.shape)).astype(float)
    b = np.where(mask, 0.5 * a + rng.normal(0, 2, a.shape), rng.poisson(3, mask.shape)).astype(float)
    res = coloc.costes_threshold(a, b)
    assert res["converged"]
    # Below the thresholds only the background remains: its correlation is <= 0 by construction.
    assert 3 < res["threshold_a"] < 40
    m1, m2 = coloc.manders(a, b, res["threshold_a"], res["threshold_b"])
    assert m1 > 0.9 and m2 > 0.9


def test_without_positive_correlation_manders_uses_otsu_thresholds():
    mask = grains((32, 32), 8).astype(bool)
    a = np.where(mask, 30.0, 2.0)
    b = np.where(mask, 2.0, 30.0)  # anti-correlated: no Costes threshold exists
    res = coloc.costes_threshold(a, b)
    assert not res["converged"]
    assert 2.0 < res["threshold_a"] < 30.0 and 2.0 < res["threshold_b"] < 30.0
    assert coloc.manders(a, b, res["threshold_a"], res["threshold_b"]) == (0.0, 0.0)


def test_colocalized_pair_is_significant_and_independent_pair_is_not():
    ds = oxide_stack(seed=1, n=64)
    together = coloc.colocalization(ds, "BO-:MnO-", bin=4)
    check_result(together)
    assert float(together["pearson_r"]) > 0.8
    assert float(together["p_value"]) < 0.01
    assert float(together["p_value"]) == pytest.approx(1 / 200)  # the floor of a 199-image null
    apart = coloc.colocalization(oxide_stack(seed=1, n=64, independent=True), "BO-:MnO-", bin=4)
    assert float(apart["p_value"]) > 0.05


def test_spatial_null_keeps_its_false_alarm_rate():
    # Textured but unrelated images: pixel-count p-values would flag most pairs, the null must not.
    p_values = []
    for seed in range(20):
        a = grains((32, 32), seed) * 10 + 1
        b = grains((32, 32), seed + 1000) * 10 + 1
        p_values.append(coloc.colocalize_images(a, b, n_null=99, seed=seed)["p_pearson"])
    assert np.mean(np.array(p_values) < 0.05) <= 0.15
    with pytest.raises(ToFSIMSError, match="at least 19"):
        coloc.colocalize_images(a, b, n_null=5)


# ----------------------------------------------------------------------------- comparison
def test_comparison_ratio_and_interval_coverage():
    n, ns = 32, 6
    ox = grains((n, n), 7)
    inside = []
    for seed in range(25):
        base = {"InO-": np.broadcast_to(2.0 * (1 - ox) + 0.2, (ns, n, n)), "MnO-": np.broadcast_to(3 * ox, (ns, n, n))}
        grown = dict(base, **{"InO-": base["InO-"] * 1.5})
        a = make_stack(base, total_extra=10.0, seed=seed)
        b = make_stack(grown, total_extra=10.0, seed=seed + 500)
        result = compare.compare(a, b, "InO-", normalize=None, n_boot=400, seed=seed)
        r = result.sel(fragment="InO-")
        inside.append(float(r["ratio_poisson_low"]) <= 1.5 <= float(r["ratio_poisson_high"]))
        assert float(r["ratio_boot_low"]) < 1.5 < float(r["ratio_boot_high"]) or not inside[-1]
    check_result(result)
    assert np.mean(inside) >= 0.84  # nominal 95 %
    # 16 tiles of a grainy field: the bootstrap holds the lateral heterogeneity, still p < 0.05
    assert float(result["p_equal"].sel(fragment="InO-")) < 0.05


def test_comparison_checks_its_inputs():
    a = compare.integrated_intensities(oxide_stack(), "BO-")
    b = compare.integrated_intensities(oxide_stack(seed=2), "MnO-")
    with pytest.raises(ToFSIMSError, match="differ"):
        compare.compare_samples(a, b)
    c = compare.integrated_intensities(oxide_stack(seed=2), "BO-", normalize="MnO-")
    with pytest.raises(ToFSIMSError, match="normalisation differs"):
        compare.compare_samples(a, c)
    integ = compare.integrated_intensities(oxide_stack(), "BO-,InO-", normalize="total")
    check_result(integ)
    ds = oxide_stack()
    assert float(integ["intensity"].sel(fragment="InO-")) == pytest.approx(
        ds["counts"].values[2].sum() / ds["total"].values.sum())
    assert isinstance(integ["tile_counts"], xr.DataArray) and integ.sizes["tile"] == 16


# ----------------------------------------------------------------------------- ITA round trip
simulate = pytest.importorskip("doptrace.tofsims.simulate")


def _ita(tmp_path, name, truth=None, **kw):
    from doptrace import tofsims

    truth = simulate.write_ita(tmp_path / name, truth, with_spectrum=False, **kw)
    return tofsims.read(tmp_path / name), truth


def test_ita_round_trip_maps_profiles_and_volumes_equal_the_truth(tmp_path):
    ds, truth = _ita(tmp_path, "bulk.ita", shape=(12, 40, 40), bulk_doped=True, seed=4)
    ds = processing.sputter_to_depth(ds, crater_depth_nm=truth.attrs["crater_depth_nm"])
    np.testing.assert_allclose(ds["depth"].values, truth["true_depth"].values)
    counts, total = truth["counts"], truth["total"]
    names = [str(n) for n in truth["fragment"].values]
    result = maps.fragment_maps(ds, names, scans=(2, 9), normalize="total")
    np.testing.assert_array_equal(result["counts"].values, counts.isel(scan=slice(2, 10)).sum("scan").values)
    np.testing.assert_array_equal(result["reference"].values, total.isel(scan=slice(2, 10)).sum("scan").values)
    prof = profiles.depth_profile(ds, names, normalize="total")
    np.testing.assert_array_equal(prof["counts"].values, counts.sum(("y", "x")).values)
    np.testing.assert_array_equal(prof["reference"].values, total.sum(("y", "x")).values)
    for name in ("BO-", "InO-"):
        vol = volume.fragment_volume(ds, name)
        np.testing.assert_array_equal(vol["counts"].values, counts.sel(fragment=name).values)
        pr = volume.projections(ds, name)
        np.testing.assert_array_equal(pr["proj_xz"].values, counts.sel(fragment=name).sum("y").values)
        np.testing.assert_array_equal(pr["proj_yz"].values, counts.sel(fragment=name).sum("x").values)
        sl = volume.orthogonal_slices(ds, name, x=3, y=30, scan=11)
        np.testing.assert_array_equal(sl["slice_xz"].values, counts.sel(fragment=name).isel(y=30).values)
    for res in (result, prof, vol, pr, sl):
        check_result(res)


def test_ita_uniform_boron_is_uniform_and_a_20_percent_gradient_is_detected(tmp_path):
    verdicts = {}
    for gradient in (0.0, 0.2):
        ds, truth = _ita(tmp_path, f"g{gradient}.ita", shape=(24, 48, 48), bulk_doped=True, b_gradient=gradient,
                         seed=11)
        ds = processing.sputter_to_depth(ds, crater_depth_nm=500.0)
        test = profiles.uniformity_test(profiles.depth_profile(ds, "BO-,MnO-", normalize="total"))
        verdicts[gradient] = test
    flat, graded = verdicts[0.0].sel(fragment="BO-"), verdicts[0.2].sel(fragment="BO-")
    assert int(flat["uniform"]) == 1 and float(flat["p_value"]) > 0.05
    assert abs(float(flat["relative_change"])) < 3 * float(flat["relative_change_stderr"])
    assert int(graded["uniform"]) == 0 and float(graded["p_value"]) < 1e-6
    # Truth: +20 % from the first to the last scan, seen over the scans beyond the surface layer
    # and diluted a little by the normalisation to total ions (BO- is part of the total).
    z0, z1 = verdicts[0.2].attrs["axis_range"]
    rate = lambda z: 1 + 0.2 * z / (500.0 * 23 / 24)  # noqa: E731
    assert float(graded["relative_change"]) == pytest.approx((rate(z1) - rate(z0)) / rate((z0 + z1) / 2), abs=0.03)


def test_ita_colocalized_pair_is_significant_and_independent_pair_is_not(tmp_path):
    ds, _ = _ita(tmp_path, "coloc.ita", shape=(6, 64, 64), bulk_doped=True, seed=2)
    together = coloc.colocalization(ds, "BO-:MnO-", bin=4)
    assert float(together["pearson_r"]) > 0.8 and float(together["p_value"]) < 0.01
    # BO- in grains of another, unrelated grain layout than MnO-
    grains_mn = simulate.phantom((6, 64, 64), bulk_doped=True, seed=2)
    grains_b = simulate.phantom((6, 64, 64), bulk_doped=True, seed=3)
    grains_mn["expected"].loc[{"fragment": "BO-"}] = grains_b["expected"].sel(fragment="BO-")
    ds, _ = _ita(tmp_path, "apart.ita", grains_mn, seed=2)
    apart = coloc.colocalization(ds, "BO-:MnO-", bin=4)
    assert float(apart["p_value"]) > 0.05


def test_lazy_ita_read_gives_the_same_results_without_loading_early(tmp_path):
    from doptrace import tofsims

    truth = simulate.write_ita(tmp_path / "lazy.ita", shape=(10, 32, 32), bulk_doped=True, seed=9,
                               with_spectrum=False)
    ds = tofsims.read(tmp_path / "lazy.ita", lazy=True)
    assert hasattr(ds["counts"].data, "dask")
    binned = processing.bin_depth(processing.bin_lateral(ds, 2), 2)
    assert hasattr(binned["counts"].data, "dask")  # processing stays lazy
    np.testing.assert_array_equal(maps.fragment_maps(ds, "BO-,InO-")["counts"].values,
                                  truth["counts"].sel(fragment=["BO-", "InO-"]).sum("scan").values)
    np.testing.assert_array_equal(profiles.depth_profile(ds, "MnO-", normalize="total")["reference"].values,
                                  truth["total"].sum(("y", "x")).values)
    np.testing.assert_array_equal(binned["counts"].sel(fragment="O-").values,
                                  truth["counts"].sel(fragment="O-").values.reshape(5, 2, 16, 2, 16, 2).sum((1, 3, 5)))


def test_integrated_intensity_in_a_roi_per_voxel():
    ds = oxide_stack()
    roi = processing.roi_mask(ds, rect=(0.0, 5.0, 0.0, 5.0))  # 10 x 10 pixels
    integ = compare.integrated_intensities(ds, "BO-", normalize=None, roi=roi, tile=4)
    check_result(integ)
    assert float(integ["reference"]) == 100 * 20  # voxels
    assert float(integ["intensity"].sel(fragment="BO-")) == pytest.approx(
        ds["counts"].values[0, :, :10, :10].sum() / 2000)
    assert float(integ["tile_reference"].sum()) == 2000


def test_ita_drift_between_scans_is_found_and_removed(tmp_path):
    truth = simulate.phantom((8, 48, 48), bulk_doped=True, seed=5)
    shifts = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [2, 4], [3, 4], [4, 5]])  # (dy, dx) px per scan
    moved = truth["expected"].values.copy()
    moved_total = truth["expected_total"].values.copy()
    for k, (dy, dx) in enumerate(shifts):
        moved[:, k] = np.roll(moved[:, k], (dy, dx), axis=(-2, -1))
        moved_total[k] = np.roll(moved_total[k], (dy, dx), axis=(-2, -1))
    truth["expected"].values[:] = moved
    truth["expected_total"].values[:] = moved_total
    ds, _ = _ita(tmp_path, "drift.ita", truth, seed=5)
    drift = processing.estimate_drift(ds)
    np.testing.assert_allclose(drift["shift_y"].values, shifts[:, 0], atol=0.25)
    np.testing.assert_allclose(drift["shift_x"].values, shifts[:, 1], atol=0.25)
    fixed = processing.correct_drift(ds, drift)
    before = coloc.pearson(ds["counts"].sel(fragment="MnO-").isel(scan=0), ds["counts"].sel(fragment="MnO-").isel(scan=7))
    after = coloc.pearson(fixed["counts"].sel(fragment="MnO-").isel(scan=0)[8:-8, 8:-8],
                          fixed["counts"].sel(fragment="MnO-").isel(scan=7)[8:-8, 8:-8])
    assert after > 0.9 > before
