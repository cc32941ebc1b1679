"""Standard errors and correlations from a covariance matrix, one parameter set or a stack of them.

XPS fits a stack of spectra at once (covariance ``(S, P, P)``) and XRD one pattern (``(P, P)``);
both report esds and correlations through these two functions.
"""

from __future__ import annotations

import numpy as np


def stderr(cov: np.ndarray) -> np.ndarray:
    """Standard errors ``sqrt(diag(cov))`` over the last two axes; a negative round-off variance gives 0.

    Examples
    --------
    >>> stderr(np.array([[4.0, 1.0], [1.0, 9.0]])).tolist()
    [2.0, 3.0]
    """
    return np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))


def correlation(cov: np.ndarray, undefined: float = np.nan) -> np.ndarray:
    """Correlation ``r_ij = cov_ij / (sd_i sd_j)`` over the last two axes, clipped to [-1, 1].

    A pseudo-inverse of a singular curvature can give ``|r| > 1``; it is as degenerate as ``|r| = 1``.
    Where a variance is zero (a fixed or degenerate parameter) ``r`` is ``undefined``.

    Examples
    --------
    >>> correlation(np.array([[4.0, 3.0], [3.0, 9.0]]))[0, 1].item()
    0.5
    """
    sd = stderr(cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(cov / (sd[..., :, None] * sd[..., None, :]), -1.0, 1.0)
    return np.where(np.isfinite(r), r, undefined)
