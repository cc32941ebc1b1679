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

from .model import PatternModel


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

    The peak windows are those frozen by the last :meth:`PatternModel.freeze`.
    """
    n = model.x.size
    jac = np.zeros((n, len(names)))
    terms = [model.profile_terms(k, values) for k in range(len(model.phases))]
    for j, name in enumerate(names):
        par = model.parameters[name]
        if par.group == "scale":
            point, refl, val, inten = terms[par.phases[0]]
            jac[:, j] = np.bincount(point, val * inten[refl], minlength=n)
        elif par.group == "background":
            jac[:, j] = model.bkg_design[:, int(name.split(":")[1])]
        elif par.kind == "intensity":
            h = par.step
            for k in par.phases:
                point, refl, val, _ = terms[k]
                up = model.peaks(k, {**values, name: values[name] + h})[3]
                down = model.peaks(k, {**values, name: values[name] - h})[3]
                scale = values[f"{model.phases[k].name}:scale"]
                jac[:, j] += scale * np.bincount(point, val * ((up - down) / (2 * h))[refl], minlength=n)
        else:
            h = par.step
            phases = par.phases or range(len(model.phases))
            for k in phases:
                up = model.phase_pattern(k, {**values, name: values[name] + h})
                down = model.phase_pattern(k, {**values, name: values[name] - h})
                jac[:, j] += values[f"{model.phases[k].name}:scale"] * (up - down) / (2 * h)
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
                        tol: float = 1e-6) -> FitResult:
    """Refine ``names`` from ``values``; at most ``max_cycles`` Jacobian evaluations.

    Stops when a cycle lowers chi² by less than ``tol`` (relative) or no step lowers it.
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
