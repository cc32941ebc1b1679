"""XPS line shapes as pure functions: area-normalised (integral 1 over energy) and FWHM-parametrised.

Every function takes ``x`` (binding energy, eV), ``center`` and ``fwhm`` (eV) that broadcast
against each other (e.g. ``x`` of shape ``(N,)`` and ``center[:, None]`` of shape ``(S, 1)`` for
S spectra at once) and returns ``area * shape``-ready values whose integral over ``x`` is 1 and
whose full width at half maximum is exactly ``fwhm``.

Binding energy increases with ``x``: asymmetric tails (LA, LF, Doniach-Sunjic) extend to higher
binding energy (larger ``x``), as inelastic losses do.

:func:`shape_function` turns a CasaXPS line-shape name (``"GL(30)"``, ``"LA(1.53,243)"``...) into
one of these functions with its shape constants bound.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from .errors import XPSError

LN2 = np.log(2.0)


def gaussian(x, center, fwhm):
    """Gaussian, area 1.

    ``G(x) = sqrt(4 ln2 / pi) / F * exp(-4 ln2 (x - E)^2 / F^2)``

    Examples
    --------
    >>> round(float(gaussian(0.0, 0.0, 1.0)), 6)
    0.939437
    """
    t = (np.asarray(x) - center) / fwhm
    return np.sqrt(4 * LN2 / np.pi) / fwhm * np.exp(-4 * LN2 * t * t)


def lorentzian(x, center, fwhm):
    """Lorentzian, area 1.

    ``L(x) = 2 / (pi F) / (1 + 4 (x - E)^2 / F^2)``
    """
    t = (np.asarray(x) - center) / fwhm
    return 2.0 / (np.pi * fwhm) / (1.0 + 4.0 * t * t)


def _half_max_root(a: float, b: float) -> float:
    """The root in [0, 1] of ``a s + ln(1 + b s) = ln 2`` (increasing in s; a, b >= 0).

    Bisection to machine precision, written out rather than ``scipy.optimize.brentq`` so that
    importing the line shapes does not import scipy.optimize (0.25 s of every CLI start-up).
    """
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if a * mid + math.log1p(b * mid) - LN2 < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def erfcx(z: float) -> float:
    """Scaled complementary error function ``erfcx(z) = exp(z^2) erfc(z)``, z >= 0.

    ``math.erfc`` where ``exp(z^2)`` is finite (z < 26), beyond it the asymptotic series
    ``erfcx(z) = 1 / (z sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2 z^2)^k`` (terms to k = 6: the
    omitted one is below 1e-15 relative). Written out because ``scipy.special.erfcx``, the only
    library one, costs 0.09 s of every CLI start-up to import for one number per line shape.

    >>> round(erfcx(1.0), 12)
    0.427583576156
    """
    if z < 26.0:
        return math.exp(z * z) * math.erfc(z)
    u = 1.0 / (2.0 * z * z)
    total, term = 1.0, 1.0
    for k in range(1, 7):
        term *= -(2 * k - 1) * u
        total += term
    return total / (z * math.sqrt(math.pi))


@functools.lru_cache(maxsize=256)
def _gl_constants(m: float) -> tuple[float, float]:
    """(width scale, area) of the unit GL product so that its true FWHM is 1.

    The raw product ``exp(-4 ln2 (1-m) t^2) / (1 + 4 m t^2)`` has half maximum where
    ``4 ln2 (1-m) s + ln(1 + 4 m s) = ln 2`` (``s = t^2``); that root is found once per m.
    Its area is ``pi / sqrt(b) * erfcx(sqrt(a / b))`` with ``a = 4 ln2 (1-m)``, ``b = 4 m``.
    """
    if m <= 0:
        return 1.0, float(np.sqrt(np.pi / (4 * LN2)))
    s = _half_max_root(4 * LN2 * (1 - m), 4 * m)
    half_width = np.sqrt(s)  # at unit raw F
    scale = 2 * half_width  # raw F per unit of true FWHM
    a, b = 4 * LN2 * (1 - m), 4 * m
    area_raw = np.pi / np.sqrt(b) * erfcx(math.sqrt(a / b)) if a > 0 else np.pi / np.sqrt(b)
    return float(scale), float(area_raw / scale)


def gl(x, center, fwhm, p=30.0):
    """CasaXPS GL(p): Gaussian-Lorentzian product, mixing ``m = p/100`` (GL(0) Gaussian, GL(100) Lorentzian).

    ``GL(x) = exp(-4 ln2 (1-m) t^2) / (1 + 4 m t^2) / A``,  ``t = (x - E) / F'``

    ``F'`` is chosen so the true FWHM equals ``fwhm`` (for 0 < m < 1 the raw product is
    narrower than ``F'``); ``A`` is the closed-form area
    ``F' pi / sqrt(4m) erfcx(sqrt(ln2 (1-m) / m))``.

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.allclose(gl(0.3, 0.0, 1.2, 0), gaussian(0.3, 0.0, 1.2)))
    True
    """
    m = float(p) / 100.0
    scale, area = _gl_constants(m)
    # The formula above, in place: the same operations in the same order (bit-identical), without
    # five temporaries of the batched fitter's (spectra x points) size; this is its hottest function.
    t = np.subtract(x, center)
    if not (isinstance(t, np.ndarray) and t.dtype == np.float64 and t.ndim):  # scalars, integer grids
        t = (np.asarray(x) - center) / fwhm * scale
        t2 = t * t
        return np.exp(-4 * LN2 * (1 - m) * t2) / (1 + 4 * m * t2) / (area * fwhm)
    t /= fwhm
    t *= scale
    t *= t  # t^2
    out = np.multiply(t, -4 * LN2 * (1 - m))
    np.exp(out, out=out)
    t *= 4 * m
    t += 1
    out /= t
    out /= area * fwhm
    return out


def gl_gradient(x, center, fwhm, p=30.0):
    """GL(p) and its derivatives with respect to ``center`` and ``fwhm``: ``(f, df/dE, df/dF)``.

    With ``u = t^2``, ``t = s (x - E) / F`` (``s`` the width scale of :func:`gl`),
    ``a = 4 ln2 (1-m)``, ``b = 4m`` and ``D = d ln f / du = -a - b / (1 + b u)``:

    ``df/dE = -2 s t D f / F``,  ``df/dF = -(2 u D + 1) f / F``

    The batched fitter's Jacobian takes these instead of two more evaluations of :func:`gl`
    per component (a one-sided difference): a third of the line-shape work.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(-3.0, 3.0, 61)
    >>> f, d_center, d_fwhm = gl_gradient(x, 0.1, 1.3)
    >>> bool(np.allclose(d_center, (gl(x, 0.1 + 1e-6, 1.3) - gl(x, 0.1 - 1e-6, 1.3)) / 2e-6, atol=1e-6))
    True
    """
    m = float(p) / 100.0
    scale, area = _gl_constants(m)
    a, b = 4 * LN2 * (1 - m), 4 * m
    fwhm = np.asarray(fwhm, dtype=float)
    # The formulas above in place, five (spectra x points) arrays in all: the batched fitter's
    # hottest function. With q = f / (1 + b u), -D f = a f + b q.
    t = np.subtract(x, center, dtype=float)
    t *= scale / fwhm
    u = t * t
    denominator = u * b
    denominator += 1.0
    f = u * -a
    np.exp(f, out=f)
    f /= denominator
    f *= 1.0 / (area * fwhm)
    minus_d_f = f * a
    np.divide(f, denominator, out=denominator)  # q
    denominator *= b
    minus_d_f += denominator
    t *= minus_d_f
    t *= (2.0 * scale) / fwhm  # df/dE
    u *= minus_d_f
    u *= 2.0
    u -= f
    u /= fwhm  # df/dF
    return f, t, u


def gaussian_gradient(x, center, fwhm):
    """:func:`gaussian` and its derivatives: ``(G, dG/dE, dG/dF)``.

    ``dG/dE = 8 ln2 (x - E) / F^2 G``,  ``dG/dF = (8 ln2 (x - E)^2 / F^2 - 1) G / F``
    """
    return gl_gradient(x, center, fwhm, 0.0)


def gradient_function(func):
    """``g(x, center, fwhm) -> (f, df/dE, df/dF)`` for a function of :func:`shape_function`, or None
    when the shape has no closed-form derivative (the fitter then differences it)."""
    if func is gaussian:
        return gaussian_gradient
    if isinstance(func, functools.partial) and func.func is gl and not func.args:
        return functools.partial(gl_gradient, **func.keywords)
    return None


def sgl(x, center, fwhm, p=30.0):
    """CasaXPS SGL(p): Gaussian-Lorentzian sum of equal-height, equal-FWHM curves, ``m = p/100``.

    ``SGL(x) = [(1-m) exp(-4 ln2 t^2) + m / (1 + 4 t^2)] / A``,  ``t = (x - E) / F``,
    ``A = F [(1-m) sqrt(pi / (4 ln2)) + m pi / 2]``; the FWHM is exactly ``F``.
    """
    m = float(p) / 100.0
    t = (np.asarray(x) - center) / fwhm
    t2 = t * t
    area = (1 - m) * np.sqrt(np.pi / (4 * LN2)) + m * np.pi / 2
    return ((1 - m) * np.exp(-4 * LN2 * t2) + m / (1 + 4 * t2)) / (area * fwhm)


def _voigt_widths(fwhm, lorentz_share):
    """Gaussian sigma and Lorentzian gamma of a Voigt of total ``fwhm`` whose Lorentzian FWHM is
    ``lorentz_share * fwhm`` (Olivero-Longbothum: F = 0.5346 FL + sqrt(0.2166 FL^2 + FG^2), 0.02 %)."""
    fl = lorentz_share * fwhm
    fg = np.sqrt(np.maximum((fwhm - 0.5346 * fl) ** 2 - 0.2166 * fl**2, 1e-300))
    return fg / (2 * np.sqrt(2 * LN2)), fl / 2


def voigt(x, center, fwhm, lorentz_share=0.3):
    """Voigt profile (Gaussian convolved with Lorentzian), area 1.

    ``V(x) = Re[w(z)] / (sigma sqrt(2 pi))``,  ``z = (x - E + i gamma) / (sigma sqrt 2)``

    with Lorentzian FWHM ``2 gamma = lorentz_share * fwhm`` and sigma chosen so the total FWHM
    is ``fwhm`` (Olivero-Longbothum relation, good to 0.02 %).
    """
    from scipy import special

    sigma, gamma = _voigt_widths(fwhm, lorentz_share)
    return special.voigt_profile(np.asarray(x) - center, sigma, gamma)


# ---- tabulated shapes --------------------------------------------------------------------------
# LA, LF and Doniach-Sunjic have no closed-form area/FWHM once convolved with a Gaussian, so
# each is computed once per shape-constant set on a fine grid (units of its Lorentzian width),
# scaled to unit FWHM and unit area, and evaluated by linear interpolation: this keeps
# evaluation as cheap as a closed form for the batched fitter.

_HALF_RANGE = 60.0  # grid half-range in units of the Lorentzian width
_GRID_POINTS = 48001


def _gauss_kernel(t, fwhm):
    return np.exp(-4 * LN2 * (t / fwhm) ** 2)


def _unit_table(raw: np.ndarray, t: np.ndarray, gauss_fwhm: float):
    if gauss_fwhm > 0:
        from scipy import signal

        kernel = _gauss_kernel(t, gauss_fwhm)
        raw = signal.fftconvolve(raw, kernel / kernel.sum(), mode="same")
    peak = raw.max()
    above = np.nonzero(raw >= peak / 2)[0]
    i0, i1 = above[0], above[-1]
    left = np.interp(peak / 2, [raw[i0 - 1], raw[i0]], [t[i0 - 1], t[i0]])
    right = np.interp(peak / 2, [raw[i1 + 1], raw[i1]], [t[i1 + 1], t[i1]])
    width = right - left
    area = np.trapezoid(raw, t)
    u = t / width
    value = raw * width / area
    return u, value


@functools.lru_cache(maxsize=64)
def _la_table(alpha: float, beta: float, m: float, w: float | None):
    t = np.linspace(-_HALF_RANGE, _HALF_RANGE, _GRID_POINTS)
    lor = 1.0 / (1.0 + 4.0 * t * t)
    raw = np.where(t > 0, lor**alpha, lor**beta)
    if w is not None:
        # LF: the tails beyond the core are damped by a Gaussian of FWHM w/100 Lorentzian widths,
        # giving a finite area inside any fitting window (doptrace's reading of CasaXPS LF).
        damp_width = max(w, 1e-3) / 100.0
        core = np.abs(t) > 0.5
        raw = np.where(core, raw * np.exp(-4 * LN2 * ((np.abs(t) - 0.5) / damp_width) ** 2), raw)
    return _unit_table(raw, t, m / 100.0)


@functools.lru_cache(maxsize=64)
def _ds_table(asym: float, gauss: float):
    t = np.linspace(-_HALF_RANGE, _HALF_RANGE, _GRID_POINTS)
    gamma = 0.5
    raw = np.cos(np.pi * asym / 2 + (1 - asym) * np.arctan(-t / gamma)) / (gamma**2 + t * t) ** ((1 - asym) / 2)
    return _unit_table(raw, t, gauss)


def _tabulated(x, center, fwhm, table):
    u, value = table
    return np.interp((np.asarray(x) - center) / fwhm, u, value, left=0.0, right=0.0) / fwhm


def la(x, center, fwhm, alpha=1.0, beta=1.0, m=0.0):
    """CasaXPS LA(alpha, beta, m): asymmetric Lorentzian convolved with a Gaussian, area 1.

    ``LA(t) = [1 / (1 + 4 t^2)]^alpha`` for ``t > 0`` (higher binding energy) and
    ``[1 / (1 + 4 t^2)]^beta`` for ``t <= 0``, ``t = (x - E) / FL``, convolved with a Gaussian of
    FWHM ``m/100 * FL``; then scaled so the true FWHM is ``fwhm`` and the area (over +-60 FL) is 1.
    Larger exponents mean shorter tails; ``LA(a, m)`` means ``alpha = beta = a``.
    """
    return _tabulated(x, center, fwhm, _la_table(float(alpha), float(beta), float(m), None))


def lf(x, center, fwhm, alpha=1.0, beta=1.0, w=100.0, m=0.0):
    """CasaXPS LF(alpha, beta, w, m): LA whose tails beyond the half-maximum core are damped.

    ``LF(t) = LA(t) * exp(-4 ln2 ((|t| - 1/2) / (w/100))^2)`` for ``|t| > 1/2`` before the
    Gaussian convolution (width ``m/100 * FL``); smaller ``w`` damps more. Area 1, FWHM ``fwhm``.
    """
    return _tabulated(x, center, fwhm, _la_table(float(alpha), float(beta), float(m), float(w)))


def doniach_sunjic(x, center, fwhm, asym=0.1, gauss=0.0):
    """Doniach-Sunjic metal line, optionally Gaussian broadened (Gaussian FWHM ``gauss`` in units of 2 gamma).

    ``DS(x) = cos(pi a / 2 + (1 - a) arctan((E - x) / gamma)) / (gamma^2 + (x - E)^2)^((1 - a) / 2)``

    The tail towards high binding energy makes the true area infinite for ``a > 0``; the shape is
    normalised to area 1 over +-60 gamma-widths and scaled so its true FWHM is ``fwhm``.
    ``a = 0`` gives the Lorentzian.
    """
    return _tabulated(x, center, fwhm, _ds_table(float(asym), float(gauss)))


_SHAPE_RE = re.compile(r"^\s*([A-Za-z]+)\s*(?:\(([^)]*)\))?\s*$")


def _numbers(text: str) -> list[float]:
    text = (text or "").strip()
    return [float(v) for v in text.split(",")] if text else []


def shape_function(name: str):
    """``f(x, center, fwhm)`` for a line-shape name such as ``GL(30)``, ``SGL(20)``, ``LA(1.53,243)``,
    ``LA(1.2,2.5,10)``, ``LF(1,1.5,55,10)``, ``Voigt(0.3)``, ``DS(0.1)``, ``Gaussian``, ``Lorentzian``.

    Raises :class:`XPSError` for an unknown or malformed name.

    Examples
    --------
    >>> f = shape_function("GL(30)")
    >>> round(float(f(0.0, 0.0, 1.0)), 4) > 0
    True
    """
    # CasaXPS appends tags after the closing bracket (e.g. "LA(1.53,243)z"); ignore them.
    cleaned = str(name).strip()
    if ")" in cleaned:
        cleaned = cleaned[: cleaned.index(")") + 1]
    match = _SHAPE_RE.match(cleaned)
    if not match:
        raise XPSError(f"line shape '{name}': not understood")
    kind = match.group(1).upper()
    try:
        args = _numbers(match.group(2) or "")
    except ValueError:
        raise XPSError(f"line shape '{name}': arguments must be numbers") from None
    if kind in ("GL", "SGL"):
        p = args[0] if args else 30.0
        if not 0 <= p <= 100 or len(args) > 1:
            raise XPSError(f"line shape '{name}': {kind}(p) needs one p in 0..100")
        func = gl if kind == "GL" else sgl
        return functools.partial(func, p=p)
    if kind in ("G", "GAUSSIAN", "GAUSS"):
        return gaussian
    if kind in ("L", "LORENTZIAN", "LORENTZ"):
        return lorentzian
    if kind == "LA":
        if len(args) == 2:
            args = [args[0], args[0], args[1]]
        elif len(args) == 1:
            args = [args[0], args[0], 0.0]
        if len(args) != 3 or min(args[:2]) <= 0.5 or args[2] < 0:
            raise XPSError(f"line shape '{name}': LA(alpha, beta, m) needs alpha, beta > 0.5 and m >= 0")
        return functools.partial(la, alpha=args[0], beta=args[1], m=args[2])
    if kind == "LF":
        if len(args) == 5:
            args = args[:4]  # the optional fifth CasaXPS constant does not change the profile here
        if len(args) != 4 or min(args[:2]) <= 0 or args[2] < 0 or args[3] < 0:
            raise XPSError(f"line shape '{name}': LF(alpha, beta, w, m) needs 4 non-negative numbers")
        return functools.partial(lf, alpha=args[0], beta=args[1], w=args[2], m=args[3])
    if kind in ("V", "VOIGT"):
        share = args[0] if args else 0.3
        if not 0 <= share <= 1 or len(args) > 1:
            raise XPSError(f"line shape '{name}': Voigt(share) needs a Lorentzian share in 0..1")
        return functools.partial(voigt, lorentz_share=share)
    if kind in ("DS", "DONIACH", "DONIACHSUNJIC"):
        asym = args[0] if args else 0.1
        gauss = args[1] if len(args) > 1 else 0.0
        if not 0 <= asym < 0.5:
            raise XPSError(f"line shape '{name}': DS(asym[, gauss]) needs 0 <= asym < 0.5")
        return functools.partial(doniach_sunjic, asym=asym, gauss=gauss)
    raise XPSError(f"line shape '{name}': unknown (known: GL, SGL, LA, LF, Voigt, DS, Gaussian, Lorentzian)")
