"""Line shapes and backgrounds against known numbers: unit area, FWHM = parameter, closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.xps import backgrounds as bgs
from doptrace.xps.errors import XPSError
from doptrace.xps.lineshapes import gaussian, gl, lorentzian, sgl, shape_function

X = np.linspace(-60.0, 60.0, 600001)


def numeric_fwhm(x, y):
    half = y.max() / 2
    above = np.nonzero(y >= half)[0]
    i0, i1 = above[0], above[-1]
    left = np.interp(half, [y[i0 - 1], y[i0]], [x[i0 - 1], x[i0]])
    right = np.interp(half, [y[i1 + 1], y[i1]], [x[i1 + 1], x[i1]])
    return right - left


@pytest.mark.parametrize("name", ["GL(0)", "GL(30)", "GL(70)", "SGL(0)", "Voigt(0.0)", "LA(1.53,243)",
                                  "LA(2,3,50)", "LF(1,1.5,55,10)", "Gaussian"])
def test_unit_area_and_fwhm(name):
    f = shape_function(name)
    y = f(X, 0.7, 1.3)
    assert np.trapezoid(y, X) == pytest.approx(1.0, abs=2e-3)
    assert numeric_fwhm(X, y) == pytest.approx(1.3, rel=1e-3)


@pytest.mark.parametrize("name,share", [("GL(100)", 1.0), ("SGL(30)", None), ("Voigt(0.3)", None), ("Lorentzian", 1.0)])
def test_heavy_tailed_shapes(name, share):
    """Lorentzian tails: FWHM exact; the area inside +-60 eV matches the truncated closed form."""
    f = shape_function(name)
    y = f(X, 0.0, 1.3)
    assert numeric_fwhm(X, y) == pytest.approx(1.3, rel=1e-3)
    if share == 1.0:  # 2/pi arctan(2 L / F) of a Lorentzian truncated at +-L
        assert np.trapezoid(y, X) == pytest.approx(2 / np.pi * np.arctan(2 * 60 / 1.3), rel=1e-4)
    else:
        assert 0.98 < np.trapezoid(y, X) <= 1.0


def test_gl_limits_are_gaussian_and_lorentzian():
    x = np.linspace(-5, 5, 101)
    assert np.allclose(gl(x, 0.2, 1.1, 0), gaussian(x, 0.2, 1.1))
    assert np.allclose(gl(x, 0.2, 1.1, 100), lorentzian(x, 0.2, 1.1))
    assert np.allclose(sgl(x, 0.2, 1.1, 0), gaussian(x, 0.2, 1.1))
    # Gaussian peak height sqrt(4 ln2 / pi) / F
    assert gaussian(0.0, 0.0, 2.0) == pytest.approx(np.sqrt(4 * np.log(2) / np.pi) / 2)


def test_doniach_sunjic_asymmetry_to_high_binding_energy():
    f = shape_function("DS(0.15)")
    y = f(X, 0.0, 1.0)
    assert numeric_fwhm(X, y) == pytest.approx(1.0, rel=2e-3)
    assert y[np.searchsorted(X, 3.0)] > 2 * y[np.searchsorted(X, -3.0)]
    assert np.allclose(shape_function("DS(0)")(X[::1000], 0.0, 1.0), lorentzian(X[::1000], 0.0, 1.0), rtol=0.01)


def test_la_casaxps_two_argument_form_is_symmetric():
    a = shape_function("LA(1.53,243)")(np.array([-0.8, 0.8]), 0.0, 1.0)
    assert a[0] == pytest.approx(a[1], rel=1e-3)
    b = shape_function("LA(1.1,4,20)")(np.array([-2.0, 2.0]), 0.0, 1.0)
    assert b[1] > b[0]  # alpha < beta: longer tail at higher binding energy


@pytest.mark.parametrize("bad", ["XX(3)", "GL(150)", "LA(0.2,1,1)", "GL(a)", "Voigt(2)"])
def test_bad_shape_names(bad):
    with pytest.raises(XPSError):
        shape_function(bad)


def test_shirley_recovers_its_own_background():
    """A spectrum built as peak + I_lo + k * integral(peak) has exactly that Shirley background."""
    x = np.linspace(180, 200, 401)
    peak = 5000 * gl(x, 190, 1.5, 30)
    truth = 100 + 0.2 * bgs.cumulative_integral(x, peak)
    background = bgs.shirley(x, peak + truth)
    assert np.allclose(background, truth, rtol=1e-5, atol=1e-3)
    # many spectra at once give the same answer row by row
    both = bgs.shirley(x, np.stack([peak + truth, 2 * (peak + truth)]))
    assert np.allclose(both[1], 2 * truth, rtol=1e-5, atol=1e-3)


def test_shirley_of_a_symmetric_peak_on_a_step():
    """Endpoint means 1 and 5 (averaged over 5 points); at the centre of a symmetric peak the
    Shirley background is exactly half way (3), and it is flat far from the peak."""
    x = np.linspace(0, 20, 2001)
    peak = 100 * gaussian(x, 10.0, 1.0)
    y = peak + 1 + 4 * bgs.cumulative_integral(x, peak) / np.trapezoid(peak, x)
    y[:5] += np.array([0.1, -0.1, 0.2, -0.2, 0.0])  # noise that the endpoint average removes
    bg = bgs.shirley(x, y, average=5)
    assert bg[1000] == pytest.approx(3.0, abs=1e-3)
    assert bg[0] == pytest.approx(1.0, abs=1e-9) and bg[-1] == pytest.approx(5.0, abs=1e-6)
    assert np.all(np.diff(bg[5:]) >= -1e-12)


def test_linear_background():
    assert bgs.linear(np.array([0.0, 1, 2, 3]), np.array([1.0, 9, 9, 4])).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert np.allclose(bgs.linear(np.arange(6.0), np.array([1, 3, 0, 0, 5, 7.0]), average=2), [2, 2.8, 3.6, 4.4, 5.2, 6])


def test_tougaard_of_a_narrow_peak_is_the_loss_function():
    """For a narrow peak of area A at E0 on zero baseline, B(E0 + T) = A K(T)."""
    x = np.arange(170.0, 230.0, 0.01)
    peak = 1000 * gaussian(x, 180.0, 0.05)
    bg = bgs.tougaard(x, peak, kind="U2")
    for t in (5.0, 20.0, 40.0):
        expected = 1000 * 2866 * t / (1643 + t * t) ** 2
        assert bg[np.searchsorted(x, 180.0 + t)] == pytest.approx(expected, rel=0.01)
    k3 = bgs.tougaard_kernel(np.array([10.0]), 551, 436, 2, "U3")[0]
    assert k3 == pytest.approx(551 * 10 / ((436 - 100) ** 2 + 2 * 100))


@pytest.mark.parametrize("p", [0.0, 5.0, 30.0, 70.0, 100.0])
def test_gl_gradient_is_the_derivative_of_gl(p):
    """The fitter's analytic Jacobian: central differences of gl itself agree to 1e-7 of the peak slope."""
    from doptrace.xps.lineshapes import gl_gradient, gradient_function

    x = np.linspace(440.0, 456.0, 161)[None]
    center, fwhm = np.array([[446.1], [447.3]]), np.array([[1.3], [2.2]])
    f, d_center, d_fwhm = gl_gradient(x, center, fwhm, p)
    h = 1e-6
    np.testing.assert_allclose(f, gl(x, center, fwhm, p), rtol=1e-12, atol=0)
    numeric_c = (gl(x, center + h, fwhm, p) - gl(x, center - h, fwhm, p)) / (2 * h)
    numeric_w = (gl(x, center, fwhm + h, p) - gl(x, center, fwhm - h, p)) / (2 * h)
    assert np.abs(d_center - numeric_c).max() < 1e-7 * np.abs(numeric_c).max()
    assert np.abs(d_fwhm - numeric_w).max() < 1e-7 * np.abs(numeric_w).max()
    assert gradient_function(shape_function(f"GL({p:g})")) is not None
    assert gradient_function(shape_function("LA(1.53,243)")) is None  # tabulated: the fitter differences it


def test_gaussian_gradient_and_erfcx_match_scipy():
    from scipy.special import erfcx as scipy_erfcx

    from doptrace.xps.lineshapes import erfcx, gaussian_gradient

    x = np.linspace(-4.0, 4.0, 81)
    f, d_center, d_fwhm = gaussian_gradient(x, 0.2, 1.1)
    np.testing.assert_allclose(f, gaussian(x, 0.2, 1.1), rtol=1e-12)
    t = (x - 0.2) / 1.1
    np.testing.assert_allclose(d_center, 8 * np.log(2) * t / 1.1 * f, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d_fwhm, (8 * np.log(2) * t * t - 1) * f / 1.1, rtol=1e-12, atol=1e-15)
    z = np.concatenate([np.linspace(0.0, 40.0, 401), np.geomspace(25.0, 1e8, 50)])
    ours = np.array([erfcx(v) for v in z])
    np.testing.assert_allclose(ours, scipy_erfcx(z), rtol=1e-12)
