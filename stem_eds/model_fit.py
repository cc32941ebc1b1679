"""Line intensities by a linear model fit: Gaussian line families + polynomial background, per pixel.

Over narrow energy regions around the requested lines, every spectrum is modelled as

    y(E) = sum_f a_f * sum_l w_l * G(E; E_l, FWHM(E_l)) + sum_k b_k * P_k(t),    t in [-1, 1]

where ``f`` runs over the line families (K, L, M) of the elements present that have lines in the
region, ``w_l`` are exSpy's relative line weights inside a family (so Co Kb is tied to Co Ka and
cannot masquerade as Ni Ka), ``G`` is a unit-area Gaussian integrated over each channel, the
FWHM follows the Mn Ka resolution (Fiori & Newbury) and ``P_k`` are Legendre polynomials. The
amplitude ``a_f`` is the area (counts) of the family's 'a' line.

The model is linear in (a, b) and the design matrix is the same for every pixel, so one
projection matrix ``P = (A^T W A)^-1 A^T W`` (weights from the mean spectrum) gives all pixels'
amplitudes as a single matrix product, and their Poisson variances from the fitted expectation as
``coef @ (P**2 A)^T``. exSpy's
EDSTEMModel fits the same kind of model non-linearly pixel by pixel; this is why it is written
here instead: it is orders of magnitude faster and exact for a linear model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import least_squares
from scipy.special import erf

from . import lines as xl
from ._blocks import reduce_spectra, sum_spectrum
from .errors import EDSError
from .intensities import _intensity_dataset, energy_axis

#: Lines below this relative weight are left out of a family (they change nothing measurable).
MIN_LINE_WEIGHT = 0.001
#: Lines at least this strong set the fit region.
REGION_LINE_WEIGHT = 0.05
#: Half margin of a fit region around its lines, in FWHM.
MARGIN_FWHM = 2.5


def gaussian_channels(edges: np.ndarray, centre: float, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian integrated over channels with boundaries ``edges`` (keV).

    G_i = [erf((e_{i+1} - c) / (sqrt 2 s)) - erf((e_i - c) / (sqrt 2 s))] / 2,  s = FWHM / 2.3548
    """
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    cdf = 0.5 * erf((edges - centre) / (np.sqrt(2.0) * sigma))
    return np.diff(cdf)


@dataclass
class Family:
    """One line family of one element: its lines and the line whose area is the amplitude."""

    element: str
    family: str
    lines: list

    @property
    def name(self) -> str:
        return f"{self.element}_{self.family}"

    def shape(self, edges: np.ndarray, fwhm_mnka_ev: float) -> np.ndarray:
        """Counts per channel for unit area of the 'a' line."""
        total = np.zeros(edges.size - 1)
        for line_ in self.lines:
            total += line_.weight * gaussian_channels(edges, line_.energy, float(xl.fwhm_kev(line_.energy, fwhm_mnka_ev)))
        return total


def families(elements, e_min: float, e_max: float, beam_energy_kev: float = np.inf, source: str = "") -> list[Family]:
    """Line families of ``elements`` whose 'a' line lies on the axis (and below the beam energy)."""
    found = []
    for element in dict.fromkeys(elements):
        for fam in xl.FAMILIES:
            members = [l for l in xl.family_lines(element, fam, source) if l.weight >= MIN_LINE_WEIGHT]
            main = [l for l in members if l.name == f"{element}_{fam}a"]
            if main and e_min < main[0].energy < min(e_max, beam_energy_kev):
                found.append(Family(element, fam, members))
    return found


def _span(fam: Family, fwhm_mnka_ev: float) -> tuple[float, float]:
    strong = [l.energy for l in fam.lines if l.weight >= REGION_LINE_WEIGHT]
    lo, hi = min(strong), max(strong)
    return (lo - MARGIN_FWHM * float(xl.fwhm_kev(lo, fwhm_mnka_ev)),
            hi + MARGIN_FWHM * float(xl.fwhm_kev(hi, fwhm_mnka_ev)))


def _merge(spans):
    merged = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def fit_regions(targets, all_families, fwhm_mnka_ev: float, e_min: float, e_max: float):
    """Merged energy regions [(lo, hi, [Family ...])] around the target families.

    A region grows to cover every family with more than 1 % of its area inside it, until
    nothing changes, so an overlapping neighbour (Mn L under O K, Co Kb under Ni Ka, the tail of
    Co Ka at the edge of a Mn K region) is always fitted whole.
    """
    spans = _merge([_span(f, fwhm_mnka_ev) for f in targets])
    for _ in range(10):
        grown = list(spans)
        for lo, hi in spans:
            edges = np.array([max(lo, e_min), min(hi, e_max)])
            for fam in all_families:
                if fam.shape(edges, fwhm_mnka_ev).sum() >= 0.01:
                    grown.append(list(_span(fam, fwhm_mnka_ev)))
        grown = _merge(grown)
        if grown == spans:
            break
        spans = grown
    regions = []
    for lo, hi in spans:
        lo, hi = max(lo, xl.MIN_ENERGY_KEV, e_min), min(hi, e_max)
        edges = np.array([lo, hi])
        members = [f for f in all_families if f.shape(edges, fwhm_mnka_ev).sum() >= 1e-3]
        regions.append((lo, hi, members))
    return regions


def design_matrix(energy: np.ndarray, scale: float, members, fwhm_mnka_ev: float, degree: int,
                  zero_peak: bool = False) -> np.ndarray:
    """Columns: one per family (unit 'a'-line area), optional zero peak, Legendre background terms."""
    edges = np.concatenate([energy - scale / 2.0, [energy[-1] + scale / 2.0]])
    columns = [fam.shape(edges, fwhm_mnka_ev) for fam in members]
    if zero_peak:
        zero = gaussian_channels(edges, 0.0, float(xl.fwhm_kev(0.0, fwhm_mnka_ev)))
        if zero.sum() > 1e-4:  # only when its tail reaches into the region
            columns.append(zero)
    t = np.linspace(-1.0, 1.0, energy.size)
    columns += [np.polynomial.legendre.Legendre.basis(k)(t) for k in range(degree + 1)]
    return np.stack(columns, axis=1)


def _projection(design: np.ndarray, weights: np.ndarray, source: str, where: str) -> np.ndarray:
    # Columns scaled to unit weighted norm so the condition number measures real degeneracy.
    norms = np.sqrt(np.sum(design**2 * weights[:, None], axis=0))
    scaled = design / norms
    aw = scaled * weights[:, None]
    normal = scaled.T @ aw
    if np.linalg.cond(normal) > 1e10:
        raise EDSError(f"{source}: the line model is degenerate in {where} (two families cannot be told apart)")
    return np.linalg.solve(normal, aw.T) / norms[:, None]


def _calibrate(sum_spectrum, energy, scale, regions, fwhm0, degree_of, source):
    """Refine the Mn Ka FWHM and an energy shift on the sum spectrum (variable projection)."""
    pieces = []
    for lo, hi, members in regions:
        sel = (energy >= lo) & (energy <= hi)
        pieces.append((energy[sel], sum_spectrum[sel], members, degree_of(hi - lo), lo < 0.3))

    def residuals(p):
        fwhm, shift = p
        out = []
        for e, y, members, degree, zp in pieces:
            a = design_matrix(e - shift, scale, members, fwhm, degree, zp)
            w = 1.0 / np.maximum(y, 1.0)
            coef = np.linalg.lstsq(a * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
            out.append((y - a @ coef) * np.sqrt(w))
        return np.concatenate(out)

    fit = least_squares(residuals, [fwhm0, 0.0], bounds=([40.0, -5 * scale], [400.0, 5 * scale]), x_scale=[10.0, scale])
    return float(fit.x[0]), float(fit.x[1])


def _redchi(y: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    model = a @ (p @ y)
    return float(np.sum((y - model) ** 2 / np.maximum(model, 1.0)) / max(1, y.size - a.shape[1]))


def _choose_degree(y, energy, scale, members, fwhm, zp, weights, source, where, max_degree: int = 6) -> int:
    """Background degree from the sum spectrum (which has the most counts, so the strictest test).

    The smallest degree whose reduced chi-square is within 10 % of the best of degrees 1..6 (or
    <= 1.2): a too-stiff background biases weak lines (B K on the detector's efficiency edge)
    in every pixel, a too-soft one only costs a little precision.
    """
    scores = {}
    # The line columns do not depend on the degree: computed once (the erf calls dominate).
    lines_only = design_matrix(energy, scale, members, fwhm, 0, zp)[:, :-1]
    t = np.linspace(-1.0, 1.0, energy.size)
    for deg in range(1, max_degree + 1):
        a = np.concatenate([lines_only, np.stack([np.polynomial.legendre.Legendre.basis(k)(t)
                                                  for k in range(deg + 1)], axis=1)], axis=1)
        if a.shape[1] + 4 > y.size:
            break
        try:
            scores[deg] = _redchi(y, a, _projection(a, weights, source, where))
        except EDSError:
            break
    if not scores:
        return 1
    best = min(scores.values())
    return min(d for d, r in scores.items() if r <= max(1.2, 1.1 * best))


def model_intensities(da: xr.DataArray, lines, extra_elements=(), calibrate: bool = True,
                      degree: int | None = None, progress: bool = False) -> xr.Dataset:
    """Per-spectrum intensities of ``lines`` from the linear line-family model.

    Parameters
    ----------
    da : xarray.DataArray
        Counts over (..., ``energy`` keV), numpy or dask.
    lines : list of :class:`stem_eds.lines.Line`
        The lines to report (one per element).
    extra_elements : iterable of str
        Elements present but not reported (their lines are fitted so they do not leak into
        others); the elements named in the file are added automatically.
    calibrate : bool
        Refine the detector resolution (Mn Ka FWHM) and an energy shift on the sum spectrum
        first; the refined values are in ``attrs``.
    degree : int, optional
        Degree of the background polynomial in every region (default: chosen per region on the
        sum spectrum, see :func:`_choose_degree`).

    Returns
    -------
    xarray.Dataset
        As :func:`stem_eds.intensities.window_intensities`, plus ``attrs["regions"]`` and the
        reduced chi-square of the sum-spectrum fit in each region.

    Examples
    --------
    >>> ds = model_intensities(da, parse_elements("O,Mn,Co,Ni", 20.0))  # doctest: +SKIP
    """
    source = da.attrs.get("source", "spectrum")
    offset, scale, size = energy_axis(da)
    energy = offset + scale * np.arange(size)
    beam = float(da.attrs.get("beam_energy_kev", np.inf))
    beam = beam if np.isfinite(beam) and beam > 0 else np.inf
    fwhm = float(da.attrs.get("fwhm_mnka_ev", 130.0))
    if not np.isfinite(fwhm) or fwhm <= 0:
        fwhm = 130.0
    requested = [l.element for l in lines]
    present = requested + list(extra_elements) + str(da.attrs.get("file_elements", "")).split()
    all_fams = families(present, xl.MIN_ENERGY_KEV, energy[-1], beam, source)
    targets = []
    for line_ in lines:
        match = [f for f in all_fams if f.element == line_.element and f.family == line_.family]
        if not match:
            raise EDSError(f"{source}: line {line_.name} is not on the energy axis")
        targets.append(match[0])
    regions = fit_regions(targets, all_fams, fwhm, energy[0], energy[-1])

    def degree_of(width):
        return int(degree) if degree is not None else (2 if width < 1.5 else 3)

    # Two passes over the counts: the sum over the fit regions' channels fixes calibration,
    # weights and background degree (exactly, from every spectrum, so lazy == eager); the
    # second pass projects every spectrum. Only the fit regions' channels are ever read.
    spans = [(int(np.searchsorted(energy, lo)), int(np.searchsorted(energy, hi, side="right")))
             for lo, hi, _ in regions]
    total = np.zeros(size)
    for (i0, i1), part in zip(spans, sum_spectrum(da.data, spans)):
        total[i0:i1] = part
    n_spectra = max(1, int(np.prod(da.shape[:-1])))
    shift = 0.0
    if calibrate and total.sum() > 0:
        fwhm, shift = _calibrate(total, energy, scale, regions, fwhm, degree_of, source)
    plans, record = [], []
    for (lo, hi, members), (i0, i1) in zip(regions, spans):
        if i1 - i0 < len(members) + 4:
            raise EDSError(f"{source}: fit region {lo:.3f}-{hi:.3f} keV has too few channels")
        zp = lo < 0.3
        mean = total[i0:i1] / n_spectra
        weights = 1.0 / np.maximum(mean, max(mean.mean() * 0.05, 1e-9))
        where = f"{lo:.3f}-{hi:.3f} keV"
        if degree is None:
            best = _choose_degree(total[i0:i1], energy[i0:i1] - shift, scale, members, fwhm, zp, weights, source, where)
        else:
            best = int(degree)
        a = design_matrix(energy[i0:i1] - shift, scale, members, fwhm, best, zp)
        p = _projection(a, weights, source, where)
        redchi = _redchi(total[i0:i1], a, p)
        # var(coef_k) = sum_c P_kc^2 lambda_c with lambda = A coef, i.e. coef @ (P^2 A)^T.
        plans.append((i0, i1, members, p, ((p**2) @ a).T))
        record.append({"range_kev": [lo, hi], "families": [f.name for f in members], "background_degree": best,
                       "redchi_sum": redchi})

    # Only the reported families' amplitudes and variances leave the per-block function.
    wanted = []
    for fam in targets:
        k = next(j for j, plan in enumerate(plans) if fam in plan[2])
        wanted.append((k, plans[k][2].index(fam)))

    # Per region one matrix (channels, reported amplitudes + their variances), so a batch of
    # spectra needs one matrix product per region. The Poisson variance comes from the fitted
    # expectation (not the observed counts, whose fluctuations would correlate each value with
    # its own error bar) and is linear in the counts too: var_c = coef @ m[:, c] = y @ (P^T m[:, c]).
    used = sorted({k for k, _ in wanted})
    matrices = []
    for k in used:
        _, _, _, p, m = plans[k]
        mat = np.zeros((p.shape[1], 2 * len(wanted)))
        for n, (kk, c) in enumerate(wanted):
            if kk == k:
                mat[:, n] = p[c]
                mat[:, len(wanted) + n] = p.T @ m[:, c]
        matrices.append(mat)

    def fit(blocks):
        out = blocks[0] @ matrices[0]
        for block, mat in zip(blocks[1:], matrices[1:]):
            out += block @ mat
        return out

    result = reduce_spectra(da.data, fit, 2 * len(wanted), [spans[k] for k in used], progress, "model fit")
    values = [result[..., n] * line_.weight for n, line_ in enumerate(lines)]
    variances = [result[..., len(wanted) + n] * line_.weight**2 for n, line_ in enumerate(lines)]
    ds = _intensity_dataset(da, lines, np.stack(values), np.sqrt(np.maximum(np.stack(variances), 0.0)))
    ds.attrs.update(method="model", regions=json.dumps(record), fwhm_mnka_fitted_ev=fwhm, energy_shift_kev=shift)
    return ds


def line_intensities(da: xr.DataArray, lines, method: str = "model", **kwargs) -> xr.Dataset:
    """X-ray line intensities in every pixel, by a model fit or by windows.

    Parameters
    ----------
    da : xarray.DataArray
        Counts over (..., ``energy``) as :func:`doptrace.stem_eds.read` returns them.
    lines : list of Line
        Lines to measure, e.g. from :func:`doptrace.stem_eds.parse_elements`.
    method : {"model", "windows"}
        ``"model"``: Gaussian lines with the detector resolution on a polynomial background,
        fitted linearly by least squares (:func:`model_intensities`); ``"windows"``: integration
        windows with interpolated side-window backgrounds
        (:func:`doptrace.stem_eds.intensities.window_intensities`).
    **kwargs
        Passed to the chosen method.

    Returns
    -------
    xarray.Dataset
        ``intensity`` and ``intensity_stderr`` (counts) over (``element``, spatial dims), coord
        ``line``.

    References
    ----------
    C. E. Fiori and D. E. Newbury, Scanning Electron Microsc. 1 (1978) 401 (detector resolution
    vs energy).

    Examples
    --------
    >>> from doptrace import stem_eds
    >>> from doptrace.stem_eds.simulate import simulate_spectrum_image
    >>> _ = simulate_spectrum_image("lrmo.hspy", shape=(16, 16), seed=1)
    >>> da = stem_eds.read("lrmo.hspy")
    >>> lines = stem_eds.parse_elements("Mn,Co,Ni,O", float(da["energy"].max()))
    >>> intensities = stem_eds.line_intensities(da, lines)
    >>> intensities["intensity"].dims, intensities["line"].values.tolist()
    (('element', 'y', 'x'), ['Mn_Ka', 'Co_Ka', 'Ni_Ka', 'O_Ka'])
    """
    from .intensities import window_intensities

    if method == "model":
        return model_intensities(da, lines, **kwargs)
    if method == "windows":
        return window_intensities(da, lines, **kwargs)
    raise EDSError(f"{da.attrs.get('source', 'spectrum')}: unknown method {method!r} (model or windows)")
