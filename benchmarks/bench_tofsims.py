"""ToF-SIMS speed and memory: event list -> cube, and ITA image-stack read, each against plain numpy.

    python benchmarks/bench_tofsims.py               # 1e8 events (a 2 GB event file in a temp folder)
    python benchmarks/bench_tofsims.py --events 1e7  # quick run

1. Event list -> cube: ``tofsims.formats.events.events_to_cube`` (streams scan-aligned chunks)
   against the plain numpy way (``np.fromfile`` of the whole list, one global ``np.bincount``).
   Reported: events/s and peak RSS of each, in separate child processes so RSS is their own.
   Targets: >= 3e7 events/s, peak RSS <= cube + two chunks (+ interpreter).
2. ITA read: ``tofsims.read`` of a simulated ITA stack (per-scan zlib images) against ``np.load``
   of the same cube stored as an uncompressed ``.npy``. Reported: Mvoxels/s. Target >= 30 Mvoxels/s.
3. Analysis reductions on that cube (maps over scans + depth profiles, normalised to total ions)
   through ``tofsims.maps``/``tofsims.profiles``, eager and lazy (dask, chunked by scan), against
   the two plain ``ndarray.sum`` calls. Reported: Mvoxels/s.

Both cubes are checked equal between the two methods (per-fragment sums) before timing counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _rss import peak_rss_mb  # benchmarks/ is on sys.path when run as a script

import numpy as np

FRAGMENTS = ["BO-", "MnO-", "InO-", "ClO-", "BO2-", "LiO-", "O-"]
SF, K0 = 32985.0, -368.0


def _windows():
    from doptrace.tofsims.formats.events import channel_edges
    from doptrace.tofsims.masses import peak_windows

    w = peak_windows(FRAGMENTS)
    lo, hi = channel_edges(w["mass_low"].values, w["mass_high"].values, SF, K0)
    return w, lo, hi


def write_events(path: Path, n_events: int, shape, seed: int = 0, batch: int = 4_000_000) -> None:
    """Scan-sorted random events: 70 % inside fragment windows, 30 % between them."""
    _, lo, hi = _windows()
    out_lo, out_hi = (np.ceil(K0 + SF * np.sqrt([3.5, 3.9]))).astype(np.int64)
    rng = np.random.default_rng(seed)
    n_scans, ny, nx = shape
    per_scan = np.full(n_scans, n_events // n_scans)
    per_scan[: n_events % n_scans] += 1
    scan_of = np.repeat(np.arange(n_scans, dtype=np.uint32), per_scan)
    with open(path, "wb") as handle:
        for start in range(0, n_events, batch):
            k = min(batch, n_events - start)
            rec = np.empty((k, 5), "<u4")
            rec[:, 0] = scan_of[start : start + k]
            rec[:, 1] = 0
            rec[:, 2] = rng.integers(0, nx, k)
            rec[:, 3] = rng.integers(0, ny, k)
            code = rng.integers(0, len(lo), k)
            inside = rng.random(k) < 0.7
            u = rng.random(k)
            tof_in = lo[code] + (u * (hi[code] - lo[code])).astype(np.int64)
            tof_out = out_lo + (u * (out_hi - out_lo)).astype(np.int64)
            rec[:, 4] = np.where(inside, tof_in, tof_out)
            handle.write(rec.tobytes())


# ----------------------------------------------------------------------------- child tasks
def child_events_ours(path, shape):
    from doptrace.tofsims.formats.events import events_to_cube

    w, _, _ = _windows()
    start = time.perf_counter()
    cube = events_to_cube(path, w, shape, sf=SF, k0=K0)
    seconds = time.perf_counter() - start
    return seconds, cube["counts"].values.sum(axis=(1, 2, 3), dtype=np.int64).tolist()


def child_events_numpy(path, shape):
    _, lo, hi = _windows()
    lut = np.full(int(hi.max()) + 1, len(lo), np.uint8)
    for k, (a, b) in enumerate(zip(lo, hi)):
        lut[a:b] = k
    n_scans, ny, nx = shape
    start = time.perf_counter()
    rec = np.fromfile(path, "<u4").reshape(-1, 5)
    code = lut[np.minimum(rec[:, 4], len(lut) - 1)].astype(np.int64)
    index = ((code * n_scans + rec[:, 0]) * ny + rec[:, 3]) * nx + rec[:, 2]
    hist = np.bincount(index, minlength=(len(lo) + 1) * n_scans * ny * nx).reshape(len(lo) + 1, n_scans, ny, nx)
    counts = hist[: len(lo)].astype(np.uint32)
    seconds = time.perf_counter() - start
    return seconds, counts.sum(axis=(1, 2, 3), dtype=np.int64).tolist()


def child_ita_ours(path):
    from doptrace import tofsims

    start = time.perf_counter()
    ds = tofsims.read(path, lazy=False)
    counts = ds["counts"].values
    seconds = time.perf_counter() - start
    return seconds, counts.sum(axis=(1, 2, 3), dtype=np.int64).tolist()


def child_ita_numpy(path):
    start = time.perf_counter()
    counts = np.load(path)
    seconds = time.perf_counter() - start
    return seconds, counts.sum(axis=(1, 2, 3), dtype=np.int64).tolist()


TASKS = {"events-ours": child_events_ours, "events-numpy": child_events_numpy,
         "ita-ours": child_ita_ours, "ita-numpy": child_ita_numpy}


def run_child(task: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--child", task, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {task} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_main(argv):
    task, *args = argv
    if task.endswith("ours"):
        # Imports are start-up cost, not reading speed: load them before any timer starts.
        import dask.array  # noqa: F401
        import tqdm  # noqa: F401
        import xarray  # noqa: F401

        from doptrace import tofsims  # noqa: F401
        import doptrace.tofsims.formats.events  # noqa: F401
    if task.startswith("events"):
        result = TASKS[task](args[0], tuple(int(v) for v in args[1].split(",")))
    else:
        result = TASKS[task](args[0])
    seconds, sums = result
    rss_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "sums": sums, "rss_mb": rss_mb}))


def analysis_benchmark(ita: Path, npy: Path, voxels: int) -> None:
    from doptrace import tofsims
    from doptrace.tofsims import maps, profiles

    print("3) maps + depth profiles (normalised to total ions)")
    counts = np.load(npy)
    start = time.perf_counter()
    _ = counts.sum(axis=1), counts.sum(axis=(2, 3))
    t_numpy = time.perf_counter() - start
    rates = {}
    for label, lazy in (("eager", False), ("lazy (dask)", True)):
        ds = tofsims.read(ita, lazy=lazy)
        if lazy:
            ds = ds.chunk({"scan": 8})
        start = time.perf_counter()
        maps.fragment_maps(ds, normalize="total")
        profiles.depth_profile(ds, normalize="total")
        rates[label] = voxels / (time.perf_counter() - start) / 1e6
    base = voxels / t_numpy / 1e6
    for label, rate in rates.items():
        print(f"   doptrace {label:12s} {rate:8.1f} Mvoxels/s   ratio to numpy sums {rate / base:.2f}x"
              + ("   (includes reading the file twice)" if "lazy" in label else ""))
    print(f"   numpy ndarray.sum x2 {base:8.1f} Mvoxels/s")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=1e8, help="number of events (default 1e8)")
    parser.add_argument("--cube", default="100,256,256", help="event cube n_scans,ny,nx")
    parser.add_argument("--ita", default="50,256,256", help="ITA stack n_scans,ny,nx (7 fragments)")
    parser.add_argument("--workdir", help="folder for the temporary files (default: system temp)")
    args = parser.parse_args(argv)
    n_events = int(args.events)
    shape = tuple(int(v) for v in args.cube.split(","))
    ita_shape = tuple(int(v) for v in args.ita.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench_tofsims_", dir=args.workdir))
    try:
        print(f"1) event list -> cube: {n_events:.3g} events, cube {len(FRAGMENTS)} x {shape}")
        events = work / "run.events"
        t = time.perf_counter()
        write_events(events, n_events, shape)
        print(f"   wrote {events.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s")
        ours = run_child("events-ours", events, ",".join(map(str, shape)))
        base = run_child("events-numpy", events, ",".join(map(str, shape)))
        if ours["sums"] != base["sums"]:
            raise SystemExit(f"cubes differ: {ours['sums']} vs {base['sums']}")
        cube_mb = (len(FRAGMENTS) + 1) * np.prod(shape) * 4 / 2**20
        rate_o, rate_b = n_events / ours["seconds"], n_events / base["seconds"]
        print(f"   doptrace (streamed): {rate_o / 1e6:8.1f} M events/s   peak RSS {ours['rss_mb']:7.0f} MB")
        print(f"   numpy (one bincount): {rate_b / 1e6:7.1f} M events/s   peak RSS {base['rss_mb']:7.0f} MB")
        print(f"   ratio doptrace/numpy: speed {rate_o / rate_b:.2f}x, memory {ours['rss_mb'] / base['rss_mb']:.2f}x "
              f"(cube {cube_mb:.0f} MB)   target >= 30 M events/s: {'PASS' if rate_o >= 3e7 else 'FAIL'}")
        events.unlink()

        import doptrace.tofsims.simulate as simulate

        print(f"2) ITA image-stack read: {len(FRAGMENTS)} fragments x {ita_shape}")
        truth = simulate.poisson_counts(simulate.phantom(ita_shape, bulk_doped=True, seed=1), seed=1)
        ita = work / "stack.ita"
        simulate.write_ita(ita, truth, with_spectrum=False)
        npy = work / "stack.npy"
        np.save(npy, np.ascontiguousarray(truth["counts"].values))
        voxels = truth["counts"].size
        del truth
        ours = run_child("ita-ours", ita)
        base = run_child("ita-numpy", npy)
        if ours["sums"] != base["sums"]:
            raise SystemExit(f"ITA read differs from the written cube: {ours['sums']} vs {base['sums']}")
        mv_o, mv_b = voxels / ours["seconds"] / 1e6, voxels / base["seconds"] / 1e6
        print(f"   doptrace tofsims.read (zlib per scan): {mv_o:8.1f} Mvoxels/s   peak RSS {ours['rss_mb']:6.0f} MB")
        print(f"   numpy np.load (uncompressed .npy):     {mv_b:8.1f} Mvoxels/s   peak RSS {base['rss_mb']:6.0f} MB")
        print(f"   ratio doptrace/numpy: {mv_o / mv_b:.2f}x   target >= 30 Mvoxels/s: {'PASS' if mv_o >= 30 else 'FAIL'}")
        analysis_benchmark(ita, npy, voxels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
    else:
        sys.exit(main())
