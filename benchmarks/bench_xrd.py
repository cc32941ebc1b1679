"""XRD speed: the two-phase Li-rich refinement (4501 points, all stages), built-in engine vs GSAS-II.

    python benchmarks/bench_xrd.py               # simulated pattern, 3e4 counts at the strongest peak
    python benchmarks/bench_xrd.py --repeat 3 --fap

1. ``doptrace.xrd.rietveld.run`` on a simulated two-phase pattern (examples/xrd/li-rich-two-phase.toml: R-3m
   LiTMO2 + C2/m Li2MnO3, B candidates on 5 sites, 5 cumulative stages). Target: < 10 s on 2 cores.
2. When GSAS-II is importable, ``xrd.gsas2.refine`` on the same recipe and pattern in the same run:
   reports its wall time and the ratio builtin/GSAS-II (target <= 1), plus both Rwp values.
   GSAS-II is built from ../shared/vendor first when it is not importable (.ci/build-gsas2).
3. Broad peaks: the same recipe with 15 nm crystallites and 2000 ppm microstrain in both phases, on a
   pattern GSAS-II computes (``xrd.gsas2.simulate``; the built-in simulator without GSAS-II).
4. ``--fap``: the fluorapatite tutorial (../shared/data/xrd) with both engines when present.

Wall times are the best of ``--repeat`` runs (the machine is shared; best-of is the least noisy).
"""

from __future__ import annotations

import argparse
import importlib
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "xrd" / "li-rich-two-phase.toml"
FAP = REPO / "examples" / "xrd" / "fluorapatite.toml"
SHARED = REPO.parent / "shared" / "data" / "xrd" / "gsas2_tutorials"


def best_of(repeat: int, func):
    times, result = [], None
    for _ in range(repeat):
        tic = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - tic)
    return min(times), result


def compare(label: str, recipe, pattern, repeat: int, target: float | None) -> None:
    from doptrace.xrd.rietveld import run

    builtin_s, result = best_of(repeat, lambda: run(recipe, pattern))
    ds = result.dataset
    line = f"{label}: builtin {builtin_s:.2f} s (Rwp {float(ds.rwp):.3f} %, {int(ds.nobs)} points, " \
           f"{int(ds.nvar)} parameters)"
    if target is not None:
        line += f"  target < {target:g} s: {'PASS' if builtin_s < target else 'FAIL'}"
    print(line)
    for h in result.history:
        print(f"    {h['stage']:<24} Rwp {h['rwp']:8.3f} %  cycles {h['cycles']:2d}  {h['seconds']:.2f} s")
    try:
        from doptrace.xrd import gsas2
    except ImportError:
        print("    GSAS-II driver not importable: no ratio")
        return
    if not gsas2.available():
        print(f"    GSAS-II not installed: no ratio ({gsas2.unavailable_reason()})")
        return
    g2_s, g2 = best_of(repeat, lambda: gsas2.refine(recipe, data=pattern))
    print(f"    GSAS-II {g2_s:.2f} s (Rwp {float(g2.rwp):.3f} %)  ratio builtin/GSAS-II = {builtin_s / g2_s:.2f} "
          f"(target <= 1: {'PASS' if builtin_s <= g2_s else 'FAIL'})")
    if ds.sizes.get("site", 0):
        for site in ds.site.values:
            a, b = ds.sel(site=site), g2.sel(site=site)
            print(f"    B on {site:<14} builtin {float(a.dopant_fraction):+.4f}({float(a.dopant_fraction_stderr):.4f})"
                  f"  GSAS-II {float(b.dopant_fraction):+.4f}({float(b.dopant_fraction_stderr):.4f})")


def ensure_gsas2() -> None:
    """Build GSAS-II from ../shared/vendor (.ci/build-gsas2) when it is not importable, so the ratio is measured."""
    import os
    import subprocess
    import sys

    from doptrace.xrd import gsas2

    if gsas2.available():
        return
    subprocess.run(["bash", str(REPO / ".ci" / "build-gsas2")], check=True,
                   env={**os.environ, "PYTHON": sys.executable})
    importlib.invalidate_caches()


def broad_peaks(counts: float):
    """The Li-rich recipe at 15 nm and 2000 ppm and a pattern with B 0.06 / 0.08 on the Li sites."""
    from doptrace.xrd import gsas2
    from doptrace.xrd.recipe import parse_recipe
    from doptrace.xrd.simulate import simulate

    raw = tomllib.loads(RECIPE.read_text(encoding="utf-8"))
    for phase in raw["phase"]:
        phase["size_um"], phase["mustrain"] = 0.015, 2000.0
    recipe = parse_recipe(raw, RECIPE)
    if not gsas2.available():
        return recipe, simulate(recipe, dopant={"LiTMO2:Li": 0.06, "Li2MnO3:Li2c": 0.08, "Li2MnO3:Li4h": 0.08},
                                counts=counts, seed=1)
    import sys

    sys.path.insert(0, str(REPO / "tests"))  # the same GSAS-II-computed case the engine tests refine
    from xrd_cases import li_rich_broad

    return li_rich_broad(counts=counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=float, default=3.0e4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fap", action="store_true", help="also the fluorapatite tutorial (needs ../shared)")
    args = parser.parse_args()
    ensure_gsas2()

    from doptrace.xrd.recipe import load_recipe, parse_recipe
    from doptrace.xrd.simulate import simulate

    recipe = load_recipe(RECIPE)
    pattern = simulate(recipe, dopant={"LiTMO2:Li": 0.054, "Li2MnO3:Li2c": 0.075, "Li2MnO3:Li4h": 0.075},
                       counts=args.counts, seed=1, values={"displacement": 30.0})
    compare(f"two-phase Li-rich ({args.counts:g} counts)", recipe, pattern, args.repeat, target=10.0)
    broad_recipe, broad_pattern = broad_peaks(args.counts)
    compare("broad peaks, 15 nm / 2000 ppm (GSAS-II-computed pattern)", broad_recipe, broad_pattern, args.repeat,
            target=None)
    if args.fap:
        if not SHARED.is_dir():
            print(f"fluorapatite: {SHARED} absent, skipped")
            return
        from doptrace.xrd.read import read

        raw = tomllib.loads(FAP.read_text(encoding="utf-8"))
        raw.pop("data")
        raw["instrument"].pop("file")
        fap = parse_recipe(raw, FAP).with_instrument(SHARED / "LabData_data_INST_XRY.PRM")
        fap = fap.with_data(SHARED / "LabData_data_FAP.XRA")
        compare("fluorapatite (5752 points)", fap, read(fap.data_file), args.repeat, target=None)


if __name__ == "__main__":
    main()
