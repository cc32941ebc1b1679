"""Peak-shape and intensity-correction functions (pure, numpy, angles in degrees).

Conventions follow GSAS-II for constant-wavelength data: Gaussian variance in centideg²,
Lorentzian FWHM in centideg, Thompson-Cox-Hastings pseudo-Voigt of unit area, Finger-Cox-Jephcoat
axial divergence with one parameter ``SH/L = (S + H)/L`` (S/L = H/L assumed).
"""

from __future__ import annotations

import numpy as np

_LN2 = np.log(2.0)


#: Width floors of GSAS-II (``GetReflSigGamCW``, git 013259a0): sigma^2 >= 0.001 centideg²,
#: gamma >= 0.001 centideg, applied after the sample terms are added.
SIGMA2_FLOOR = 0.001
GAMMA_FLOOR = 0.001
#: GSAS-II's default crystallite size (µm) and the range it accepts (it clamps the refined value to
#: 0.001-10 µm after every refinement); both engines use 10 µm when a recipe gives no size.
DEFAULT_SIZE_UM = 10.0
SIZE_BOUNDS_UM = (0.001, 10.0)
_ATELN2 = 8.0 * np.log(2.0)


def gaussian_variance(two_theta, U, V, W, sample=0.0):
    """Gaussian variance ``sigma^2 = U tan^2(theta) + V tan(theta) + W`` (+ sample part), centideg².

    Floored at GSAS-II's 0.001 so a transient negative value during refinement stays a peak.

    Examples
    --------
    >>> float(gaussian_variance(90.0, 0.0, 0.0, 4.0))
    4.0
    """
    t = np.tan(np.radians(np.asarray(two_theta, float) / 2.0))
    return np.maximum(U * t * t + V * t + W + sample, SIGMA2_FLOOR)


def sample_broadening(two_theta, wavelength, size_um=DEFAULT_SIZE_UM, mustrain=0.0, size_mix=1.0, strain_mix=1.0):
    """Isotropic size and microstrain broadening as GSAS-II (``GetSampleSigGam``, CW X-ray).

    ``S = 1.8 lambda / (pi D cos(theta))`` (D in µm), ``M = 0.018 mu tan(theta) / pi`` (mu in ppm),
    both in centideg; with the Lorentzian fractions ``size_mix``, ``strain_mix`` (GSAS-II LGmix):
    Lorentzian FWHM ``gamma_s = S mix_S + M mix_M`` (centideg) and Gaussian variance
    ``sigma_s^2 = ((S (1 - mix_S))^2 + (M (1 - mix_M))^2) / (8 ln 2)`` (centideg²).

    Returns ``(sigma2, gamma)``.

    Examples
    --------
    >>> s2, g = sample_broadening(90.0, 1.5405, 0.1, 0.0)
    >>> round(float(g), 4), float(s2)
    (12.4824, 0.0)
    """
    th = np.radians(np.asarray(two_theta, float) / 2.0)
    size = 1.8 * wavelength / (np.pi * size_um * np.cos(th))
    strain = 0.018 * mustrain * np.tan(th) / np.pi
    gamma = size * size_mix + strain * strain_mix
    sigma2 = ((size * (1.0 - size_mix)) ** 2 + (strain * (1.0 - strain_mix)) ** 2) / _ATELN2
    return sigma2, gamma


def uniaxial_size(cos_axis, equatorial, axial):
    """Effective size (µm) of each reflection under GSAS-II's uniaxial model (``GetSampleSigGam``).

    ``D = D_e D_a / sqrt((D_a sin p)^2 + (D_e cos p)^2)`` with ``p`` the angle between the reflection
    and the axis: ``D_a`` along the axis, ``D_e`` perpendicular to it.

    Examples
    --------
    >>> [round(float(v), 6) for v in uniaxial_size(np.array([1.0, 0.0]), 0.05, 0.02)]
    [0.02, 0.05]
    """
    c2 = np.clip(np.asarray(cos_axis, float) ** 2, 0.0, 1.0)
    return equatorial * axial / np.sqrt(axial**2 * (1.0 - c2) + equatorial**2 * c2)


def uniaxial_mustrain(cos_axis, equatorial, axial):
    """Effective microstrain (ppm) of each reflection under GSAS-II's uniaxial model.

    ``mu = mu_e mu_a / sqrt((mu_e cos p)^2 + (mu_a sin p)^2)`` (``mu_a`` along the axis, ``mu_e``
    perpendicular); 0 when both are 0.

    Examples
    --------
    >>> [round(float(v), 6) for v in uniaxial_mustrain(np.array([1.0, 0.0]), 1000.0, 3000.0)]
    [3000.0, 1000.0]
    """
    c2 = np.clip(np.asarray(cos_axis, float) ** 2, 0.0, 1.0)
    den = np.sqrt(equatorial**2 * c2 + axial**2 * (1.0 - c2))
    return np.where(den > 0, equatorial * axial / np.where(den > 0, den, 1.0), 0.0)


def lorentzian_fwhm(two_theta, X, Y, Z=0.0, wavelength=1.5405, size_um=None, mustrain=None, sample=0.0):
    """Lorentzian FWHM ``gamma = X/cos(theta) + Y tan(theta) + Z`` (+ sample terms), centideg.

    ``size_um``/``mustrain`` add all-Lorentzian size ``1.8 lambda / (pi D cos(theta))`` and
    microstrain ``0.018 mu tan(theta)/pi`` (GSAS-II's LGmix = 1); ``sample`` adds a precomputed
    sample Lorentzian (:func:`sample_broadening`). Floored at GSAS-II's 0.001.
    """
    th = np.radians(np.asarray(two_theta, float) / 2.0)
    gamma = X / np.cos(th) + Y * np.tan(th) + Z + sample
    if size_um:
        gamma = gamma + 1.8 * wavelength / (np.pi * size_um * np.cos(th))
    if mustrain:
        gamma = gamma + 0.018 * mustrain * np.tan(th) / np.pi
    return np.maximum(gamma, GAMMA_FLOOR)


def tch_fwhm_eta(sigma2, gamma):
    """Total FWHM (deg) and Lorentzian fraction eta of the Thompson-Cox-Hastings pseudo-Voigt.

    ``G = sqrt(8 ln2 sigma^2)/100``, ``L = gamma/100`` (deg);
    ``F^5 = G^5 + 2.69269 G^4 L + 2.42843 G^3 L^2 + 4.47163 G^2 L^3 + 0.07842 G L^4 + L^5``;
    ``eta = 1.36603 q - 0.47719 q^2 + 0.11116 q^3``, ``q = L/F``.

    Examples
    --------
    >>> fwhm, eta = tch_fwhm_eta(1.0e4 / (8 * np.log(2)), 0.0)
    >>> round(float(fwhm), 6), float(eta)
    (1.0, 0.0)
    """
    g = np.sqrt(8.0 * _LN2 * np.asarray(sigma2, float)) / 100.0
    lo = np.asarray(gamma, float) / 100.0
    f = (g**5 + 2.69269 * g**4 * lo + 2.42843 * g**3 * lo**2 + 4.47163 * g**2 * lo**3
         + 0.07842 * g * lo**4 + lo**5) ** 0.2
    q = lo / f
    return f, 1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3


def pseudo_voigt(dx, fwhm, eta):
    """Unit-area pseudo-Voigt ``eta L(dx) + (1 - eta) G(dx)`` with both parts of FWHM ``fwhm`` (deg⁻¹).

    ``G = (2/F) sqrt(ln2/pi) exp(-4 ln2 dx^2/F^2)``, ``L = (2/(pi F)) / (1 + 4 dx^2/F^2)``.

    Examples
    --------
    >>> x = np.linspace(-50, 50, 200001)
    >>> round(float(np.trapezoid(pseudo_voigt(x, 0.1, 0.5), x)), 3)
    1.0
    """
    z = (2.0 * dx / fwhm) ** 2
    gauss = (2.0 / fwhm) * np.sqrt(_LN2 / np.pi) * np.exp(-_LN2 * z)
    lorentz = (2.0 / (np.pi * fwhm)) / (1.0 + z)
    return eta * lorentz + (1.0 - eta) * gauss


def pseudo_voigt_derivatives(dx, fwhm, eta):
    """Pseudo-Voigt and its partial derivatives ``(pv, d/d dx, d/dF, d/d eta)``.

    With ``z = 4 dx^2 / F^2``: ``dG/d dx = -8 ln2 dx G / F^2``, ``dL/d dx = -8 dx L / (F^2 (1 + z))``,
    ``dG/dF = (G/F)(2 ln2 z - 1)``, ``dL/dF = (L/F)(2z/(1 + z) - 1)``, ``d pv/d eta = L - G``.
    (A peak centre ``c`` enters as ``dx = x - c``, so ``d pv/dc = -d pv/d dx``.)

    Examples
    --------
    >>> pv, ddx, dF, deta = pseudo_voigt_derivatives(np.array([0.03]), 0.1, 0.4)
    >>> h = 1e-7
    >>> bool(np.isclose(dF[0], (pseudo_voigt(0.03, 0.1 + h, 0.4) - pseudo_voigt(0.03, 0.1 - h, 0.4)) / (2 * h)))
    True
    """
    z = (2.0 * dx / fwhm) ** 2
    gauss = (2.0 / fwhm) * np.sqrt(_LN2 / np.pi) * np.exp(-_LN2 * z)
    lorentz = (2.0 / (np.pi * fwhm)) / (1.0 + z)
    pv = eta * lorentz + (1.0 - eta) * gauss
    f2 = fwhm * fwhm
    d_dx = eta * (-8.0 * dx * lorentz / (f2 * (1.0 + z))) + (1.0 - eta) * (-8.0 * _LN2 * dx * gauss / f2)
    d_f = eta * (lorentz / fwhm) * (2.0 * z / (1.0 + z) - 1.0) + (1.0 - eta) * (gauss / fwhm) * (2.0 * _LN2 * z - 1.0)
    return pv, d_dx, d_f, lorentz - gauss


def fcj_offsets(two_theta, shl, n_nodes: int = 8):
    """Finger-Cox-Jephcoat axial-divergence kernel as quadrature nodes: offsets (deg) and weights.

    With ``S/L = H/L = SH/L / 2`` the FCJ weight of a ray leaving at ``2phi`` is
    ``W(2phi) ∝ (SH/L - h) / (h cos 2phi)``, ``h = sqrt(cos^2 2phi / cos^2 2theta - 1)``, for 2phi
    between ``2phi_min`` (``h = SH/L``) and ``2theta``. Substituting ``u = h`` removes the ``1/h``
    singularity: weight ``(SH/L - u) / ((1 + u^2) sin 2phi(u)) du`` on ``u`` in ``[0, SH/L]``, which a
    Gauss-Legendre rule integrates well. The observed profile is ``sum_q w_q PV(x - 2theta - offset_q)``.

    Returns ``(offsets, weights)`` each of shape ``two_theta.shape + (n_nodes,)``; weights sum to 1.
    """
    tt = np.radians(np.asarray(two_theta, float))[..., None]
    nodes, gl_w = np.polynomial.legendre.leggauss(n_nodes)
    u = 0.5 * shl * (nodes + 1.0)
    cos_phi = np.clip(np.cos(tt) * np.sqrt(1.0 + u * u), -1.0, 1.0)
    phi = np.arccos(cos_phi)
    weights = gl_w * (shl - u) / ((1.0 + u * u) * np.maximum(np.sin(phi), 1e-9))
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return np.degrees(phi - tt), weights


def lorentz_polarization(two_theta, polarization=None, monochromator_angle=None):
    """Lorentz x polarisation factor for Bragg-Brentano geometry.

    Lorentz ``1 / (2 sin^2(theta) cos(theta))``. Polarisation either GSAS-II's ``Polariz.`` fraction
    ``p`` (azimuth 0): ``(1 - p) cos^2(2theta) + p``, or a monochromator at ``2theta_m``:
    ``(1 + cos^2(2theta_m) cos^2(2theta)) / (1 + cos^2(2theta_m))``.

    Examples
    --------
    >>> round(float(lorentz_polarization(90.0, polarization=0.7)), 6)
    0.989949
    """
    tt = np.radians(np.asarray(two_theta, float))
    th = tt / 2.0
    lorentz = 1.0 / (2.0 * np.sin(th) ** 2 * np.cos(th))
    c2 = np.cos(tt) ** 2
    if monochromator_angle is not None:
        cm = np.cos(np.radians(monochromator_angle)) ** 2
        pol = (1.0 + cm * c2) / (1.0 + cm)
    else:
        p = 0.5 if polarization is None else polarization
        pol = (1.0 - p) * c2 + p
    return lorentz * pol


def peak_position(d, wavelength, zero=0.0, displacement_um=0.0, radius_mm=200.0):
    """Bragg-Brentano peak position (deg) with zero shift and sample displacement (µm).

    ``2theta = 2 asin(lambda / 2d) - (0.36 / (pi R)) * Shift * cos(theta) + Zero`` (GSAS-II ``Shift``).
    Reflections beyond the wavelength limit give NaN.
    """
    ratio = wavelength / (2.0 * np.asarray(d, float))
    with np.errstate(invalid="ignore"):
        tt = 2.0 * np.degrees(np.arcsin(np.where(ratio < 1.0, ratio, np.nan)))
    return tt - (0.36 / (np.pi * radius_mm)) * displacement_um * np.cos(np.radians(tt / 2.0)) + zero


def march_dollase(cos_alpha, ratio):
    """March-Dollase preferred-orientation factor ``(r^2 cos^2 a + sin^2 a / r)^(-3/2)``."""
    c2 = np.asarray(cos_alpha, float) ** 2
    return (ratio * ratio * c2 + (1.0 - c2) / ratio) ** -1.5
