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


def _consensus(low, high, r):
    """Calibrants consistent with the (sf, k0) that satisfies the most of them.

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
    best = int(np.argmax(inside.sum(axis=1)))
    return inside[best]


def fit_intervals(low, high, mass):
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
    used = _consensus(low, high, r)
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
def calibrate(
    spectrum: xr.Dataset,
    peaks=None,
    *,
    polarity: str | None = None,
    extend: bool | None = None,
    spill: bool = True,
    max_iterations: int = 12,
) -> xr.Dataset:
    """Calibrate a spectrum (``intensity`` over ``channel``) on named calibrant peaks.

    Parameters
    ----------
    spectrum : xarray.Dataset
        From :func:`tofsims.read` (ASCII spectrum or ITA ``read_spectrum``); the ``mz_file``
        coordinate, if any, is ignored.
    peaks : list of str, optional
        Calibrant ions ("H-", "C2H-", ...). Default: the polarity's default calibrants.
    polarity : "negative" | "positive", optional
        Default: the spectrum's ``polarity`` attribute; when unknown both default sets are tried.
    extend : bool, optional
        Add unambiguous common ions (module doc, step 3) to reach higher masses. Default: on
        for binned spectra (peaks within one or two bins) calibrated on the default calibrants;
        off when ``peaks`` are named, and for finely sampled spectra, whose centroids already
        fix (sf, k0) well.
    spill : bool
        Narrow each named (or default) calibrant's bin from its spill into the neighbour bins
        (:func:`_bin_interval`). Ions added by the extension always keep their whole bin: at
        higher masses the neighbour bins often hold another ion of the same nominal mass,
        whose counts would fake a spill.

    Returns
    -------
    xarray.Dataset
        ``sf``, ``k0`` (+ ``_stderr``), per ``calibrant``: ``mass``, ``channel_measured``,
        ``channel_fit``, ``residual_channel``, ``residual_mass``, ``counts``, ``used``.

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
    polarity = (polarity or spectrum.attrs.get("polarity") or "unknown").lower()
    try:
        if peaks:
            names = [str(p) for p in peaks]
            sf, k0, _, _ = pattern_match(channel, intensity, names, library=_library(names))
            if polarity == "unknown":
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
    except ToFSIMSError as exc:
        raise ToFSIMSError(f"{source}: {exc}") from None
    try:
        binned = None
        sf_err = k0_err = np.nan
        extra: dict[str, int] = {}
        strong_peaks = set(_peaks(intensity, EXTENSION_SIGMA).tolist())
        for _ in range(max_iterations):
            wanted = names + list(extra)
            measured = [
                m for m in _measure(channel, intensity, lo_edge, hi_edge, found_peaks, wanted, sf, k0, extra, spill)
                if m
            ]
            if len(measured) < 2:
                raise ToFSIMSError(f"{source}: found fewer than two of the calibrants {wanted} in the spectrum")
            if binned is None:
                # a peak inside one or two bins: the bin, not a centroid, is what the data say
                binned = bool(np.median([m["n_bins"] for m in measured]) <= 2)
                if extend is None:
                    extend = binned and not peaks
            mass = np.array([m["mass"] for m in measured])
            if binned:
                sf, k0, sf_err, k0_err, used, constraints = fit_intervals(
                    [m["bin_low"] for m in measured], [m["bin_high"] for m in measured], mass
                )
            else:
                t = np.array([m["centroid"] for m in measured])
                w = np.array([m["counts"] for m in measured])
                used = np.ones(mass.size, bool)
                for _ in range(3):  # drop gross outliers (misidentified peaks), > 5 robust sigma
                    sf, k0, sf_err, k0_err = fit_weighted(t[used], mass[used], w[used])
                    resid = t - mass_to_channel(mass, sf, k0)
                    scale = 1.4826 * np.median(np.abs(resid[used] - np.median(resid[used]))) + 1e-9
                    keep = np.abs(resid) <= 5 * scale + 0.5
                    if keep.sum() < 2 or np.array_equal(keep, used):
                        break
                    used = keep
                sf, k0, sf_err, k0_err = fit_weighted(t[used], mass[used], w[used])
                constraints = None
            if not extend:
                break
            fit = (sf, k0, sf_err, k0_err, constraints)
            new = _unambiguous(channel, lo_edge, hi_edge, found_peaks, polarity, fit, set(wanted),
                               strong=strong_peaks)
            if not new:
                break
            extra.update(new)
    except ToFSIMSError as exc:
        if str(exc).startswith(str(source)):
            raise
        raise ToFSIMSError(f"{source}: {exc}") from None
    return _result(spectrum, measured, used, sf, k0, sf_err, k0_err, polarity, binned)


def _range(r, constraints, sf, k0, sf_err, k0_err):
    """Smallest and largest k0 + sf r allowed by the current fit.

    Interval fits: exact extremes over the feasible (sf, k0) region (a linear programme each);
    least-squares fits: +- 3 standard errors.
    """
    if constraints is None:
        u = 3 * np.hypot(k0_err, sf_err * r)
        t = k0 + sf * r
        return t - u, t + u
    a_ub, b_ub = constraints
    ends = []
    for sign in (1.0, -1.0):
        res = linprog([sign, sign * r], A_ub=a_ub, b_ub=b_ub, bounds=[(None, None), (0, None)], method="highs")
        if res.status != 0:
            return -np.inf, np.inf
        ends.append(res.x[0] + res.x[1] * r)
    return min(ends), max(ends)


#: an extension ion's peak must stand this many Poisson sigma above its base: among thousands of
#: bins, 5-sigma noise bumps occur, and in a sparse spectrum a wide predicted range may hold one
EXTENSION_SIGMA = 30.0


def _unambiguous(channel, lo_edge, hi_edge, peaks, polarity, fit, have, max_bins: int = 5, strong=None):
    """Secondary ions with exactly one peak bin inside their predicted range, a bin that no other
    listed ion's range reaches and, when ``strong`` (bin indices) is given, one of those;
    returns ``{name: bin}``."""
    sf, k0, sf_err, k0_err, constraints = fit
    everyone = list(dict.fromkeys(list(DEFAULT_CALIBRANTS.get(polarity, ())) + list(SECONDARY.get(polarity, ()))))
    is_peak = np.zeros(channel.size, bool)
    is_peak[peaks] = True
    ranges = {}
    for name in everyone:
        r = np.sqrt(fragment_mass(name))
        lo, hi = _range(r, constraints, sf, k0, sf_err, k0_err)
        if hi >= channel[0] and lo <= channel[-1]:
            ranges[name] = (int(np.searchsorted(hi_edge, lo)), int(np.searchsorted(hi_edge, hi)))
    accepted = {}
    for name, (first, last) in ranges.items():
        if name in have or last - first + 1 > max_bins or last >= channel.size:
            continue
        candidates = np.flatnonzero(is_peak[first : last + 1]) + first
        if candidates.size != 1:
            continue
        b = int(candidates[0])
        if strong is not None and b not in strong:
            continue
        if any(o != name and a <= b <= z for o, (a, z) in ranges.items()):
            continue
        accepted[name] = b
    return accepted


def _result(spectrum, measured, used, sf, k0, sf_err, k0_err, polarity, binned):
    from doptrace.core.quality import set_quality

    from .quality import calibration_quality

    return set_quality(result := _result_dataset(spectrum, measured, used, sf, k0, sf_err, k0_err, polarity,
                                                 binned), *calibration_quality(result))


def _result_dataset(spectrum, measured, used, sf, k0, sf_err, k0_err, polarity, binned):
    names = [m["name"] for m in measured]
    mass = np.array([m["mass"] for m in measured])
    if binned:
        t_meas = np.array([(m["bin_low"] + m["bin_high"]) / 2 for m in measured])
    else:
        t_meas = np.array([m["centroid"] for m in measured])
    t_fit = mass_to_channel(mass, sf, k0)
    m_meas = channel_to_mass(t_meas, sf, k0)
    width = spectrum.attrs.get("channel_width_ns", np.nan)
    return xr.Dataset(
        {
            "sf": ((), sf, {"units": "channel/u^0.5", "long_name": "t = k0 + sf sqrt(m)"}),
            "sf_stderr": ((), sf_err, {"units": "channel/u^0.5"}),
            "k0": ((), k0, {"units": "channel"}),
            "k0_stderr": ((), k0_err, {"units": "channel"}),
            "mass": (("calibrant",), mass, {"units": "u"}),
            "channel_measured": (("calibrant",), t_meas, {"units": "channel"}),
            "channel_fit": (("calibrant",), t_fit, {"units": "channel"}),
            "residual_channel": (("calibrant",), t_meas - t_fit, {"units": "channel"}),
            "residual_mass": (("calibrant",), m_meas - mass, {"units": "u"}),
            "counts": (("calibrant",), np.array([m["counts"] for m in measured]), {"units": "counts"}),
            "used": (("calibrant",), np.asarray(used, np.int8), {"units": "1"}),
        },
        coords={"calibrant": ("calibrant", names)},
        attrs={
            "technique": "ToF-SIMS",
            "source": spectrum.attrs.get("source", ""),
            "fitted": "sf k0",
            "polarity": polarity,
            "binning": int(spectrum.attrs.get("binning", 1)),
            "channel_width_ns": float(width) if width is not None else float("nan"),
            "method": "interval fit on binned peaks" if binned else "weighted least squares on peak centroids",
            "equation": "t = k0 + sf * sqrt(m), t in unbinned channels",
        },
    )
