"""GSAS-II driver (xrd.gsas2): GSAS-II's own reference numbers, and agreement with the built-in engine.

Every test here needs GSAS-II (``import GSASII``) and skips with the reason when it is absent.
Truths: ../shared/data/xrd/REFERENCE.md (GSAS-II git 013259a0 on FAP.XRA) and the simulator's
ground truth (xrd.simulate) for the two-phase Li-rich pattern.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from doptrace.xrd import gsas2
from doptrace.xrd.errors import XRDError
from doptrace.xrd.recipe import Stage, load_recipe

REPO = Path(__file__).resolve().parents[1]
FAP_RECIPE = REPO / "examples" / "xrd" / "fluorapatite.toml"
LI_RECIPE = REPO / "examples" / "xrd" / "li-rich-two-phase.toml"
FAP_DATA = "xrd/gsas2_tutorials/LabData_data_FAP.XRA"
FAP_PRM = "xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"
LI_TRUTH = {"LiTMO2:Li": 0.06, "Li2MnO3:Li2c": 0.08, "Li2MnO3:Li4h": 0.08, "LiTMO2:TM": 0.0, "Li2MnO3:Mn4g": 0.0}

if os.environ.get("DOPTRACE_REQUIRE_GSAS2") and not gsas2.available():
    # CI builds GSAS-II from ../shared/vendor (.ci/build-gsas2); there a skip would hide the driver
    pytest.fail(f"DOPTRACE_REQUIRE_GSAS2 is set but GSAS-II is not importable: {gsas2.unavailable_reason()}",
                pytrace=False)
pytestmark = pytest.mark.skipif(not gsas2.available(), reason=gsas2.unavailable_reason() or "GSAS-II absent")


def builtin_refine(recipe, pattern):
    return importlib.import_module("doptrace.xrd.rietveld").refine(recipe, pattern)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def fap(request):
    """FAP.XRA through both engines with examples/xrd/fluorapatite.toml (one run each per module)."""
    from conftest import shared_path

    from doptrace import xrd

    recipe = load_recipe(FAP_RECIPE).with_instrument(shared_path(FAP_PRM))
    pattern = xrd.read(shared_path(FAP_DATA))
    return gsas2.refine(recipe, pattern), builtin_refine(recipe, pattern)


@pytest.fixture(scope="module")
def li_rich(tmp_path_factory):
    """Simulated two-phase Li-rich pattern (known B fractions) through both engines."""
    simulate = importlib.import_module("doptrace.xrd.simulate").simulate
    recipe = load_recipe(LI_RECIPE)
    pattern = simulate(recipe, dopant={k: v for k, v in LI_TRUTH.items() if v}, counts=30000, seed=1)
    workdir = tmp_path_factory.mktemp("gsas2-li-rich")
    return recipe, pattern, gsas2.refine(recipe, pattern, workdir=workdir), builtin_refine(recipe, pattern), workdir


# ------------------------------------------------------------------------- GSAS-II's own reference


def test_fap_reproduces_gsas2_reference(fap):
    """REFERENCE.md section 1: the same stages give GSAS-II's Rwp history and final values."""
    g2, _ = fap
    assert g2.attrs["engine"] == "gsas2"
    assert float(g2.rwp) == pytest.approx(9.827, abs=0.3)
    assert float(g2.rwp) == pytest.approx(9.827, abs=0.01)  # same program, same data: essentially exact
    assert [h["rwp"] for h in g2.attrs["stages"]] == pytest.approx([61.300, 37.173, 10.388, 9.828, 9.827], abs=0.02)
    assert float(g2.rp) == pytest.approx(7.737, abs=0.01)
    assert float(g2.gof) == pytest.approx(1.7568, abs=0.002)
    assert int(g2.nobs) == 5752 and int(g2.nvar) == 34
    # cell within 3 (GSAS-II) esd of REFERENCE: a = 9.371854(142), c = 6.885893(36)
    assert abs(float(g2.a[0]) - 9.371854) < 3 * 0.000142
    assert abs(float(g2.c[0]) - 6.885893) < 3 * 0.000036
    assert float(g2.scale[0]) == pytest.approx(92.0577, abs=0.3)
    par = dict(zip(g2.parameter.values, g2.parameters_value.values))
    esd = dict(zip(g2.parameter.values, g2.parameters_stderr.values))
    assert par["displacement"] == pytest.approx(84.4327, abs=0.3220)
    assert esd["displacement"] == pytest.approx(0.3220, rel=0.02)
    assert par["FAP:Ca2:x"] == pytest.approx(0.24169, abs=0.00015)
    assert par["FAP:O3:z"] == pytest.approx(0.07083, abs=0.00032)
    assert par["FAP:F1:uiso"] == pytest.approx(0.02255, abs=0.00137)
    assert esd["FAP:F1:uiso"] == pytest.approx(0.00137, rel=0.02)
    assert par["bkg:0"] == pytest.approx(155.5949, abs=0.4931)
    for key, value in (("U", 0.7404), ("V", -1.9798), ("W", 4.9164), ("X", 3.0574), ("Y", 3.1589)):
        assert par[key] == pytest.approx(value, abs=0.01)


def test_fap_cell_esd_propagated_from_gsas2_covariance(fap):
    """c's esd equals GSAS-II's own; a's is the plain propagation of GSAS-II's A0 esd.

    For a hexagonal cell a = 2 / sqrt(3 A0), so esd(a) = a / (2 A0) * esd(A0). GSAS-II's
    getCellEsd reports 0.000142 for a (REFERENCE.md), 5/3 of this: it contracts d(cell)/dA over
    the wrong index (kept in attrs["gsas2_cell_esd"] for comparison). (GSAS-II's A0 esd itself is
    also larger than the Fisher information of its own pattern gives, because its position
    derivative for a hexagonal A0 keeps only the h^2 term; the driver reports GSAS-II's covariance
    as it is and does not correct that.)
    """
    g2, _ = fap
    a, c = float(g2.a[0]), float(g2.c[0])
    assert float(g2.c_stderr[0]) == pytest.approx(0.000036, rel=0.03)
    a0 = 4.0 / (3.0 * a * a)
    g2_esd = g2.attrs["gsas2_cell_esd"]["FAP"]
    assert g2_esd[0] == pytest.approx(0.000142, rel=0.01)  # GSAS-II's own number, as in REFERENCE.md
    assert float(g2.a_stderr[0]) == pytest.approx(g2_esd[0] * 3 / 5, rel=0.01)
    sigma_a0 = float(g2.a_stderr[0]) * 2 * a0 / a
    assert 1e-7 < sigma_a0 < 1e-6  # A0 ~ 0.01518 known to a few parts in 1e5
    assert float(g2.b_stderr[0]) == pytest.approx(float(g2.a_stderr[0]))
    assert float(g2.gamma[0]) == pytest.approx(120.0) and float(g2.gamma_stderr[0]) == 0.0


def test_fap_result_layout_and_curves(fap):
    """Same layout as the built-in engine; curves reproduce Rwp; reflections are FAP's."""
    from doptrace.report.conventions import check_result

    g2, builtin = fap
    check_result(g2, "gsas2 FAP")
    assert set(builtin.data_vars) <= set(g2.data_vars)
    assert set(g2.dims) == set(builtin.dims)
    used = g2.used.values.astype(bool)
    w = np.zeros(used.sum())
    esd = g2.esd.values[used]
    w[esd > 0] = 1.0 / esd[esd > 0] ** 2
    obs, calc = g2.obs.values[used], g2.calc.values[used]
    rwp = 100 * math.sqrt(np.sum(w * (obs - calc) ** 2) / np.sum(w * obs**2))
    assert rwp == pytest.approx(float(g2.rwp), abs=0.005)
    assert np.allclose(g2["diff"], g2.obs - g2.calc)
    assert float(g2.rexp) == pytest.approx(float(g2.rwp) / float(g2.gof))
    # every listed hkl sits where the refined hexagonal cell puts it (Bragg angle + displacement shift)
    a, c = float(g2.a[0]), float(g2.c[0])
    hkl = np.array([[int(v) for v in s.split()] for s in g2.reflection_hkl.values])
    inv_d2 = 4 / 3 * (hkl[:, 0] ** 2 + hkl[:, 0] * hkl[:, 1] + hkl[:, 1] ** 2) / a**2 + hkl[:, 2] ** 2 / c**2
    theta = np.degrees(np.arcsin(1.5405 * np.sqrt(inv_d2) / 2))
    shift = float(g2.parameters_value.sel(parameter="displacement"))
    expected = 2 * theta - 9e-2 / (math.pi * 200) * 4 * shift * np.cos(np.radians(theta))
    assert np.allclose(g2.reflection_two_theta, expected, atol=2e-4)
    assert "0 0 2" in set(g2.reflection_hkl.values)
    assert g2.reflection_two_theta.min() >= 15.0 and g2.reflection_two_theta.max() <= 130.02
    corr = g2.correlation.values
    assert np.allclose(np.diag(corr), 1.0) and np.allclose(corr, corr.T, equal_nan=True)


# ---------------------------------------------------------------------------- both engines agree


def _cell_agree(g2, builtin, nsigma=2.0):
    for name in ("a", "b", "c", "alpha", "beta", "gamma"):
        diff = np.abs(g2[name].values - builtin[name].values)
        esd = np.hypot(g2[f"{name}_stderr"].values, builtin[f"{name}_stderr"].values)
        fixed = esd == 0
        assert np.all(diff[fixed] < 1e-6), name
        assert np.all(diff[~fixed] <= nsigma * esd[~fixed]), (name, diff, esd)


def test_engines_agree_on_fap(fap):
    """Same recipe, same data: Rwp within 0.3 points, cell within 2 esd, atoms within 1 esd."""
    g2, builtin = fap
    assert abs(float(g2.rwp) - float(builtin.rwp)) < 0.3
    _cell_agree(g2, builtin)
    common = sorted(set(g2.parameter.values) & set(builtin.parameter.values))
    assert len(common) == 34
    for name in common:
        if name.endswith(("uiso", ":x", ":y", ":z")):
            gv, ge = float(g2.parameters_value.sel(parameter=name)), float(g2.parameters_stderr.sel(parameter=name))
            bv, be = (float(builtin.parameters_value.sel(parameter=name)),
                      float(builtin.parameters_stderr.sel(parameter=name)))
            assert abs(gv - bv) <= max(ge, be), name


def test_builtin_model_reproduces_gsas2_curve_at_gsas2_values(fap):
    """Same parameters, same pattern: the built-in model's curve is GSAS-II's.

    Peaks are evaluated over GSAS-II's windows (50 FWHM low side, 75 high side): with -10/+15 FWHM
    the peak area fell 1.2 % short of GSAS-II's, the strongest peak's centroid moved by 0.001 deg
    and Rwp at GSAS-II's values was 9.864 instead of 9.827 %.
    """
    from conftest import shared_path

    from doptrace import xrd
    from doptrace.xrd.model import PatternModel

    g2, _ = fap
    recipe = load_recipe(FAP_RECIPE).with_instrument(shared_path(FAP_PRM))
    model = PatternModel(recipe, xrd.read(shared_path(FAP_DATA)))
    values = model.values
    g2_values = dict(zip(g2.parameter.values, g2.parameters_value.values))
    values.update({k: float(v) for k, v in g2_values.items() if k in values})
    values["FAP:scale"] = float(g2_values["FAP:scale"]) / 100.0  # GSAS-II profiles are per centidegree
    model.freeze(values)
    calc = model.calculate(values)
    n = model.x.size
    peaks_b = calc - model.background(values)
    peaks_g = g2.calc.values[:n] - g2.background.values[:n]
    assert peaks_b.sum() / peaks_g.sum() == pytest.approx(1.0, abs=0.002)
    low = model.x < 110.0
    assert np.sqrt(np.mean((peaks_b - peaks_g)[low] ** 2) / np.mean(peaks_g[low] ** 2)) < 0.003
    w, y = model.weight, model.y
    rwp = 100 * np.sqrt(np.sum(w * (y - calc) ** 2) / np.sum(w * y * y))
    assert rwp == pytest.approx(float(g2.rwp), abs=0.01)


def test_fap_builtin_a_is_nearer_gsas2s_own_least_squares_minimum(fap):
    """Why the engines' FAP 'a' differ by ~1 GSAS-II esd (4 built-in esds): GSAS-II stops short.

    GSAS-II's analytic derivative of a peak position with respect to a symmetry-tied A0 keeps only
    the h^2 term (GSASIIstrMath ``cellVaryDerv``), so its Marquardt fixed point is not the chi^2
    minimum along a (c, tied to A2 alone, is unaffected and agrees). Measured here: with the cell
    held at the built-in engine's a (and GSAS-II's c) and everything else refined by GSAS-II, GSAS-II's
    own Rwp is lower than at its converged a (9.813 vs 9.827 %), and GSAS-II's displacement then moves
    to the built-in engine's value. So the built-in a and displacement are the better least-squares
    values of the same model, not a model difference (peak windows, Ka2, FCJ, LP, zero and the
    zero-weight last point follow GSAS-II's conventions: see the curve test above).
    """
    import tomllib

    from conftest import shared_path

    from doptrace.xrd.recipe import parse_recipe

    g2, builtin = fap
    raw = tomllib.loads(FAP_RECIPE.read_text(encoding="utf-8"))
    raw["instrument"].pop("file")
    a_builtin = float(builtin.a[0])
    raw["phase"][0]["cell"] = [a_builtin, a_builtin, float(g2.c[0]), 90.0, 90.0, 120.0]
    for stage in raw["stage"]:
        stage["refine"] = [group for group in stage["refine"] if group != "cell"]
    recipe = parse_recipe(raw, FAP_RECIPE).with_instrument(shared_path(FAP_PRM))
    held = gsas2.refine(recipe, shared_path(FAP_DATA))
    assert float(held.rwp) < float(g2.rwp) - 0.005  # GSAS-II's own chi^2 prefers the built-in a
    par = dict(zip(held.parameter.values, held.parameters_value.values))
    bpar = builtin.parameters_value.sel(parameter="displacement")
    besd = builtin.parameters_stderr.sel(parameter="displacement")
    assert abs(par["displacement"] - float(bpar)) < float(besd)  # 85.5 vs 85.7(4) um
    assert abs(float(builtin.a[0]) - float(g2.a[0])) < 2 * float(g2.a_stderr[0])


def test_engines_agree_on_simulated_li_rich(li_rich):
    """Two-phase Li-rich simulation: Rwp, cells, weight fractions and every B fraction agree."""
    _, _, g2, builtin, _ = li_rich
    assert abs(float(g2.rwp) - float(builtin.rwp)) < 0.3
    _cell_agree(g2, builtin)
    assert list(g2.site.values) == list(builtin.site.values)
    diff = np.abs(g2.dopant_fraction.values - builtin.dopant_fraction.values)
    assert np.all(diff <= builtin.dopant_fraction_stderr.values)
    assert np.all(diff <= g2.dopant_fraction_stderr.values)
    assert list(g2.dopant_verdict.values) == list(builtin.dopant_verdict.values)
    assert np.allclose(g2.weight_fraction, builtin.weight_fraction, atol=builtin.weight_fraction_stderr.max())
    assert np.allclose(g2.dopant_min_detectable, builtin.dopant_min_detectable, rtol=0.1)


def test_gsas2_recovers_simulated_truth(li_rich):
    """GSAS-II on the simulator's pattern: B fractions and cells within 2 esd of the truth."""
    recipe, _, g2, _, _ = li_rich
    for site, value, esd in zip(g2.site.values, g2.dopant_fraction.values, g2.dopant_fraction_stderr.values):
        assert abs(value - LI_TRUTH[site]) <= 2 * esd, site
    cells = {p.name: p.cell for p in recipe.phases}
    for k, phase in enumerate(g2.phase.values):
        for j, name in enumerate(("a", "b", "c", "alpha", "beta", "gamma")):
            esd = float(g2[f"{name}_stderr"][k])
            assert abs(float(g2[name][k]) - cells[phase][j]) <= max(2 * esd, 1e-6), (phase, name)
    # B on a Li site (2 e contrast at best) is not determined; B on TM / Mn sites is bounded near zero
    verdicts = dict(zip(g2.site.values, g2.dopant_verdict.values))
    assert verdicts["LiTMO2:TM"] == "consistent with zero"
    assert verdicts["LiTMO2:Li"] == "not determined by these data"


def test_dopant_constraints_hold_in_gsas2(li_rich):
    """Host + dopant = site total and host ratios fixed, as GSAS-II refined them (constraint equations)."""
    recipe, _, g2, _, workdir = li_rich
    occ = g2.attrs["site_occupancies"]
    for phase in recipe.phases:
        for site in phase.sites:
            key = f"{phase.name}:{site.label}"
            refined = occ[key]
            hosts = {s: v for s, v in refined.items() if not s.startswith("dopant")}
            dopant = sum(v for s, v in refined.items() if s.startswith("dopant"))
            assert sum(refined.values()) == pytest.approx(site.total, abs=1e-6), key
            if key in recipe.dopant.sites:
                assert dopant == pytest.approx(float(g2.dopant_fraction.sel(site=key)), abs=1e-9)
                assert dopant != 0.0  # refined away from the 0 start
                for species, start in site.occupancy.items():
                    assert hosts[species] == pytest.approx(start * (site.total - dopant) / site.total, abs=1e-6)
    shared = g2.dopant_fraction.sel(site=["Li2MnO3:Li2c", "Li2MnO3:Li4h"]).values
    assert shared[0] == shared[1]
    assert (workdir / "doptrace.gpx").is_file() and g2.attrs["gsas2_project"].endswith("doptrace.gpx")


def test_what_if_detectability_without_refining_occupancy(li_rich):
    """A recipe that never refines B still reports the 3-sigma detectable fraction (Fisher information)."""
    recipe, pattern, g2, _, _ = li_rich
    stages = [s for s in recipe.stages if "occupancy" not in s.refine]
    no_occ = dataclasses.replace(recipe, stages=stages + [Stage(refine=[], name="repeat", max_cycles=5)])
    what_if = gsas2.refine(no_occ, pattern)
    assert np.all(np.isnan(what_if.dopant_fraction_stderr))
    assert list(what_if.dopant_correlations.values) == ["not refined"] * what_if.sizes["site"]
    assert np.all(what_if.dopant_fraction.values == 0.0)
    assert np.allclose(what_if.dopant_min_detectable, 3 * g2.dopant_fraction_stderr, rtol=0.1)


# ---------------------------------------------------------------------------------- GSAS-II files


def test_instprm_and_xye_read_back_by_gsas2(tmp_path):
    """GSAS-II reads the written instrument and weights exactly (esd 0 -> weight 0)."""
    from doptrace.xrd.instrument import Instrument

    G2 = gsas2._gsas2()
    inst = Instrument(wavelengths=(1.5405, 1.5443), ka2_ratio=0.5, polarization=0.7, zero=0.01, U=1.5, V=-0.7,
                      W=4.2, X=2.1, Y=0.3, Z=0.05, SH_L=0.015)
    x = np.round(np.arange(20.0, 30.0, 0.05), 4)
    y = 100 + 50 * np.sin(x)
    esd = np.sqrt(y)
    esd[7] = 0.0
    gsas2.write_xye(tmp_path / "p.xye", x, y, esd)
    gsas2.write_instprm(tmp_path / "i.instprm", inst)
    gpx = G2.G2Project(newgpx=str(tmp_path / "t.gpx"))
    hist = gpx.add_powder_histogram(str(tmp_path / "p.xye"), str(tmp_path / "i.instprm"), fmthint="xye")
    ip = hist.InstrumentParameters
    for g2name, value in (("Lam1", 1.5405), ("Lam2", 1.5443), ("I(L2)/I(L1)", 0.5), ("Polariz.", 0.7),
                          ("Zero", 0.01), ("U", 1.5), ("V", -0.7), ("W", 4.2), ("X", 2.1), ("Y", 0.3), ("Z", 0.05),
                          ("SH/L", 0.015)):
        assert ip[g2name][1] == pytest.approx(value), g2name
    weights = np.asarray(hist.getdata("yweight"), float)
    assert weights[7] == 0.0
    mask = np.arange(x.size) != 7
    assert np.allclose(weights[mask], 1.0 / esd[mask] ** 2, rtol=1e-8)
    assert np.allclose(np.asarray(hist.getdata("x"), float), x)


def test_monochromator_angle_maps_onto_gsas2_polarization():
    """(1 + cos^2 2tm cos^2 2t) / (1 + cos^2 2tm) has the shape of GSAS-II's p + (1 - p) cos^2 2t."""

    class Mono:
        polarization = None
        monochromator_angle = 26.6

    p = gsas2._polarization(Mono())
    c2m = math.cos(math.radians(26.6)) ** 2
    tt = np.radians(np.linspace(10, 150, 15))
    lab = (1 + c2m * np.cos(tt) ** 2) / (1 + c2m)
    g2 = p + (1 - p) * np.cos(tt) ** 2
    assert np.allclose(lab / g2, (lab / g2)[0], rtol=1e-12)
    assert p == pytest.approx(1 / (1 + c2m))


# ------------------------------------------------------------------------------------- bad input


def test_nan_counts_rejected_naming_the_source():
    recipe = load_recipe(LI_RECIPE)
    x = np.arange(10.0, 20.0, 0.1)
    y = np.full_like(x, 100.0)
    y[5] = np.nan
    pattern = xr.DataArray(y, dims="two_theta", coords={"two_theta": x, "esd": ("two_theta", np.sqrt(y))},
                           attrs={"source": "bad.xye"})
    with pytest.raises(XRDError, match=r"bad\.xye: .*NaN"):
        gsas2.refine(recipe, pattern)


def test_space_group_setting_gsas2_lacks_is_an_error(tmp_path):
    """gemmi's default F d -3 m is origin choice 1; GSAS-II uses origin 2: refuse, do not mis-place atoms."""
    text = (REPO / "examples" / "xrd" / "li-rich-two-phase.toml").read_text(encoding="utf-8")
    text = text.replace('space_group = "C 1 2/m 1"\ncell = [4.937, 8.532, 5.030, 90, 109.46, 90]',
                        'space_group = "F d -3 m"\ncell = [8.2, 8.2, 8.2, 90, 90, 90]')
    path = tmp_path / "spinel.toml"
    path.write_text(text, encoding="utf-8")
    simulate = importlib.import_module("doptrace.xrd.simulate").simulate
    pattern = simulate(load_recipe(LI_RECIPE), counts=1000, seed=2)
    with pytest.raises(XRDError, match=r"spinel\.toml: .*F d -3 m.*setting"):
        gsas2.refine(load_recipe(path), pattern)


def test_missing_data_file_is_an_error(tmp_path):
    recipe = load_recipe(LI_RECIPE)
    with pytest.raises(XRDError, match=r"li-rich-two-phase\.toml: no data file"):
        gsas2.refine(recipe)
    with pytest.raises(XRDError, match="nothing.xye"):
        gsas2.refine(recipe, data=tmp_path / "nothing.xye")


LAB6_CIF = """data_LaB6
_cell_length_a 4.1568
_cell_length_b 4.1568
_cell_length_c 4.1568
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_U_iso_or_equiv
La1 La 0 0 0 1 0.005
B1 B 0.1996 0.5 0.5 1 0.005
"""


def test_lab6_raw_with_cif_phase_reproduces_gsas2_reference(tmp_path, shared):
    """REFERENCE.md section 3: Bruker RAW v4 LaB6 with a CIF phase, 250 mm goniometer, same stages."""
    raw = shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw")
    prm = shared(FAP_PRM)
    (tmp_path / "lab6.cif").write_text(LAB6_CIF, encoding="utf-8")
    stages = "".join(f'[[stage]]\nrefine = {groups}\n' for groups in (
        '["scale", "background"]', '["cell", "displacement"]', '["profile"]', '["xyz", "uiso"]', "[]"))
    (tmp_path / "lab6.toml").write_text(
        f'[data]\nfile = "{raw.as_posix()}"\n[instrument]\nfile = "{prm.as_posix()}"\nradius_mm = 250\n'
        '[background]\nterms = 6\n[[phase]]\nname = "LaB6"\ncif = "lab6.cif"\nsize_um = 10.0\n' + stages,
        encoding="utf-8")
    result = gsas2.refine(tmp_path / "lab6.toml")
    assert int(result.nobs) == 3040 and int(result.nvar) == 17
    assert [h["rwp"] for h in result.attrs["stages"]] == pytest.approx([28.644, 27.593, 10.859, 8.337, 8.336],
                                                                         abs=0.05)
    assert float(result.rwp) == pytest.approx(8.336, abs=0.02)
    assert abs(float(result.a[0]) - 4.155523) < 3 * 0.000048
    assert float(result.a_stderr[0]) == pytest.approx(0.000048, rel=0.05)  # cubic: GSAS-II's esd unchanged
    par = dict(zip(result.parameter.values, result.parameters_value.values))
    assert par["LaB6:B1:x"] == pytest.approx(0.20751, abs=0.00123)
    assert par["LaB6:La1:uiso"] == pytest.approx(-0.01723, abs=0.00052)
    assert par["displacement"] == pytest.approx(20.4796, abs=0.8637)


def test_unknown_element_is_an_error_not_hydrogen(tmp_path):
    """GSAS-II silently turns an unknown atom type into H; the driver refuses it instead."""
    text = LI_RECIPE.read_text(encoding="utf-8").replace("occupancy = { O = 1.0 }", "occupancy = { Xq = 1.0 }", 1)
    path = tmp_path / "typo.toml"
    path.write_text(text, encoding="utf-8")
    simulate = importlib.import_module("doptrace.xrd.simulate").simulate
    pattern = simulate(load_recipe(LI_RECIPE), counts=1000, seed=2)
    with pytest.raises(XRDError, match=r"typo\.toml: site LiTMO2:O: 'Xq' is not a chemical element"):
        gsas2.refine(load_recipe(path), pattern)
