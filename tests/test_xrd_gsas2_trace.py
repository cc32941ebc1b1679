"""Where the built-in engine and GSAS-II differ, traced to the term that differs (issue 13 item 4).

1. Fluorapatite hexagonal ``a``: GSAS-II's analytic derivative of a peak position with respect to
   the symmetry-tied A0 (A1 = A3 = A0 for a hexagonal cell) keeps only the ``h^2`` term
   (``GSASIIstrMath.cellVaryDerv``: ``[pfx+'A0', dpdA[0]]`` for Laue 6/m; A1, A3 are equivalenced
   to A0 but their derivatives are never formed). Its Jacobian column for A0 is therefore too
   small by ``h^2 / (h^2 + k^2 + hk)`` per reflection: the Marquardt fixed point is not the chi²
   minimum along ``a`` and the esd of A0 (hence of ``a``) comes out too large. Proven here by
   running the same GSAS-II refinement with the full chain rule ``dpdA[0] + dpdA[1] + dpdA[3]``
   put back in: GSAS-II then lands on the built-in engine's ``a`` with the built-in engine's esd.
2. SH/L: GSAS-II's Finger-Cox-Jephcoat profile (``PSVFCJO``) integrates the axial-divergence
   kernel with ``int(300 (2theta - 2phi_min) / gamma)`` Gauss-Legendre steps (gamma in
   centidegrees); for the usual lab widths that is 0-2 steps, i.e. ONE node at ``x = 1/sqrt(3)``:
   the whole peak is shifted by ``-(1 - 1/sqrt 3)(2theta - 2phi_min)`` instead of convolved. The
   exact FCJ kernel's mean offset is about a third of that, so the built-in engine (8-node
   quadrature of the exact kernel) needs a larger SH/L to reproduce GSAS-II's peaks.
3. Li-rich B fractions (broad peaks): the 0.23-esd difference is item 1 again (R-3m LiTMO2's ``a``);
   with the full derivative it is 0.04 esd, of which the FCJ difference of item 2 is <= 0.005.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from doptrace.xrd import gsas2

REPO = Path(__file__).resolve().parents[1]
FAP_RECIPE = REPO / "examples" / "xrd" / "fluorapatite.toml"

pytestmark = pytest.mark.skipif(not gsas2.available(), reason=gsas2.unavailable_reason() or "GSAS-II absent")


def _fap_recipe():
    from conftest import shared_path

    from doptrace.xrd.recipe import parse_recipe

    xra = shared_path("xrd/gsas2_tutorials/LabData_data_FAP.XRA")
    prm = shared_path("xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM")
    raw = tomllib.loads(FAP_RECIPE.read_text(encoding="utf-8"))
    raw.pop("data")
    raw["instrument"].pop("file")  # the example points at ../shared; use the fixture's paths
    return parse_recipe(raw, FAP_RECIPE).with_instrument(prm).with_data(xra)


@pytest.fixture(scope="module")
def fap_three_ways(tmp_path_factory):
    """FAP refined by the built-in engine, by GSAS-II as it is, and by GSAS-II with the full A0 derivative."""
    from GSASII import GSASIIstrMath

    from doptrace.xrd.rietveld import refine

    recipe = _fap_recipe()
    builtin = refine(recipe)
    stock = gsas2.refine(recipe, workdir=tmp_path_factory.mktemp("fap-stock"))
    original = GSASIIstrMath.GetReflPosDerv

    def full_chain_rule(*args, **kwargs):
        out = list(original(*args, **kwargs))
        dpda = np.array(out[0], float)
        dpda[0] = dpda[0] + dpda[1] + dpda[3]  # hexagonal: d/dA0 along A1 = A3 = A0
        out[0] = dpda
        return tuple(out)

    GSASIIstrMath.GetReflPosDerv = full_chain_rule
    try:
        fixed = gsas2.refine(recipe, workdir=tmp_path_factory.mktemp("fap-full-derivative"))
    finally:
        GSASIIstrMath.GetReflPosDerv = original
    return builtin, stock, fixed


def _par(ds, name):
    return (float(ds.parameters_value.sel(parameter=name)), float(ds.parameters_stderr.sel(parameter=name)))


def test_fap_a_difference_is_gsas2s_h2_only_a0_derivative(fap_three_ways):
    """Measured: built-in a = 9.371698(36), GSAS-II 9.371854(85) (4.3 built-in esds apart, esd x2.35);
    GSAS-II with the full derivative 9.371705(36), Rwp 9.812 (stock 9.827, built-in 9.815)."""
    builtin, stock, fixed = fap_three_ways
    a_b, e_b = float(builtin.a[0]), float(builtin.a_stderr[0])
    a_s, e_s = float(stock.a[0]), float(stock.a_stderr[0])
    a_f, e_f = float(fixed.a[0]), float(fixed.a_stderr[0])
    # the difference as reported in issue 13: ~4 built-in esds, esd ~2.4x on a but not on c
    assert 3.0 * e_b < abs(a_s - a_b) < 6.0 * e_b
    assert 2.0 < e_s / e_b < 2.8
    assert float(stock.c_stderr[0]) == pytest.approx(float(builtin.c_stderr[0]), rel=0.05)
    # with the derivative completed GSAS-II agrees: same a, same esd, lower chi² than its stock fixed point
    assert abs(a_f - a_b) < 0.5 * e_b
    assert e_f == pytest.approx(e_b, rel=0.05)
    assert float(fixed.rwp) < float(stock.rwp) - 0.01
    assert float(fixed.rwp) == pytest.approx(float(builtin.rwp), abs=0.01)
    # c (A2 has its own, complete derivative) is the same in all three
    assert abs(float(fixed.c[0]) - float(builtin.c[0])) < float(builtin.c_stderr[0])
    # displacement follows a: stock GSAS-II 84.43(32) um, full derivative 85.52, built-in 85.70
    d_b, de_b = _par(builtin, "displacement")
    assert abs(_par(stock, "displacement")[0] - d_b) > 3 * de_b
    assert abs(_par(fixed, "displacement")[0] - d_b) < de_b


def _fcj_mean_offset(two_theta, shl):
    """Exact mean offset (deg) of the FCJ kernel with S/L = H/L = SH/L / 2 (adaptive quadrature)."""
    from scipy import integrate

    tt = math.radians(two_theta)

    def phi(u):
        return math.acos(max(-1.0, min(1.0, math.cos(tt) * math.sqrt(1.0 + u * u))))

    def weight(u):
        return (shl - u) / ((1.0 + u * u) * math.sin(phi(u)))

    norm = integrate.quad(weight, 0.0, shl, limit=200)[0]
    return math.degrees(integrate.quad(lambda u: weight(u) * (phi(u) - tt), 0.0, shl, limit=200)[0]) / norm


@pytest.mark.parametrize("two_theta, sig2, gamma", [(30.0, 2.0, 4.0), (50.0, 4.0, 5.0), (120.0, 20.0, 15.0)])
def test_gsas2_fcj_is_one_shifted_node_where_the_builtin_convolves(two_theta, sig2, gamma):
    """At SH/L = 0.025: GSAS-II's FCJ peak is one pseudo-Voigt moved by (1 - 1/sqrt 3) of the kernel
    width; the built-in peak's centroid is the exact kernel's (measured at 50 deg: GSAS-II -0.0063,
    built-in -0.00249, exact -0.00250 deg)."""
    from GSASII import GSASIIpwd

    from doptrace.xrd.profiles import fcj_offsets, pseudo_voigt, tch_fwhm_eta

    shl = 0.025
    x = np.arange(two_theta - 2.0, two_theta + 2.0, 0.0005)
    g2 = GSASIIpwd.getFCJVoigt3(two_theta, sig2, gamma, shl, x)[0] * 100.0  # GSAS-II: per centidegree
    fwhm, eta = tch_fwhm_eta(sig2, gamma)
    offsets, weights = fcj_offsets(np.array([two_theta]), shl, 8)
    ours = sum(w * pseudo_voigt(x - two_theta - o, fwhm, eta) for o, w in zip(offsets[0], weights[0]))
    width = two_theta - math.degrees(math.acos(math.sqrt(1 + shl**2) * math.cos(math.radians(two_theta))))
    assert int(300 * abs(width) / gamma) <= 2  # GSAS-II's step count: one Gauss-Legendre node
    one_node = pseudo_voigt(x - two_theta + (1 - 1 / math.sqrt(3)) * width, fwhm, eta)
    assert np.max(np.abs(g2 - one_node)) < 1e-3 * g2.max()  # float32 Fortran

    def centroid(p):
        return float(np.sum(p * (x - two_theta)) / np.sum(p))

    exact = _fcj_mean_offset(two_theta, shl)
    assert centroid(ours) == pytest.approx(exact, rel=0.05)  # within the +-2 deg window
    assert abs(centroid(g2)) > 2.0 * abs(exact)  # GSAS-II moves the peak 2.5x as far as FCJ does


# ------------------------------------------------------------------ Li-rich B fractions (issue 13 item 4)
B_TRUTH = np.array([0.08, 0.08, 0.06, 0.0, 0.0])  # Li2c, Li4h (shared), LiTMO2:Li, LiTMO2:TM, Mn4g


def _li_rich(noise: bool):
    """The broad-peak pattern of test_xrd_size_strain (15 nm, 2000 ppm, B 0.06 / 0.08), GSAS-II-computed."""
    from xrd_cases import li_rich_broad

    return li_rich_broad(noise=noise)


def _gsas2_full_a0_derivative(recipe, pattern, tmp):
    """GSAS-II refinement with the hexagonal A0 position derivative completed (A1 = A3 = A0) for
    phase 0 (R-3m LiTMO2) only; Li2MnO3 (C2/m, phase 1) has independent A0, A1, A2, A4."""
    from GSASII import GSASIIstrMath

    original = GSASIIstrMath.GetReflPosDerv

    def full_chain_rule(refl, im, wave, A, pfx, *args, **kwargs):
        out = list(original(refl, im, wave, A, pfx, *args, **kwargs))
        if pfx == "0::":
            dpda = np.array(out[0], float)
            dpda[0] = dpda[0] + dpda[1] + dpda[3]
            out[0] = dpda
        return tuple(out)

    GSASIIstrMath.GetReflPosDerv = full_chain_rule
    try:
        return gsas2.refine(recipe, pattern, workdir=tmp)
    finally:
        GSASIIstrMath.GetReflPosDerv = original


def test_li_rich_b_residual_is_gsas2s_a0_derivative(tmp_path):
    """The 0.23-esd B-fraction residual of test_boron_fractions_agree_with_gsas2_within_0p3_esd_on_broad_peaks.

    Measured (seed 1): built-in minus GSAS-II in GSAS-II esds, stock GSAS-II [-0.226 -0.226 0.220 0.087
    -0.043], GSAS-II with the full A0 derivative [0.034 0.034 -0.039 -0.005 0.007]; Rwp built-in 2.05536,
    stock 2.05551, full derivative 2.05535; LiTMO2 a 0.84 built-in esd below the built-in's in stock GSAS-II,
    0.08 above with the full derivative (the Li-layer B fractions correlate with a, +-0.18, and with each
    other, -0.98); the built-in chi² (4399.75 at its minimum) is +0.83 at stock GSAS-II's values and +0.20
    at the full-derivative GSAS-II's. With GSAS-II's convergence test tightened
    (min dM/M 1e-9, 100 cycles; not run here) stock GSAS-II never converges and stays 0.23 esd away; the
    full-derivative one converges 0.030 esd away (the rest of its 0.039 is GSAS-II's min dM/M = 0.001).
    """
    from doptrace.xrd.engine import chi_square, linear_start
    from doptrace.xrd.rietveld import run

    recipe, pattern = _li_rich(noise=True)
    refinement = run(recipe, pattern)
    b = refinement.dataset
    stock = gsas2.refine(recipe, pattern, workdir=tmp_path / "stock")
    fixed = _gsas2_full_a0_derivative(recipe, pattern, tmp_path / "full")
    assert list(b.site.values) == list(stock.site.values) == list(fixed.site.values)

    def residual(g):
        return (b.dopant_fraction.values - g.dopant_fraction.values) / g.dopant_fraction_stderr.values

    assert 0.15 < np.abs(residual(stock)).max() < 0.3  # the residual as reported in issue 13
    # through LiTMO2 a (R-3m, A1 = A3 = A0): stock 2.849977, built-in 2.850047(84), completed 2.850054 Å
    a_b, e_b = _par(b, "LiTMO2:a")
    assert abs(_par(stock, "LiTMO2:a")[0] - a_b) > 0.5 * e_b
    assert abs(_par(fixed, "LiTMO2:a")[0] - a_b) < 0.2 * e_b
    assert np.abs(residual(fixed)).max() < 0.06  # the full derivative takes away ~85 % of it
    assert float(fixed.rwp) < float(stock.rwp) - 1e-4  # stock GSAS-II is not at its own chi² minimum
    assert float(fixed.rwp) == pytest.approx(float(b.rwp), abs=5e-5)

    # the built-in chi² at each GSAS-II solution (nonlinear values GSAS-II's, scales and background re-solved)
    model, free = refinement.model, [str(n) for n in b.parameter.values]

    def chi2_at(ds):
        values = dict(refinement.values)
        for name, value in zip(ds.parameter.values, ds.parameters_value.values):
            if model.parameters[str(name)].kind != "linear":
                values[str(name)] = float(value)
        values = linear_start(model, values, free)
        model.freeze(values)
        return chi_square(model, model.calculate(values))

    best = chi2_at(b)
    assert chi2_at(stock) - best > 0.6
    assert chi2_at(fixed) - best < 0.3


def test_li_rich_model_difference_noise_free():
    """On the noise-free pattern the Jacobian cannot matter (zero residual is a fixed point of any
    Gauss-Newton step), so stock GSAS-II returns the truth and the built-in engine's offset is the whole
    model difference. Measured, in esds of the noise-free GSAS-II fit divided by its GOF (0.196, 0.196,
    0.113, 0.0145, 0.0244): GSAS-II 0.0003 esd from the truth; built-in [-0.013 -0.013 0.003 -0.010
    0.023], Rwp 0.00275 %. GSAS-II computes its FCJ asymmetry with SH/L clamped to >= 0.002
    (GSASIIstrMath.getPowderProfile) and one Gauss-Legendre node, while the built-in engine applies none
    here (the FCJ width is < 2 % of these 15-nm peaks' FWHM); with it switched off in GSAS-II's
    simulation the built-in offset is [-0.015 -0.015 0.005 -0.005 0.018], Rwp 0.00175 %: the FCJ
    difference moves the B fractions by at most 0.005 esd."""
    from GSASII import GSASIIpwd

    from doptrace.xrd.rietveld import run

    recipe, pattern = _li_rich(noise=False)
    b = run(recipe, pattern).dataset
    g = gsas2.refine(recipe, pattern)
    esd = g.dopant_fraction_stderr.values / float(g.gof)
    assert np.all(np.abs(g.dopant_fraction.values - B_TRUTH) < 0.002 * esd)
    offset = (b.dopant_fraction.values - B_TRUTH) / esd
    assert 0.005 < np.abs(offset).max() < 0.04, offset
    assert float(b.rwp) < 0.004

    fcj = GSASIIpwd.getFCJVoigt3  # the simulation only (zero cycles): no derivative needed
    GSASIIpwd.getFCJVoigt3 = lambda pos, sig, gam, shl, x: fcj(pos, sig, gam, 1e-6, x)
    try:
        recipe, symmetric = _li_rich(noise=False)
    finally:
        GSASIIpwd.getFCJVoigt3 = fcj
    b_sym = run(recipe, symmetric).dataset
    offset_sym = (b_sym.dopant_fraction.values - B_TRUTH) / esd
    assert np.abs(offset_sym - offset).max() < 0.01  # FCJ: <= 0.005 esd of the 0.23
    assert float(b_sym.rwp) < float(b.rwp) - 0.0005  # the FCJ mismatch is part of the tiny misfit
