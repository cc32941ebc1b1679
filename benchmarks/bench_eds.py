"""STEM-EDS line-intensity extraction speed and memory on a 256 x 256 x 2048 spectrum image.

Run on demand: ``python benchmarks/bench_eds.py [--quick] [--size 256] [--channels 2048]``.

The cube is a simulated Li-rich oxide spectrum image (a 32 x 32 Poisson tile repeated), uint16,
eager (numpy in memory) and lazy (the same cube written to .hspy, uncompressed, one chunk per 16
rows, read with dask; our extractors read such files block by block with h5py ``read_direct``).
Each method runs in a fresh subprocess so its peak RSS is its own. Throughput is per core: the
bytes of the whole cube divided by max(wall time, process CPU time), i.e. by the wall time times
the cores actually used (at least one); it is compared with a plain numpy slice-sum of the
same integration windows over the same in-memory cube in the same run (and, for reference,
dask slice-sums over the lazy file). Targets: >= 0.5 GB/s per core; lazy peak memory (RSS
above the process level at the start) <= ~2x a row of chunks. ``--quick``: a 128 x 128 cube.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ELEMENTS = "O,Mn,Co,Ni"
ROW_CHUNK = 16


def make_cube(size: int, channels: int, seed: int = 0) -> np.ndarray:
    from doptrace.stem_eds.simulate import composition_field, energy_axis, expected_spectra, thickness_field

    tile = 32
    comp = composition_field((tile, tile), "uniform")
    lam = expected_spectra(comp, thickness_field((tile, tile), "wedge"), energy_axis(channels, 0.01, -0.1), 400.0)
    small = np.random.default_rng(seed).poisson(lam).astype(np.uint16)
    reps = int(np.ceil(size / tile))
    return np.tile(small, (reps, reps, 1))[:size, :size]


def write_cube(cube: np.ndarray, path: Path) -> None:
    import hyperspy.api as hs

    signal = hs.signals.Signal1D(cube)
    signal.set_signal_type("EDS_TEM")
    for axis, name in zip(signal.axes_manager.navigation_axes[::-1], ("y", "x")):
        axis.name, axis.units, axis.scale = name, "nm", 1.0
    energy = signal.axes_manager.signal_axes[0]
    energy.units, energy.scale, energy.offset = "keV", 0.01, -0.1
    signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    signal.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
    signal.metadata.set_item("Sample.elements", ["Co", "Mn", "Ni", "O"])
    # Uncompressed: the benchmark measures extraction, not gzip decompression.
    signal.save(str(path), overwrite=True, chunks=(ROW_CHUNK, cube.shape[1], cube.shape[2]), compression=None)


class PeakRSS:
    """Peak resident memory (MiB) above the level at entry, sampled every 2 ms in a thread."""

    def __enter__(self):
        import threading

        import psutil

        self._process = psutil.Process()
        self.baseline = self.peak = self._process.memory_info().rss / 2**20
        self.sampler_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        start = time.thread_time()
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss / 2**20)
            self._stop.wait(0.002)
        self.sampler_cpu = time.thread_time() - start

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss / 2**20)

    @property
    def extra(self) -> float:
        return self.peak - self.baseline


def worker(mode: str, method: str, path: str, size: int, channels: int) -> dict:
    """One measurement in this (fresh) process: returns seconds, bytes and memory."""
    import dask
    import xarray as xr

    from doptrace.stem_eds import parse_elements, read
    from doptrace.stem_eds.intensities import channel, integration_window, window_intensities
    from doptrace.stem_eds.model_fit import model_intensities

    if mode == "eager":
        cube = make_cube(size, channels)
        energy = -0.1 + 0.01 * np.arange(channels)
        da = xr.DataArray(cube, dims=("y", "x", "energy"), coords={"energy": ("energy", energy, {"units": "keV"})},
                          attrs={"fwhm_mnka_ev": 130.0, "beam_energy_kev": 200.0, "file_elements": "Co Mn Ni O",
                                 "source": "bench"})
    else:
        da = read(path, lazy=True)
    nbytes = int(np.prod(da.shape)) * da.dtype.itemsize
    lines = parse_elements(ELEMENTS, float(da["energy"][-1]))
    windows = [integration_window(line, 130.0) for line in lines]
    slices = [slice(channel(lo, -0.1, 0.01), channel(hi, -0.1, 0.01)) for lo, hi in windows]
    # Warm-up on one row of chunks: imports, dask's thread pool and h5py's first open are not
    # what is being measured.
    warm = da.isel(y=slice(0, ROW_CHUNK))
    dask.compute(warm.data[..., slices[0]].sum(axis=-1))
    window_intensities(warm, lines, background="auto")
    model_intensities(warm, lines)
    with PeakRSS() as memory:
        cpu = time.process_time()
        start = time.perf_counter()
        if method == "windows":
            window_intensities(da, lines, background="auto")
        elif method == "model":
            model_intensities(da, lines)
        elif mode == "eager":  # the reference: numpy slice-sums of the same integration windows
            for sl in slices:
                da.data[..., sl].sum(axis=-1)
        else:  # the lazy reference: dask slice-sums of the same windows over the same file
            dask.compute(*[da.data[..., sl].sum(axis=-1) for sl in slices])
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    # The sampler thread's own CPU (a psutil call every 2 ms) is not the extractor's.
    cpu = max(0.0, cpu - memory.sampler_cpu)
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes": nbytes, "extra_peak_mb": memory.extra}


def run(mode, method, path, size, channels) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, method, str(path), "--size", str(size), "--channels", str(channels)]
    # A fixed mmap threshold makes every large buffer a fresh mapping returned to the system when
    # freed, so the peak RSS counts the extractor's buffers instead of reusing freed warm-up heap.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MALLOC_MMAP_THRESHOLD_="131072")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rate(r: dict) -> tuple[float, float, float]:
    """(GB/s per core, GB/s per CPU-second, cores used) of one measurement.

    Per core = cube bytes / wall / cores used (at least one). On a shared machine the wall
    time also holds waits for a CPU, so the bytes per CPU-second of the process (what one
    core does when it is ours) is shown beside it.
    """
    cores = max(1.0, r["cpu_seconds"] / r["seconds"])
    return r["bytes"] / (r["seconds"] * cores) / 1e9, r["bytes"] / max(r["cpu_seconds"], 1e-9) / 1e9, cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="a 128 x 128 cube (a quarter of the work)")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "METHOD", "PATH"))
    args = parser.parse_args()
    if args.quick and not args.worker:
        args.size = 128
    if args.worker:
        import warnings

        warnings.simplefilter("ignore")
        mode, method, path = args.worker
        print(json.dumps(worker(mode, method, path, args.size, args.channels)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.hspy"
        cube = make_cube(args.size, args.channels)
        write_cube(cube, path)
        row_mb = ROW_CHUNK * args.size * args.channels * cube.dtype.itemsize / 2**20
        del cube
        print(f"cube {args.size}x{args.size}x{args.channels} uint16 = "
              f"{args.size**2 * args.channels * 2 / 2**30:.3f} GiB; lazy row of chunks {row_mb:.1f} MiB; "
              "BLAS limited to 1 thread; GB/s are per core (cube bytes / wall / cores used)")
        numpy_rate = None
        for mode in ("eager", "lazy"):
            ref = run(mode, "numpy", path, args.size, args.channels)
            ref_rate, ref_cpu_rate, ref_cores = _rate(ref)
            numpy_rate = numpy_rate or ref_rate
            ref_memory = f"extra peak RSS {ref['extra_peak_mb']:.0f} MiB"
            if mode == "lazy":
                ref_memory += f" = {ref['extra_peak_mb'] / row_mb:.2f} x row of chunks"
            print(f"{mode:5s} {'numpy' if mode == 'eager' else 'dask'} slice-sum of the windows: {ref_rate:7.2f} GB/s "
                  f"per core, {ref_cpu_rate:.2f} GB/s per CPU-s ({ref['seconds']:.3f} s, {ref_cores:.2f} cores), "
                  f"{ref_memory}")
            for method in ("windows", "model"):
                r = run(mode, method, path, args.size, args.channels)
                rate, cpu_rate, cores = _rate(r)
                memory = f"extra peak RSS {r['extra_peak_mb']:.0f} MiB"
                ok_memory = True
                if mode == "lazy":
                    memory += f" = {r['extra_peak_mb'] / row_mb:.2f} x row of chunks"
                    ok_memory = r["extra_peak_mb"] <= 2.2 * row_mb
                verdict = ("ok" if rate >= 0.5 else "wall BELOW 0.5 GB/s target" if cpu_rate >= 0.5
                           else "BELOW 0.5 GB/s target") + ("" if ok_memory else ", ABOVE 2x memory")
                print(f"{mode:5s} {method:7s}: {rate:7.2f} GB/s per core, {cpu_rate:.2f} GB/s per CPU-s "
                      f"({r['seconds']:.3f} s, {cores:.2f} cores, {rate / numpy_rate:.2f} x numpy slice-sum), "
                      f"{memory} [{verdict}]")


if __name__ == "__main__":
    main()
