"""Peak search on a ToF-SIMS total spectrum, with assignment candidates and their ppm error.

Peaks are local maxima found by :func:`scipy.signal.find_peaks` whose prominence stands
``n_sigma`` Poisson standard deviations above the base they rise from (``sqrt(base + 1)``;
the +1 keeps a zero base from making single counts significant). Each peak is measured on its
top half (bins above half its prominence, contiguous around the maximum):

- centroid ``c = sum w_i t_i / sum w_i`` with ``w_i = y_i - base`` and Poisson esd
  ``var(c) = sum y_i (t_i - c)^2 / (sum w_i)^2`` (each bin's count has variance ``y_i``), plus the
  bin-width quantisation ``binning^2 / 12`` shared out over the counts;
- net counts over ``c +- 1.5 FWHM`` (stopping at the lowest bin towards a neighbouring peak) minus
  the base, with Poisson esd;
- a peak within one or two bins (coarse exports) is known only to within its bin: its centroid
  esd includes ``binning / sqrt(12)`` in full.

The centroid becomes a mass through the calibration ``t = k0 + sf sqrt(m)``; its esd combines
the peak's centroid esd with the calibration's own mass uncertainty (the ``(k0, sf)`` covariance
of :func:`doptrace.tofsims.calibration.calibrate`) and the calibrants' rms scatter about the fit
(``attrs["rms_residual_ppm"]``: what a peak measured the same way misses by). Candidates are the ions of
:mod:`doptrace.tofsims.masses` the calibration module knows for the polarity (its calibrants and
its library :data:`~doptrace.tofsims.calibration.SECONDARY`) plus any given, listed within
``max(tolerance_ppm, 3 esd)`` of the measured mass, nearest first, each with its ppm error
``1e6 (m_measured - m_ion) / m_ion`` and its distance in esd.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.signal import find_peaks

from .errors import ToFSIMSError
from .masses import fragment_mass
from .quality import finish

#: candidates listed per peak
MAX_CANDIDATES = 3


def library(polarity: str = "unknown", extra=()) -> dict[str, float]:
    """``{ion: exact mass}`` of the candidate ions for ``polarity`` (both polarities when unknown)."""
    from .calibration import DEFAULT_CALIBRANTS, SECONDARY

    pols = [polarity] if polarity in DEFAULT_CALIBRANTS else list(DEFAULT_CALIBRANTS)
    names = [n for p in pols for n in DEFAULT_CALIBRANTS[p] + SECONDARY[p]] + [str(e) for e in extra]
    return {n: fragment_mass(n) for n in dict.fromkeys(names)}


def _calibration(spectrum: xr.Dataset, calibration):
    """``(fit, description, scatter_ppm)``: the calibration state and the calibrants' rms scatter."""
    from .calibration import _Fit

    if calibration is not None:
        scatter = float(calibration.attrs.get("rms_residual_ppm", 0.0))
        return (_Fit(float(calibration["sf"]), float(calibration["k0"]),
                     np.asarray(calibration["k0_sf_covariance"].values, float)), "calibrated on the spectrum's peaks",
                scatter if np.isfinite(scatter) else 0.0)
    sf, k0 = float(spectrum.attrs.get("sf", np.nan)), float(spectrum.attrs.get("k0", np.nan))
    if not (np.isfinite(sf) and np.isfinite(k0) and sf > 0):
        raise ToFSIMSError(f"{spectrum.attrs.get('source', 'spectrum')}: no mass calibration (sf, k0) in the file; "
                           "calibrate first (doptrace tofsims calibrate) and pass the result")
    return _Fit(sf, k0, np.zeros((2, 2))), "the file's own (sf, k0), uncertainty unknown", 0.0


def _measure(t: np.ndarray, y: np.ndarray, i: int, base: float, prominence: float, binning: float,
             limits: tuple[int, int]):
    """Centroid, its esd, FWHM (channels), net counts and their esd of the peak at index ``i``;
    ``limits`` are the bins its counts may not pass (the lowest bins towards its neighbours)."""
    half = base + prominence / 2
    lo = i
    while lo > 0 and y[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < y.size - 1 and y[hi + 1] > half:
        hi += 1
    tt, yy = t[lo:hi + 1], y[lo:hi + 1]
    w = yy - base
    c = float(np.sum(w * tt) / np.sum(w))
    # a peak spread over many bins averages the bin quantisation out; one inside a bin or two
    # (SurfaceLab's 200-channel exports) is known only to within its bin
    quantisation = binning**2 / 12 / (max(np.sum(w), 1.0) if hi - lo + 1 > 2 else 1.0)
    var = float(np.sum(yy * (tt - c) ** 2) / np.sum(w) ** 2 + quantisation)
    fwhm = max(float(tt[-1] - tt[0]) + binning, binning)
    # net counts within 1.5 FWHM, but not past the lowest bin towards a neighbouring peak
    a = max(int(np.searchsorted(t, c - 1.5 * fwhm)), limits[0])
    b = min(int(np.searchsorted(t, c + 1.5 * fwhm, side="right")) - 1, limits[1])
    n = b - a + 1
    gross = float(np.sum(y[a:b + 1]))
    return c, np.sqrt(var), fwhm, gross - base * n, np.sqrt(max(gross, 0.0) + base * n)


def peak_search(spectrum: xr.Dataset, calibration: xr.Dataset | None = None, *, n_sigma: float = 5.0,
                top: int | None = None, tolerance_ppm: float = 200.0, candidates=(), min_mass: float = 0.5,
                polarity: str | None = None) -> xr.Dataset:
    """Significant peaks of a summed spectrum, their masses with esds and candidate assignments.

    Parameters
    ----------
    spectrum : xarray.Dataset
        ``intensity`` (counts) over ``channel`` (unbinned channel numbers at bin centres), e.g.
        :func:`doptrace.tofsims.formats.ita.read_spectrum` or an ASCII spectrum export.
    calibration : xarray.Dataset, optional
        From :func:`doptrace.tofsims.calibration.calibrate`; default the file's ``sf``/``k0``
        (then without a calibration uncertainty).
    n_sigma : float
        Poisson significance a peak's prominence must reach.
    top : int, optional
        Keep the ``top`` peaks with the most net counts.
    tolerance_ppm : float
        Candidates within ``max(tolerance_ppm, 3 esd)`` are listed.
    candidates : list of str
        Extra ion names (e.g. ``["BO-", "C2H3-"]``) added to the library.
    min_mass : float
        Peaks below this mass (u) are left out (the start of the spectrum).
    polarity : str, optional
        Default: the spectrum's ``polarity`` attribute, else the calibration's (found from its
        calibrant peaks), else both polarities' ions are candidates.

    Returns
    -------
    xarray.Dataset
        Over ``peak`` (most counts first): ``channel``, ``mass``, ``counts`` with ``_stderr``,
        ``significance`` (sigma), ``fwhm_channel``, ``resolving_power`` (m / dm), the best candidate
        ``assignment`` with ``assignment_mass``, ``ppm_error`` and ``assignment_z``, and all listed
        ``candidates`` as text.
    """
    if "intensity" not in spectrum or "channel" not in spectrum.coords:
        raise ToFSIMSError(f"{spectrum.attrs.get('source', 'spectrum')}: peak search needs intensity over channel")
    source = str(spectrum.attrs.get("source", "spectrum"))
    t = np.asarray(spectrum["channel"].values, float)
    y = np.asarray(spectrum["intensity"].values, float)
    if t.size < 3 or not np.all(np.isfinite(y)) or y.min() < 0:
        raise ToFSIMSError(f"{source}: the spectrum must hold at least 3 finite, non-negative counts")
    binning = float(spectrum.attrs.get("binning", np.median(np.diff(t)) if t.size > 1 else 1.0))
    fit, how, scatter_ppm = _calibration(spectrum, calibration)
    idx, props = find_peaks(y, prominence=n_sigma)
    base = y[idx] - props["prominences"]
    z = props["prominences"] / np.sqrt(np.maximum(base, 0.0) + 1.0)
    keep = z >= n_sigma
    idx, base, prom, z = idx[keep], base[keep], props["prominences"][keep], z[keep]
    # each peak's counts end at the lowest bin between it and its neighbour (exclusive on the right)
    cuts = [int(i0 + np.argmin(y[i0:i1 + 1])) for i0, i1 in zip(idx[:-1], idx[1:])]
    lefts, rights = [0] + cuts, [c - 1 for c in cuts] + [y.size - 1]
    rows = [_measure(t, y, int(i), float(b), float(p), binning, (lo, hi))
            for i, b, p, lo, hi in zip(idx, base, prom, lefts, rights)]
    if not rows:
        raise ToFSIMSError(f"{source}: no peak stands {n_sigma:g} sigma above its base")
    c, c_esd, fwhm, net, net_esd = (np.array(v, float) for v in zip(*rows))
    good = c > fit.k0
    mass = np.where(good, ((c - fit.k0) / fit.sf) ** 2, np.nan)
    sel = good & (mass >= min_mass)
    if not sel.any():
        raise ToFSIMSError(f"{source}: no peak above {min_mass:g} u")
    c, c_esd, fwhm, net, net_esd, z, mass = (v[sel] for v in (c, c_esd, fwhm, net, net_esd, z, mass))
    dm_dt = 2 * np.sqrt(mass) / fit.sf
    # the calibrants scatter about the fit by more than their centroid esds say (peak-shape
    # systematics common to every top-half centroid); a new peak's mass carries that scatter too
    mass_esd = np.sqrt(fit.mass_esd(mass) ** 2 + (c_esd * dm_dt) ** 2 + (scatter_ppm * 1e-6 * mass) ** 2)
    order = np.argsort(-net, kind="stable")
    if top:
        order = order[: int(top)]
    c, c_esd, fwhm, net, net_esd, z, mass, mass_esd = (v[order] for v in (c, c_esd, fwhm, net, net_esd, z, mass,
                                                                             mass_esd))
    pol = polarity or str(spectrum.attrs.get("polarity", "unknown"))
    if pol not in ("negative", "positive") and calibration is not None:
        pol = str(calibration.attrs.get("polarity", pol))  # the calibration found it from the calibrant peaks
    ions = library(pol, candidates)
    names, ion_mass = list(ions), np.array(list(ions.values()))
    best, best_mass, best_ppm, best_z, listed = [], [], [], [], []
    for m, e in zip(mass, mass_esd):
        tol = max(tolerance_ppm * 1e-6 * m, 3 * e)
        near = np.flatnonzero(np.abs(ion_mass - m) <= tol)
        near = near[np.argsort(np.abs(ion_mass[near] - m))][:MAX_CANDIDATES]
        ppm = 1e6 * (m - ion_mass[near]) / ion_mass[near]
        listed.append("; ".join(f"{names[k]} {p:+.0f} ppm" for k, p in zip(near, ppm)))
        if near.size:
            k = near[0]
            best.append(names[k])
            best_mass.append(ion_mass[k])
            best_ppm.append(ppm[0])
            best_z.append(abs(m - ion_mass[k]) / e if e > 0 else np.inf)
        else:
            best.append("")
            best_mass.append(np.nan)
            best_ppm.append(np.nan)
            best_z.append(np.nan)
    out = xr.Dataset(
        {
            "channel": ("peak", c, {"units": "channel", "long_name": "top-half centroid"}),
            "channel_stderr": ("peak", c_esd, {"units": "channel"}),
            "mass": ("peak", mass, {"units": "u"}),
            "mass_stderr": ("peak", mass_esd, {"units": "u", "long_name": "centroid and calibration esd combined"}),
            "counts": ("peak", net, {"units": "counts", "long_name": "net counts within 1.5 FWHM (to the minimum towards a neighbour)"}),
            "counts_stderr": ("peak", net_esd, {"units": "counts"}),
            "significance": ("peak", z, {"units": "1", "long_name": "prominence / sqrt(base + 1)"}),
            "fwhm_channel": ("peak", fwhm, {"units": "channel"}),
            "resolving_power": ("peak", (c - fit.k0) / (2 * fwhm), {"units": "1", "long_name": "m / dm (FWHM)"}),
            "assignment": ("peak", np.array(best, dtype=str)),
            "assignment_mass": ("peak", np.array(best_mass, float), {"units": "u"}),
            "ppm_error": ("peak", np.array(best_ppm, float), {"units": "ppm"}),
            "assignment_z": ("peak", np.array(best_z, float), {"units": "1", "long_name": "|m - m_ion| / esd"}),
            "candidates": ("peak", np.array(listed, dtype=str)),
        },
        coords={"peak": ("peak", np.arange(c.size), {"units": "1"})},
        attrs={"technique": "ToF-SIMS", "source": source, "fitted": "channel mass counts",
               "n_sigma": float(n_sigma), "tolerance_ppm": float(tolerance_ppm), "polarity": pol,
               "calibration": how, "sf": fit.sf, "k0": fit.k0, "binning": binning},
    )
    warn = []
    if calibration is None:
        warn.append("Masses use the file's own calibration without an uncertainty; ppm errors are only as good "
                    "as that calibration.")
    return finish(out, spectrum, *([calibration] if calibration is not None else []), warnings=warn)


def peak_table_rows(result: xr.Dataset) -> tuple[list[str], list[list]]:
    """Header and rows of a peak-search result for a CSV table or the terminal."""
    header = ["mass_u", "mass_esd_u", "counts", "counts_esd", "significance_sigma", "resolving_power",
              "assignment", "ppm_error", "z", "candidates"]
    rows = []
    for k in range(result.sizes["peak"]):
        r = result.isel(peak=k)
        rows.append([f"{float(r['mass']):.5f}", f"{float(r['mass_stderr']):.2g}", f"{float(r['counts']):.0f}",
                     f"{float(r['counts_stderr']):.0f}", f"{float(r['significance']):.1f}",
                     f"{float(r['resolving_power']):.0f}", str(r["assignment"].values),
                     "" if not np.isfinite(float(r["ppm_error"])) else f"{float(r['ppm_error']):+.1f}",
                     "" if not np.isfinite(float(r["assignment_z"])) else f"{float(r['assignment_z']):.2f}",
                     str(r["candidates"].values)])
    return header, rows
