"""XPS backgrounds as pure functions of the measured spectrum.

All functions take ``x`` (binding energy, eV, ascending, shape ``(N,)``) and ``y`` of shape
``(..., N)`` (any number of spectra at once) and return the background with the shape of ``y``.
Electrons that lose energy appear at higher binding energy, so every background rises from the
low-BE end of the window towards the high-BE end.

The "active" variants (background refined with the peaks) live in :mod:`xps.fit`, where the
background is a function of the current peak sum rather than of the data.
"""

from __future__ import annotations

import numpy as np

from .errors import XPSError

# Tougaard universal cross-section constants (Tougaard, Surf. Interface Anal. 25 (1997) 137):
# U2 "universal" metals B = 2866 eV^2, C = 1643 eV^2; U3 polymers B = 551, C = 436, D = 2.
TOUGAARD_U2 = {"B": 2866.0, "C": 1643.0}
TOUGAARD_U3 = {"B": 551.0, "C": 436.0, "D": 2.0}


def _endpoints(y: np.ndarray, average: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(max(1, min(average, y.shape[-1] // 2 or 1)))
    return y[..., :n].mean(axis=-1), y[..., -n:].mean(axis=-1)


def cumulative_integral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trapezoid integral of ``y`` from ``x[0]`` to each ``x[i]`` (0 at the first point), along the last axis."""
    dx = np.diff(x, axis=-1)
    steps = 0.5 * (y[..., 1:] + y[..., :-1]) * dx
    out = np.zeros_like(y, dtype=float)
    np.cumsum(steps, axis=-1, out=out[..., 1:])
    return out


def linear(x, y, average: int = 1):
    """Straight line between the mean of the first and of the last ``average`` points.

    ``B(x) = I_lo + (I_hi - I_lo) (x - x_0) / (x_N - x_0)``

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.array([0.0, 1, 2]), np.array([1.0, 5, 3])).tolist()
    [1.0, 2.0, 3.0]
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    lo, hi = _endpoints(y, average)
    frac = (x - x[..., :1]) / (x[..., -1:] - x[..., :1])
    return lo[..., None] + (hi - lo)[..., None] * frac


def shirley(x, y, average: int = 1, max_iter: int = 100, tol: float = 1e-7):
    """Iterative Shirley background (Proctor and Sherwood, Anal. Chem. 54 (1982) 13).

    ``B(x) = I_lo + (I_hi - I_lo) Q(x) / Q(x_N)``,  ``Q(x) = integral_{x_0}^{x} (y - B) dx'``

    iterated from ``B = I_lo`` until the relative change of the step is below ``tol``. The end
    intensities ``I_lo`` and ``I_hi`` are means over ``average`` points at each end (CasaXPS's
    endpoint averaging). Many spectra (leading dimensions of ``y``) are processed at once.
    When the end levels cannot be joined by a Shirley step the iteration does not converge and
    the last iterate is returned; :func:`shirley_status` says which spectra converged.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 10, 101)
    >>> step = 1 + 4 * (x > 5)              # a pure step: the background is the step itself
    >>> bool(abs(shirley(x, step)[-1] - 5) < 1e-12)
    True
    """
    return shirley_status(x, y, average, max_iter, tol)[0]


def shirley_status(x, y, average: int = 1, max_iter: int = 100, tol: float = 1e-7):
    """:func:`shirley` and a boolean array (shape ``y.shape[:-1]``): did each spectrum converge?

    The Shirley background is the fixed point ``B = I_lo + k integral_{x_0}^{x} (y - B) dx'`` with
    ``B(x_N) = I_hi``; for some windows on real data (a sloping or cut-off high-BE end) no such
    fixed point exists and the iteration oscillates. Callers can then choose another background.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape[-1] != y.shape[-1] or x.shape[-1] < 3:
        raise XPSError("shirley: x needs at least 3 points and must match y's last axis")
    lo, hi = _endpoints(y, average)
    lo, hi = lo[..., None], hi[..., None]
    scale = np.maximum(np.abs(hi - lo), 1e-300)
    background = np.broadcast_to(lo, y.shape).copy()
    converged = np.zeros(y.shape[:-1], dtype=bool)
    for _ in range(max_iter):
        q = cumulative_integral(x, y - background)
        total = q[..., -1:]
        safe = np.where(np.abs(total) > 1e-300, total, 1.0)
        new = lo + (hi - lo) * np.where(np.abs(total) > 1e-300, q / safe, 0.0)
        change = np.max(np.abs(new - background) / scale, axis=-1)
        background = new
        converged = change <= tol
        if np.all(converged):
            break
    return background, converged


def tougaard_kernel(t, B: float, C: float, D: float = 0.0, kind: str = "U2"):
    """Tougaard universal loss cross-section ``K(T)`` (1/eV) at energy loss ``T`` (eV), zero for T <= 0.

    U2: ``K(T) = B T / (C + T^2)^2``;  U3: ``K(T) = B T / ((C - T^2)^2 + D T^2)``.
    """
    t = np.asarray(t, dtype=float)
    if kind.upper() == "U2":
        k = B * t / (C + t * t) ** 2
    elif kind.upper() == "U3":
        k = B * t / ((C - t * t) ** 2 + D * t * t)
    else:
        raise XPSError(f"tougaard: unknown cross-section '{kind}' (U2 or U3)")
    return np.where(t > 0, k, 0.0)


def tougaard(x, y, B: float | None = None, C: float | None = None, D: float | None = None,
             kind: str = "U2", average: int = 1):
    """Tougaard background: the inelastic loss of every electron at lower binding energy.

    ``B(x) = I_lo + integral_{x_0}^{x} K(x - x') (y(x') - I_lo) dx'``

    with ``K`` the U2 or U3 universal cross-section (:func:`tougaard_kernel`); defaults are the
    universal constants (U2: B = 2866, C = 1643; U3: B = 551, C = 436, D = 2). ``I_lo`` is the mean
    of the first ``average`` points.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    defaults = TOUGAARD_U3 if kind.upper() == "U3" else TOUGAARD_U2
    B = defaults["B"] if B is None else B
    C = defaults["C"] if C is None else C
    D = defaults.get("D", 0.0) if D is None else D
    lo, _ = _endpoints(y, average)
    return lo[..., None] + tougaard_response(x, y - lo[..., None], B, C, D, kind)


def tougaard_response(x, y, B, C, D=0.0, kind="U2"):
    """``integral_{x_0}^{x} K(x - x') y(x') dx'`` for every ``x`` (trapezoid weights), along the last axis."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        if np.allclose(x, x[:1]):
            x = x[0]
        else:  # one grid per spectrum (e.g. per-level charge shifts)
            return np.stack([tougaard_response(xi, yi, B, C, D, kind) for xi, yi in zip(x, y)])
    loss = x[:, None] - x[None, :]  # (out, in)
    weights = np.empty_like(x)
    dx = np.diff(x)
    weights[0] = dx[0] / 2
    weights[-1] = dx[-1] / 2
    weights[1:-1] = (dx[1:] + dx[:-1]) / 2
    kernel = tougaard_kernel(loss, B, C, D, kind) * weights[None, :]
    return np.asarray(y, dtype=float) @ kernel.T


BACKGROUNDS = {"linear": linear, "shirley": shirley, "tougaard": tougaard}
