"""Powder background: Chebyshev polynomials of the first kind (GSAS-II ``chebyschev-1``).

``y_b = sum_i c_i T_i(t)``, ``t = -1 + 2 (2theta - 2theta_first) / (2theta_last - 2theta_first)`` with
first/last the first and last data points inside the refinement limits.

Example
-------
>>> chebyshev_background([10.0, 50.0, 90.0], [100.0, -20.0]).tolist()
[120.0, 100.0, 80.0]
"""

from __future__ import annotations

import numpy as np


def chebyshev_design(two_theta, n_terms: int, first: float | None = None, last: float | None = None):
    """Design matrix ``(n_points, n_terms)``: column ``i`` is ``T_i(t)``.

    The background is linear in its coefficients, so this matrix is also its exact derivative.
    """
    x = np.asarray(two_theta, float)
    first = x[0] if first is None else first
    last = x[-1] if last is None else last
    t = -1.0 + 2.0 * (x - first) / (last - first)
    return np.polynomial.chebyshev.chebvander(t, n_terms - 1)


def chebyshev_background(two_theta, coefficients, first=None, last=None):
    """Background counts ``sum_i c_i T_i(t)`` on ``two_theta``."""
    c = np.asarray(coefficients, float)
    return chebyshev_design(two_theta, c.size, first, last) @ c
