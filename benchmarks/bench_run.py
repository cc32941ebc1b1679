"""Project-scale ``doptrace run``: 200 XPS series + 20 ToF-SIMS volumes + 20 EDS maps, 1 vs 2 workers, cached re-run.

    python benchmarks/bench_run.py                        # full scale; simulated files in a temp folder
    python benchmarks/bench_run.py --data ~/bench_data    # keep the simulated files, reused next time
    python benchmarks/bench_run.py --scale 0.1            # 20 + 2 + 2 analyses, a quick check

The project is simulated by the technique adapters' own ``demo_entries`` (real instrument formats:
VAMAS, ITA, .hspy), one technique per sample: XPS-only samples (the B 1s fit with quantification),
ToF-SIMS-only samples and EDS-only samples, each with the demo's depth table
(``report.demo.demo_depth``: its etch rate, the crater depth moved out of the entry, +-5 %); bulk-doped and surface-doped alternate, every
sample has its own seed. Timed, each as one call of ``report.runner.run_project``:

1. ``workers=1`` (in this process) into a fresh output folder: the baseline t1;
2. ``workers=2`` (spawn process pool) into another fresh folder: t2 and the speed-up t1/t2;
3. the same project re-run into the folder of 2: t3 and t3/t2. PASS only if no analysis was redone
   (``summary.redone`` empty) and every file in ``OUT/results`` is byte-identical (sha256) to before.

Runs 1 and 2 must have no failed analysis and must write a report naming every sample (exit 1
otherwise). Also shown: the sum of per-analysis seconds by technique (where the time goes; the rest
of the wall time is hashing, reading results back, cross-technique checks and the HTML report in
the parent) and peak RSS of this process per phase (VmHWM, reset between phases through
``/proc/self/clear_refs`` where the kernel allows) and of the largest pool worker.

``--profile`` adds one more cached re-run under cProfile and lists doptrace's slowest functions.
A ``--data`` folder is reused when its project title matches the scale and seed: simulator changes
since then are not picked up (delete the folder to simulate again).

Measured on a 2-core container (Python 3.11, Linux, 23 GB RAM), doptrace at 74e18bb (report figures
drawn on a process pool); simulating the full project: 12.9 s, 36 MB of files:

    scale 1 (200 + 20 + 20)     wall s   ratio          parent peak RSS
    1) 1 worker                 235.0    1.00 (base)    672 MB
    2) 2 workers                150.1    t1/t2 1.57x    710 MB   (largest worker 390 MB)
    3) cached re-run             103.1    t3/t2 0.69x    729 MB   PASS: 0/240 redone, 0/800 files changed
    analysis seconds (run 1): XPS 62.0 (0.31 each), ToF-SIMS 6.8 (0.34), EDS 8.4 (0.42); sum 77.1;
    outside the analyses 158 s in run 1. A cached re-run (cProfile) spends ~42 % reading the 580
    result files back (h5netcdf, ~50 ms each), ~42 % drawing 580 figures, the rest on tables and
    rewriting the 220 depth-series files.

    scale 0.1 (20 + 2 + 2): t1 29.3 s, t2 23.2 s (1.26x), t3 15.2 s (0.66x), PASS; parent peak
    RSS 415 MB; the cached re-run (cProfile) spends 9 s drawing the figures (pool start-up
    included) and 6 s reading the 58 result files back. Repeats vary by ~10 % (t1 26.2 s in another run). At 88f42b0: t1
    24.2 s, t2 24.1 s (1.01x), t3 16.6 s.

At ccb781c (36a857e: a re-run with nothing changed keeps report, checks and depth files, recorded
by hash) the re-run is all hashing: full scale t1 245.0 s, t2 148.7 s (1.65x; a short pytest run
overlapped it), t3 0.2 s (0.0013x), PASS; scale 0.1 t1 25.3 s, t2 19.2 s (1.32x), t3 0.04 s
(0.0022x), PASS. ``--profile`` then shows little: the work is in runs 1 and 2.

At 30cae1f (results read back with netCDF4, ~10 ms a file instead of ~60 with h5netcdf), full
scale, machine otherwise idle: t1 219.8 s, t2 119.1 s (1.85x), t3 0.19 s, PASS; parent peak RSS
681-720 MB, largest worker 404 MB; analyses 78.9 s of t1.

At 88f42b0 the full scale gave t1 236.2 s, t2 209.4 s (1.13x), t3 167.3 s and a parent peak RSS of
2.2-2.5 GB: figures drawn serially in the parent were 60 % of every run, cached or not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from _rss import peak_rss_mb  # benchmarks/ is on sys.path when run as a script

#: analyses at --scale 1: XPS etch series, ToF-SIMS volumes, EDS spectrum images
FULL = {"xps": 200, "tofsims": 20, "eds": 20}


def scaled_counts(scale: float) -> dict[str, int]:
    """Analyses per technique at ``scale`` (at least one each, so every technique is in the report)."""
    return {tech: max(1, round(n * scale)) for tech, n in FULL.items()}


def project_title(counts: dict[str, int], seed: int) -> str:
    # the title records what was simulated, so a --data folder of another scale or seed is not reused
    return "bench_run: " + ", ".join(f"{n} {tech}" for tech, n in counts.items()) + f" (seed {seed})"


def build_project(directory: Path, counts: dict[str, int], seed: int, progress: bool) -> tuple[Path, bool]:
    """Simulate the files under ``directory/data`` and write ``directory/project.toml``; reuse a matching one.

    Returns the project path and whether it was reused.
    """
    from doptrace.report.demo import demo_depth, write_project_file
    from doptrace.report.techniques import adapters

    title = project_title(counts, seed)
    project = directory / "project.toml"
    if project.is_file():
        try:
            if tomllib.loads(project.read_text(encoding="utf-8")).get("title") == title:
                return project, True
        except (OSError, tomllib.TOMLDecodeError):
            pass  # unreadable: simulate again
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    available = adapters()
    entries: dict[str, dict[str, list[dict]]] = {}
    depth: dict[str, dict[str, str]] = {}
    number = 0
    with tqdm(total=sum(counts.values()), desc="simulating", unit="sample", disable=not progress) as bar:
        for tech, n in counts.items():
            for _ in range(n):
                sample = f"S{number:03d}"
                made = available[tech].demo_entries(data_dir, sample, number % 2 == 1, seed + number)
                if tech == "xps":
                    made = made[:1]  # the B 1s fit; the second entry refits the same file's In 3d
                entries[sample] = {tech: made}
                # the demo's depth table: its etch rate, the crater depth moved out of the entry (+-5 %)
                depth[sample] = demo_depth({sample: entries[sample]})[sample]
                number += 1
                bar.update()
    return write_project_file(directory, entries, title, depth), False


# ----------------------------------------------------------------------------- measurements
class PeakRSS:
    """Peak resident memory of this process since the last :meth:`reset` (MB)."""

    def __init__(self):
        self.resettable = self.reset()

    @staticmethod
    def reset() -> bool:
        # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0); without it the peak is since start-up.
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    @staticmethod
    def peak_mb() -> float:
        return peak_rss_mb()


class WorkerRSS:
    """Largest RSS of any child process (pool workers), sampled by a thread every ``interval`` s (MB).

    ``RUSAGE_CHILDREN`` cannot tell it: a spawned worker starts as a fork of this process, and Linux
    keeps the fork's high-water mark (the parent's RSS at that moment) across the exec.
    """

    def __init__(self, interval: float = 0.2):
        import psutil

        self.interval, self.peak_mb = interval, 0.0
        self._me, self._stop = psutil.Process(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            for child in self._me.children(recursive=True):
                try:
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
                except psutil.Error:  # the worker ended between listing and reading it
                    pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def result_hashes(out_dir: Path) -> dict[str, str]:
    """sha256 of every file in ``out_dir/results`` by name (hashlib, not doptrace's helper under test)."""
    hashes = {}
    for path in sorted((out_dir / "results").iterdir()):
        if path.is_file():
            with open(path, "rb") as handle:
                hashes[path.name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return hashes


def timed_run(project: Path, out_dir: Path, workers: int, progress: bool, rss: PeakRSS):
    """Wall time, summary, peak RSS of this process and largest worker RSS of one ``run_project``."""
    from doptrace.report.runner import run_project

    rss.reset()
    with WorkerRSS() as children:
        start = time.perf_counter()
        summary = run_project(project, out_dir, progress=progress, workers=workers)
        seconds = time.perf_counter() - start
    return seconds, summary, rss.peak_mb(), children.peak_mb


def technique_seconds(summary) -> dict[str, tuple[int, float]]:
    """``{technique: (analyses, sum of their seconds)}`` in the order they appear."""
    sums: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for a in summary.analyses:
        sums[a.entry.technique][0] += 1
        sums[a.entry.technique][1] += a.seconds
    return {tech: (n, s) for tech, (n, s) in sums.items()}


def report_problems(summary, out_dir: Path, samples: list[str]) -> list[str]:
    """Failed analyses, and samples that the report or checks.json leave out."""
    problems = [f"{a.entry.key}: {a.error}" for a in summary.failed]
    html = (out_dir / "report.html").read_text(encoding="utf-8") if (out_dir / "report.html").is_file() else ""
    if not html:
        problems.append("no report.html")
    checked = {e["sample"] for e in json.loads((out_dir / "checks.json").read_text(encoding="utf-8"))}
    problems += [f"{s} missing from the report" for s in samples if s not in html]
    problems += [f"{s} missing from checks.json" for s in samples if s not in checked]
    return problems


def profile_rerun(project: Path, out_dir: Path, workers: int, top: int = 15) -> None:
    """Where a cached re-run spends its time, by doptrace function (cumulative; cProfile slows it down)."""
    import cProfile
    import pstats

    from doptrace.report.runner import run_project

    profiler = cProfile.Profile()
    profiler.runcall(run_project, project, out_dir, progress=False, workers=workers)
    print(f"\ncached re-run under cProfile, top {top} doptrace functions by cumulative time:")
    stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
    stats.print_stats(r"/(report|xps|xrd|tofsims|stem_eds)/", top)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 200 XPS + 20 ToF-SIMS + 20 EDS")
    parser.add_argument("--data", help="folder for the simulated project (kept; reused when it matches)")
    parser.add_argument("--out", help="folder for the two output folders (default: a temp folder, removed)")
    parser.add_argument("--workers", type=int, default=2, help="pool size of runs 2 and 3 (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, one more cached re-run under cProfile: doptrace's slowest functions")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    progress = not args.no_progress
    counts = scaled_counts(args.scale)
    temp = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        data = Path(args.data) if args.data else temp / "project"
        out_root = Path(args.out) if args.out else temp
        out_root.mkdir(parents=True, exist_ok=True)
        rss = PeakRSS()

        start = time.perf_counter()
        project, reused = build_project(data, counts, args.seed, progress)
        samples = [s["name"] for s in tomllib.loads(project.read_text(encoding="utf-8"))["sample"]]
        print(f"project: {', '.join(f'{n} {t}' for t, n in counts.items())} ({len(samples)} samples, "
              f"one technique each) at {project}: "
              + ("reused" if reused else f"simulated in {time.perf_counter() - start:.1f} s"))

        out1, out2 = out_root / "out_1worker", out_root / f"out_{args.workers}workers"
        for folder in (out1, out2):
            shutil.rmtree(folder, ignore_errors=True)
        t1, s1, rss1, _ = timed_run(project, out1, 1, progress, rss)
        t2, s2, rss2, worker2 = timed_run(project, out2, args.workers, progress, rss)
        before = result_hashes(out2)
        t3, s3, rss3, _ = timed_run(project, out2, args.workers, progress, rss)
        after = result_hashes(out2)

        problems = report_problems(s1, out1, samples) + report_problems(s2, out2, samples)
        changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        cache_ok = not s3.redone and not changed and bool(before)
        same_1_vs_2 = result_hashes(out1) == before

        n = len(s1.analyses)
        peak = "peak RSS" if rss.resettable else "peak RSS since start"
        print(f"\n{'run':34s} {'wall s':>8s} {'ratio':>16s} {'s/analysis':>11s} {peak:>22s}")
        print(f"{'1) 1 worker (in-process)':34s} {t1:8.2f} {'1.00 (base)':>16s} {t1 / n:11.3f} {rss1:19.0f} MB")
        print(f"{f'2) {args.workers} workers (process pool)':34s} {t2:8.2f} {f't1/t2 {t1 / t2:.3g}x':>16s} "
              f"{t2 / n:11.3f} {rss2:19.0f} MB")
        print(f"{'3) cached re-run into 2':34s} {t3:8.2f} {f't3/t2 {t3 / t2:.3g}x':>16s} "
              f"{t3 / n:11.3f} {rss3:19.0f} MB")
        print(f"largest child process RSS in run 2 (analysis or figure workers, sampled every 0.2 s): {worker2:.0f} MB")

        print(f"\n{'technique':10s} {'analyses':>8s} {'sum s (1)':>10s} {'mean s (1)':>10s} {'sum s (2)':>10s}")
        by1, by2 = technique_seconds(s1), technique_seconds(s2)
        for tech, (k, sec) in by1.items():
            print(f"{tech:10s} {k:8d} {sec:10.1f} {sec / k:10.2f} {by2.get(tech, (0, 0.0))[1]:10.1f}")
        sum1 = sum(s for _, s in by1.values())
        sum2 = sum(s for _, s in by2.values())
        print(f"{'all':10s} {n:8d} {sum1:10.1f} {sum1 / n:10.2f} {sum2:10.1f}")
        print(f"outside the analyses (hashing, read-back, checks, report): run 1 {t1 - sum1:.1f} s, "
              f"run 3 {t3:.2f} s (nothing analysed)")
        print(f"results of run 1 and run 2 byte-identical: {'yes' if same_1_vs_2 else 'no'}")

        for problem in problems:
            print(f"FAIL: {problem}")
        print(f"\ncached re-run: {len(s3.redone)} of {n} analyses redone, {len(changed)} of {len(after)} result "
              f"files changed" + (f" ({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''})" if changed else "")
              + f": {'PASS' if cache_ok else 'FAIL'}")
        if args.profile:
            profile_rerun(project, out2, args.workers)
        return 0 if cache_ok and not problems else 1
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
