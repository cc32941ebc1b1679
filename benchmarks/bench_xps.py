"""XPS fitting speed: the batched fitter against a plain per-spectrum ``lmfit.Model`` loop.

    python benchmarks/bench_xps.py              # 50-level series + 64x64 map
    python benchmarks/bench_xps.py --map 32     # quicker
    python benchmarks/bench_xps.py --process    # whole processes on a 2000-level series (issue 14)

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

``--process`` times whole processes as a user meets them (start-up, reading, fitting, writing):
``doptrace xps fit SERIES.vms --model M.toml --out R.nc`` (on every CPU, and with
``DOPTRACE_THREADS=1``) against ``benchmarks/xps_lmfit_loop.py`` (a plain per-spectrum lmfit loop,
static Shirley, two GL(30), each level from the previous one's result) in both its forms,
``lmfit.Model.fit`` and ``lmfit.minimize`` (the faster, i.e. the best plain lmfit use), on a
simulated 2000-level In 3d series (161 points a spectrum). The commands take turns, ``--repeat``
rounds after one warm-up run each, and each one's best wall time counts (the machine is shared).
Python caches bytecode as in a user's shell (PYTHONDONTWRITEBYTECODE, set in some sandboxes, is
dropped for the children). The areas are checked to agree (median |difference| below 0.1 of the
areas' esd) before the ratio is printed. Target: >= 5x the faster lmfit loop.

Measured 2026-12-05 on the shared 2-core machine (best of 5): ``doptrace xps fit`` 0.86 s on 2
threads, 0.95 s on one; ``lmfit.minimize`` loop 5.2 s, ``lmfit.Model.fit`` loop 9.6 s -> 6.0x (one
thread 5.4x); met. Earlier best-of-3 runs, not taking turns, gave 5.1-6.5x as the load varied. What
it took (from 2.0-2.4 s): analytic GL/Gaussian derivatives and a parameter-major Jacobian, rows
fitted in 512-row chunks (cache-sized) on a thread per CPU, a step predicted to gain less than the
tolerance ending a row unevaluated (5.2 evaluations a level instead of 7.2), the chained pass
measured with the first pass's weights and refined only where it wins, no ``scipy.special`` (0.09 s)
or ``dask`` (0.06 s) import, xarray's fastpath for blocks on one energy grid, and no final garbage
collection at exit (0.05 s). doptrace's time is now about 0.3 s interpreter and imports (xarray with
pandas 0.25 s), 0.22 s reading (VAMAS parsing 0.1 s), 0.25 s fitting and 0.05 s quality and NetCDF;
the loop's about 1 s lmfit/scipy import, 0.25 s reading and 3.5-4 s fitting.
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


PROCESS_MODEL = """
region = "In 3d"
window = [440.0, 456.0]
background = { shirley = "static", average = 3 }
[[component]]
name = "A"
shape = "GL(30)"
center = [446.1, 445.0, 447.0]
fwhm = [1.3, 0.5, 3.0]
[[component]]
name = "B"
shape = "GL(30)"
center = [447.4, 446.8, 448.5]
fwhm = [1.5, 0.5, 3.0]
"""


def write_series(path, levels: int, seed: int = 3):
    """A VAMAS etch series of ``levels`` In 3d spectra: two GL(30) peaks (446.0 / 447.5 eV) whose
    share changes with depth, on a Shirley-type step, Poisson noise."""
    from doptrace.xps.formats._spectrum import make_spectrum
    from doptrace.xps.formats.vamas import write
    from doptrace.xps.simulate import spectrum

    rng = np.random.default_rng(seed)
    x = np.round(np.arange(440.0, 456.0 + 1e-9, 0.1), 6)
    blocks = []
    for i in range(levels):
        s = 0.2 + 0.3 * i / max(levels - 1, 1)
        comps = [((1 - s) * 20000, 446.0, 1.4, "GL(30)"), (s * 20000, 447.5, 1.6, "GL(30)")]
        counts = rng.poisson(np.clip(spectrum(x, comps, 800.0, 0.05), 0, None)).astype(float)
        blocks.append(make_spectrum(str(path), x, counts, abscissa="binding energy", excitation_energy=1486.6,
                                    region="In 3d", sample="bench", block_index=i, pass_energy=20.0,
                                    dwell_time=0.2, scans=5, etch_time=float(i),
                                    experimental_variables={"Etch Time": float(i)}))
    write(path, blocks, sample="bench")


def _user_env(**extra) -> dict:
    """The environment of a user's shell: Python caches bytecode (a sandbox or CI may set
    PYTHONDONTWRITEBYTECODE, which recompiles every module of doptrace, and of the loop's
    ``doptrace.xps`` import, on every run: 0.06 s that no installed copy pays)."""
    import os

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def _best_times(commands: dict, repeat: int) -> dict:
    """Best wall time of each ``name: (command, env)``, the commands taking turns round by round
    (a load on the shared machine then falls on all of them alike), after one untimed warm-up
    run each (bytecode and disk caches as a user's second run finds them)."""
    import subprocess

    def run(command, env):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        return time.perf_counter() - start

    for command, env in commands.values():
        run(command, env)
    best = {name: float("inf") for name in commands}
    for _ in range(repeat):
        for name, (command, env) in commands.items():
            best[name] = min(best[name], run(command, env))
    return best


def process_benchmark(levels: int, repeat: int) -> None:
    """Whole-process timing of ``doptrace xps fit`` against the plain lmfit loops (module docstring)."""
    import sys
    import tempfile
    from pathlib import Path

    import xarray as xr

    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        series, model = tmp / "series.vms", tmp / "model.toml"
        write_series(series, levels)
        model.write_text(PROCESS_MODEL)
        ours = [sys.executable, "-m", "doptrace", "xps", "fit", str(series), "--model", str(model),
                "--out", str(tmp / "fit.nc")]
        loop = [sys.executable, str(here / "xps_lmfit_loop.py"), str(series)]
        times = _best_times({"one": (ours, _user_env(DOPTRACE_THREADS="1")), "ours": (ours, _user_env()),
                             "model": (loop + [str(tmp / "model.csv")], _user_env()),
                             "min": (loop + [str(tmp / "minimize.csv"), "--minimize"], _user_env())}, repeat)
        t_ours, t_one, t_model, t_min = times["ours"], times["one"], times["model"], times["min"]
        with xr.open_dataset(tmp / "fit.nc") as ds:
            area, err = ds["area"].values, ds["area_stderr"].values
        for name in ("model.csv", "minimize.csv"):
            ref = np.loadtxt(tmp / name, delimiter=",")
            diff = np.abs(area - ref[:, [1, 4]]) / err
            print(f"areas vs {name[:-4]:8s} loop: median |difference| {np.median(diff):.3f} esd, "
                  f"95th percentile {np.percentile(diff, 95):.3f} esd; loop median evaluations "
                  f"{np.median(ref[:, -1]):.0f}")
            if np.median(diff) > 0.1:
                print("WARNING: the answers differ; the timings do not compare like with like")
    best = min(t_model, t_min)
    print(f"{levels} levels, whole processes (best of {repeat}):")
    print(f"  doptrace xps fit      : {t_ours:6.2f} s  ({_threads()} thread(s): row chunks fitted in parallel)")
    print(f"  same, one thread      : {t_one:6.2f} s  ({best / t_one:4.1f}x the best loop)")
    print(f"  lmfit.Model.fit loop  : {t_model:6.2f} s  ({t_model / t_ours:4.1f}x)")
    print(f"  lmfit.minimize loop   : {t_min:6.2f} s  ({t_min / t_ours:4.1f}x)")
    print(f"ratio to the best plain lmfit loop: {best / t_ours:.1f}x (target >= 5x):",
          "met" if best / t_ours >= 5 else "NOT met")


def _threads() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", action="store_true",
                        help="time whole processes on a large series against the plain lmfit loops")
    parser.add_argument("--process-levels", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per command with --process (best counts)")
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--map", type=int, default=64, help="map side (map has side^2 spectra)")
    parser.add_argument("--lmfit-subset", type=int, default=20)
    args = parser.parse_args()
    if args.process:
        process_benchmark(args.process_levels, args.repeat)
        return

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
