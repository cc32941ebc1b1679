"""ToF-SIMS maps and depth profiles of two simulated samples: boron in the bulk vs at the surface only.

Run it in any folder: ``python maps_and_depth.py``. It writes ``bulk.ita`` and ``surface.ita``
with the simulator (16 scans of 48 x 48 pixels over 100 um, 500 nm crater; oxide grains in a
Li3InCl6-like matrix), reads them, maps BO-/total on the last 8 scans, converts sputter time to
depth, tests whether BO- is uniform with depth below the surface, and prints (tab-separated:
quantity, measured, stderr, truth): the summed BO- counts (exact against the simulated counts),
the BO-/total ratio inside over outside the oxide grains (boron in the grains only in the
bulk-doped sample), and the uniformity verdict (1 = uniform; truth: the sample is bulk doped).
"""

import numpy as np

from doptrace import tofsims
from doptrace.tofsims.simulate import write_ita


def main():
    print("quantity\tmeasured\tstderr\ttruth")
    results = {}
    for name, bulk_doped in (("bulk", True), ("surface", False)):
        truth = write_ita(f"{name}.ita", shape=(16, 48, 48), bulk_doped=bulk_doped, crater_depth_nm=500.0, seed=5)
        ds = tofsims.sputter_to_depth(tofsims.read(f"{name}.ita"), crater_depth_nm=500.0)
        maps = tofsims.fragment_maps(ds, "BO-", scans=(8, 15), normalize="total")
        profile = tofsims.depth_profile(ds, "BO-", normalize="total")
        test = tofsims.uniformity_test(profile, surface_depth=60.0)
        counts = int(profile["counts"].sel(fragment="BO-").sum())
        true_counts = int(truth["counts"].sel(fragment="BO-").sum())
        print(f"{name}: BO- counts\t{counts}\t{np.sqrt(counts):.0f}\t{true_counts}")
        bo = maps["intensity"].sel(fragment="BO-")
        grains = truth["oxide"].values
        inside, outside = float(bo.values[grains].mean()), float(bo.values[~grains].mean())
        print(f"{name}: BO-/total grains over matrix (scans 8-15)\t{inside / outside:.1f}\t-\t-")
        print(f"{name}: BO- uniform below 60 nm\t{int(test['uniform'].sel(fragment='BO-'))}\t-\t{int(bulk_doped)}")
        results[name] = (maps, profile, test)
    return results


if __name__ == "__main__":
    main()
