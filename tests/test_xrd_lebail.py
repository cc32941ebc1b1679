"""Le Bail phases (space group + cell, no atoms) and several dopant elements (issue 13 items 2-3).

Truths: patterns simulated from full structures (built-in simulator, and GSAS-II through the driver)
in which the second phase has atoms; the refinement fits it as a Le Bail phase without them. Several
dopants: B and Al on given sites of the simulated structure, refined back in both engines.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from doptrace.xrd import gsas2
from doptrace.xrd.errors import XRDError
from doptrace.xrd.model import PatternModel
from doptrace.xrd.recipe import load_recipe, parse_recipe
from doptrace.xrd.rietveld import run
from doptrace.xrd.simulate import grid_pattern, simulate

#: measured Rwp gap (points) between the built-in "net" rule and GSAS-II on the same Le Bail recipe
RWP_NET_GAP = 0.2  # measured 0.14 (built-in net 4.147, GSAS-II 4.287, seed 4)
needs_gsas2 = pytest.mark.skipif(not gsas2.available(), reason=gsas2.unavailable_reason() or "GSAS-II absent")

SPINEL = {"name": "spinel", "space_group": "F d -3 m:2", "cell": [8.24, 8.24, 8.24, 90, 90, 90], "scale": 0.3,
          "site": [{"label": "Li", "xyz": [0.125, 0.125, 0.125], "occupancy": {"Li": 1.0}},
                   {"label": "Mn", "xyz": [0.5, 0.5, 0.5], "occupancy": {"Mn": 1.0}},
                   {"label": "O", "xyz": [0.2625, 0.2625, 0.2625], "occupancy": {"O": 1.0}}]}
TRUTH = {"spinel:a": 8.2437, "LiTMO2:a": 2.8712, "LiTMO2:c": 14.205}


def _two_phase(lebail: bool, ratio: str | None = None):
    raw = {"instrument": {"wavelengths": [1.5405, 1.5443], "X": 2.0, "Y": 1.0, "U": 2.0, "V": -2.0, "W": 5.0},
           "range": {"two_theta": [10.0, 100.0]},
           "background": {"terms": 4, "coefficients": [300.0, -100.0, 40.0, 0.0]},
           "phase": [{"name": "LiTMO2", "space_group": "R -3 m:H", "cell": [2.87, 2.87, 14.2, 90, 90, 120],
                      "site": [{"label": "TM", "xyz": [0, 0, 0], "uiso": 0.005, "occupancy": {"Ni": 1.0}},
                               {"label": "Li", "xyz": [0, 0, 0.5], "uiso": 0.012, "occupancy": {"Li": 1.0}},
                               {"label": "O", "xyz": [0, 0, 0.2585], "uiso": 0.008, "occupancy": {"O": 1.0}}]},
                     copy.deepcopy(SPINEL)],
           "stage": [{"refine": ["scale", "background"]}, {"refine": ["cell", "displacement"]},
                     {"refine": ["xyz", "uiso"]}]}
    if lebail:
        raw["phase"][1] = {"name": "spinel", "space_group": "F d -3 m", "cell": {"a": 8.24}, "lebail": True}
        if ratio:
            raw["phase"][1]["lebail_ratio"] = ratio
    return raw


def _value(ds, name):
    names = [str(n) for n in ds.parameter.values]
    i = names.index(name)
    return float(ds.parameters_value[i]), float(ds.parameters_stderr[i])


def _check_lebail_result(ds, truth):
    a, e = float(ds.a.sel(phase="spinel")), float(ds.a_stderr.sel(phase="spinel"))
    assert abs(a - truth["spinel:a"]) < 3 * e, (ds.attrs["engine"], a, e)
    for name in ("a", "c"):
        v, e = float(ds[name].sel(phase="LiTMO2")), float(ds[f"{name}_stderr"].sel(phase="LiTMO2"))
        assert abs(v - truth[f"LiTMO2:{name}"]) < 3 * e, (ds.attrs["engine"], name, v, e)
    z, ez = _value(ds, "LiTMO2:O:z")
    assert abs(z - 0.2585) < 3 * ez, (ds.attrs["engine"], z, ez)
    assert np.isnan(float(ds.weight_fraction.sel(phase="spinel")))
    assert float(ds.weight_fraction.sel(phase="LiTMO2")) == 1.0
    assert "spinel:scale" not in [str(n) for n in ds.parameter.values]
    assert ds.attrs["lebail_phases"] == ["spinel"]
    assert any("no weight fraction for the Le Bail phase(s) spinel" in r for r in ds.attrs["quality_reasons"])
    assert ds.lebail_intensity.dims == ("lebail_reflection",) and ds.lebail_intensity.attrs["units"] == "counts deg"
    assert set(ds.lebail_phase.values) == {"spinel"}
    hkl = [str(h) for h in ds.lebail_hkl.values]
    # Fd-3m: h, k, l all odd or all even with h+k+l = 4n; 200 and 420 absent
    assert "1 1 1" in hkl and "2 2 0" in hkl and "2 0 0" not in hkl and "4 2 0" not in hkl
    assert ds.attrs["quality"] != "failed", ds.attrs["quality_reasons"]


def test_lebail_phase_without_atoms_beside_a_rietveld_phase_builtin():
    # measured (seed 1): spinel a 8.243697 ± 0.000020 (truth 8.2437), LiTMO2 a 2.871197 ± 0.000010,
    # Rwp 3.058 against 3.062 when both structures are refined (the Le Bail phase fits at least as well)
    pattern = simulate(parse_recipe(_two_phase(False), "truth.toml"), counts=30000, seed=1, values=TRUTH)
    ds = run(parse_recipe(_two_phase(True), "lebail.toml"), pattern).dataset
    full = run(parse_recipe(_two_phase(False), "truth.toml"), pattern).dataset
    _check_lebail_result(ds, TRUTH)
    assert float(ds.rwp) < float(full.rwp) + 0.01, (float(ds.rwp), float(full.rwp))
    # the extracted 311 against the true structure's: the Le Bail phase sees the spinel that is there
    assert float(ds.gof) < 1.1


def test_lebail_total_ratio_is_unbiased_where_gsas2_net_ratio_overstates_weak_reflections():
    # measured: the spinel 220 (weak in LiMn2O4) extracted 12.5 counts·deg with obs/calc, 67.8 with
    # GSAS-II's positive (obs-bkg)/(calc-bkg); Rwp 3.058 vs 3.926 (truth-structure fit 3.062)
    pattern = simulate(parse_recipe(_two_phase(False), "truth.toml"), counts=30000, seed=1, values=TRUTH)
    total = run(parse_recipe(_two_phase(True), "lebail.toml"), pattern).dataset
    net = run(parse_recipe(_two_phase(True, "net"), "lebail.toml"), pattern).dataset
    i220 = {str(ds.attrs.get("engine")) + r: float(ds.lebail_intensity[list(ds.lebail_hkl.values).index("2 2 0")])
            for r, ds in (("total", total), ("net", net))}
    assert i220["builtintotal"] < 0.5 * i220["builtinnet"], i220
    assert float(total.rwp) < float(net.rwp) - 0.5


@needs_gsas2
def test_lebail_on_a_gsas2_computed_pattern_both_engines():
    # GSAS-II computes the two-phase pattern (spinel with atoms), both engines fit the spinel as Le Bail.
    # measured (seed 4): spinel a 8.243672(20) built-in, 8.243747(34) GSAS-II (truth 8.2437); Rwp 3.149
    # built-in (obs/calc), 4.147 built-in with GSAS-II's net-count rule, 4.287 GSAS-II: with the same rule the
    # strong isolated intensities agree within 1 % and the Rwp differ by 0.14 point (not traced further)
    truth = parse_recipe(_two_phase(False), "truth.toml")
    for key, value in TRUTH.items():
        phase, name = key.split(":")
        spec = truth.phase(phase)
        cell = list(spec.cell)
        for j in ([0, 1, 2] if phase == "spinel" else [0, 1] if name == "a" else [2]):
            cell[j] = value
        spec.cell = tuple(cell)
    pattern = gsas2.simulate(truth, counts=30000, seed=4)
    recipe = parse_recipe(_two_phase(True), "lebail.toml")
    b = run(recipe, pattern).dataset
    g = gsas2.refine(recipe, pattern)
    for ds in (b, g):
        _check_lebail_result(ds, TRUTH)
    net = run(parse_recipe(_two_phase(True, "net"), "lebail.toml"), pattern).dataset
    for hkl in ("1 1 1", "3 1 1", "4 0 0", "4 4 0"):
        ib = float(net.lebail_intensity[list(net.lebail_hkl.values).index(hkl)])
        ig = float(g.lebail_intensity[list(g.lebail_hkl.values).index(hkl)])
        assert ib == pytest.approx(ig, rel=0.01), (hkl, ib, ig)
    assert abs(float(net.rwp) - float(g.rwp)) < RWP_NET_GAP, (float(net.rwp), float(g.rwp))
    assert float(b.rwp) < float(g.rwp)


# ---------------------------------------------------------------------------------------- several dopants


def _doped(truth_b=None, truth_al=None):
    """LiNiO2-like: B candidate on the Li site, Al on the TM site; with truths, the doped structure itself."""
    li, tm = {"Li": 1.0}, {"Ni": 1.0}
    if truth_b is not None:
        li, tm = {"Li": 1.0 - truth_b, "B": truth_b}, {"Ni": 1.0 - truth_al, "Al": truth_al}
    raw = {"instrument": {"wavelengths": [1.5405, 1.5443], "X": 2.0, "Y": 1.0, "U": 2.0, "V": -2.0, "W": 5.0},
           "range": {"two_theta": [10.0, 120.0]}, "background": {"terms": 4, "coefficients": [300.0, -100.0, 40.0, 0.0]},
           "phase": [{"name": "LNO", "space_group": "R -3 m:H", "cell": [2.878, 2.878, 14.19, 90, 90, 120],
                      "site": [{"label": "TM", "xyz": [0, 0, 0], "uiso": 0.005, "occupancy": tm},
                               {"label": "Li", "xyz": [0, 0, 0.5], "uiso": 0.012, "occupancy": li},
                               {"label": "O", "xyz": [0, 0, 0.2585], "uiso": 0.008, "occupancy": {"O": 1.0}}]}],
           "stage": [{"refine": ["scale", "background"]}, {"refine": ["cell", "displacement"]},
                     {"refine": ["xyz", "occupancy"]}]}
    if truth_b is None:
        raw["dopant"] = [{"element": "B", "sites": ["LNO:Li"]}, {"element": "Al", "sites": ["LNO:TM"]}]
    return raw


def test_two_dopants_on_one_site_keep_the_site_total():
    raw = _doped()
    raw["dopant"] = [{"element": "B", "sites": ["LNO:TM"], "start": 0.03}, {"element": "Al", "sites": ["LNO:TM"],
                                                                             "start": 0.05}]
    recipe = parse_recipe(raw, "two.toml")
    model = PatternModel(recipe, grid_pattern(recipe, 0.1))
    assert [p for p, _ in model.dopant_params] == ["B@LNO:TM", "Al@LNO:TM"]
    tm = model.site_state(0, {**model.values, "B@LNO:TM": 0.04, "Al@LNO:TM": 0.06})[0][2]
    assert tm == pytest.approx({"Ni": 0.90, "B": 0.04, "Al": 0.06})


def test_two_dopant_fractions_recovered_builtin_simulator():
    # measured (seed 3): B on Li 0.0359 ± 0.0172, Al on TM 0.0427 ± 0.0049 (truths 0.06, 0.04; boron's few
    # electrons make it the weakly determined one)
    pattern = simulate(parse_recipe(_doped(0.06, 0.04), "truth.toml"), counts=30000, seed=3)
    ds = run(parse_recipe(_doped(), "doped.toml"), pattern).dataset
    _check_dopants(ds)


def _check_dopants(ds):
    assert [str(s) for s in ds.site.values] == ["B@LNO:Li", "Al@LNO:TM"]
    assert [str(e) for e in ds.dopant.values] == ["B", "Al"]
    for j, truth in enumerate((0.06, 0.04)):
        f, e = float(ds.dopant_fraction[j]), float(ds.dopant_fraction_stderr[j])
        assert abs(f - truth) < 2 * e, (ds.attrs["engine"], j, f, e)
        assert 0 < e < 0.02
    assert str(ds.dopant_verdict.values[1]) == "determined"
    assert ds.attrs["dopant_element"] == "B Al"


@needs_gsas2
def test_two_dopant_fractions_recovered_both_engines_on_a_gsas2_pattern():
    # measured (seed 5): Rwp 3.2050 built-in, 3.2051 GSAS-II; B on Li 0.0532(171) / 0.0537(171),
    # Al on TM 0.0381(49) / 0.0380(49)
    pattern = gsas2.simulate(parse_recipe(_doped(0.06, 0.04), "truth.toml"), counts=30000, seed=5)
    recipe = parse_recipe(_doped(), "doped.toml")
    b = run(recipe, pattern).dataset
    g = gsas2.refine(recipe, pattern)
    for ds in (b, g):
        _check_dopants(ds)
    assert abs(float(b.rwp) - float(g.rwp)) < 0.05, (float(b.rwp), float(g.rwp))
    for j in range(2):
        assert abs(float(b.dopant_fraction[j]) - float(g.dopant_fraction[j])) < 0.3 * float(g.dopant_fraction_stderr[j])


# ---------------------------------------------------------------------------------------- bad recipes

BASE = '''
[instrument]
wavelengths = [1.5406]
[range]
two_theta = [15.0, 90.0]
[[phase]]
name = "LNO"
space_group = "R -3 m:H"
cell = [2.878, 2.878, 14.19, 90, 90, 120]
site = [{label = "Ni", xyz = [0, 0, 0], occupancy = {Ni = 1.0}},
        {label = "Li", xyz = [0, 0, 0.5], occupancy = {Li = 1.0}},
        {label = "O", xyz = [0, 0, 0.2585], occupancy = {O = 1.0}}]
'''


@pytest.mark.parametrize("extra, message", [
    ('[[dopant]]\nelement = "B"\nsites = ["LNO:Li"]\n[[dopant]]\nelement = "B"\nsites = ["LNO:Ni"]\n',
     r"line 17: .*dopant B is given twice \(line 14: element = \"B\" and line 17"),
    ('[[dopant]]\nelement = "B"\nsites = ["LNO:Li"]\n[[dopant]]\nelement = "Al"\nsites = ["LNO:TM"]\n',
     r"line 18: .*dopant Al: site 'LNO:TM' does not exist"),
    ('[[dopant]]\nelement = "B"\nsites = ["LNO:Ni"]\nstart = 0.6\n[[dopant]]\nelement = "Al"\nsites = ["LNO:Ni"]\n'
     'start = 0.5\n', r"line 20: .*dopant start fractions on LNO:Ni sum to 1\.1 \(B 0\.6, Al 0\.5\), above the site "
     r"total 1"),
    ('[[dopant]]\nelement = "B"\nsites = ["LNO:Li", "LNO:Li"]\n', r"line 15: .*site\(s\) \['LNO:Li'\] listed twice"),
    ('[[phase]]\nname = "imp"\nspace_group = "F d -3 m"\ncell = {a = 8.24, c = 8.3}\nlebail = true\n',
     r"line 16: .*cell table .* must give exactly a .*fixed by symmetry \['c'\]"),
    ('[[phase]]\nname = "imp"\nspace_group = "F d -3 m"\ncell = {a = 8.24}\nlebail = true\n'
     'site = [{label = "O", xyz = [0, 0, 0], occupancy = {O = 1.0}}]\n', r"line 18: .*a Le Bail phase"),
    ('[[phase]]\nname = "imp"\nspace_group = "F d -3 m"\ncell = {a = 8.24}\nlebail = true\n'
     '[[dopant]]\nelement = "B"\nsites = ["imp:O"]\n', r"line 20: .*Le Bail phase imp, which has no atoms"),
])
def test_bad_lebail_and_dopant_recipes_name_the_line(tmp_path, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text(BASE + extra)
    with pytest.raises(XRDError, match=message):
        load_recipe(path)


def test_lebail_phase_cannot_be_simulated():
    recipe = parse_recipe(_two_phase(True), "lebail.toml")
    with pytest.raises(XRDError, match="Le Bail phase.*spinel.*no structure"):
        simulate(recipe)


def test_codoped_example_recipe_recovers_the_fractions_builtin():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "xrd" / "lno-b-al-codoped.toml"
    recipe = load_recipe(path)
    assert [(d.element, d.sites) for d in recipe.dopants] == [("B", ["LNO:Li", "LNO:TM"]), ("Al", ["LNO:TM"])]
    # measured (seed 2): B on Li 0.0828(183), B on TM 0.0009(175), Al on TM 0.0422(295): B and Al on one
    # site are strongly correlated (both lower its scattering), hence the wide Al esd here
    truth = {"B@LNO:Li": 0.06, "B@LNO:TM": 0.0, "Al@LNO:TM": 0.04}
    pattern = simulate(recipe, dopant=truth, counts=30000, seed=2)
    ds = run(recipe, pattern).dataset
    assert [str(s) for s in ds.site.values] == list(truth)
    for j, value in enumerate(truth.values()):
        f, e = float(ds.dopant_fraction[j]), float(ds.dopant_fraction_stderr[j])
        assert abs(f - value) < 2 * e, (j, f, e)
    occ = ds.attrs["site_occupancies"]["LNO:TM"]
    assert sum(occ.values()) == pytest.approx(1.0, abs=1e-12)


def test_report_checks_name_each_dopant_on_its_site():
    from doptrace.report.techniques.xrd import summary, xrd_checks

    pattern = simulate(parse_recipe(_doped(0.06, 0.04), "truth.toml"), counts=30000, seed=3)
    ds = run(parse_recipe(_doped(), "doped.toml"), pattern).dataset
    rows = xrd_checks("s1", ds, {"dopant": "B", "xrd_expected_fraction": 0.05, "xrd_sites": []})
    assert len(rows) == 2
    text = " ".join(str(r) for r in rows)
    assert "B on LNO:Li" in text and "Al on LNO:TM" in text and "B Al" not in text
    assert "Al on LNO:TM: 0.043 ± 0.005 -> determined" in summary(ds)
