"""Built-in XRD engine: profile, correction, symmetry and structure-factor functions against known truths."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from doptrace.xrd.background import chebyshev_background, chebyshev_design
from doptrace.xrd.errors import XRDError
from doptrace.xrd.model import PatternModel
from doptrace.xrd.profiles import (fcj_offsets, lorentz_polarization, peak_position, pseudo_voigt, tch_fwhm_eta)
from doptrace.xrd.recipe import PhaseSpec, SiteSpec, parse_recipe
from doptrace.xrd.reflections import generate_reflections
from doptrace.xrd.simulate import grid_pattern
from doptrace.xrd.structure import anomalous, build_phase, cell_mass, form_factor


def test_pseudo_voigt_unit_area_and_fwhm():
    x = np.linspace(-40, 40, 800001)
    for eta in (0.0, 0.3, 1.0):
        y = pseudo_voigt(x, 0.12, eta)
        assert np.trapezoid(y, x) == pytest.approx(1.0, abs=2e-3 if eta else 1e-9)
        # both components share the FWHM, so the half maximum sits at +-FWHM/2
        assert pseudo_voigt(0.06, 0.12, eta) == pytest.approx(0.5 * pseudo_voigt(0.0, 0.12, eta), rel=1e-12)


def test_tch_limits_and_mixing():
    sigma2 = 1.0e4 / (8 * math.log(2))  # Gaussian FWHM 1 deg
    fwhm, eta = tch_fwhm_eta(sigma2, 0.0)
    assert (float(fwhm), float(eta)) == pytest.approx((1.0, 0.0))
    fwhm, eta = tch_fwhm_eta(1e-12, 100.0)  # Lorentzian FWHM 1 deg
    assert float(fwhm) == pytest.approx(1.0, rel=1e-6)
    assert float(eta) == pytest.approx(1.36603 - 0.47719 + 0.11116, rel=1e-5)
    # equal widths: TCH total FWHM = (1 + 2.69269 + 2.42843 + 4.47163 + 0.07842 + 1)^(1/5)
    fwhm, _ = tch_fwhm_eta(sigma2, 100.0)
    assert float(fwhm) == pytest.approx((1 + 2.69269 + 2.42843 + 4.47163 + 0.07842 + 1) ** 0.2, rel=1e-9)


def test_lorentz_polarization_gsas2_and_monochromator_forms():
    # 2theta = 60: L = 1/(2 sin^2 30 cos 30), P = 0.3 cos^2 60 + 0.7
    lorentz = 1 / (2 * 0.25 * math.cos(math.radians(30)))
    assert float(lorentz_polarization(60.0, polarization=0.7)) == pytest.approx(lorentz * (0.3 * 0.25 + 0.7))
    # p = 0.5 is the unpolarised (1 + cos^2 2theta)/2
    assert float(lorentz_polarization(60.0, polarization=0.5)) == pytest.approx(lorentz * (1 + 0.25) / 2)
    cm = math.cos(math.radians(26.6)) ** 2
    assert float(lorentz_polarization(60.0, monochromator_angle=26.6)) == pytest.approx(
        lorentz * (1 + cm * 0.25) / (1 + cm))


def test_peak_position_bragg_and_displacement():
    d = 1.5405 / (2 * math.sin(math.radians(20.0)))  # 2theta = 40 exactly
    assert float(peak_position(d, 1.5405)) == pytest.approx(40.0, abs=1e-12)
    shifted = float(peak_position(d, 1.5405, zero=0.01, displacement_um=100.0, radius_mm=200.0))
    # Bragg-Brentano displacement s: d(2theta) = -2 s cos(theta)/R rad
    expected = 40.0 + 0.01 - math.degrees(2 * 100e-3 * math.cos(math.radians(20)) / 200.0)
    assert shifted == pytest.approx(expected, abs=1e-12)
    assert math.isnan(float(peak_position(0.5, 1.5405)))


def test_fcj_quadrature_matches_direct_integration():
    shl, tt0 = 0.05, 20.0
    offsets, weights = fcj_offsets(np.array([tt0]), shl, 12)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(offsets < 0)  # below 90 deg axial divergence pulls intensity to low angle
    # direct FCJ weight W(2phi) = (SH/L - h)/(h cos 2phi), h = sqrt(cos^2 2phi / cos^2 2theta - 1)
    c0 = math.cos(math.radians(tt0))
    phi_min = math.acos(c0 * math.sqrt(1 + shl**2))
    phi = np.linspace(phi_min, math.radians(tt0), 2_000_001)[1:-1]
    h = np.sqrt(np.cos(phi) ** 2 / c0**2 - 1)
    w = (shl - h) / (h * np.cos(phi))
    mean_direct = np.trapezoid(w * np.degrees(phi - math.radians(tt0)), phi) / np.trapezoid(w, phi)
    assert float((offsets * weights).sum()) == pytest.approx(mean_direct, rel=2e-3)
    above, _ = fcj_offsets(np.array([120.0]), shl, 8)
    assert np.all(above > 0)


def test_chebyshev_background_first_kind_on_data_limits():
    x = np.linspace(15, 130, 50)
    coeffs = [155.6, -166.7, 129.6, -72.9]
    t = -1 + 2 * (x - 15) / 115
    assert np.allclose(chebyshev_background(x, coeffs), np.polynomial.chebyshev.chebval(t, coeffs))
    assert chebyshev_design(x, 3)[:, 2] == pytest.approx(2 * t**2 - 1)


def test_reflections_cubic_multiplicities_and_absences():
    pm3m = generate_reflections(gemmi.find_spacegroup_by_name("P m -3 m"), [4.0] * 3 + [90] * 3, 1.3)
    table = dict(zip(pm3m.labels(), pm3m.multiplicity.tolist()))
    assert table["1 0 0"] == 6 and table["1 1 0"] == 12 and table["1 1 1"] == 8 and table["2 1 0"] == 24
    assert table["2 1 1"] == 24 and table["2 2 1"] == 24 and table["3 0 0"] == 6
    fm3m = generate_reflections(gemmi.find_spacegroup_by_name("F m -3 m"), [4.0] * 3 + [90] * 3, 1.0)
    labels = fm3m.labels()
    assert labels[:4] == ["1 1 1", "2 0 0", "2 2 0", "3 1 1"]
    r3m = generate_reflections(gemmi.find_spacegroup_by_name("R -3 m:H"), [2.85, 2.85, 14.23, 90, 90, 120], 1.4)
    assert r3m.labels()[:6] == ["0 0 3", "1 0 1", "0 0 6", "0 1 2", "1 0 4", "0 1 5"]
    assert r3m.multiplicity[:2].tolist() == [2, 6]


def test_site_symmetry_and_cell_mass_of_li2mno3():
    spec = PhaseSpec("Li2MnO3", "C 1 2/m 1", (4.937, 8.532, 5.030, 90, 109.46, 90), [
        SiteSpec("Li2b", (0, 0.5, 0), 0.01, {"Li": 1}), SiteSpec("Mn4g", (0, 0.1671, 0), 0.01, {"Mn": 1}),
        SiteSpec("Li2c", (0, 0, 0.5), 0.01, {"Li": 1}), SiteSpec("Li4h", (0, 0.6606, 0.5), 0.01, {"Li": 1}),
        SiteSpec("O4i", (0.2189, 0, 0.2273), 0.01, {"O": 1}), SiteSpec("O8j", (0.254, 0.3223, 0.2233), 0.01, {"O": 1})])
    phase = build_phase(spec)
    assert [s.multiplicity for s in phase.sites] == [2, 4, 2, 4, 4, 8]
    assert [s.free_names for s in phase.sites] == [[], ["y"], [], ["y"], ["x", "z"], ["x", "y", "z"]]
    assert phase.cell_free == ["a", "b", "c", "beta"]
    li2mno3 = 2 * 6.94 + 54.938 + 3 * 15.999
    assert cell_mass(phase) == pytest.approx(4 * li2mno3, rel=2e-3)


def _cscl_recipe():
    raw = {
        "instrument": {"wavelengths": [1.5405], "polarization": 0.5, "U": 0, "V": 0, "W": 4},
        "range": {"two_theta": [10.0, 80.0]},
        "phase": [{"name": "CsCl", "space_group": "P m -3 m", "cell": [4.12, 4.12, 4.12, 90, 90, 90],
                   "site": [{"label": "Cs", "xyz": [0, 0, 0], "uiso": 0.0, "occupancy": {"Cs": 1.0}},
                            {"label": "Cl", "xyz": [0.5, 0.5, 0.5], "uiso": 0.0, "occupancy": {"Cl": 1.0}}]}],
    }
    return parse_recipe(raw, "cscl.toml")


def test_structure_factor_cscl_by_hand():
    recipe = _cscl_recipe()
    model = PatternModel(recipe, grid_pattern(recipe))
    values = model.values
    f2 = model.structure_factor_sq(0, values)
    labels = model.reflections[0].labels()
    for label, sign in (("1 0 0", -1), ("1 1 0", +1), ("1 1 1", -1)):
        h = np.array([int(v) for v in label.split()])
        stol2 = (h @ h) / 4.12**2 / 4
        fcs = form_factor("Cs", stol2) + anomalous("Cs", 1.5405)
        fcl = form_factor("Cl", stol2) + anomalous("Cl", 1.5405)
        assert f2[labels.index(label)] == pytest.approx(abs(fcs + sign * fcl) ** 2, rel=1e-9)


def test_nan_counts_and_bad_recipes_raise_xrderror():
    recipe = _cscl_recipe()
    pattern = grid_pattern(recipe)
    pattern.values[5] = np.nan
    with pytest.raises(XRDError, match="NaN"):
        PatternModel(recipe, pattern)
    raw = {"phase": [{"name": "X", "space_group": "P 7", "cell": [4, 4, 4, 90, 90, 90],
                      "site": [{"label": "A", "xyz": [0, 0, 0], "occupancy": {"Cu": 1}}]}]}
    with pytest.raises(XRDError, match="not a space group"):
        PatternModel(parse_recipe(raw, "bad.toml"), grid_pattern(recipe))
    raw["phase"][0]["space_group"] = "P 63/m"  # cubic cell breaks hexagonal symmetry
    with pytest.raises(XRDError, match="breaks"):
        PatternModel(parse_recipe(raw, "bad.toml"), grid_pattern(recipe))
    raw["phase"][0]["space_group"] = "P m -3 m"
    raw["dopant"] = {"element": "B", "sites": ["X:Nope"]}
    with pytest.raises(XRDError, match="X:Nope"):
        parse_recipe(raw, "bad.toml")


def _layered_raw(po_ratio=None):
    phase = {"name": "LiTMO2", "space_group": "R -3 m:H", "cell": [2.85, 2.85, 14.23, 90, 90, 120], "size_um": 0.2,
             "site": [{"label": "TM", "xyz": [0, 0, 0], "uiso": 0.005, "occupancy": {"Ni": 0.5, "Mn": 0.5}},
                      {"label": "Li", "xyz": [0, 0, 0.5], "uiso": 0.012, "occupancy": {"Li+": 1.0}},
                      {"label": "O", "xyz": [0, 0, 0.2585], "uiso": 0.008, "occupancy": {"O": 1.0}}]}
    if po_ratio is not None:
        phase["preferred_orientation"] = {"hkl": [0, 0, 3], "ratio": po_ratio}
    return {"instrument": {"wavelengths": [1.5405, 1.5443], "ka2_ratio": 0.5, "polarization": 0.7, "X": 2.0},
            "range": {"two_theta": [15.0, 90.0], "exclude": [[40.0, 41.0]]},
            "background": {"terms": 3, "coefficients": [200.0, -50.0, 10.0]},
            "phase": [phase],
            "stage": [{"refine": ["scale", "background"]}, {"refine": ["preferred_orientation", "cell", "xyz"]}]}


def test_preferred_orientation_and_exclusion_round_trip():
    from doptrace.xrd.rietveld import run
    from doptrace.xrd.simulate import simulate

    truth_recipe = parse_recipe(_layered_raw(0.8), "po.toml")
    pattern, truth = simulate(truth_recipe, counts=2e5, seed=3, return_truth=True)
    start = parse_recipe(_layered_raw(1.0), "po.toml")  # refinement starts without texture
    result = run(start, pattern)
    ratio = result.values["LiTMO2:po_ratio"]
    esd = dict(zip(result.fit.names, result.fit.stderr))["LiTMO2:po_ratio"]
    assert abs(ratio - 0.8) < 3 * esd and esd < 0.01
    assert abs(result.values["LiTMO2:O:z"] - 0.2585) < 3 * dict(zip(result.fit.names, result.fit.stderr))["LiTMO2:O:z"]
    ds = result.dataset
    inside = (ds.two_theta >= 40.0) & (ds.two_theta <= 41.0)
    assert int(ds.used[inside].sum()) == 0 and int(ds.nobs) == int(ds.sizes["two_theta"] - inside.sum())
    assert float(ds.gof) == pytest.approx(1.0, abs=0.1)


def test_cif_written_by_cif_out_reads_back_with_the_same_structure_factors(tmp_path):
    from doptrace.xrd.cif_out import cif_texts
    from doptrace.xrd.rietveld import run
    from doptrace.xrd.simulate import grid_pattern, simulate

    recipe = parse_recipe(_layered_raw(), "layered.toml")
    result = run(recipe, simulate(recipe, counts=1e5, seed=1))
    (tmp_path / "LiTMO2.cif").write_text(cif_texts(result)["LiTMO2"])
    raw = _layered_raw()
    raw["phase"][0] = {"name": "LiTMO2", "cif": "LiTMO2.cif", "size_um": 0.2}
    from_cif = parse_recipe(raw, tmp_path / "from_cif.toml")
    model = PatternModel(from_cif, grid_pattern(from_cif))
    assert [s.multiplicity for s in model.phases[0].sites] == [3, 3, 3, 6]  # TM split into Ni and Mn rows, Li, O
    reference = result.model.structure_factor_sq(0, result.values)
    assert model.structure_factor_sq(0, model.values) == pytest.approx(reference, rel=2e-4)


def test_scan_time_from_raw_and_xrdml_metadata(shared):
    from datetime import datetime, timezone

    from doptrace.xrd.read import read
    from doptrace.xrd.sequence import scan_time

    raw = read(shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw"))
    assert scan_time(raw) == datetime(2018, 1, 22, 16, 34, 23, tzinfo=timezone.utc).timestamp()
    xrdml = read(shared("xrd/xylib_samples/empyrean.xrdml"))
    assert scan_time(xrdml) == datetime(2016, 11, 3, 11, 8, 45, tzinfo=timezone.utc).timestamp()


def test_ion_form_factors_count_electrons_and_untabulated_ions_are_refused():
    """IT92 f0(0) is the electron count: Li 3, Li+ 2, O2- 10, B 5. B3+ (2 e) is not in IT92:
    it must be refused, not read as neutral B (5 e), the very contrast a B-on-Li refinement uses."""
    from doptrace.xrd.structure import form_factor

    for species, electrons in (("Li", 3), ("Li+", 2), ("O2-", 10), ("B", 5), ("Mn4+", 21)):
        assert float(form_factor(species, 0.0)) == pytest.approx(electrons, abs=0.01), species
    raw = _layered_raw()
    raw["dopant"] = {"element": "B3+", "sites": ["LiTMO2:Li"]}
    with pytest.raises(XRDError, match=r"bad\.toml: phase LiTMO2: .*'B3\+'"):
        PatternModel(parse_recipe(raw, "bad.toml"), grid_pattern(_cscl_recipe()))
