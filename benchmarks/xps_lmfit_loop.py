"""The baseline of ``bench_xps.py --process``: a plain per-spectrum lmfit loop as a user would write it.

    python benchmarks/xps_lmfit_loop.py SERIES.vms OUT.csv [--minimize]

Reads the file with ``doptrace.xps.read`` (the fastest VAMAS reader at hand, so the comparison is
about fitting and overhead, not parsing), computes a static Shirley background per spectrum,
fits two GL(30) peaks with one reused ``lmfit.Model`` (Levenberg-Marquardt, Poisson weights),
each level started from the previous level's result, and writes areas, centres, FWHMs and
the areas' esds to CSV. Nothing in it is deliberately slow: it is the loop the issue measured
(about 30 function evaluations a spectrum). ``--minimize`` does the same with ``lmfit.minimize``
and a hand-written residual instead of ``lmfit.Model`` (same parameters and answers, about 40 %
less time a spectrum: ``Model.fit``'s own bookkeeping per call is that large).
"""

import sys

import lmfit
import numpy as np

from doptrace import xps

LN2 = np.log(2.0)


def _unit_area(m, fwhm):
    # area of the GL product below at unit height (numerical, once per call: cheap next to the fit)
    u = np.linspace(-60.0, 60.0, 24001)
    shape = np.exp(-4 * LN2 * (1 - m) * u**2) / (1 + 4 * m * u**2)
    return np.trapezoid(shape, u) * fwhm


_AREA = {}


def gl(x, area, center, fwhm, m=0.30):
    """CasaXPS GL(30) product line shape with ``area`` as its parameter (width parameter ``fwhm``)."""
    if m not in _AREA:
        _AREA[m] = _unit_area(m, 1.0)
    t = ((x - center) / fwhm) ** 2
    return area * np.exp(-4 * LN2 * (1 - m) * t) / (1 + 4 * m * t) / (_AREA[m] * fwhm)


def shirley(x, y, average=3, max_iter=50, tol=1e-7):
    lo, hi = y[:average].mean(), y[-average:].mean()
    b = np.full_like(y, lo)
    for _ in range(max_iter):
        d = y - b
        q = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(x))])
        new = lo + (hi - lo) * q / q[-1]
        done = np.max(np.abs(new - b)) < tol * abs(hi - lo)
        b = new
        if done:
            break
    return b


def residual(params, x, y, weights):
    v = params.valuesdict()
    model = gl(x, v["a_area"], v["a_center"], v["a_fwhm"]) + gl(x, v["b_area"], v["b_center"], v["b_fwhm"])
    return (y - model) * weights


def main(path, out, minimize=False):
    blocks = xps.read(path)
    model = lmfit.Model(gl, prefix="a_") + lmfit.Model(gl, prefix="b_")
    params = model.make_params(a_area=dict(value=10000, min=0), a_center=dict(value=446.1, min=445, max=447),
                               a_fwhm=dict(value=1.3, min=0.5, max=3), b_area=dict(value=5000, min=0),
                               b_center=dict(value=447.4, min=446.8, max=448.5), b_fwhm=dict(value=1.5, min=0.5, max=3),
                               a_m=dict(value=0.30, vary=False), b_m=dict(value=0.30, vary=False))
    names = ("a_area", "a_center", "a_fwhm", "b_area", "b_center", "b_fwhm")
    rows = []
    for block in blocks:
        x = block["binding_energy"].values
        y = block.values
        cpu = float(block.attrs.get("counts_per_unit", 1.0))
        background = shirley(x, y)
        weights = cpu / np.sqrt(np.maximum(y * cpu, 1.0))  # 1 / sigma, Poisson on the raw counts
        if minimize:
            result = lmfit.minimize(residual, params, args=(x, y - background, weights))
        else:
            result = model.fit(y - background, params, x=x, weights=weights)
        rows.append([block.attrs["etch_time"], *(result.params[k].value for k in names),
                     *((result.params[k].stderr or np.nan) for k in ("a_area", "b_area")), result.nfev])
        params = result.params  # the next level starts from this one
    np.savetxt(out, np.array(rows), delimiter=",",
               header="etch_time," + ",".join(names) + ",a_area_stderr,b_area_stderr,nfev")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], minimize="--minimize" in sys.argv[3:])
