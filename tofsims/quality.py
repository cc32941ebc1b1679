"""The quality rules of ToF-SIMS results, in one place (see :mod:`doptrace.core.quality`).

Every result made from a cube (maps, profiles, uniformity, colocalization, projections,
integrated intensities, comparisons) goes through :func:`finish`, which

- inherits the input's record: the mass calibration's (``attrs["calibration_quality"]`` and
  ``["calibration_quality_reasons"]``, set where the calibration is judged against its ppm bound)
  and any record the input itself carries (a profile's record reaches its uniformity test, both
  samples' records reach their comparison); a ``failed`` input makes a ``failed`` result;
- ``failed``: a fitted value or its esd that is not finite;
- ``warning``: the dead-time correction was needed but not applied (``attrs["dead_time_note"]``);
  Costes thresholds that did not converge (Otsu thresholds used instead); a uniformity test on
  fewer than ``MIN_SCANS`` scans beyond the surface.
"""

from __future__ import annotations

import numpy as np

from doptrace.core.quality import FAILED, get_quality, set_quality

#: fewest scans beyond the surface layer for a uniformity test worth its p-value
MIN_SCANS = 8


def _inherited(ds) -> tuple[list[str], list[str]]:
    failed, warned = [], []
    attrs = ds.attrs
    if "calibration_quality" in attrs:
        quality, reasons = get_quality({"quality": attrs["calibration_quality"],
                                        "quality_reasons": attrs.get("calibration_quality_reasons", [])})
        reasons = [f"Mass calibration: {r}" for r in reasons]
        (failed if quality == FAILED else warned).extend(reasons)
    if "quality" in attrs:
        quality, reasons = get_quality(ds)
        (failed if quality == FAILED else warned).extend(reasons)
    return failed, warned


def _nonfinite(out) -> list[str]:
    bad = []
    for name in str(out.attrs.get("fitted", "")).split():
        for var in (name, f"{name}_stderr"):
            if var in out and np.issubdtype(out[var].dtype, np.number) and not np.all(np.isfinite(out[var].values)):
                bad.append(var)
    return [f"Not finite: {', '.join(bad)}."] if bad else []


def finish(out, *inputs, failed=(), warnings=()):
    """Set ``out``'s quality record from its inputs' records and the rules above; returns ``out``."""
    failed, warned = list(failed), list(warnings)
    for ds in inputs:
        if ds is None:
            continue
        f, w = _inherited(ds)
        failed += f
        warned += w
        note = str(ds.attrs.get("dead_time_note", ""))
        if note.startswith("not applied"):
            warned.append(f"Dead-time correction {note}; bright voxels may count too low.")
    failed += _nonfinite(out)
    if "costes_converged" in out.attrs and not int(out.attrs["costes_converged"]):
        warned.append("Costes thresholds did not converge; Otsu thresholds per image are used for Manders' "
                      "coefficients.")
    if "n_scans_used" in out.attrs and int(out.attrs["n_scans_used"]) < MIN_SCANS:
        warned.append(f"The uniformity test uses only {int(out.attrs['n_scans_used'])} scans beyond the surface "
                      f"(fewer than {MIN_SCANS}).")
    return set_quality(out, failed, warned)


#: largest mass-calibration residual of a used calibrant, in ppm of its mass (beyond half a bin)
CALIBRATION_PPM = 100.0


def calibration_quality(result) -> tuple[list[str], list[str]]:
    """``(failed, warnings)`` of a mass calibration (``t = k0 + sf sqrt(m)``).

    A used calibrant whose mass residual exceeds ``CALIBRATION_PPM`` ppm, or half a spectrum bin
    when the spectrum is binned (``1e6 * binning / (sf sqrt(m))`` ppm), is a ``warning``; ten times
    that bound (a peak assigned to the wrong ion) or a non-finite sf / k0 is ``failed``.
    """
    failed, warned = _nonfinite(result), []
    mass = np.asarray(result["mass"].values, float)
    residual = np.asarray(result["residual_mass"].values, float)
    used = np.asarray(result["used"].values, bool) if "used" in result else np.ones(mass.size, bool)
    sf = float(result["sf"].values)
    binning = float(result.attrs.get("binning", 1) or 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ppm = np.abs(residual / mass) * 1e6
        half_bin = 1e6 * binning / (abs(sf) * np.sqrt(mass)) if binning > 1 and sf else np.zeros(mass.size)
    bound = np.maximum(CALIBRATION_PPM, half_bin)
    names = [str(n) for n in result["calibrant"].values]
    far = used & (ppm > 10 * bound)
    off = used & (ppm > bound) & ~far
    if far.any():
        failed.append(f"Calibrant(s) {', '.join(n for n, f in zip(names, far) if f)} miss the fit by up to "
                      f"{float(np.max(ppm[far])):.3g} ppm (more than 10x the {float(np.min(bound[far])):.3g} ppm bound): "
                      "a peak is assigned to the wrong ion.")
    if off.any():
        warned.append(f"Calibrant(s) {', '.join(n for n, o in zip(names, off) if o)} miss the fit by up to "
                      f"{float(np.max(ppm[off])):.3g} ppm (bound {float(np.min(bound[off])):.3g} ppm).")
    return failed, warned
