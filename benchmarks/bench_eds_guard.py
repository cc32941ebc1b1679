"""Cost of the EDS read watchdog (a forked child with a time limit, counts back through ``.npy``).

Run on demand: ``python benchmarks/bench_eds_guard.py [--repeats 3]``.

For each real file in ``../shared/data/stem_eds`` (or ``$DOPTRACE_SHARED_DATA``) it times
``stem_eds.read`` (guarded) against the same read done in this process
(``stem_eds.read._read_here``), after one warm-up read of each, and checks both give identical
DataArrays. Reported: median seconds of each and the difference. Measured 2026-12-05 on the shared
2-core machine under load from other jobs: FePt .hspy (4 kB counts) +0.26-0.31 s, Velox 16x16x4096
.emd +0.9 s (was +2.1 s before the reader modules were imported ahead of the fork), bcf_v2 50x50
+0.28-0.43 s, Hitachi 240x320x2048 .bcf (150 MiB of counts) +0.9-1.35 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

FILES = ["EDS_TEM_FePt_nanoparticles.hspy", "velox_v11_TestSI_16x16_215kx.emd", "bcf_v2_50x50px.bcf",
         "Hitachi_TM3030Plus.bcf", "real-world/nist_Fe_std.msa"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from doptrace.stem_eds import read
    from doptrace.stem_eds.read import _read_here

    shared = Path(os.environ.get("DOPTRACE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    for name in FILES:
        path = shared / "stem_eds" / name
        if not path.is_file():
            print(f"{name}: absent, skipped")
            continue
        guarded, local = read(path), _read_here(path, False, True, True)
        assert guarded.identical(local), name
        times = {"guarded": [], "in-process": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            read(path)
            times["guarded"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _read_here(path, False, True, True)
            times["in-process"].append(time.perf_counter() - t0)
        g, i = statistics.median(times["guarded"]), statistics.median(times["in-process"])
        print(f"{name}: {guarded.nbytes / 2**20:.1f} MiB counts; in-process {i:.3f} s, guarded {g:.3f} s, "
              f"watchdog {g - i:+.3f} s")


if __name__ == "__main__":
    main()
