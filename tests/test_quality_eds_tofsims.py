"""Quality records of STEM-EDS and ToF-SIMS results: the rules fire on known numbers and reach the results."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from doptrace.report.conventions import check_result
from doptrace.stem_eds import homogeneity, line_intensities, load_factors, quantify, read
from doptrace.stem_eds import lines as xl
from doptrace.stem_eds.quality import quant_quality
from doptrace.stem_eds.simulate import LRMO, kfactor_toml, simulate_spectrum_image
from doptrace.tofsims import calibration, maps, profiles, simulate
from doptrace.tofsims.quality import CALIBRATION_PPM, calibration_quality


@pytest.fixture(scope="module")
def eds_rim(tmp_path_factory):
    """48 x 48 Li-rich particle whose B sits in a rim (the demo's BM-LRMO case)."""
    folder = tmp_path_factory.mktemp("edsq")
    path = folder / "rim.hspy"
    simulate_spectrum_image(path, shape=(48, 48), kind="rim", element="B", amplitude=0.4, thickness="particle", seed=7)
    (folder / "k.toml").write_text(kfactor_toml())
    da = read(path)
    lines = xl.parse_elements(["O", "B", "Mn", "Co", "Ni"], float(da["energy"].values[-1]))
    ints = line_intensities(da, lines, "model")
    return ints, quantify(ints, load_factors(folder / "k.toml"))


def test_eds_b_map_is_flagged_qualitative_and_mostly_below_detection(eds_rim):
    ints, quant = eds_rim
    check_result(ints, "intensities")
    check_result(quant, "quant")
    assert ints.attrs["quality"] == "warning"
    assert ints.attrs["quality_reasons"] == ["B_Ka is qualitative: the number depends on the background model far "
                                             "beyond its Poisson error."]
    b = quant["atomic_percent"].sel(element="B").values
    e = quant["atomic_percent_stderr"].sel(element="B").values
    finite = np.isfinite(b) & np.isfinite(e)
    below = 100 * np.mean(b[finite] < 3 * e[finite])
    assert below > 50  # B in single pixels is noise: the rule must say so with that share
    assert any(r.startswith(f"B map: {below:.2g} % of the pixels are below the detection limit")
               for r in quant.attrs["quality_reasons"])
    # the transition metals are far above their noise in every pixel with counts: no reason names them
    assert not any(r.startswith(("Mn", "Co", "Ni", "O ")) for r in quant.attrs["quality_reasons"])
    h = homogeneity(quant)
    check_result(h, "homogeneity")
    assert h.attrs["quality"] == "warning" and "homogeneity of B rests on a qualitative line" in h.attrs["quality_reasons"][0]


def test_eds_at_percent_maps_start_their_colour_scale_at_zero(eds_rim):
    from doptrace.stem_eds.plot import plot_maps as maps_figure

    _, quant = eds_rim
    assert float(np.nanmin(quant["atomic_percent"].sel(element="B").values)) < -20  # noise reads far below 0
    fig = maps_figure(quant, "rim")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 5
    for image in images:
        lo, hi = image.get_clim()
        assert 0 <= lo < hi
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_eds_quant_rules_on_known_totals():
    """Region totals: negative beyond 3 esd is failed, below 3 esd not detected; per-pixel shares counted."""
    ds = xr.Dataset({
        "atomic_percent": (("element",), [70.0, -2.0, 0.5, 31.5], {"units": "%"}),
        "atomic_percent_stderr": (("element",), [0.3, 0.5, 0.4, 0.2], {"units": "%"}),
    }, coords={"element": ["O", "B", "Al", "Mn"], "line": ("element", ["O_Ka", "B_Ka", "Al_Ka", "Mn_Ka"]),
               "qualitative": ("element", np.array([0, 1, 0, 0], np.int8))})
    failed, warned = quant_quality(ds)
    assert failed == ["B has a negative atomic % (-2 ± 0.5 %): physically impossible."]
    assert warned == ["Al is below the detection limit (0.5 ± 0.4 %, less than 3 esd): not detected, not a "
                      "concentration.",
                      "B_Ka is qualitative: the number depends on the background model far beyond its Poisson error."]


def test_tofsims_calibration_residual_bound_in_ppm():
    truth = simulate.poisson_counts(simulate.phantom((3, 12, 12), seed=5), seed=5)
    cal = calibration.calibrate(simulate.spectrum(truth, binning=2, seed=8).drop_vars("mz_file"), polarity=None)
    check_result(cal, "calibration")
    mass = cal["mass"].values
    ppm = np.abs(cal["residual_mass"].values / mass) * 1e6
    half_bin = 1e6 * 2 / (float(cal["sf"]) * np.sqrt(mass))
    expected = "ok" if np.all(ppm[cal["used"].values == 1] <= np.maximum(CALIBRATION_PPM, half_bin)[
        cal["used"].values == 1]) else "warning"
    assert cal.attrs["quality"] == expected
    # move one used calibrant's measured mass by 3x and by 30x its bound
    i = int(np.flatnonzero(cal["used"].values == 1)[0])
    bound = max(CALIBRATION_PPM, half_bin[i])
    for factor, quality in ((3.0, "warning"), (30.0, "failed")):
        moved = cal.copy(deep=True)
        moved["residual_mass"].values[i] = factor * bound * 1e-6 * mass[i]
        failed, warned = calibration_quality(moved)
        got = "failed" if failed else "warning" if warned else "ok"
        assert got == quality
        assert f"{factor * bound:.3g} ppm" in (failed + warned)[0]


def test_tofsims_results_inherit_the_mass_calibration_record():
    from test_tofsims_processing import grains, make_stack

    ox = grains((16, 16), 3)
    ds = make_stack({"BO-": np.broadcast_to(0.6 * ox + 0.02, (12, 16, 16)),
                     "MnO-": np.broadcast_to(3.0 * ox + 0.1, (12, 16, 16))}, total_extra=8.0, seed=1, dt=25.0)
    fine = maps.fragment_maps(ds)
    assert fine.attrs["quality"] == "ok" and fine.attrs["quality_reasons"] == []
    ds.attrs["calibration_quality"] = "warning"
    ds.attrs["calibration_quality_reasons"] = ["Calibrant(s) O- miss the fit by up to 250 ppm (bound 100 ppm)."]
    reason = "Mass calibration: Calibrant(s) O- miss the fit by up to 250 ppm (bound 100 ppm)."
    m = maps.fragment_maps(ds)
    profile = profiles.depth_profile(ds, normalize="total")
    test = profiles.uniformity_test(profile, ["BO-"])
    for result in (m, profile, test):
        check_result(result, "tofsims")
        assert result.attrs["quality"] == "warning" and result.attrs["quality_reasons"] == [reason]
    ds.attrs["calibration_quality"] = "failed"
    assert profiles.depth_profile(ds).attrs["quality"] == "failed"
