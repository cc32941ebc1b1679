"""Plain-text summaries of ToF-SIMS results: what ``doptrace tofsims ...`` prints, callable from Python.

Each function takes a result Dataset of this package and returns lines of text (no printing).
"""

from __future__ import annotations

import numpy as np


def calibration_lines(result) -> list[str]:
    """sf and k0 with esds, every calibrant's residual and the rms residual of a
    :func:`doptrace.tofsims.calibration.calibrate` result."""
    width = result.attrs.get("channel_width_ns")
    lines = [f"sf = {float(result['sf']):.6g} ± {float(result['sf_stderr']):.2g} channel/u^0.5, "
             f"k0 = {float(result['k0']):.6g} ± {float(result['k0_stderr']):.2g} channel, "
             f"binning {result.attrs.get('binning')}"
             + (f", channel width {width:g} ns" if np.isfinite(width or np.nan) else "")]
    for name in result["calibrant"].values:
        r = result.sel(calibrant=name)
        lines.append(f"  {name:8s} {float(r['mass']):10.5f} u  residual {float(r['residual_channel']):+8.2f} channel "
                     f"{float(r['residual_mass']):+.5f} u {float(r['residual_ppm']):+8.1f} ppm"
                     f"{'' if int(r['used']) else '  (not used)'}")
    attrs = result.attrs
    lines.append(f"rms residual {attrs['rms_residual_ppm']:.1f} ppm over {attrs['n_used']} calibrants; calibration "
                 f"esd {attrs['mass_esd_27u']:.2g} u at 27 u, {attrs['mass_esd_200u']:.2g} u at 200 u; "
                 f"quality {attrs['quality']}")
    lines += [f"  - {reason}" for reason in attrs.get("quality_reasons", [])]
    return lines


def uniformity_lines(result) -> list[str]:
    """One line per fragment of a uniformity test (or a :func:`doptrace.tofsims.pipeline.depth` result):
    relative change with esd, p-value and the verdict."""
    prefix = "uniformity_" if "uniformity_relative_change" in result else ""
    axis = result.attrs.get("uniformity_axis", result.attrs.get("axis", ""))
    lines = []
    for name in result["fragment"].values:
        t = result.sel(fragment=name)
        lines.append(f"{name}: relative change {100 * float(t[prefix + 'relative_change']):+.1f} ± "
                     f"{100 * float(t[prefix + 'relative_change_stderr']):.1f} % over {axis}, "
                     f"p = {float(t[prefix + 'p_value']):.3g} -> {'uniform' if int(t[prefix + 'uniform']) else 'NOT uniform'}")
    return lines


def mva_lines(result) -> list[str]:
    """Explained variance and the three strongest loadings of each component of an
    :func:`doptrace.tofsims.mva.mva` result."""
    ratio = result["explained_variance_ratio"].values
    lines = []
    for k in range(result.sizes["component"]):
        load = result["loadings"].isel(component=k)
        order = [str(f) for f in load.sortby(abs(load), ascending=False)["fragment"].values[:3]]
        lines.append(f"{str(result.attrs.get('method', '')).upper()} {k + 1}: {100 * float(ratio[k]):.1f} % explained; "
                     "strongest loadings " + ", ".join(f"{f} {float(load.sel(fragment=f)):+.2f}" for f in order))
    return lines
