"""XPS fitting speed: the batched fitter against a plain per-spectrum ``lmfit.Model`` loop.

    python benchmarks/bench_xps.py              # 50-level series + 64x64 map
    python benchmarks/bench_xps.py --map 32     # quicker

Model: 3-component B 1s (B-O-B 192.0, TM-O-B 191.1, B2O3 193.3 eV, GL(30), one shared FWHM) on a
Shirley background computed from the data, Poisson weights, 111 points per spectrum.

1. Series: 50 etch levels, ``xps.fit.fit_series`` (each level also started from the previous
   level's result).
2. Map: 64 x 64 spectra, ``xps.fit.fit_spectra`` all at once.
3. Baseline: ``xps.fit.fit_lmfit`` (an ``lmfit.Model`` with the same line shapes, links and the
   same Shirley background) spectrum by spectrum on a subset, extrapolated per spectrum.

Start values sit off the middle of their bounds: lmfit's bounded-parameter transform has a zero
finite-difference step at the exact middle and would not move such a parameter.

Targets: >= 300 spectra/s and >= 10x the lmfit loop. The answers are checked to agree (TM-O-B
share within 0.05 stderr of lmfit's on the subset) before the timings count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

MODEL = """
region = "B 1s"
window = [186.0, 197.0]
background = { shirley = "static", average = 3 }
[[component]]
name = "B-O-B"
center = [192.0, 191.5, 192.4]
fwhm = [1.4, 0.8, 2.4]
[[component]]
name = "TM-O-B"
center = [191.1, 190.6, 191.5]
fwhm = { same_as = "B-O-B" }
[[component]]
name = "B2O3"
center = [193.3, 192.8, 193.7]
fwhm = { same_as = "B-O-B" }
"""


def spectra(n: int, seed: int):
    from doptrace.xps.simulate import spectrum

    rng = np.random.default_rng(seed)
    x = np.round(np.arange(186.0, 197.0 + 1e-9, 0.1), 6)
    share = np.linspace(0.1, 0.5, n)
    out = np.empty((n, x.size))
    for i, s in enumerate(share):
        comps = [((0.85 - s) * 8000, 192.0, 1.4, "GL(30)"), (s * 8000, 191.1, 1.4, "GL(30)"),
                 (0.15 * 8000, 193.3, 1.4, "GL(30)")]
        out[i] = rng.poisson(spectrum(x, comps, 300.0, 0.06))
    return x, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--map", type=int, default=64, help="map side (map has side^2 spectra)")
    parser.add_argument("--lmfit-subset", type=int, default=20)
    args = parser.parse_args()

    from doptrace.xps.fit import fit_lmfit, fit_series, fit_spectra, poisson_sigma
    from doptrace.xps.model import compile_model, parse_model

    model = compile_model(parse_model(MODEL, "bench"))
    x, series = spectra(args.levels, 1)
    n_map = args.map * args.map
    _, cube = spectra(n_map, 2)

    fit_spectra(model, x, series[:4])  # warm-up (line-shape constants, imports)
    start = time.perf_counter()
    res_series = fit_series(model, x, series)
    t_series = time.perf_counter() - start
    start = time.perf_counter()
    res_map = fit_spectra(model, x, cube)
    t_map = time.perf_counter() - start

    subset = min(args.lmfit_subset, args.levels)
    start = time.perf_counter()
    lm_share, lm_err = [], []
    for i in range(subset):
        ref, _, _ = fit_lmfit(model, x, series[i], poisson_sigma(series[i:i + 1], 1.0)[0])
        areas = np.array([ref.params[f"c{j}_area"].value for j in range(3)])
        lm_share.append(areas[1] / areas.sum())
    t_lmfit = (time.perf_counter() - start) / subset

    ours = fit_spectra(model, x, series[:subset], weights="data")  # lmfit's weights: data variance
    frac, frac_err = ours.fractions()
    diff = np.abs(frac[:, 1] - np.array(lm_share)) / frac_err[:, 1]
    print(f"agreement with lmfit on {subset} spectra: max |share difference| = {diff.max():.3f} stderr")
    if diff.max() > 0.05:
        print("WARNING: answers differ from lmfit by more than 0.05 stderr")

    rate_series = args.levels / t_series
    rate_map = n_map / t_map
    rate_lmfit = 1.0 / t_lmfit
    print(f"lmfit.Model loop : {rate_lmfit:8.1f} spectra/s ({t_lmfit * 1e3:.1f} ms per spectrum)")
    print(f"series {args.levels:4d} levels: {rate_series:8.1f} spectra/s ({t_series:.3f} s), "
          f"{rate_series / rate_lmfit:6.1f}x lmfit, median iterations {np.median(res_series.iterations):.0f}")
    print(f"map {args.map}x{args.map}      : {rate_map:8.1f} spectra/s ({t_map:.3f} s), "
          f"{rate_map / rate_lmfit:6.1f}x lmfit, median redchi {np.median(res_map.redchi):.3f}")
    ok = min(rate_series, rate_map) >= 300 and min(rate_series, rate_map) / rate_lmfit >= 10
    print("targets (>= 300 spectra/s, >= 10x lmfit):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
