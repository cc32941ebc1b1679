"""Least squares for the built-in engine: Jacobian, Levenberg-Marquardt, linear start, statistics.

Derivatives: exact for linear parameters (phase scales, background coefficients); for parameters
that only change integrated intensities (Uiso, xyz, occupancies, preferred orientation) a central
difference of the intensities times the (fixed) sparse profile matrix; for peak shape and position
parameters a central difference of the phase pattern with the peak windows frozen. scipy's
``least_squares`` cannot hold windows fixed between Jacobian and step, hence a small hand-written
Marquardt loop (with the GSAS-II-style per-stage cycle limit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from .model import PatternModel
from .profiles import tch_fwhm_eta


@dataclass
class FitResult:
    values: dict[str, float]
    names: list[str]
    covariance: np.ndarray  # scaled by the reduced chi^2 (GSAS-II convention)
    fisher: np.ndarray  # J^T W J (unscaled)
    calc: np.ndarray
    chi2: float
    cycles: int
    seconds: float
    history: list[float] = field(default_factory=list)

    @property
    def stderr(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    @property
    def correlation(self) -> np.ndarray:
        err = self.stderr
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = self.covariance / np.outer(err, err)
        return np.where(np.isfinite(corr), corr, 0.0)


def jacobian(model: PatternModel, values: dict[str, float], names: list[str]) -> np.ndarray:
    """``d calc / d p`` (counts per unit parameter), shape ``(n_points, len(names))``.

    The peak windows are those frozen by the last :meth:`PatternModel.freeze`. Per-reflection
    derivatives (intensity, position, FWHM, eta) of every parameter are stacked and turned into
    pattern derivatives by four sparse products with the profile and its analytic partials.
    """
    n = model.x.size
    jac = np.zeros((n, len(names)))
    shape = any(model.parameters[name].kind == "shape" for name in names)
    for k, phase in enumerate(model.phases):
        terms = model.profile_terms(k, values, partials=shape)
        point, refl, val, inten = terms[:4]
        n_refl = inten.size
        mats = [scipy.sparse.csr_matrix((v, (point, refl)), shape=(n, n_refl))
                for v in ((val,) + tuple(terms[4:]))]
        scale = values[f"{phase.name}:scale"]
        cols, d_int, d_pos, d_fw, d_eta = [], [], [], [], []
        for j, name in enumerate(names):
            par = model.parameters[name]
            touches = (par.phases and k in par.phases) or (not par.phases and par.kind == "shape")
            if par.group == "scale" and k in par.phases:
                jac[:, j] += mats[0] @ inten
                continue
            if not touches or par.kind == "linear":
                continue
            h = par.step
            up = model.peaks(k, {**values, name: values[name] + h})
            down = model.peaks(k, {**values, name: values[name] - h})
            cols.append(j)
            d_int.append((up[3] - down[3]) / (2 * h))
            if par.kind == "shape":
                f_u, e_u = tch_fwhm_eta(up[1], up[2])
                f_d, e_d = tch_fwhm_eta(down[1], down[2])
                d_pos.append(np.nan_to_num((up[0] - down[0]) / (2 * h)))
                d_fw.append((f_u - f_d) / (2 * h))
                d_eta.append((e_u - e_d) / (2 * h))
            else:
                zero = np.zeros(n_refl)
                d_pos.append(zero)
                d_fw.append(zero)
                d_eta.append(zero)
        if cols:
            block = mats[0] @ np.array(d_int).T
            if shape:
                weighted = inten[:, None]
                block += (mats[1] @ (weighted * np.array(d_pos).T) + mats[2] @ (weighted * np.array(d_fw).T)
                          + mats[3] @ (weighted * np.array(d_eta).T))
            jac[:, cols] += scale * block
    for j, name in enumerate(names):
        if model.parameters[name].group == "background":
            jac[:, j] = model.bkg_design[:, int(name.split(":")[1])]
    return jac


def chi_square(model: PatternModel, calc: np.ndarray) -> float:
    return float(np.sum(model.weight * (model.y - calc) ** 2))


def linear_start(model: PatternModel, values: dict[str, float], names: list[str]) -> dict[str, float]:
    """Exact weighted least-squares values of the linear parameters ``names`` (scales, background)."""
    linear = [n for n in names if model.parameters[n].kind == "linear"]
    if not linear:
        return values
    model.freeze(values)
    zeroed = {**values, **{n: 0.0 for n in linear}}
    rest = model.calculate(zeroed)
    cols = jacobian(model, values, linear)
    sw = np.sqrt(model.weight)
    solution, *_ = np.linalg.lstsq(cols * sw[:, None], (model.y - rest) * sw, rcond=None)
    return {**values, **dict(zip(linear, solution.tolist()))}


def _solve(a: np.ndarray, g: np.ndarray, lam: float) -> np.ndarray:
    d = np.sqrt(np.diag(a))
    d = np.where(d > 0, d, 1.0)
    scaled = a / np.outer(d, d) + lam * np.eye(a.shape[0])
    try:
        return np.linalg.solve(scaled, g / d) / d
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(scaled, g / d, rcond=None)[0] / d


def covariance(fisher: np.ndarray) -> np.ndarray:
    """Inverse of ``J^T W J`` through the correlation matrix (robust to badly scaled parameters)."""
    d = np.sqrt(np.diag(fisher))
    d = np.where(d > 0, d, np.inf)
    norm = fisher / np.outer(d, d)
    inv = np.linalg.pinv(norm, rcond=1e-13, hermitian=True)
    return inv / np.outer(d, d)


def levenberg_marquardt(model: PatternModel, values: dict[str, float], names: list[str], max_cycles: int = 10,
                        tol: float = 1e-6, with_covariance: bool = True) -> FitResult:
    """Refine ``names`` from ``values``; at most ``max_cycles`` Jacobian evaluations.

    Stops when a cycle lowers chi² by less than ``tol`` (relative) or no step lowers it. With
    ``with_covariance=False`` (intermediate stages) the final Jacobian and covariance are skipped.
    """
    start = time.perf_counter()
    values = dict(values)
    sw = np.sqrt(model.weight)
    lam = 1e-3
    history = []
    cycles = 0
    model.freeze(values)
    calc = model.calculate(values)
    chi2 = chi_square(model, calc)
    for cycles in range(1, max_cycles + 1):
        jac = jacobian(model, values, names) * sw[:, None]
        a = jac.T @ jac
        g = jac.T @ ((model.y - calc) * sw)
        accepted = False
        for _ in range(12):
            delta = _solve(a, g, lam)
            trial = {**values, **{n: values[n] + float(dv) for n, dv in zip(names, delta)}}
            trial_calc = model.calculate(trial)
            trial_chi2 = chi_square(model, trial_calc)
            if np.isfinite(trial_chi2) and trial_chi2 <= chi2:
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            break
        gain = (chi2 - trial_chi2) / chi2 if chi2 > 0 else 0.0
        values, calc, chi2 = trial, trial_calc, trial_chi2
        lam = max(lam / 10.0, 1e-7)
        model.freeze(values)
        calc = model.calculate(values)
        chi2 = chi_square(model, calc)
        history.append(chi2)
        if gain < tol:
            break
    model.freeze(values)
    calc = model.calculate(values)
    chi2 = chi_square(model, calc)
    if not with_covariance:
        nan = np.full((len(names), len(names)), np.nan)
        return FitResult(values, list(names), nan, nan, calc, chi2, cycles, time.perf_counter() - start, history)
    jac = jacobian(model, values, names) * sw[:, None]
    fisher = jac.T @ jac
    dof = max(int(model.used.sum()) - len(names), 1)
    cov = covariance(fisher) * (chi2 / dof)
    return FitResult(values, list(names), cov, fisher, calc, chi2, cycles, time.perf_counter() - start, history)


def statistics(model: PatternModel, calc: np.ndarray, nvar: int) -> dict[str, float]:
    """Rwp, Rp, Rexp (%), GOF, Nobs, Nvar over the points used (GSAS-II definitions)."""
    used = model.used
    w = model.weight[used]
    yo = model.y[used]
    yc = calc[used]
    nobs = int(used.sum())
    chi2 = float(np.sum(w * (yo - yc) ** 2))
    swy2 = float(np.sum(w * yo * yo))
    dof = max(nobs - nvar, 1)
    return {
        "rwp": 100.0 * np.sqrt(chi2 / swy2),
        "rp": 100.0 * float(np.sum(np.abs(yo - yc)) / np.sum(np.abs(yo))),
        "rexp": 100.0 * np.sqrt(dof / swy2),
        "gof": float(np.sqrt(chi2 / dof)),
        "nobs": nobs,
        "nvar": int(nvar),
    }
