"""PCA/NMF of simulated ToF-SIMS images and profiles: components follow the phantom's known phases."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.mva import mva, poisson_scale


def two_phase(shape=(4, 64, 64), scale=1.0, seed=3):
    """Oxide grains in an electrolyte matrix, no rim: exactly two phases."""
    p = simulate.phantom(shape, rim_px=0, seed=seed)
    assert not p["rim"].values.any()
    p["expected"] = p["expected"] * scale
    p["expected_total"] = p["expected_total"] * scale
    return simulate.poisson_counts(p, seed=seed)


def r_with(truth, scores):
    return float(np.corrcoef(np.asarray(scores.values, float).ravel(), truth["oxide"].values.ravel().astype(float))[0, 1])


@pytest.mark.parametrize("scaling", ["poisson", "none"])
def test_pca_first_component_separates_the_two_phases(scaling):
    truth = two_phase()
    result = mva(truth, "pca", 3, scaling=scaling)
    r = r_with(truth, result["scores"].isel(component=0))
    assert abs(r) > 0.9, r
    # the first component carries the phase contrast: most of the variance, later ones are noise
    ratio = result["explained_variance_ratio"].values
    assert ratio[0] > 0.9 and ratio[1] < 0.05, ratio
    # its loading sets MnO- (oxide) against InO-/ClO- (electrolyte), as the phantom's rates say
    load = result["loadings"].isel(component=0)
    sign = np.sign(r)
    assert sign * float(load.sel(fragment="MnO-")) > 0 > sign * float(load.sel(fragment="InO-"))
    assert sign * float(load.sel(fragment="ClO-")) < 0
    assert result.attrs["quality"] == "ok" and result.attrs["scaling"] == scaling
    assert result["loadings"].dims == ("component", "fragment") and "fragment_mass" in result.coords


def test_pca_matches_numpy_svd_of_the_poisson_scaled_centred_matrix():
    truth = two_phase(shape=(2, 24, 24))
    result = mva(truth, "pca", 4)
    d = truth["counts"].sum("scan").transpose("y", "x", "fragment").values.reshape(-1, truth.sizes["fragment"])
    d = d.astype(float)
    scaled = d / np.sqrt(d.mean(axis=1))[:, None] / np.sqrt(d.mean(axis=0))[None, :]  # Keenan & Kotula 2004
    centred = scaled - scaled.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result["explained_variance_ratio"].values, (s**2 / np.sum(s**2))[:4], rtol=1e-9)
    for k in range(4):
        loading = result["loadings"].isel(component=k).values
        assert abs(abs(np.dot(loading, vt[k])) - 1) < 1e-9  # same axis, sign fixed by convention
        np.testing.assert_allclose(np.abs(result["scores"].isel(component=k).values.ravel()), np.abs(u[:, k] * s[k]),
                                   rtol=1e-7, atol=1e-9)


def test_poisson_scaling_helps_at_low_counts():
    # Keenan & Kotula's point: at a few counts per pixel the unscaled PCA follows the brightest
    # peaks' noise; scaling restores the phase contrast (measured here: 0.71 against 0.62)
    gains = []
    for seed in (3, 4, 5):
        truth = two_phase(shape=(1, 64, 64), scale=0.05, seed=seed)
        scaled = abs(r_with(truth, mva(truth, "pca", 2, scaling="poisson")["scores"].isel(component=0)))
        raw = abs(r_with(truth, mva(truth, "pca", 2, scaling="none")["scores"].isel(component=0)))
        gains.append(scaled - raw)
    assert min(gains) > 0.03, gains


def test_nmf_gives_one_part_per_phase():
    truth = two_phase()
    result = mva(truth, "nmf", 2)
    r = [r_with(truth, result["scores"].isel(component=k)) for k in range(2)]
    assert max(r) > 0.9 and min(r) < -0.9, r
    oxide_part = int(np.argmax(r))
    load = result["loadings"].isel(component=oxide_part)
    assert float(load.sel(fragment="MnO-")) > float(load.sel(fragment="InO-"))
    assert np.all(result["loadings"].values >= 0) and np.all(result["scores"].values >= 0)
    assert 0 < result.attrs["reconstruction_error"] < 0.5


def test_depth_pca_finds_the_boron_surface_layer():
    truth = simulate.poisson_counts(simulate.phantom((16, 24, 24), bulk_doped=False, surface_scans=3), seed=2)
    result = mva(truth, "pca", 2, over="depth")
    scores = result["scores"].isel(component=0).values
    surface = np.arange(16) < 3
    # the surface scans stand apart from the bulk on the first component, driven by BO-/BO2-
    assert np.min(np.abs(scores[surface])) > np.max(np.abs(scores[~surface]))
    load = np.abs(result["loadings"].isel(component=0))
    assert set(str(f) for f in load.sortby(load, ascending=False)["fragment"].values[:2]) == {"BO-", "BO2-"}
    assert result["scores"].dims == ("component", "scan") and "sputter_time" in result.coords


def test_bad_requests_are_refused_with_the_source():
    truth = two_phase(shape=(1, 16, 16))
    truth.attrs["source"] = "two.ita"
    with pytest.raises(ToFSIMSError, match="two.ita.*components"):
        mva(truth, "pca", 99)
    with pytest.raises(ToFSIMSError, match="method"):
        mva(truth, "ica", 2)
    with pytest.raises(ToFSIMSError, match="cannot be mean-centred"):
        mva(truth, "nmf", 2, centre=True)


def test_poisson_scale_weights():
    d = np.array([[1.0, 3.0], [5.0, 7.0]])
    scaled, g, h = poisson_scale(d)
    np.testing.assert_allclose(g, np.sqrt([2.0, 6.0]))
    np.testing.assert_allclose(h, np.sqrt([3.0, 5.0]))
    np.testing.assert_allclose(scaled, d / np.outer(g, h))
