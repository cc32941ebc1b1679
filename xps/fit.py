"""Fitting many XPS spectra at once: a batched, bounded Levenberg-Marquardt with Poisson weights.

Why a hand-written fitter: fitting an etch series or a 64x64 map spectrum by spectrum with a
general-purpose minimiser (lmfit/scipy) spends nearly all its time in Python overhead per
spectrum. Here every array operation runs over many spectra together (shape ``(S, N)``, in
row chunks that stay in the CPU cache, on a thread per CPU), the Jacobian is assembled from the
model's affine parameter map (areas exactly; centres and widths from the line shape's closed-form
derivatives, :func:`xps.lineshapes.gl_gradient`, or a one-sided difference for tabulated shapes),
and each spectrum keeps its own damping.
:func:`fit_lmfit` fits the same model with ``lmfit`` and is the reference the tests compare with.

Model: ``m(x) = sum_j A_j f_j(x; E_j, F_j) + background(x)``, where the background is either
computed from the data before fitting (linear, Shirley, Tougaard) or *active*:

- active Shirley: ``b0 + k * integral_{x_0}^{x} sum_j A_j f_j dx'`` (b0 and k fitted),
- active Tougaard: ``I_lo + B * T1(x)`` with ``T1`` the Tougaard response of the data for B = 1.

Weights: Poisson, ``sigma^2 = counts / counts_per_unit^2``. With ``weights="poisson"`` the fit is
done with the data's variance and then refined with the model's variance (Pearson chi-square),
which removes the low-count bias of data-variance weighting.

Uncertainties: covariance ``(J^T W J)^-1 * redchi`` (as lmfit's ``scale_covar``) of all free
parameters; component fractions carry the full covariance of the (correlated) areas. A static
background (computed from the data before fitting) is held fixed in that covariance, so its own
noise is not in the stderr: on the simulated B 1s with a static Shirley the area scatter over
noise draws is up to 1.2x the stderr (fractions 1.09x); with the active Shirley, which is fitted
with the peaks, scatter and stderr agree (1.00x). Prefer the active background when esds matter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import backgrounds as bgs
from . import lineshapes
from doptrace.core import covariance

from .errors import XPSError
from .model import Compiled, Model, compile_model

_MAX_ITER = 200


@dataclass
class FitResult:
    """Fits of S spectra over one window. Arrays are over (spectrum, ...)."""

    compiled: Compiled
    energy: np.ndarray       # (S, N) binding energies in the window (charge corrected)
    data: np.ndarray         # (S, N)
    sigma: np.ndarray        # (S, N)
    background: np.ndarray   # (S, N)
    components: np.ndarray   # (S, C, N) area * shape of every component
    params: np.ndarray       # (S, P) free parameters (model's, then active background's)
    cov: np.ndarray          # (S, P, P)
    chi2: np.ndarray         # (S,)
    nfree: int
    iterations: np.ndarray   # (S,)
    param_names: list[str]
    converged: np.ndarray | None = None  # (S,) stopped because chi-square stopped falling
    stalled: np.ndarray | None = None    # (S,) stopped because no step lowered chi-square (damping ran away)
    at_bound: np.ndarray | None = None   # (S, P) parameter sits on one of its bounds
    max_iter: int = 0                    # iteration limit of one Levenberg-Marquardt pass

    #: the fields holding one entry per spectrum (axis 0)
    ROW_FIELDS = ("energy", "data", "sigma", "background", "components", "params", "cov", "chi2", "iterations",
                  "converged", "stalled", "at_bound")

    def take(self, rows) -> "FitResult":
        """The fits of ``rows`` alone."""
        return replace(self, **{name: getattr(self, name)[rows] for name in self.ROW_FIELDS})

    def put(self, rows, other: "FitResult") -> None:
        """Replace the fits of ``rows`` with ``other``'s (one row of ``other`` per row)."""
        for name in self.ROW_FIELDS:
            merged = getattr(self, name).copy()
            merged[rows] = getattr(other, name)
            setattr(self, name, merged)

    @classmethod
    def concatenate(cls, parts: list["FitResult"]) -> "FitResult":
        """The fits of ``parts`` (same model and window) one after another."""
        if len(parts) == 1:
            return parts[0]
        return replace(parts[0], **{name: np.concatenate([getattr(part, name) for part in parts])
                                    for name in cls.ROW_FIELDS})

    def __post_init__(self):
        S, P = self.params.shape
        if self.converged is None:
            self.converged = np.ones(S, dtype=bool)
        if self.stalled is None:
            self.stalled = np.zeros(S, dtype=bool)
        if self.at_bound is None:
            self.at_bound = np.zeros((S, P), dtype=bool)

    @property
    def envelope(self) -> np.ndarray:
        return self.background + self.components.sum(axis=1)

    @property
    def redchi(self) -> np.ndarray:
        return self.chi2 / max(self.nfree, 1)

    @property
    def stderr(self) -> np.ndarray:
        return covariance.stderr(self.cov)

    def values(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"area"|"center"|"fwhm": (value (S, C), stderr (S, C))}``; fixed values have stderr 0.

        A value whose free parameter sits on one of its bounds has stderr NaN: the curvature there
        is not the error of a free parameter (the bound, not the data, holds it).
        """
        n_model = len(self.compiled.names)
        p = self.params[:, :n_model]
        vals = self.compiled.values(p)
        out = {}
        for k, kind in enumerate(("area", "center", "fwhm")):
            matrix = self.compiled.kind_matrix(k)
            cov = self.cov[:, :n_model, :n_model]
            var = np.einsum("cp,spq,cq->sc", matrix, cov, matrix)
            err = np.sqrt(np.clip(var, 0, None))
            bound = (self.at_bound[:, :n_model].astype(float) @ (matrix != 0).T.astype(float)) > 0
            out[kind] = (vals[k], np.where(bound, np.nan, err))
        return out

    def correlation(self) -> np.ndarray:
        """(S, P, P) correlation matrix of the free parameters (NaN where a variance is zero)."""
        return covariance.correlation(self.cov)

    def group_fractions(self, groups: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Share of every group of components (e.g. both lines of a doublet) with full-covariance stderr."""
        names = list(dict.fromkeys(groups))
        member = np.array([[g == name for g in groups] for name in names], dtype=float)  # (G, C)
        n_model = len(self.compiled.names)
        matrix, offset = self.compiled.area_matrix()
        return (names, *_shares(self.params[:, :n_model], self.cov[:, :n_model, :n_model],
                                member @ matrix, member @ offset))

    def fractions(self) -> tuple[np.ndarray, np.ndarray]:
        """Share of every component in the fitted area, with stderr from the full covariance.

        ``F_j = A_j / sum A``;  ``dF_j/dA_k = (delta_jk - F_j) / sum A``;  ``cov_F = G cov_A G^T``.
        """
        n_model = len(self.compiled.names)
        matrix, offset = self.compiled.area_matrix()
        return _shares(self.params[:, :n_model], self.cov[:, :n_model, :n_model], matrix, offset)


def _shares(p, cov, matrix, offset):
    """Shares ``a_j / sum a`` of ``a = matrix @ p + offset`` and their stderr from ``cov`` of ``p``."""
    areas = p @ matrix.T + offset
    total = areas.sum(axis=1, keepdims=True)
    safe = np.where(total != 0, total, np.nan)
    frac = areas / safe
    cov_a = np.einsum("cp,spq,dq->scd", matrix, cov, matrix)
    eye = np.eye(areas.shape[1])[None]
    grad = (eye - frac[:, :, None]) / safe[:, :, None]
    cov_f = grad @ cov_a @ grad.transpose(0, 2, 1)
    return frac, np.sqrt(np.clip(np.diagonal(cov_f, axis1=1, axis2=2), 0, None))


def poisson_sigma(y: np.ndarray, counts_per_unit) -> np.ndarray:
    """Standard deviation of ``y`` (counts / counts_per_unit) for Poisson counts (at least 1 count)."""
    cpu = np.asarray(counts_per_unit, dtype=float)
    cpu = np.where(np.isfinite(cpu) & (cpu > 0), cpu, 1.0)
    if cpu.ndim == 1:
        cpu = cpu[:, None]
    return np.sqrt(np.maximum(y * cpu, 1.0)) / cpu


def window_slice(energy: np.ndarray, window, source: str = "", where: str = "") -> tuple[np.ndarray, int]:
    """Per-row start index and common length of the points of ``energy`` (S, N) inside ``window``."""
    if window is None:
        return np.zeros(energy.shape[0], dtype=int), energy.shape[1]
    lo, hi = window
    inside = (energy >= lo) & (energy <= hi)
    counts = inside.sum(axis=1)
    if counts.min() < 5:
        span = f"[{np.nanmin(energy):.2f}, {np.nanmax(energy):.2f}] eV"
        raise XPSError(f"{source}: model window [{lo}, {hi}] eV ({where}) holds "
                       f"{int(counts.min())} data points; the data cover {span}")
    return np.argmax(inside, axis=1), int(counts.min())


class _Problem:
    """The batched model: parameter layout, static background, evaluation with Jacobian."""

    def __init__(self, compiled: Compiled, x: np.ndarray, y: np.ndarray, static: np.ndarray | None = None):
        self.compiled = compiled
        self.model: Model = compiled.model
        self.x = x  # (S, N)
        self.y = y
        bg = self.model.background
        self.n_model = len(compiled.names)
        self.extra: list[str] = []
        common = bool(np.allclose(x, x[:1]))
        self.x_shape = x[:1] if common else x  # line shapes broadcast over a shared grid when possible
        if static is not None and not bg.active:  # known from an earlier fit of the same data
            self.static, self.static_ok = static, np.ones(len(y), dtype=bool)
        elif bg.kind == "shirley":
            self.static, self.static_ok = bgs.shirley_status(x, y, average=bg.average)
        elif bg.kind == "linear":
            self.static = bgs.linear(x, y, average=bg.average)
        elif bg.kind == "tougaard":
            self.static = bgs.tougaard(x, y, bg.B, bg.C, bg.D, bg.tougaard, average=bg.average)
        else:
            self.static = np.zeros_like(y)
        self.lo, self.hi = (v for v in bgs._endpoints(y, bg.average))
        if bg.active and bg.kind == "shirley":
            self.extra = ["background.b0", "background.k"]
        elif bg.active and bg.kind == "tougaard":
            defaults = bgs.TOUGAARD_U3 if bg.tougaard == "U3" else bgs.TOUGAARD_U2
            self.B0 = defaults["B"] if bg.B is None else bg.B
            unit = bgs.tougaard_response(x, y - self.lo[:, None], 1.0, bg.C or defaults["C"],
                                         bg.D if bg.D is not None else defaults.get("D", 0.0), bg.tougaard)
            self.tougaard_unit = unit
            self.extra = ["background.B"]
        self.gradients = [lineshapes.gradient_function(func) for func in compiled.functions]
        self.names = compiled.names + self.extra
        self.lower = np.concatenate([compiled.lower, np.full(len(self.extra), -np.inf)])
        self.upper = np.concatenate([compiled.upper, np.full(len(self.extra), np.inf)])

    # -- start values -------------------------------------------------------------------------
    def start(self, p0: np.ndarray | None) -> np.ndarray:
        S = self.y.shape[0]
        if p0 is not None:
            p = np.array(np.broadcast_to(p0, (S, len(self.names))), dtype=float)
            return np.clip(p, self.lower, self.upper)
        p = np.tile(np.concatenate([self.compiled.p0, np.full(len(self.extra), np.nan)]), (S, 1))
        net = np.trapezoid(np.clip(self.y - self.static, 0, None), self.x, axis=1)
        auto = np.isnan(self.compiled.p0)
        if auto.any():
            # Share the net area equally among the automatic area roots (linked areas count with their ratio).
            weight = 0.0
            for j in range(len(self.model.components)):
                i = self.compiled.index[0, j]
                if i >= 0 and auto[i]:
                    weight += self.compiled.scale[0, j]
            fixed = self.compiled.offset[0].sum()
            share = np.maximum(net - fixed, net * 0.05) / max(weight, 1e-12)
            p[:, np.nonzero(auto)[0]] = share[:, None]
        p[:, : self.n_model] = np.clip(p[:, : self.n_model], self.compiled.lower, self.compiled.upper)
        if self.extra == ["background.b0", "background.k"]:
            areas = self.compiled.values(p[:, : self.n_model])[0].sum(axis=1)
            p[:, -2] = self.lo
            p[:, -1] = (self.hi - self.lo) / np.where(areas > 0, areas, 1.0)
        elif self.extra == ["background.B"]:
            p[:, -1] = self.B0
        return p

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, p: np.ndarray, rows: np.ndarray, jac: bool = True):
        """Model (s, N), component curves (s, C, N) and Jacobian (s, P, N) for spectra ``rows``.

        The Jacobian is stored parameter-major, (s, P, N), so that each parameter's row is
        contiguous for the accumulation below and for ``J W J^T`` in :func:`_lm`.
        """
        comp = self.compiled
        x = self.x_shape if self.x_shape.shape[0] == 1 else self.x_shape[rows]
        s_count, n_points = p.shape[0], self.x.shape[1]
        vals = comp.values(p[:, : self.n_model])  # (3, s, C)
        curves = np.empty((s_count, len(comp.functions), n_points))
        J = np.empty((s_count, len(self.names), n_points)) if jac else None
        written = np.zeros(len(self.names), dtype=bool)

        def add(i, factor, values):  # J[:, i] += factor * values, without a temporary on the first write
            if written[i]:
                J[:, i] += factor * values
            else:
                np.multiply(values, factor, out=J[:, i])
                written[i] = True

        for j, func in enumerate(comp.functions):
            area, center, fwhm = vals[0, :, j, None], vals[1, :, j, None], vals[2, :, j, None]
            ia, ic, iw = comp.index[:, j]
            gradient = self.gradients[j] if jac and (ic >= 0 or iw >= 0) else None
            if gradient is not None:
                f, d_center, d_fwhm = gradient(x, center, fwhm)
            else:
                f = func(x, center, fwhm)
            np.multiply(area, f, out=curves[:, j])
            if not jac:
                continue
            if ia >= 0:
                add(ia, comp.scale[0, j], f)
            if ic >= 0:
                if gradient is None:  # a one-sided difference for shapes without a closed form
                    h = 1e-4 * fwhm
                    d_center = (func(x, center + h, fwhm) - f) / h
                add(ic, comp.scale[1, j] * area, d_center)
            if iw >= 0:
                if gradient is None:
                    h = 1e-4 * fwhm
                    d_fwhm = (func(x, center, fwhm + h) - f) / h
                add(iw, comp.scale[2, j] * area, d_fwhm)
        if jac and not written.all():
            J[:, ~written] = 0.0
        peaks = curves.sum(axis=1)
        xr_ = self.x[rows]
        if self.extra == ["background.b0", "background.k"]:
            b0, k = p[:, -2, None], p[:, -1, None]
            cum = bgs.cumulative_integral(xr_, peaks)
            background = b0 + k * cum
            if jac:
                J[:, : self.n_model] += k[:, :, None] * bgs.cumulative_integral(xr_[:, None, :], J[:, : self.n_model])
                J[:, -2] = 1.0
                J[:, -1] = cum
        elif self.extra == ["background.B"]:
            background = self.lo[rows, None] + p[:, -1, None] * self.tougaard_unit[rows]
            if jac:
                J[:, -1] = self.tougaard_unit[rows]
        else:
            background = self.static[rows]
        return peaks + background, curves, background, J


def _lm(problem: _Problem, p: np.ndarray, sigma: np.ndarray, max_iter: int = _MAX_ITER, tol: float = 1e-5):
    """Bounded Levenberg-Marquardt over all rows at once (Marquardt scaling, per-row damping).

    Rows that have converged leave the active set; while every row is active the arrays are used
    whole (no fancy-index copies of the (S, P, N) Jacobian).
    """
    S, P = p.shape
    y = problem.y
    weight = 1.0 / sigma
    lam = np.full(S, 1e-3)
    iterations = np.zeros(S, dtype=int)
    rows = np.arange(S)
    model, _, _, J_all = problem.evaluate(p, rows)
    chi2 = np.square((y - model) * weight).sum(axis=1)
    active = np.ones(S, dtype=bool)
    converged = np.zeros(S, dtype=bool)
    stalled = np.zeros(S, dtype=bool)
    span = np.abs(problem.upper - problem.lower)
    finite_span = np.isfinite(span)
    eye = np.eye(P)
    for _ in range(max_iter):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        every = idx.size == S
        w = weight if every else weight[idx]
        p_i = p if every else p[idx]
        Jw = (J_all if every else J_all[idx]) * w[:, None, :]
        r = ((y if every else y[idx]) - (model if every else model[idx])) * w
        A = Jw @ Jw.transpose(0, 2, 1)
        g = (Jw @ r[:, :, None])[:, :, 0]
        # Active set: a parameter on a bound whose gradient pushes outwards is held this step,
        # so the clipped step stays a descent direction.
        eps = 1e-10 * np.where(finite_span, span, np.abs(p_i) + 1.0)
        held = ((p_i <= problem.lower + eps) & (g < 0)) | ((p_i >= problem.upper - eps) & (g > 0))
        if held.any():
            free = ~held
            A = A * (free[:, :, None] & free[:, None, :])
            A[held.nonzero()[0], held.nonzero()[1], held.nonzero()[1]] = 1.0
            g = np.where(held, 0.0, g)
        diag = np.diagonal(A, axis1=1, axis2=2).copy()
        diag = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        damped = A + (lam[idx, None] * diag)[:, :, None] * eye
        try:
            step = np.linalg.solve(damped, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.einsum("spq,sq->sp", np.linalg.pinv(damped), g)
        trial = np.clip(p_i + step, problem.lower, problem.upper)
        actual = trial - p_i
        predicted = 2 * np.einsum("sp,sp->s", actual, g) - np.einsum("sp,spq,sq->s", actual, A, actual)
        # A nearly undamped (Gauss-Newton) step that the linearised model says gains less than
        # ``tol`` is not worth an evaluation: the row has converged where it stands (0.003 esd
        # from the minimum at most). Most rows of a refit from a converged start stop here.
        early = (predicted >= 0) & (predicted < tol) & (lam[idx] <= 1e-3)
        if early.any():
            converged[idx[early]] = True
            active[idx[early]] = False
            go = ~early
            if not go.any():
                continue
            idx, trial, actual, predicted, w, p_i = idx[go], trial[go], actual[go], predicted[go], w[go], p_i[go]
            every = False
        t_model, _, _, t_J = problem.evaluate(trial, idx)
        t_chi2 = np.square(((y if every else y[idx]) - t_model) * w).sum(axis=1)
        old_chi2 = chi2[idx]
        better = np.isfinite(t_chi2) & (t_chi2 <= old_chi2)
        gain = old_chi2 - t_chi2
        if every and better.all():
            p, model, J_all, chi2 = trial, t_model, t_J, t_chi2
        else:
            acc = idx[better]
            p[acc] = trial[better]
            model[acc] = t_model[better]
            J_all[acc] = t_J[better]
            chi2[acc] = t_chi2[better]
        lam[idx[better]] = np.maximum(lam[idx[better]] / 5.0, 1e-7)
        rej = idx[~better]
        lam[rej] = lam[rej] * 10.0
        iterations[idx] += 1
        # Converged when a step changes chi-square by less than ``tol`` (chi-square units: a
        # statistically meaningless change) or the model predicts no more gain.
        settled = (better & (gain < tol)) | (~better & (predicted >= 0) & (predicted < tol))
        stuck = ~settled & (lam[idx] > 1e10)
        converged[idx[settled]] = True
        stalled[idx[stuck]] = True
        active[idx[settled | stuck]] = False
    return p, chi2, iterations, J_all, model, converged, stalled


def fit_spectra(model: Model | Compiled, energy, y, sigma=None, counts_per_unit=1.0, p0=None,
                weights: str = "poisson", source: str = "", max_iter: int = _MAX_ITER,
                workers: int | None = None) -> FitResult:
    """Fit ``model`` to S spectra at once.

    Parameters
    ----------
    model : Model or Compiled
        The peak model (window, background, components, links).
    energy : array (N,) or (S, N)
        Binding energies in eV (ascending), already charge corrected.
    y : array (S, N)
        Intensities.
    sigma : array (S, N), optional
        Standard deviations; default Poisson from ``counts_per_unit`` (raw counts = y * cpu).
    counts_per_unit : float or array (S,)
    p0 : array (P,) or (S, P), optional
        Start values of the free parameters (e.g. the previous etch level's result).
    weights : "poisson" (data variance, then model variance), "data" (data variance only) or "given".
    max_iter : int
        Iteration limit of each Levenberg-Marquardt pass; a spectrum that reaches it is marked
        not converged (``FitResult.converged``) and its result is ``failed`` (:mod:`xps.quality`).
    workers : int, optional
        Threads fitting chunks of rows at once (default: the ``DOPTRACE_THREADS`` environment
        variable, else the CPUs this process may use). Every row is fitted alone, so the result
        does not depend on ``workers``.

    Returns
    -------
    FitResult

    Examples
    --------
    A noise-free B 1s peak (area 500, 192.1 eV, FWHM 1.4 eV) on a Shirley-type step, fitted back:

    >>> from doptrace.xps.model import simple_model
    >>> from doptrace.xps.simulate import spectrum
    >>> m = simple_model("B 1s", [{"name": "B-O-B", "center": [192.0, 191.5, 192.5]}], window=(186, 198))
    >>> energy = np.arange(186.0, 198.0, 0.1)
    >>> counts = spectrum(energy, [(500.0, 192.1, 1.4, "GL(30)")], b0=100.0, k=0.02)
    >>> res = fit_spectra(m, energy, counts[None])
    >>> [round(float(res.values()[kind][0][0, 0]), 3) for kind in ("area", "center", "fwhm")]
    [500.0, 192.1, 1.4]
    """
    compiled = model if isinstance(model, Compiled) else compile_model(model)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    energy = np.asarray(energy, dtype=float)
    energy = np.broadcast_to(energy, y.shape) if energy.ndim == 1 else energy
    if not np.all(np.isfinite(y)):
        raise XPSError(f"{source}: the spectrum holds NaN or infinite counts")
    start, n = window_slice(energy, compiled.model.window, source, compiled.model.where("window"))
    cols = start[:, None] + np.arange(n)[None, :]
    x = np.take_along_axis(energy, cols, axis=1)
    yw = np.take_along_axis(y, cols, axis=1)
    S = y.shape[0]
    cpu = np.broadcast_to(np.asarray(counts_per_unit, dtype=float), (S,))
    if sigma is None:
        sig = poisson_sigma(yw, cpu)
    else:
        sig = np.take_along_axis(np.broadcast_to(np.asarray(sigma, float), y.shape), cols, axis=1)
        weights = "given"
    return _fit_windowed(compiled, x, yw, sig, cpu, p0, weights, max_iter, source, workers)


def _fit_windowed(compiled: Compiled, x, yw, sig, cpu, p0, weights: str, max_iter: int, source: str,
                  workers: int | None, static: np.ndarray | None = None) -> FitResult:
    """:func:`fit_spectra` on data already cut to the model's window, in row chunks on ``workers``
    threads; ``static`` is the static background when it is already known (a refit of the same data)."""
    S = yw.shape[0]
    if p0 is not None:
        p0 = np.asarray(p0, float)
        if p0.ndim == 2 and p0.shape[0] != S:
            raise XPSError(f"{source}: start values for {p0.shape[0]} spectra, the data hold {S}")
    chunks = [slice(i, min(i + _CHUNK_ROWS, S)) for i in range(0, S, _CHUNK_ROWS)]

    def fit_chunk(rows: slice):
        start_values = None if p0 is None else (p0[rows] if p0.ndim == 2 else p0)
        return _fit_rows(compiled, x[rows], yw[rows], sig[rows], cpu[rows], start_values, weights, max_iter,
                         source, rows.start, None if static is None else static[rows])

    workers = _workers(workers, len(chunks))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(fit_chunk, chunks))  # in order: the first failing chunk's error is raised
    else:
        parts = [fit_chunk(rows) for rows in chunks]
    return FitResult.concatenate(parts)


# Rows fitted together: the (rows x points) temporaries of the line shapes then stay in the CPU
# cache (all 2000 rows of the benchmark series at once ran 1.2x slower), and chunks are what the
# worker threads share out.
_CHUNK_ROWS = 512


def _workers(workers: int | None, chunks: int) -> int:
    """Threads for ``chunks`` row chunks: ``workers``, else the ``DOPTRACE_THREADS`` environment
    variable, else the CPUs this process may use (numpy releases the GIL inside its array loops, so
    chunks fit in parallel)."""
    import os

    if workers is None:
        setting = os.environ.get("DOPTRACE_THREADS", "").strip()
        if setting:
            try:
                workers = int(setting)
            except ValueError:
                raise XPSError(f"DOPTRACE_THREADS={setting!r}: expected a whole number of threads") from None
        else:
            try:
                workers = len(os.sched_getaffinity(0))
            except AttributeError:  # not on Linux
                workers = os.cpu_count() or 1
    return max(1, min(int(workers), chunks))


def _fit_rows(compiled: Compiled, x, yw, sig, cpu, p0, weights: str, max_iter: int, source: str, first_row: int,
              static: np.ndarray | None = None):
    """The fit of :func:`fit_spectra` for one chunk of rows (``first_row`` names spectra in errors)."""
    problem = _Problem(compiled, x, yw, static)
    if not compiled.model.background.active and not np.all(getattr(problem, "static_ok", True)):
        bad = int(np.argmin(problem.static_ok))
        raise XPSError(f"{source}: no Shirley background joins the end levels of the window "
                       f"[{x[bad, 0]:.2f}, {x[bad, -1]:.2f}] eV (spectrum {first_row + bad}: the iteration does "
                       f"not converge); choose another window ({compiled.model.where('window')}) or an active "
                       "Shirley, linear or Tougaard background")
    p = problem.start(p0)
    if p.shape[1] != len(problem.names):
        raise XPSError(f"{source}: start values have {p.shape[1]} parameters, the model {len(problem.names)}")
    p, chi2, iterations, J, envelope, converged, stalled = _lm(problem, p, sig, max_iter)
    if weights == "poisson":
        sig = poisson_sigma(np.clip(envelope, 0, None), cpu)
        p, chi2, more, J, envelope, converged, stalled = _lm(problem, p, sig, max_iter)
        iterations = iterations + more
    # _lm's Jacobian is the one at its final parameters; only the curves are evaluated again
    _, curves, background, _ = problem.evaluate(p, np.arange(p.shape[0]), jac=False)
    nfree = yw.shape[1] - len(problem.names)
    Jw = J / sig[:, None, :]
    A = Jw @ Jw.transpose(0, 2, 1)
    cov = np.linalg.pinv(A) * (chi2 / max(nfree, 1))[:, None, None]
    return FitResult(compiled, x, yw, sig, background, curves, p, cov, chi2, nfree, iterations, problem.names,
                     converged, stalled, at_bounds(p, problem.lower, problem.upper), max_iter)


def at_bounds(p: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(S, P) True where a parameter sits on a finite bound (the fitter clips onto bounds exactly;
    the tolerance only absorbs rounding)."""
    def near(bound):
        finite = np.isfinite(bound)
        tol = 1e-9 * np.maximum(1.0, np.abs(np.where(finite, bound, 0.0)))
        return finite & (np.abs(p - np.where(finite, bound, 0.0)) <= tol)

    return near(lower) | near(upper)


def fit_series(model: Model | Compiled, energy, y, counts_per_unit=1.0, chain: bool = True,
               weights: str = "poisson", source: str = "", progress: bool = False,
               max_iter: int = _MAX_ITER, workers: int | None = None) -> FitResult:
    """Fit every level of an etch series (rows of ``y``); with ``chain`` each level starts from the
    previous level's result, as an analyst working down a depth profile would.

    Chaining is done in batched passes, without a Python loop per level: all levels from the
    model's start values (:func:`fit_spectra`), then all levels again from their predecessor's
    result, with the weights of that level's last pass so that both chi-squares are measured
    alike. A level keeps the chained fit where its chi-square is lower by more than
    ``_SAME_MINIMUM`` (otherwise both found the same minimum); with Poisson weights such a level
    is refined once more with the model variance of its new envelope, as :func:`fit_spectra` does
    after its data-variance pass. The levels after an improved one are then tried again from
    its new result, until no level improves: a better minimum found at one level is carried
    down the profile as far as it helps, as it would be level by level.
    """
    compiled = model if isinstance(model, Compiled) else compile_model(model)
    first = fit_spectra(compiled, energy, y, counts_per_unit=counts_per_unit, weights=weights, source=source,
                        max_iter=max_iter, workers=workers)
    S = first.params.shape[0]
    if not chain or S < 2:
        return first
    cpu = np.broadcast_to(np.asarray(counts_per_unit, dtype=float), (S,))
    static = None if compiled.model.background.active else first.background
    rows = np.arange(1, S)
    while rows.size:
        tried = _fit_windowed(compiled, first.energy[rows], first.data[rows], first.sigma[rows], cpu[rows],
                              first.params[rows - 1], "given", max_iter, source, workers,
                              None if static is None else static[rows])
        better = tried.chi2 < first.chi2[rows] - _SAME_MINIMUM
        if not better.any():
            break
        rows, chosen = rows[better], tried.take(better)
        if weights == "poisson":
            sigma = poisson_sigma(np.clip(chosen.envelope, 0, None), cpu[rows])
            refined = _fit_windowed(compiled, chosen.energy, chosen.data, sigma, cpu[rows], chosen.params, "given",
                                    max_iter, source, workers, None if static is None else static[rows])
            refined.iterations = refined.iterations + chosen.iterations
            chosen = refined
        first.put(rows, chosen)
        rows = rows[rows + 1 < S] + 1  # the successors of the improved levels start from their new results
    return first


# Chi-square difference below which two fits of one level found the same minimum (the fitter
# stops when a step gains less than 1e-5; this is far below anything statistically meaningful).
_SAME_MINIMUM = 1e-3


def _lmfit_peak(func):
    def peak(x, area, center, fwhm):
        return area * func(x, center, fwhm)

    return peak


def fit_lmfit(model: Model | Compiled, energy, y, sigma):
    """Reference fit of one spectrum with ``lmfit.Model`` (static backgrounds only).

    The line shapes are the same functions; links become lmfit ``expr`` constraints; the static
    background is computed from the data exactly as :func:`fit_spectra` does and added as a
    fixed curve. Returns the ``lmfit.model.ModelResult``.
    """
    import lmfit

    compiled = model if isinstance(model, Compiled) else compile_model(model)
    mdl = compiled.model
    if mdl.background.active:
        raise XPSError("fit_lmfit: the lmfit reference supports static backgrounds only")
    y = np.asarray(y, float)[None]
    energy = np.asarray(energy, float)[None]
    start, n = window_slice(energy, mdl.window)
    x = energy[0, start[0]:start[0] + n]
    yw = y[0, start[0]:start[0] + n]
    sig = np.asarray(sigma, float)[start[0]:start[0] + n]
    problem = _Problem(compiled, x[None], yw[None])
    background = problem.static[0]
    p_start = problem.start(None)[0]

    total = None
    params = lmfit.Parameters()
    free = {name: i for i, name in enumerate(compiled.names)}
    for j, comp in enumerate(mdl.components):
        func = compiled.functions[j]

        m = lmfit.Model(_lmfit_peak(func), prefix=f"c{j}_")
        total = m if total is None else total + m
    for j, comp in enumerate(mdl.components):
        for k, kind in enumerate(("area", "center", "fwhm")):
            i, s, o = compiled.index[k, j], compiled.scale[k, j], compiled.offset[k, j]
            pname = f"c{j}_{kind}"
            if i < 0:
                params.add(pname, value=o, vary=False)
                continue
            root = compiled.names[i]
            owner = mdl.names.index(root.rsplit(".", 1)[0])
            if owner == j and s == 1.0 and o == 0.0:
                params.add(pname, value=p_start[free[root]], min=compiled.lower[i], max=compiled.upper[i])
    for j, comp in enumerate(mdl.components):
        for k, kind in enumerate(("area", "center", "fwhm")):
            i, s, o = compiled.index[k, j], compiled.scale[k, j], compiled.offset[k, j]
            pname = f"c{j}_{kind}"
            if i >= 0 and pname not in params:
                root = compiled.names[i]
                owner = mdl.names.index(root.rsplit(".", 1)[0])
                params.add(pname, expr=f"{float(s)!r} * c{owner}_{kind} + {float(o)!r}")
    return total.fit(yw - background, params, x=x, weights=1.0 / sig), x, background
