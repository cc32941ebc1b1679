"""Isotropic size (µm) and microstrain (ppm) with LGmix, both engines (issue 13 item 1).

Truth: patterns computed by GSAS-II through the driver (xrd.gsas2.simulate: GSAS-II computes,
doptrace refines) with known size and mustrain; both engines must recover them within 10 %.
"""

from __future__ import annotations

import pytest

from doptrace.xrd import gsas2
from doptrace.xrd.recipe import parse_recipe
from doptrace.xrd.rietveld import run

pytestmark = pytest.mark.skipif(not gsas2.available(), reason=gsas2.unavailable_reason() or "GSAS-II absent")


def _recipe(size, strain, mix=1.0, stages=True):
    raw = {"instrument": {"wavelengths": [1.5405, 1.5443], "X": 2.0, "Y": 1.0, "U": 2.0, "V": -2.0, "W": 5.0},
           "range": {"two_theta": [10.0, 120.0]}, "background": {"terms": 4, "coefficients": [300.0, -100.0, 40.0, 0.0]},
           "phase": [{"name": "LiTMO2", "space_group": "R -3 m:H", "cell": [2.85, 2.85, 14.23, 90, 90, 120],
                      "size_um": size, "mustrain": strain, "size_mix": mix, "mustrain_mix": mix,
                      "site": [{"label": "TM", "xyz": [0, 0, 0], "uiso": 0.005,
                                "occupancy": {"Ni": 0.8, "Co": 0.1, "Mn": 0.1}},
                               {"label": "Li", "xyz": [0, 0, 0.5], "uiso": 0.012, "occupancy": {"Li": 1.0}},
                               {"label": "O", "xyz": [0, 0, 0.2585], "uiso": 0.008, "occupancy": {"O": 1.0}}]}],
           # X (1/cos) and Y (tan) are instrumental and held: they have the same angular form as size and strain
           "stage": [{"refine": ["scale", "background"]}, {"refine": ["cell", "displacement"]},
                     {"refine": ["size", "mustrain"]}, {"refine": ["xyz", "uiso"]}]}
    return parse_recipe(raw, f"size-strain-{size}-{strain}-{mix}.toml")


def _value(ds, name):
    names = [str(n) for n in ds.parameter.values]
    i = names.index(name)
    return float(ds.parameters_value[i]), float(ds.parameters_stderr[i])


# GSAS-II started at (0.2 µm, 300 ppm) with LGmix 0.6 diverges (its stage aborts, mustrain 1.6e5 ppm; the
# result's quality is then "failed"); the built-in engine reaches the truth from there too. The mixed case
# therefore starts both engines nearer.
@pytest.mark.parametrize("size, strain, mix, start", [(0.04, 1500.0, 1.0, (0.2, 300.0)),
                                                      (0.015, 2000.0, 0.6, (0.03, 1000.0))])
def test_size_and_strain_round_trip_both_engines(size, strain, mix, start):
    # measured (40 nm, 1500 ppm, LGmix 1): built-in 0.04001 ± 0.00016 µm, 1515 ± 45 ppm; GSAS-II 0.04001, 1515
    # (15 nm, 2000 ppm, LGmix 0.6): built-in 0.01499 µm, 2008 ± 86 ppm; GSAS-II 0.01500, 2031 ± 87 ppm
    pattern = gsas2.simulate(_recipe(size, strain, mix), counts=30000, seed=1)
    start = _recipe(*start, mix)
    results = {"builtin": run(start, pattern).dataset, "gsas2": gsas2.refine(start, pattern)}
    for engine, ds in results.items():
        got_size, esd_size = _value(ds, "LiTMO2:size")
        got_strain, esd_strain = _value(ds, "LiTMO2:mustrain")
        assert got_size == pytest.approx(size, rel=0.10), (engine, got_size, esd_size)
        assert got_strain == pytest.approx(strain, rel=0.10), (engine, got_strain, esd_strain)
        assert ds.attrs["quality"] == "ok", (engine, ds.attrs["quality_reasons"])
    # the engines agree with each other far better than with the truth
    b, g = results["builtin"], results["gsas2"]
    assert abs(_value(b, "LiTMO2:size")[0] - _value(g, "LiTMO2:size")[0]) < 0.5 * _value(g, "LiTMO2:size")[1]
    assert abs(float(b.rwp) - float(g.rwp)) < 0.05


def test_no_size_means_10_um_in_both_engines_not_a_gsas2_clamp():
    # a recipe without size_um: both engines use GSAS-II's 10 µm and the driver never relies on its clamp
    recipe = _recipe(10.0, 0.0)
    pattern = gsas2.simulate(recipe, counts=30000, seed=2)
    raw_start = _recipe(10.0, 0.0)
    for phase in raw_start.phases:
        phase.size_um = None
    b = run(raw_start, pattern).dataset
    g = gsas2.refine(raw_start, pattern)
    assert abs(float(b.rwp) - float(g.rwp)) < 0.05, (float(b.rwp), float(g.rwp))


def test_boron_fractions_agree_with_gsas2_within_0p3_esd_on_broad_peaks():
    # issue 13: GSAS-II-simulated nanocrystalline two-phase Li-rich pattern (15 nm, 2000 ppm, B 0.06 on
    # LiTMO2:Li, 0.08 on the Li2MnO3 Li layer). With GSAS-II's upper reflection cut (reflection_margin 0,
    # the default) the engines' B fractions differ by at most 0.23 GSAS-II esd (measured: Li2c/Li4h
    # 0.315(218) vs 0.365(222), LiTMO2:Li -0.101(127) vs -0.130(131)); Rwp 2.0554 vs 2.0555.
    # Cause: GSAS-II's h^2-only derivative of the tied hexagonal A0 (R-3m LiTMO2); with the full chain rule
    # 0.039 esd (tests/test_xrd_gsas2_trace.py::test_li_rich_b_residual_is_gsas2s_a0_derivative).
    from xrd_cases import li_rich_broad

    recipe, pattern = li_rich_broad()
    b = run(recipe, pattern).dataset
    g = gsas2.refine(recipe, pattern)
    assert list(b.site.values) == list(g.site.values)
    diff = (b.dopant_fraction.values - g.dopant_fraction.values) / g.dopant_fraction_stderr.values
    assert abs(diff).max() < 0.3, diff
    assert abs(float(b.rwp) - float(g.rwp)) < 0.05
