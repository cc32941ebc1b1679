"""Time-of-flight mass calibration: t = k0 + sf * sqrt(m) on named calibrant peaks.

``t`` is the time-of-flight channel (unbinned channel units, so ``sf``/``k0`` do not depend on
the export binning), ``m`` the exact ion mass from :mod:`tofsims.masses`.

How the calibrants are found
----------------------------
The m/z column a file may carry is never read: it is kept only so a test can check the result.
Calibrants are located by peak search alone:

1. *Pattern match.* Every pair of strong peaks is tried as every pair of calibrants; each pair
   fixes (sf, k0), which predicts where all other calibrants must be. The (sf, k0) whose
   predictions land on the most peaks wins (unknown polarity: both default sets are tried).
2. *Fit.* Each calibrant's peak is measured. When the spectrum's bins are narrow compared with
   the peaks, the peak centroid (top half of the peak) is the measurement and (sf, k0) come from
   a least-squares fit weighted by the peak counts (centroid variance ~ width^2 / counts).
   When the export binning is as wide as the peaks (SurfaceLab's 200-channel ASCII spectra,
   where a peak sits inside one bin), a centroid is only known to within its bin; then the fit
   is the (sf, k0) that puts every calibrant inside its peak's bin with the largest margin
   (a small linear programme; inconsistent calibrants are dropped one at a time).
3. *Extension* (default for binned spectra calibrated on the default calibrants). With the
   first fit, further common ions of the same polarity (:data:`SECONDARY`: organics, halides,
   metal oxides and chlorides, metal ions) whose predicted range holds exactly one peak bin,
   reached by no other listed ion, are added and the fit repeated, to reach higher masses.
   An added ion's interval is its whole bin, never narrowed by spill: at higher masses the
   neighbour bins often hold another ion of the same nominal mass, whose counts would fake a
   spill and push the ion out of the consensus (measured on the real SurfaceLab exports:
   spill-narrowed extension ions made the result worse than no extension at all).

Accuracy on binned exports: a 200-channel bin is ~0.05 u wide at 16 u, wider than a peak, so
each calibrant is known only to within its bin. The default calibrants (tightened by their
spill into the neighbours) fix k0; extrapolating from them alone to 200 u carries 50-100
channels (0.05-0.08 u). Dozens of extension ions up to ~165 u, each known to within its bin,
shrink the common (sf, k0) region to a few channels at 200 u (< 0.01 u on both real
SurfaceLab spectra of the test data); ``sf_stderr``/``k0_stderr`` report the region.

Results follow the project's result conventions: ``sf``, ``k0`` with ``*_stderr``, per-calibrant
residuals in channels and in u, the binning and channel width kept as attributes.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr
from scipy.optimize import linprog
from scipy.signal import find_peaks

from .errors import ToFSIMSError
from .masses import fragment_mass

DEFAULT_CALIBRANTS = {
    "negative": ("H-", "C-", "CH-", "O-", "OH-", "C2-"),
    "positive": ("H+", "C+", "CH3+", "Na+"),
}
#: common ions used to extend a calibration to higher masses (and to detect ambiguous bins)
SECONDARY = {
    "negative": tuple(
        "CH2- F- C2H- CN- CNO- S- O2- SH- HO2- Cl- [37Cl]- C3- C3H- C2HO- CHO2- AlO- AlO2- C4- C4H- "
        "C2H3O2- SiO2- C5- C5H- NO2- NO3- SO2- PO2- PO3- SO3- Cl2- C6- C6H- HSO4- C7H- C8- C8H- "
        "CrO- CrO2- CrO3- MnO- MnO2- MnO3- FeO- FeO2- CoO- CoO2- NiO- NiO2- CuO- TiO2- TiO3- VO3- "
        "BO- BO2- LiO- InO- ClO- Br- I- CuCl2- NbO3- SiO3- Cl2H- "
        # fluorocarbon (trifluoroacetate) contamination and transition-metal chlorides
        "C2H2O- CF3- C2F3O2- MnCl2- FeCl2- CoCl2- NiCl2- CrCl3- MnCl3- FeCl3- CoCl3- NiCl3-".split()
    ),
    "positive": tuple(
        "H2+ Li+ CH+ CH2+ C2H3+ C2H5+ C3H3+ C3H5+ C3H7+ C4H7+ C4H9+ C5H9+ C6H5+ C7H7+ K+ [41K]+ NaO+ "
        "Mg+ Al+ Si+ Ca+ Ti+ V+ Cr+ [53Cr]+ Mn+ Fe+ [54Fe]+ Co+ Ni+ [60Ni]+ Cu+ [65Cu]+ Zn+ Ga+ In+ Cs+ "
        "CrO+ MnO+ FeO+ CoO+ NiO+ CrOH+ MnOH+ FeOH+ Na2OH+ Na2Cl+ AlO+ TiO+ VO+ CH4N+ C2H6N+ SiC3H9+ "
        "Mo+ Sn+ Ba+ Pb+ Bi+ Li2O+ B+ Li2BO2+".split()
    ),
}


#: ions that dominate one polarity and are weak in the other (used when the file does not say)
POLARITY_INDICATORS = {
    "negative": ("O-", "OH-", "F-", "Cl-", "C2H-", "CN-"),
    "positive": ("Li+", "Na+", "K+", "CH3+", "C2H3+", "C2H5+", "C3H5+"),
}


def mass_to_channel(mass, sf: float, k0: float):
    """t = k0 + sf * sqrt(m)."""
    return k0 + sf * np.sqrt(mass)


def channel_to_mass(channel, sf: float, k0: float):
    """m = ((t - k0) / sf)^2."""
    return ((np.asarray(channel, float) - k0) / sf) ** 2


# -- peaks --------------------------------------------------------------------------------------
def _peaks(intensity: np.ndarray, n_sigma: float = 5.0) -> np.ndarray:
    """Indices of local maxima standing ``n_sigma`` Poisson sigma above the base they rise from."""
    index, props = find_peaks(intensity, prominence=n_sigma)
    base = intensity[index] - props["prominences"]
    keep = props["prominences"] >= n_sigma * np.sqrt(np.maximum(base, 0.0) + 1.0)
    return index[keep]


def _edges(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of each bin (bin centres given)."""
    mids = (channel[1:] + channel[:-1]) / 2
    lo = np.concatenate([[channel[0] - (mids[0] - channel[0])], mids])
    hi = np.concatenate([mids, [channel[-1] + (channel[-1] - mids[-1])]])
    return lo, hi


def pattern_match(channel, intensity, names, *, library=(), n_peaks: int = 150, n_best: int = 500,
                  n_candidates: int = 1):
    """Initial (sf, k0) from peak positions alone, and how many calibrants it explains.

    Every pair of the ``n_peaks`` strongest peaks is tried as every pair of calibrants; each
    pair fixes (sf, k0), which predicts where the other calibrants are. Candidates predicting a
    peak (within one bin) for the most calibrants are kept; among them, when a ``library`` of
    further common ions is given, the one putting the largest fraction of those ions on a peak
    bin wins (a chance alignment explains the few calibrants, not dozens of other ions); else
    the largest summed log intensity of the matched peaks.

    Returns ``(sf, k0, n_matched, score)``, or a list of up to ``n_candidates`` such tuples,
    best first, when ``n_candidates > 1``.
    """
    channel = np.asarray(channel, float)
    intensity = np.asarray(intensity, float)
    peaks = _peaks(intensity)
    if peaks.size < 2:
        raise ToFSIMSError("spectrum has fewer than two peaks; cannot calibrate")
    _, hi_edge = _edges(channel)
    strong = peaks[np.argsort(intensity[peaks])[::-1][:n_peaks]]
    root = np.sqrt([fragment_mass(n) for n in names])
    t = channel[strong]
    a, b = np.triu_indices(t.size, 1)
    i, j = np.triu_indices(root.size, 1)
    ta, tb = np.minimum(t[a], t[b])[:, None], np.maximum(t[a], t[b])[:, None]
    ri, rj = root[i][None, :], root[j][None, :]
    sf = (tb - ta) / (rj - ri)
    k0 = ta - sf * ri
    sf, k0 = sf.ravel(), k0.ravel()
    # physically plausible: positive scale, time offset small against the flight time of 1 u
    ok = (sf > 0) & (np.abs(k0) < 0.1 * sf)
    sf, k0 = sf[ok], k0[ok]
    if sf.size == 0:
        raise ToFSIMSError("no pair of peaks is consistent with the calibrant masses")
    is_peak = np.zeros(channel.size, bool)
    is_peak[peaks] = True
    near = is_peak | np.roll(is_peak, 1) | np.roll(is_peak, -1)

    def hits(sf_, k0_, roots, tolerant):
        predicted = k0_[:, None] + sf_[:, None] * roots[None, :]
        index = np.clip(np.searchsorted(hi_edge, predicted), 0, channel.size - 1)
        inside = (predicted >= channel[0]) & (predicted <= channel[-1])
        return (near if tolerant else is_peak)[index] & inside, inside, index

    hit, _, index = hits(sf, k0, root, True)
    n_hit = hit.sum(axis=1)
    logi = (np.log1p(intensity[index]) * hit).sum(axis=1)
    score = n_hit + 1e-3 * logi / (logi.max() + 1.0)
    top = np.argsort(score)[::-1][:n_best]
    top = top[n_hit[top] == n_hit[top[0]]]
    if len(library):
        lib = np.sqrt([fragment_mass(n) for n in library])
        lib_hit, lib_in, _ = hits(sf[top], k0[top], lib, False)
        fraction = lib_hit.sum(axis=1) / np.maximum(lib_in.sum(axis=1), 1)
        fraction[lib_in.sum(axis=1) < 5] = 0.0  # too few library ions in range to judge
        ranked = top[np.argsort(-(fraction + 1e-6 * score[top]), kind="stable")]
    else:
        ranked = top
    if n_candidates <= 1:
        best = int(ranked[0])
        return float(sf[best]), float(k0[best]), int(n_hit[best]), float(score[best])
    out, seen = [], set()
    for c in ranked:
        key = (round(float(sf[c]) / 50), round(float(k0[c]) / 50))  # near-identical pairs once
        if key not in seen:
            seen.add(key)
            out.append((float(sf[c]), float(k0[c]), int(n_hit[c]), float(score[c])))
        if len(out) == n_candidates:
            break
    return out


def _consistent(measured) -> int:
    """How many measured calibrants one (sf, k0) can explain (see :func:`_consensus`)."""
    if len(measured) < 2:
        return len(measured)
    binned = np.median([m["n_bins"] for m in measured]) <= 2
    low = np.array([m["bin_low" if binned else "low"] for m in measured])
    high = np.array([m["bin_high" if binned else "high"] for m in measured])
    return int(_consensus(low, high, np.sqrt([m["mass"] for m in measured])).sum())


def _verified(channel, intensity, lo_edge, hi_edge, peaks, names, sf, k0, n_candidates: int = 20):
    """The pattern-match candidate whose calibrants, once measured, agree best with each other.

    A chance alignment can put every calibrant within a bin of some peak; measuring the peaks
    and asking how many of them one (sf, k0) explains exposes it.
    """
    library = _library(names)
    options = [(sf, k0)] + [(c[0], c[1]) for c in pattern_match(
        channel, intensity, names, library=library, n_candidates=n_candidates)]
    best, best_key = (sf, k0), None
    for rank, (sf_c, k0_c) in enumerate(options):
        measured = [m for m in _measure(channel, intensity, lo_edge, hi_edge, peaks, names, sf_c, k0_c) if m]
        key = (_consistent(measured), len(measured), -rank)
        if best_key is None or key > best_key:
            best, best_key = (sf_c, k0_c), key
        if key[0] == len(names):
            break
    return best


def _library(names) -> tuple:
    """The secondary-ion list of the polarity the calibrant names carry."""
    return SECONDARY["negative" if str(names[0]).endswith("-") else "positive"]


def _polarity(channel, intensity, sf, k0) -> str:
    """The polarity whose indicator ions carry more counts under a first calibration.

    Positive and negative ions of one formula differ by two electron masses only, so the peak
    positions cannot tell the polarity; the intensities can: O-, OH-, F-, Cl-, C2H-, CN- dominate
    negative spectra, alkali and hydrocarbon cations positive ones.
    """
    lo_edge, hi_edge = _edges(channel)
    total = {}
    for pol, names in POLARITY_INDICATORS.items():
        t = mass_to_channel(np.array([fragment_mass(n) for n in names]), sf, k0)
        i = np.clip(np.searchsorted(hi_edge, t), 1, channel.size - 2)
        total[pol] = float(np.maximum(np.maximum(intensity[i - 1], intensity[i]), intensity[i + 1]).sum())
    return max(total, key=total.get)


def _measure(channel, intensity, lo_edge, hi_edge, peaks, names, sf, k0, forced=None, spill=True):
    """Per calibrant: peak bin, interval, top-half centroid and counts (or None if no peak).

    The interval of a ``forced`` (extension) ion is its whole bin; of the others, with
    ``spill``, the part of the bin their spill into the neighbours allows.
    """
    out = []
    is_peak = np.zeros(channel.size, bool)
    is_peak[peaks] = True
    for name in names:
        m = fragment_mass(name)
        t = mass_to_channel(m, sf, k0)
        if not channel[0] <= t <= channel[-1]:
            out.append(None)
            continue
        i = int(np.clip(np.searchsorted(hi_edge, t), 0, channel.size - 1))
        window = [k for k in (i - 1, i, i + 1) if 0 <= k < channel.size and is_peak[k]]
        if forced and name in forced:
            window = [forced[name]]
        if not window:
            out.append(None)
            continue
        k = max(window, key=lambda q: intensity[q])
        # top half of the peak: contiguous bins around the maximum above half its height
        a = b = k
        half = intensity[k] / 2
        while a > 0 and intensity[a - 1] >= half:
            a -= 1
        while b < channel.size - 1 and intensity[b + 1] >= half:
            b += 1
        sel = slice(a, b + 1)
        centroid = float((channel[sel] * intensity[sel]).sum() / intensity[sel].sum())
        if spill and not (forced and name in forced):
            bin_low, bin_high = _bin_interval(k, intensity, lo_edge, hi_edge)
        else:
            # the bin holding the peak maximum holds the ion's centre (peaks narrower than a bin)
            bin_low, bin_high = float(lo_edge[k]), float(hi_edge[k])
        out.append(
            {
                "name": name,
                "mass": m,
                "bin": k,
                "n_bins": b - a + 1,
                "low": float(lo_edge[a]),
                "high": float(hi_edge[b]),
                "centroid": centroid,
                "bin_low": bin_low,
                "bin_high": bin_high,
                "counts": float(intensity[max(0, a - 1) : b + 2].sum()),
            }
        )
    return out


def _bin_interval(k, intensity, lo_edge, hi_edge, r_min: float = 1000.0, r_max: float = 10000.0,
                  split: float = 0.05):
    """Where in bin ``k`` a peak narrower than the bin can be, from its spill into the neighbours.

    A peak with a Gaussian core of width sigma centred a distance d inside an edge puts the
    fraction f = Phi(-d / sigma) of its counts beyond that edge, so d = sigma * z with
    z = Phi^-1(1 - f). sigma lies between t / (2.355 * 2 R) for resolving powers R between
    ``r_max`` and ``r_min``, which bounds d from below always, and from above when the spill is
    large enough (``f >= split``) to be the peak's own rather than another ion's tail.
    """
    from scipy.stats import norm

    low, high = float(lo_edge[k]), float(hi_edge[k])
    t = (low + high) / 2
    sigma_min, sigma_max = t / (2.355 * 2 * r_max), t / (2.355 * 2 * r_min)
    peak = max(float(intensity[k]), 1.0)
    lo_bound, hi_bound = low, high
    for side, nb in ((-1, k - 1), (+1, k + 1)):
        spill = float(intensity[nb]) if 0 <= nb < intensity.size else 0.0
        beyond = float(intensity[nb + side]) if 0 <= nb + side < intensity.size else 0.0
        f = min(max(spill / (peak + spill), 1e-9), 0.5)
        z = norm.isf(f)
        d_min = sigma_min * z
        # the spill bounds d from above only when it is this peak's shoulder, not another peak
        shoulder = f >= split and beyond < 0.5 * spill
        d_max = sigma_max * z if shoulder else np.inf
        if side < 0:
            lo_bound = max(lo_bound, low + d_min)
            hi_bound = min(hi_bound, low + d_max)
        else:
            hi_bound = min(hi_bound, high - d_min)
            lo_bound = max(lo_bound, high - d_max)
    if lo_bound > hi_bound:  # spill on both sides: the two bounds cross, keep the whole bin
        lo_bound, hi_bound = low, high
    return lo_bound, hi_bound


# -- fits ---------------------------------------------------------------------------------------
def fit_weighted(t, mass, weights):
    """Weighted least squares t = k0 + sf * sqrt(m); returns ``(sf, k0, sf_err, k0_err)``.

    ``weights`` are the peak counts (a centroid's variance falls as 1/counts); the standard
    errors are scaled by the reduced chi-square of the fit.
    """
    t, r, w = np.asarray(t, float), np.sqrt(np.asarray(mass, float)), np.asarray(weights, float)
    if t.size < 2:
        raise ToFSIMSError("calibration needs at least two calibrant peaks")
    design = np.column_stack([r, np.ones_like(r)])
    sw = np.sqrt(w / w.mean())
    coef, *_ = np.linalg.lstsq(design * sw[:, None], t * sw, rcond=None)
    sf, k0 = coef
    if t.size > 2:
        resid = (t - design @ coef) * sw
        cov = np.linalg.inv((design * sw[:, None]).T @ (design * sw[:, None])) * (resid @ resid) / (t.size - 2)
        return float(sf), float(k0), float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
    return float(sf), float(k0), float("nan"), float("nan")


def _consensus(low, high, r, required=None):
    """Calibrants consistent with the (sf, k0) that satisfies the most of them (every
    ``required`` one first: the universal calibrants anchor the consensus).

    Each calibrant allows a strip ``low <= k0 + sf r <= high`` of the (k0, sf) plane; the point
    covered by most strips lies on a crossing of two strip edges, so every crossing is tried.
    A misidentified peak is then simply outside the consensus.
    """
    n = r.size
    # edge lines: k0 + sf r_i = c_i, for c in low and high
    rr = np.concatenate([r, r])
    cc = np.concatenate([low, high])
    owner = np.concatenate([np.arange(n), np.arange(n)])
    a, b = np.triu_indices(rr.size, 1)
    keep = owner[a] != owner[b]
    a, b = a[keep], b[keep]
    sf = (cc[a] - cc[b]) / (rr[a] - rr[b])
    k0 = cc[a] - sf * rr[a]
    ok = sf > 0
    sf, k0 = sf[ok], k0[ok]
    if sf.size == 0:
        return np.ones(n, bool)
    t = k0[:, None] + sf[:, None] * r[None, :]
    tol = 1e-9 * np.abs(t) + 1e-6
    inside = (t >= low - tol) & (t <= high + tol)
    score = inside.sum(axis=1).astype(float)
    if required is not None:
        score += (n + 1) * (inside & np.asarray(required, bool)[None, :]).sum(axis=1)
    best = int(np.argmax(score))
    return inside[best]


def fit_intervals(low, high, mass, required=None):
    """(sf, k0) putting every ``k0 + sf sqrt(m_i)`` inside [low_i, high_i] with the largest margin.

    The measurement of a peak narrower than its bin is the bin itself. Calibrants outside the
    largest consistent set (see :func:`_consensus`) are dropped as misidentified; the centre of
    the remaining feasible (sf, k0) region that is farthest from every bin edge is the estimate,
    and the region's half-extent / sqrt(3) the standard error (uniform within the region).

    Returns ``(sf, k0, sf_err, k0_err, used, constraints)`` with ``used`` a boolean mask and
    ``constraints`` the (A, b) of the feasible region over (k0, sf).
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    r = np.sqrt(np.asarray(mass, float))
    used = _consensus(low, high, r, required)
    if used.sum() < 2:
        raise ToFSIMSError("calibration: fewer than two mutually consistent calibrant peaks")
    rr, lo, hi = r[used], low[used], high[used]
    n = rr.size
    a_ub = np.vstack([np.column_stack([-np.ones(n), -rr]), np.column_stack([np.ones(n), rr])])
    b_ub = np.concatenate([-lo, hi])
    # x = (k0, sf, s): maximise the margin s, lo + s <= k0 + sf r <= hi - s
    res = linprog(
        [0, 0, -1], A_ub=np.column_stack([a_ub, np.ones(2 * n)]), b_ub=b_ub,
        bounds=[(None, None), (0, None), (None, None)], method="highs",
    )
    if res.status != 0:
        raise ToFSIMSError("calibration: the interval fit failed")
    k0, sf = float(res.x[0]), float(res.x[1])
    extent = []
    for c in ([0, 1], [0, -1], [1, 0], [-1, 0]):
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None), (0, None)], method="highs")
        extent.append(res.x if res.status == 0 else np.array([k0, sf]))
    sf_err = abs(extent[1][1] - extent[0][1]) / 2 / np.sqrt(3)
    k0_err = abs(extent[3][0] - extent[2][0]) / 2 / np.sqrt(3)
    return sf, k0, float(sf_err), float(k0_err), used, (a_ub, b_ub)


# -- the calibration ----------------------------------------------------------------------------
#: the residual bound (ppm) a calibration is held to (issue 12: ~50 ppm, 0.01 u at 200 u)
PPM_BOUND = 50.0

#: an extension ion's peak must stand this many Poisson sigma above its base: among thousands of
#: bins, 5-sigma noise bumps occur, and in a sparse spectrum a wide predicted range may hold one
EXTENSION_SIGMA = 30.0
#: a binned library ion is considered only when the current fit places it within this many bins
MAX_RANGE_BINS = 5


@functools.lru_cache(maxsize=4)
def _organics(polarity: str) -> np.ndarray:
    """Masses of singly charged hydrocarbon ions CcHh up to 260 u: the contamination every SIMS
    spectrum holds at almost every nominal mass. They are not calibrants; they are the ions a
    library assignment must not be confusable with (a library ion absent from the sample shares
    its nominal mass with them). Measured on the real spectra (and their 2x rebinned versions):
    adding CcHhOo/N ions as well leaves too few unambiguous calibrants (0.02-0.3 u at 200 u),
    no hydrocarbons lets wrong assignments in (0.09 u on N_HEA19); hydrocarbons: <= 0.009 u.
    """
    from .masses import ELECTRON_MASS, ISOTOPES

    mh = ISOTOPES["H"][1]
    electron = ELECTRON_MASS if polarity == "negative" else -ELECTRON_MASS
    out = [12.0 * c + mh * h + electron for c in range(1, 22) for h in range(0, 2 * c + 4) if 12 * c + h <= 260]
    return np.unique(np.round(out, 7))


def _confounders(polarity: str) -> np.ndarray:
    names = list(DEFAULT_CALIBRANTS.get(polarity, ())) + list(SECONDARY.get(polarity, ()))
    return np.unique(np.concatenate([_organics(polarity), [fragment_mass(n) for n in names]]))


class _Fit:
    """A calibration state: (sf, k0), their covariance, and the range of k0 + sf r it allows.

    Interval fits (binned peaks): the feasible (k0, sf) polygon's vertices give exact ranges;
    least-squares fits: +- ``n_sigma`` standard errors.
    """

    def __init__(self, sf, k0, cov, vertices=None, n_sigma: float = 3.0):
        self.sf, self.k0, self.cov, self.vertices, self.n_sigma = float(sf), float(k0), cov, vertices, n_sigma

    def range(self, r):
        r = np.atleast_1d(np.asarray(r, float))
        if self.vertices is not None:
            t = self.vertices[:, 0][:, None] + self.vertices[:, 1][:, None] * r[None, :]
            return t.min(axis=0), t.max(axis=0)
        t = self.k0 + self.sf * r
        u = self.n_sigma * self.channel_esd(r)
        return t - u, t + u

    def channel_esd(self, r):
        r = np.atleast_1d(np.asarray(r, float))
        var = self.cov[0, 0] + 2 * r * self.cov[0, 1] + r**2 * self.cov[1, 1]
        return np.sqrt(np.maximum(var, 0.0))

    def mass_esd(self, mass):
        """1-sigma mass uncertainty (u) of the calibration alone at ``mass``."""
        r = np.sqrt(np.asarray(mass, float))
        return self.channel_esd(r) * 2 * r / self.sf


def _polygon(a_ub, b_ub, k0, sf):
    """Vertices (k0, sf) of {x : a_ub x <= b_ub} around the interior point (k0, sf)."""
    from scipy.spatial import HalfspaceIntersection

    # scale sf so that both coordinates are of similar size (k0 ~ 1e2, sf ~ 3e4)
    scale = np.array([1.0, 1e-3])
    a = a_ub / scale[None, :]
    halfspaces = np.column_stack([a, -b_ub])
    interior = np.array([k0, sf]) * scale
    try:
        hs = HalfspaceIntersection(halfspaces, interior)
    except Exception:  # noqa: BLE001 - qhull: degenerate polygon (point-like region)
        return np.array([[k0, sf]])
    return hs.intersections / scale[None, :]


def _interval_fit(low, high, mass, required):
    sf, k0, sf_err, k0_err, used, (a_ub, b_ub) = fit_intervals(low, high, mass, required)
    vertices = _polygon(a_ub, b_ub, k0, sf)
    cov = np.cov(vertices.T) / 3 if len(vertices) > 2 else np.diag([k0_err**2, sf_err**2])
    cov = np.atleast_2d(cov)
    if cov.shape != (2, 2) or not np.all(np.isfinite(cov)):
        cov = np.diag([k0_err**2, sf_err**2])
    return _Fit(sf, k0, cov, vertices), used


def _wls_fit(t, mass, esd, required, max_rounds: int = 5):
    """Weighted least squares t = k0 + sf sqrt(m) (weights 1/esd^2), dropping calibrants more than
    5 standard deviations off (not the ``required`` ones unless the fit cannot hold them)."""
    r = np.sqrt(np.asarray(mass, float))
    t, esd = np.asarray(t, float), np.asarray(esd, float)
    used = np.ones(t.size, bool)
    for _ in range(max_rounds):
        design = np.column_stack([np.ones(used.sum()), r[used]]) / esd[used, None]
        coef, *_ = np.linalg.lstsq(design, t[used] / esd[used], rcond=None)
        cov = np.linalg.inv(design.T @ design)
        resid = (t - coef[0] - coef[1] * r) / esd
        dof = max(int(used.sum()) - 2, 1)
        chi2 = float(np.sum(resid[used] ** 2)) / dof
        cov = cov * max(1.0, chi2)
        keep = np.abs(resid) <= 5 * np.sqrt(max(1.0, min(chi2, 25.0)))
        keep |= np.asarray(required, bool) & (np.abs(resid) <= 20)
        if keep.sum() < 2 or np.array_equal(keep, used):
            break
        used = keep
    return _Fit(coef[1], coef[0], cov), used


def _peak_table(channel, intensity, lo_edge, hi_edge, binned):
    """Every significant peak: bin of the maximum, significance, and what the data say of its
    centre: the bin (binned spectra) or a centroid with its standard error (fine sampling)."""
    index, props = find_peaks(intensity, prominence=5.0)
    base = intensity[index] - props["prominences"]
    sigma = props["prominences"] / np.sqrt(np.maximum(base, 0.0) + 1.0)
    keep = sigma >= 5.0
    index, sigma, base = index[keep], sigma[keep], base[keep]
    rows = []
    for k, z, b in zip(index, sigma, base):
        if binned:
            low, high = float(lo_edge[k]), float(hi_edge[k])
            rows.append((k, z, (low + high) / 2, (high - low) / np.sqrt(12), low, high, float(intensity[k])))
            continue
        a = e = k
        half = b + (intensity[k] - b) / 2
        while a > 0 and intensity[a - 1] >= half:
            a -= 1
        while e < channel.size - 1 and intensity[e + 1] >= half:
            e += 1
        sel = slice(a, e + 1)
        w = np.maximum(intensity[sel] - b, 0.0)
        n = float(w.sum())
        centre = float((channel[sel] * w).sum() / n) if n > 0 else float(channel[k])
        width = float(hi_edge[k] - lo_edge[k])
        spread = float(np.sqrt(((channel[sel] - centre) ** 2 * w).sum() / n)) if n > 0 else width
        # centroid of the top half: sigma/sqrt(N), the bin quantisation, and 5 % of the width for
        # the peak's asymmetry (a tail shifts the top-half centroid little, not nothing)
        esd = float(np.sqrt((spread**2 + width**2 / 12) / max(n, 1.0) + (0.05 * spread) ** 2))
        rows.append((k, z, centre, esd, centre - 3 * esd, centre + 3 * esd, n))
    table = np.array(rows, float).reshape(-1, 7)
    return {"bin": table[:, 0].astype(int), "sigma": table[:, 1], "centre": table[:, 2], "esd": table[:, 3],
            "low": table[:, 4], "high": table[:, 5], "counts": table[:, 6]}


def calibrate(
    spectrum: xr.Dataset,
    peaks=None,
    *,
    polarity: str | None = None,
    extend: bool | None = None,
    spill: bool = True,
    max_iterations: int = 30,
    ppm_bound: float = PPM_BOUND,
) -> xr.Dataset:
    """Calibrate a spectrum (``intensity`` over ``channel``) on named calibrant peaks.

    Steps: the universal calibrants of the polarity (or ``peaks``) are located by pattern
    matching (:func:`pattern_match`), measured and fitted; then, round by round, each library
    ion (:data:`SECONDARY`) is accepted when (i) its range predicted by the current fit holds
    exactly one significant peak, standing ``EXTENSION_SIGMA`` above its base, (ii) no other
    ion that may be there (the library, and every hydrocarbon ion CcHh of the polarity up to 260 u)
    has a predicted range reaching that peak, and (iii) the range spans at most ``MAX_RANGE_BINS`` bins. The fit
    is repeated after every round, so the ranges shrink and heavier ions become unambiguous.
    Binned spectra (a peak within one or two bins, e.g. SurfaceLab's 200-channel exports): every
    peak is known to within its bin, the fit is the (sf, k0) inside every calibrant's bin with the
    largest margin, anchored on the universal calibrants; finely sampled spectra: top-half
    centroids with standard errors, weighted least squares with outlier rejection.

    Parameters
    ----------
    spectrum : xarray.Dataset
        From :func:`tofsims.read` (ASCII spectrum or ITA ``read_spectrum``); the ``mz_file``
        coordinate, if any, is never read.
    peaks : list of str, optional
        Calibrant ions ("H-", "C2H-", ...). Default: the polarity's universal calibrants.
    polarity : "negative" | "positive", optional
        Default: the spectrum's ``polarity`` attribute; when unknown both sets are tried.
    extend : bool, optional
        Add unambiguous library ions (default: on).
    spill : bool
        Narrow a binned universal/named calibrant's bin from its spill into the neighbours.
    ppm_bound : float
        Residual bound for ``attrs["quality"]``.

    Returns
    -------
    xarray.Dataset
        ``sf``, ``k0`` (+ ``_stderr``, ``sf_k0_correlation``); per ``calibrant``: ``mass``,
        ``channel_measured``, ``channel_esd``, ``channel_fit``, ``residual_channel``,
        ``residual_mass``, ``residual_ppm``, ``counts``, ``used``, ``role``; attrs
        ``rms_residual_ppm``, ``mass_esd_27u``/``mass_esd_200u`` (1 sigma, u), ``quality``
        ("ok"/"warning"/"failed") and ``quality_reasons`` (sentences).

    Examples
    --------
    >>> spec = tofsims.read("N_HEA19_Bi1_1.txt")                           # doctest: +SKIP
    >>> cal = calibrate(spec)                                               # doctest: +SKIP
    >>> round(float(cal["sf"]))                                             # doctest: +SKIP
    32985
    """
    if "intensity" not in spectrum or "channel" not in spectrum.coords:
        raise ToFSIMSError(f"{spectrum.attrs.get('source', 'spectrum')}: not a spectrum (intensity over channel)")
    source = spectrum.attrs.get("source", "spectrum")
    channel = np.asarray(spectrum["channel"].values, float)
    intensity = np.asarray(spectrum["intensity"].values, float)
    if channel.size < 10 or not np.all(np.isfinite(intensity)) or intensity.max() <= 0:
        raise ToFSIMSError(f"{source}: spectrum is empty, too short or not finite")
    if not np.all(np.diff(channel) > 0):
        raise ToFSIMSError(f"{source}: channels are not strictly increasing")
    intensity = np.maximum(intensity, 0.0)  # processed exports may dip below 0; peaks are counts
    polarity = (polarity or spectrum.attrs.get("polarity") or "unknown").lower()
    try:
        if peaks:
            names = [str(p) for p in peaks]
            sf, k0, _, _ = pattern_match(channel, intensity, names, library=_library(names))
            if polarity not in DEFAULT_CALIBRANTS:
                polarity = "negative" if names[0].endswith("-") else "positive"
        else:
            trials = [polarity] if polarity in DEFAULT_CALIBRANTS else list(DEFAULT_CALIBRANTS)
            found = []
            for pol in trials:
                sf, k0, n_hit, score = pattern_match(
                    channel, intensity, DEFAULT_CALIBRANTS[pol], library=SECONDARY[pol]
                )
                found.append((n_hit / len(DEFAULT_CALIBRANTS[pol]), score, pol, sf, k0))
            if len(found) > 1:
                # a calibration is believable when its own polarity's indicator ions dominate
                agreeing = [f for f in found if _polarity(channel, intensity, f[3], f[4]) == f[2]]
                found = agreeing or found
            _, _, polarity, sf, k0 = max(found)
            names = list(DEFAULT_CALIBRANTS[polarity])
        lo_edge, hi_edge = _edges(channel)
        found_peaks = _peaks(intensity)
        sf, k0 = _verified(channel, intensity, lo_edge, hi_edge, found_peaks, names, sf, k0)
        measured = [m for m in _measure(channel, intensity, lo_edge, hi_edge, found_peaks, names, sf, k0,
                                        None, spill) if m]
        if len(measured) < 2:
            raise ToFSIMSError(f"found fewer than two of the calibrants {names} in the spectrum")
        binned = bool(np.median([m["n_bins"] for m in measured]) <= 2)
        table = _peak_table(channel, intensity, lo_edge, hi_edge, binned)
        rows = []  # one per calibrant: name, mass, centre, esd, low, high, counts, role, peak bin
        for m in measured:
            k = int(np.argmin(np.abs(table["bin"] - m["bin"]))) if table["bin"].size else -1
            if binned or k < 0 or table["bin"][k] != m["bin"]:
                low, high = m["bin_low"], m["bin_high"]
                centre, esd = (low + high) / 2, (high - low) / np.sqrt(12)
            else:
                centre, esd, low, high = (table[c][k] for c in ("centre", "esd", "low", "high"))
            rows.append([m["name"], m["mass"], centre, esd, low, high, m["counts"],
                         "named" if peaks else "universal", m["bin"]])
        extend = True if extend is None else bool(extend)
        fit, used = _fit_rows(rows, binned)
        rejected: set[str] = set()
        confounders = _confounders(polarity)
        for _ in range(max_iterations if extend else 0):
            new = _accept(rows, fit, table, polarity, confounders, rejected, lo_edge, hi_edge, binned)
            if not new:
                break
            rows += new
            fit, used = _fit_rows(rows, binned)
            rejected |= {r[0] for r, u in zip(rows, used) if not u and r[7] == "library"}
    except ToFSIMSError as exc:
        if str(exc).startswith(str(source)):
            raise
        raise ToFSIMSError(f"{source}: {exc}") from None
    return _result(spectrum, rows, used, fit, polarity, binned, ppm_bound)


def _fit_rows(rows, binned):
    mass = np.array([r[1] for r in rows])
    required = np.array([r[7] != "library" for r in rows])
    if binned:
        return _interval_fit([r[4] for r in rows], [r[5] for r in rows], mass, required)
    return _wls_fit([r[2] for r in rows], mass, [r[3] for r in rows], required)


def _accept(rows, fit, table, polarity, confounders, rejected, lo_edge, hi_edge, binned):
    """Library ions whose assignment is unambiguous under ``fit`` (see :func:`calibrate`)."""
    have = {r[0] for r in rows}
    taken = {int(r[8]) for r in rows}
    c_lo, c_hi = fit.range(np.sqrt(confounders))
    bin_width = np.median(hi_edge - lo_edge)
    strong = table["sigma"] >= EXTENSION_SIGMA
    new = []
    for name in SECONDARY.get(polarity, ()):
        if name in have or name in rejected:
            continue
        mass = fragment_mass(name)
        lo, hi = (float(v[0]) for v in fit.range(np.sqrt(mass)))
        if hi < lo_edge[0] or lo > hi_edge[-1] or (binned and hi - lo > MAX_RANGE_BINS * bin_width):
            continue
        hits = np.flatnonzero((table["high"] >= lo) & (table["low"] <= hi))
        if hits.size != 1 or not strong[hits[0]]:
            continue
        k = int(hits[0])
        if int(table["bin"][k]) in taken:
            continue
        low, high = table["low"][k], table["high"][k]
        others = np.abs(confounders - mass) > 1e-6
        if np.any(others & (c_hi >= low) & (c_lo <= high)):
            continue
        taken.add(int(table["bin"][k]))
        new.append([name, mass, table["centre"][k], table["esd"][k], low, high, table["counts"][k], "library",
                    int(table["bin"][k])])
    return new


def assign(cal: xr.Dataset, channel: float, channel_esd: float = 0.0, candidates=("BO-", "C2H3-"),
           n_sigma: float = 3.0):
    """The one candidate ion a peak at ``channel`` (+- ``channel_esd``) is, or None if ambiguous.

    The mass uncertainty combines the calibration's own (its (sf, k0) covariance) with the
    peak's; a candidate is assigned when it lies within ``n_sigma`` of the measured mass and
    every other candidate beyond it. Returns ``(name or None, {candidate: distance in sigma})``.
    """
    fit = _Fit(float(cal["sf"]), float(cal["k0"]), np.asarray(cal["k0_sf_covariance"].values, float))
    mass = float(channel_to_mass(channel, fit.sf, fit.k0))
    dm_dt = 2 * np.sqrt(mass) / fit.sf
    esd = float(np.hypot(fit.mass_esd(mass)[0], channel_esd * dm_dt))
    z = {c: abs(mass - fragment_mass(c)) / esd for c in candidates}
    inside = [c for c, v in z.items() if v <= n_sigma]
    return (inside[0] if len(inside) == 1 else None), z


def _result(spectrum, rows, used, fit, polarity, binned, ppm_bound):
    names = [r[0] for r in rows]
    mass = np.array([r[1] for r in rows], float)
    t_meas = np.array([r[2] for r in rows], float)
    t_esd = np.array([r[3] for r in rows], float)
    used = np.asarray(used, bool)
    t_fit = mass_to_channel(mass, fit.sf, fit.k0)
    m_meas = channel_to_mass(t_meas, fit.sf, fit.k0)
    ppm = 1e6 * (m_meas - mass) / mass
    esd_ppm = 1e6 * t_esd * 2 * np.sqrt(mass) / fit.sf / mass
    roles = [r[7] for r in rows]
    width = spectrum.attrs.get("channel_width_ns", np.nan)
    esd27, esd200 = (float(v) for v in fit.mass_esd([27.0, 200.0]))
    cov = np.asarray(fit.cov, float)
    k0_err, sf_err = float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
    rms = float(np.sqrt(np.mean(ppm[used] ** 2))) if used.any() else float("nan")
    # the ppm bound can be judged only on calibrants measured better than the bound
    precise = used & (esd_ppm <= ppm_bound / 3)
    rms_precise = float(np.sqrt(np.mean(ppm[precise] ** 2))) if precise.any() else float("nan")
    reasons, failed = [], []
    if used.sum() < 3:
        failed.append(f"only {int(used.sum())} calibrant(s) agree; (sf, k0) is not over-determined")
    if used.any() and rms > ppm_bound and not (precise.any() and rms_precise > ppm_bound):
        typical = float(np.median(esd_ppm[used]))
        reasons.append(f"rms residual {rms:.0f} ppm exceeds the {ppm_bound:g} ppm bound"
                       + (f"; the calibrants are known only to their bins (median esd {typical:.0f} ppm), "
                          "so each residual is bin-limited and only the combined fit is tighter" if binned else ""))
    if precise.any() and rms_precise > ppm_bound:
        reasons.append(f"rms residual {rms_precise:.0f} ppm of the {int(precise.sum())} precisely measured "
                       f"calibrants exceeds the {ppm_bound:g} ppm bound")
    # outliers against the esds scaled by the typical normalised residual (the centroid esds of
    # intense peaks ignore shape systematics common to all peaks)
    z = np.abs(ppm) / np.maximum(esd_ppm, 1e-12)
    scale = max(1.0, float(np.median(z[used])) / 0.6745) if used.any() else 1.0
    outliers = [n for n, u, v, p in zip(names, used, z, ppm)
                if u and v > 3 * scale and abs(p) > ppm_bound and not binned]
    if outliers:
        reasons.append(f"calibrant(s) {', '.join(outliers)} lie more than 3 esd from the fit")
    if 3 * esd200 > ppm_bound * 1e-6 * 200:
        reasons.append(f"the calibration's own uncertainty at 200 u is {3 * esd200:.3g} u (3 sigma), above "
                       f"the {ppm_bound * 200e-6:.3g} u a {ppm_bound:g} ppm bound allows")
    anchors = [n for n, r in zip(names, roles) if r != "library"]
    dropped = [n for n, r, u in zip(names, roles, used) if r != "library" and not u]
    if dropped:
        reasons.append(f"calibrant(s) {', '.join(dropped)} of {', '.join(anchors)} disagree with the others and "
                       "were left out")
    separable = bool(3 * esd27 < (fragment_mass("C2H3-") - fragment_mass("BO-")) / 2)
    result = xr.Dataset(
        {
            "sf": ((), fit.sf, {"units": "channel/u^0.5", "long_name": "t = k0 + sf sqrt(m)"}),
            "sf_stderr": ((), sf_err, {"units": "channel/u^0.5"}),
            "k0": ((), fit.k0, {"units": "channel"}),
            "k0_stderr": ((), k0_err, {"units": "channel"}),
            "sf_k0_correlation": ((), float(cov[0, 1] / (k0_err * sf_err)) if k0_err * sf_err > 0 else 0.0,
                                  {"units": "1"}),
            "k0_sf_covariance": (("param", "param_"), cov, {"units": "channel^2, channel^2/u^0.5, channel^2/u"}),
            "mass": (("calibrant",), mass, {"units": "u"}),
            "channel_measured": (("calibrant",), t_meas, {"units": "channel",
                                                          "note": "peak centroid, or bin (interval) centre when binned"}),
            "channel_esd": (("calibrant",), t_esd, {"units": "channel"}),
            "channel_fit": (("calibrant",), t_fit, {"units": "channel"}),
            "residual_channel": (("calibrant",), t_meas - t_fit, {"units": "channel"}),
            "residual_mass": (("calibrant",), m_meas - mass, {"units": "u"}),
            "residual_ppm": (("calibrant",), ppm, {"units": "ppm"}),
            "residual_esd_ppm": (("calibrant",), esd_ppm, {"units": "ppm"}),
            "counts": (("calibrant",), np.array([r[6] for r in rows], float), {"units": "counts"}),
            "used": (("calibrant",), used.astype(np.int8), {"units": "1"}),
            "role": (("calibrant",), np.array(roles, dtype=str)),
        },
        coords={"calibrant": ("calibrant", names), "param": ["k0", "sf"], "param_": ["k0", "sf"]},
        attrs={
            "technique": "ToF-SIMS",
            "source": spectrum.attrs.get("source", ""),
            "fitted": "sf k0",
            "polarity": polarity,
            "binning": int(spectrum.attrs.get("binning", 1)),
            "channel_width_ns": float(width) if width is not None else float("nan"),
            "method": "interval fit on binned peaks" if binned else "weighted least squares on peak centroids",
            "equation": "t = k0 + sf * sqrt(m), t in unbinned channels",
            "n_used": int(used.sum()),
            "rms_residual_ppm": rms,
            "rms_residual_ppm_precise": rms_precise,
            "ppm_bound": float(ppm_bound),
            "mass_esd_27u": esd27,
            "mass_esd_200u": esd200,
            "bo_c2h3_separable": int(separable),
        },
    )
    from doptrace.core.quality import set_quality

    from .quality import calibration_quality

    def sentence(text):
        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

    their_failed, their_warnings = calibration_quality(result)
    return set_quality(result, [sentence(r) for r in failed] + their_failed,
                       [sentence(r) for r in reasons] + their_warnings)
