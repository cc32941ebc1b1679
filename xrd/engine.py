"""Least squares for the built-in engine: Jacobian, Levenberg-Marquardt, linear start, statistics.

Derivatives: exact for linear parameters (phase scales, background coefficients); for parameters
that only change integrated intensities (Uiso, xyz, occupancies, preferred orientation) a central
difference of the intensities times the (fixed) sparse profile matrix; for peak shape and position
parameters central differences of each reflection's position, FWHM and eta times the profile's
analytic partials, with the peak windows frozen. scipy's ``least_squares`` cannot hold windows
fixed between Jacobian and step, hence a small hand-written Marquardt loop (with the GSAS-II-style
per-stage cycle limit). Speed: the Jacobian and the pattern at the same values come from one
profile evaluation (one sparse product over the layout's own CSC storage), and a pattern is not
recalculated after a step that left every peak window where it was.

Le Bail phases: before each cycle their reflection intensities are re-extracted at the current
values (:meth:`PatternModel.lebail_update`, ``LEBAIL_ITERATIONS`` steps) and held fixed for the step,
as GSAS-II does once per cycle; a stage converges when neither the step nor the extraction still
lowers chi² by more than the tolerance.

Honesty rules: a reflection whose position is undefined or leaves 0-180 deg under a finite-difference
step is dropped from that derivative (counted, never NaN); a Jacobian column that is still
non-finite, or a stage where no step lowers chi² although the linearised model predicts a clear
decrease, ends the stage with :attr:`StageFit.problem` set (the result's quality is then ``failed``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from doptrace.core import covariance as cov_stats

from .model import PatternModel
from .profiles import tch_fwhm_eta

#: A stage whose rejected step had been predicted to lower chi² by more than this fraction is stuck,
#: not converged (finite-difference noise at a true minimum predicts far less).
STALL_TOLERANCE = 1e-3
#: Le Bail extraction steps (:meth:`PatternModel.lebail_update`) before each least-squares cycle
LEBAIL_ITERATIONS = 3


@dataclass
class StageFit:
    """One refinement stage of one pattern (xps.FitResult is the other kind: a batch of spectra)."""

    values: dict[str, float]
    names: list[str]
    covariance: np.ndarray  # scaled by the reduced chi^2 (GSAS-II convention)
    fisher: np.ndarray  # J^T W J (unscaled)
    calc: np.ndarray
    chi2: float
    cycles: int
    seconds: float
    history: list[float] = field(default_factory=list)
    converged: bool = True  # False: the cycle limit was reached while chi² still dropped
    problem: str = ""  # why the stage could not proceed ("" when it could)
    dropped: int = 0  # reflection derivatives dropped (position undefined under a step)

    @property
    def stderr(self) -> np.ndarray:
        return cov_stats.stderr(self.covariance)

    @property
    def correlation(self) -> np.ndarray:
        return cov_stats.correlation(self.covariance, undefined=0.0)


def jacobian(model: PatternModel, values: dict[str, float], names: list[str], dropped: list | None = None,
             with_calc: bool = False):
    """``d calc / d p`` (counts per unit parameter), shape ``(n_points, len(names))``.

    The peak windows are those frozen by the last :meth:`PatternModel.freeze`. Per-reflection
    derivatives (intensity, position, FWHM, eta) of every parameter are stacked and turned into
    pattern derivatives by one sparse product with the profile and its analytic partials
    (:meth:`PatternModel.profile_matrix`, four blocks side by side).
    A reflection whose position is undefined at ``values`` or at either finite-difference point
    contributes no derivative for that parameter; their number is appended to ``dropped``.
    A bounded parameter at its bound is differenced one-sidedly inside the bounds.
    With ``with_calc=True`` returns ``(jacobian, calc)``, the calculated pattern at ``values`` coming
    from the same profile evaluation.
    """
    n = model.x.size
    jac = np.zeros((n, len(names)))
    shape = any(model.parameters[name].kind == "shape" for name in names)
    calc = model.background(values) if with_calc else None
    for k, phase in enumerate(model.phases):
        matrix, inten = model.profile_matrix(k, values, partials=shape)
        n_refl = inten.size
        scale = values[f"{phase.name}:scale"]
        base_ok = np.isfinite(model.peaks(k, values)[0])
        cols, scale_cols, d_int, d_pos, d_fw, d_eta = [], [], [], [], [], []
        for j, name in enumerate(names):
            par = model.parameters[name]
            touched = model.touched_phases(name)
            touches = k in touched or (not par.phases and par.kind == "shape")
            if par.group == "scale":
                # a phase scale, and every scale tied to it (factor f: d calc / d s = f * pattern)
                factor = sum(f for dep, f in model.dependents(name) if k in model.parameters[dep].phases)
                if factor:
                    scale_cols.append((j, factor))
                continue
            if not touches or par.kind == "linear":
                continue
            h = par.step
            lo, hi = par.bounds
            v_up, v_down = min(values[name] + h, hi), max(values[name] - h, lo)
            span = v_up - v_down
            if span <= 0:
                continue
            up = model.peaks(k, model.apply_ties({**values, name: v_up}))
            down = model.peaks(k, model.apply_ties({**values, name: v_down}))
            valid = np.isfinite(up[0]) & np.isfinite(down[0]) & base_ok
            if dropped is not None:
                dropped.append(int(np.sum(~valid & (np.isfinite(up[0]) | np.isfinite(down[0])))))
            cols.append(j)
            d_int.append(np.where(valid, (up[3] - down[3]) / span, 0.0))
            if par.kind == "shape":
                f_u, e_u = tch_fwhm_eta(up[1], up[2])
                f_d, e_d = tch_fwhm_eta(down[1], down[2])
                with np.errstate(invalid="ignore"):
                    d_pos.append(np.where(valid, (up[0] - down[0]) / span, 0.0))
                d_fw.append(np.where(valid, (f_u - f_d) / span, 0.0))
                d_eta.append(np.where(valid, (e_u - e_d) / span, 0.0))
            else:
                zero = np.zeros(n_refl)
                d_pos.append(zero)
                d_fw.append(zero)
                d_eta.append(zero)
        need_pattern = bool(scale_cols) or with_calc
        if not cols and not need_pattern:
            continue
        # right-hand side: column 0 the intensities (-> the phase's unit-scale pattern), then one
        # column per parameter: d intensity against the profile, intensity x d(centre, FWHM, eta)
        # against the profile's partials
        blocks = 4 if shape else 1
        rhs = np.zeros((blocks * n_refl, 1 + len(cols)))
        rhs[:n_refl, 0] = inten
        if cols:
            rhs[:n_refl, 1:] = np.array(d_int).T
            if shape:
                weighted = inten[:, None]
                rhs[n_refl:2 * n_refl, 1:] = weighted * np.array(d_pos).T
                rhs[2 * n_refl:3 * n_refl, 1:] = weighted * np.array(d_fw).T
                rhs[3 * n_refl:, 1:] = weighted * np.array(d_eta).T
        product = matrix @ rhs
        pattern = product[:, 0]
        for j, factor in scale_cols:
            jac[:, j] += factor * pattern
        if cols:
            jac[:, cols] += scale * product[:, 1:]
        if with_calc:
            calc = calc + scale * pattern
    for j, name in enumerate(names):
        par = model.parameters[name]
        if par.kind == "pattern":
            # central difference of the whole pattern, windows frozen (FCJ asymmetry: SH/L)
            lo, hi = par.bounds
            v_up, v_down = min(values[name] + 1e-4, hi), max(values[name] - 1e-4, lo)
            jac[:, j] = (model.calculate(model.apply_ties({**values, name: v_up}))
                         - model.calculate(model.apply_ties({**values, name: v_down}))) / (v_up - v_down)
        if model.parameters[name].group == "background":
            jac[:, j] = sum(factor * model.bkg_design[:, int(dep.split(":")[1])] for dep, factor in model.dependents(name))
    return (jac, calc) if with_calc else jac


def chi_square(model: PatternModel, calc: np.ndarray) -> float:
    return float(np.sum(model.weight * (model.y - calc) ** 2))


def linear_start(model: PatternModel, values: dict[str, float], names: list[str]) -> dict[str, float]:
    """Exact weighted least-squares values of the linear parameters ``names`` (scales, background)."""
    linear = [n for n in names if model.parameters[n].kind == "linear" and n not in model.ties]
    if not linear:
        return model.apply_ties(values)
    values = model.apply_ties(values)
    model.freeze(values)
    zeroed = model.apply_ties({**values, **{n: 0.0 for n in linear}})
    rest = model.calculate(zeroed)
    cols = jacobian(model, values, linear)
    sw = np.sqrt(model.weight)
    solution, *_ = np.linalg.lstsq(cols * sw[:, None], (model.y - rest) * sw, rcond=None)
    return model.apply_ties({**values, **dict(zip(linear, solution.tolist()))})


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
                        tol: float = 1e-6, with_covariance: bool = True) -> StageFit:
    """Refine ``names`` from ``values``; at most ``max_cycles`` Jacobian evaluations.

    Stops when a cycle lowers chi² by less than ``tol`` (relative) or no step lowers it. With
    ``with_covariance=False`` (intermediate stages) the final Jacobian and covariance are skipped.
    """
    start = time.perf_counter()
    values = model.clamp(values)
    model.asymmetry_everywhere = any(model.parameters[n].kind == "pattern" for n in names)
    sw = np.sqrt(model.weight)
    lam = 1e-3
    history = []
    cycles = 0
    converged = max_cycles == 0
    problem = ""
    dropped: list[int] = []
    model.freeze(values)
    # the Jacobian of the next cycle and the pattern at the same values come from one profile evaluation
    pending = None
    if max_cycles > 0:
        pending, calc = jacobian(model, values, names, dropped, with_calc=True)
    else:
        calc = model.calculate(values)
    chi2 = chi_square(model, calc)
    if not np.isfinite(chi2):
        problem = "the model gives non-finite counts at the starting values"
        max_cycles = 0
    for cycles in range(1, max_cycles + 1):
        lebail_gain = 0.0
        if model.lebail:
            # Le Bail phases: intensities re-extracted at the current model, then held fixed for the step
            before = chi2
            model.lebail_update(values, LEBAIL_ITERATIONS)
            pending = None  # the intensities changed: pattern and Jacobian again
            calc = model.calculate(values)
            chi2 = chi_square(model, calc)
            lebail_gain = abs(before - chi2) / before if before > 0 else 0.0
        if pending is None:
            pending, calc = jacobian(model, values, names, dropped, with_calc=True)
            chi2 = chi_square(model, calc)
        jac = pending * sw[:, None]
        pending = None
        bad = [n for n, ok in zip(names, np.all(np.isfinite(jac), axis=0)) if not ok]
        if bad:
            problem = f"non-finite derivative of {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}"
            break
        a = jac.T @ jac
        g = jac.T @ ((model.y - calc) * sw)
        accepted = False
        predicted = None
        for _ in range(12):
            delta = _solve(a, g, lam)
            if predicted is None:  # decrease the linearised model promises for the first (smallest-lambda) step
                predicted = float(2.0 * delta @ g - delta @ a @ delta)
            trial = model.clamp({**values, **{n: values[n] + float(dv) for n, dv in zip(names, delta)}})
            trial_calc = model.calculate(trial)
            trial_chi2 = chi_square(model, trial_calc)
            if np.isfinite(trial_chi2) and trial_chi2 <= chi2:
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            # at a minimum the linearised model promises (almost) nothing; otherwise the step is blocked
            if predicted is not None and chi2 > 0 and predicted > STALL_TOLERANCE * chi2:
                problem = (f"no step lowers chi² although the linearised model predicts a "
                           f"{100 * predicted / chi2:.2g} % decrease (cycle {cycles})")
            else:
                converged = True
            break
        gain = (chi2 - trial_chi2) / chi2 if chi2 > 0 else 0.0
        values, calc, chi2 = trial, trial_calc, trial_chi2
        lam = max(lam / 10.0, 1e-7)
        if model.freeze(values):
            # windows moved: the pattern under the new windows (with the next Jacobian unless stopping)
            if gain < tol or cycles == max_cycles:
                calc = model.calculate(values)
            else:
                pending, calc = jacobian(model, values, names, dropped, with_calc=True)
            chi2 = chi_square(model, calc)
        history.append(chi2)
        if gain < tol and lebail_gain < tol:
            converged = True
            break
    changed = model.freeze(values)
    if model.lebail:
        model.lebail_update(values, LEBAIL_ITERATIONS)  # the final extraction, as GSAS-II's GetFobsSq
        changed = True
    if not with_covariance:
        if changed:
            calc = model.calculate(values)
            chi2 = chi_square(model, calc)
        nan = np.full((len(names), len(names)), np.nan)
        return StageFit(values, list(names), nan, nan, calc, chi2, cycles, time.perf_counter() - start, history,
                         converged, problem, int(sum(dropped)))
    jac, final_calc = jacobian(model, values, names, dropped, with_calc=True)
    jac = jac * sw[:, None]
    if changed:
        calc = final_calc
        chi2 = chi_square(model, calc)
    if not np.all(np.isfinite(jac)) and not problem:
        bad = [n for n, ok in zip(names, np.all(np.isfinite(jac), axis=0)) if not ok]
        problem = f"non-finite derivative of {', '.join(bad[:4])} at the solution"
    jac = np.where(np.isfinite(jac), jac, 0.0)
    fisher = jac.T @ jac
    dof = max(int(model.used.sum()) - len(names), 1)
    cov = covariance(fisher) * (chi2 / dof)
    return StageFit(values, list(names), cov, fisher, calc, chi2, cycles, time.perf_counter() - start, history,
                     converged, problem, int(sum(dropped)))


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
