"""Quantities, the common depth axis and the doping-distribution checks, on inputs with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from doptrace.report import checks as ck
from doptrace.core.units import Quantity, parse_quantity
from doptrace.report.depth import depth_series, etch_depth, sputter_depth
from doptrace.report.techniques import adapters

XPS, XRD, TOFSIMS = (adapters()[name] for name in ("xps", "xrd", "tofsims"))


# ----------------------------------------------------------------------------- quantities
@pytest.mark.parametrize("text, kind, value, stderr", [
    ("0.40 ± 0.04 nm/s", "rate", 0.40, 0.04),
    ("24 +/- 2.4 nm/min", "rate", 0.40, 0.04),
    ("4 Å/s", "rate", 0.4, 0.0),
    ("0.5 ± 0.025 µm", "length", 500.0, 25.0),
    ("60 nm", "length", 60.0, 0.0),
    ("2 min", "time", 120.0, 0.0),
])
def test_quantities_convert_to_nm_and_s(text, kind, value, stderr):
    q = parse_quantity(text, kind)
    assert q.value == pytest.approx(value) and q.stderr == pytest.approx(stderr)


def test_quantity_table_form_and_refusals():
    assert parse_quantity({"value": 500, "stderr": 25, "units": "nm"}, "length") == Quantity(500.0, 25.0, "nm")
    for bad, kind, words in [("0.4 nm", "rate", "length unit"), ("60 s", "length", "time unit"),
                             ("0.4", "rate", "no unit"), ("0.4 furlong/s", "rate", "unknown unit"),
                             ("fast", "rate", "not 'VALUE"), ("1 ± -2 nm", "length", "stderr >= 0"),
                             ({"value": 1}, "length", "needs value and units")]:
        with pytest.raises(ValueError, match=words):
            parse_quantity(bad, kind)


# ----------------------------------------------------------------------------- depth axis
def test_depth_conversions_propagate_the_scale_error():
    z, dz = etch_depth([0, 50, 100], Quantity(0.4, 0.04, "nm/s"))
    np.testing.assert_allclose(z, [0, 20, 40])
    np.testing.assert_allclose(dz, [0, 2, 4])
    z, dz = sputter_depth([0, 250, 500], Quantity(500.0, 25.0, "nm"), 1000.0)
    np.testing.assert_allclose(z, [0, 125, 250])
    np.testing.assert_allclose(dz, [0, 6.25, 12.5])


def test_sims_depth_agrees_with_tofsims_own_conversion():
    """The report's ToF-SIMS depth equals tofsims.processing.sputter_to_depth on the same scans."""
    from doptrace.tofsims.pipeline import total_sputter_time
    from doptrace.tofsims.processing import sputter_to_depth

    t = np.arange(24) * 50.0
    profile = xr.Dataset({"counts": (("fragment", "scan"), np.ones((2, 24)))},
                         coords={"fragment": ["BO-", "MnO-"], "sputter_time": ("scan", t)},
                         attrs={"sputter_time_total": 1200.0})
    theirs = sputter_to_depth(profile, 500.0, crater_depth_stderr_nm=25.0)["depth"]
    ours, ours_se = sputter_depth(t, Quantity(500.0, 25.0, "nm"), total_sputter_time(profile))
    np.testing.assert_allclose(ours, theirs.values)
    np.testing.assert_allclose(ours_se, theirs.attrs["rate_stderr_nm_per_s"] * t)


def test_depth_series_ratios_carry_poisson_errors():
    counts = np.array([[100, 400], [1000, 1600]], float)  # BO-, MnO- over two scans
    profile = xr.Dataset({"counts": (("fragment", "scan"), counts), "reference": ("scan", [10000.0, 10000.0])},
                         coords={"fragment": ["BO-", "MnO-"], "sputter_time": ("scan", [0.0, 10.0])},
                         attrs={"normalization": "total"})
    track = TOFSIMS.depth_track([{"profile": profile, "uniformity": None}],
                                {**ck.defaults(), "sims_fragment": "BO-", "sims_host": "MnO-"},
                                {"sims_crater_depth": Quantity(100.0, 5.0, "nm")})
    s = depth_series("S", {"ToF-SIMS": track})
    np.testing.assert_allclose(s["sims_depth"], [0, 50])
    np.testing.assert_allclose(s["sims_ratio"], [0.1, 0.25])
    np.testing.assert_allclose(s["sims_ratio_stderr"], [0.1 * np.sqrt(1 / 100 + 1 / 1000),
                                                        0.25 * np.sqrt(1 / 400 + 1 / 1600)])
    np.testing.assert_allclose(s["sims_fraction"], [0.01, 0.04])
    np.testing.assert_allclose(s["sims_fraction_stderr"], np.sqrt([0.01 * 0.99 / 1e4, 0.04 * 0.96 / 1e4]))


# ----------------------------------------------------------------------------- checks
def test_weighted_line_matches_numpy_polyfit():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 100, 9)
    sigma = rng.uniform(0.01, 0.03, x.size)
    y = 0.5 + 1e-3 * x + rng.normal(0, sigma)
    b, se_b, mean, se_mean, chi2, dof = ck.weighted_line(x, y, sigma)
    coef, cov = np.polyfit(x, y, 1, w=1 / sigma, cov="unscaled")
    assert b == pytest.approx(coef[0]) and se_b == pytest.approx(np.sqrt(cov[0, 0]))
    w = 1 / sigma**2
    assert mean == pytest.approx(np.sum(w * y) / np.sum(w)) and dof == 8
    assert se_mean == pytest.approx(1 / np.sqrt(w.sum()))


def _xps_truth(flat: bool, n_draws: int, seed: int):
    """Verdicts over noise draws of a flat 50 % share or a share decaying from 30 % to 3 % beyond 60 nm."""
    rng = np.random.default_rng(seed)
    depth = np.array([0, 8, 20, 40, 60, 80, 120, 160.0])
    truth = np.full(depth.size, 0.5) if flat else 0.3 * np.exp(-(depth - 60) / 40)
    sigma = np.full(depth.size, 0.015)
    verdicts = []
    for _ in range(n_draws):
        rows = XPS.xps_checks("S", depth, truth + rng.normal(0, sigma), sigma, 0.1, ck.defaults())
        verdicts.append(ck.technique_verdict(rows))
    return verdicts


def test_xps_check_supports_a_flat_share_and_contradicts_a_decay():
    flat = _xps_truth(True, 200, 1)
    # slope at 3 esd and scatter at 2x noise: a flat truth is called flat in nearly every draw
    assert flat.count(ck.SUPPORTED) >= 190, flat.count(ck.SUPPORTED)
    decaying = _xps_truth(False, 200, 2)
    assert decaying.count(ck.CONTRADICTED) == 200


def test_xps_check_needs_three_levels_beyond_the_surface():
    rows = XPS.xps_checks("S", [0, 20, 70, 90], [0.1, 0.3, 0.5, 0.5], [0.01] * 4, 0.0, ck.defaults())
    assert {r.verdict for r in rows} == {ck.UNDETERMINED}
    assert "only 2 XPS level(s)" in rows[0].reason


def test_xrd_check_follows_esd_and_detection_limit():
    sites = ["LiTMO2:Li", "Li2MnO3:Li4h", "LiTMO2:TM"]
    ds = xr.Dataset({"dopant_fraction": ("site", [0.06, 0.001, 0.002]),
                     "dopant_fraction_stderr": ("site", [0.01, 0.01, 0.001]),
                     "dopant_verdict": ("site", ["determined", "consistent with zero", "consistent with zero"]),
                     "dopant_min_detectable": ("site", [0.03, 0.07, 0.003])},
                    coords={"site": sites}, attrs={"dopant_element": "B", "dopant_min_detectable_sigma": 3.0})
    rows = XRD.xrd_checks("S", ds, {**ck.defaults(), "xrd_expected_fraction": 0.05})
    assert [r.verdict for r in rows] == [ck.SUPPORTED, ck.UNDETERMINED, ck.CONTRADICTED]
    assert [r.decisive for r in rows] == [True, True, False]
    assert rows[0].value == 0.06 and rows[0].stderr == 0.01
    assert ck.technique_verdict(rows) == ck.SUPPORTED
    assert ck.technique_verdict(rows[1:2]) == ck.UNDETERMINED


def test_sample_verdict_needs_agreement():
    assert ck.sample_verdict({"XRD": ck.SUPPORTED, "XPS": ck.UNDETERMINED})[0] == ck.SUPPORTED
    assert ck.sample_verdict({"XRD": ck.CONTRADICTED, "XPS": ck.CONTRADICTED})[0] == ck.CONTRADICTED
    verdict, reason = ck.sample_verdict({"XRD": ck.SUPPORTED, "XPS": ck.CONTRADICTED})
    assert verdict == ck.UNDETERMINED and "disagree" in reason
