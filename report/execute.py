"""Where analyses run: in this process, in a local process pool, or on a dask.distributed cluster.

Each analysis is one call of :func:`run_entry`, which reads its instrument files, writes its result
NetCDF files and returns an :class:`Outcome` (paths, hashes, error, time): results travel through
the file system, not back through the pool, so workers of a cluster need to see the project's
files and the output folder at the same paths (a shared file system, as on any HPC cluster).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from doptrace.core.errors import DoptraceError, log_internal_error, short_message
from doptrace.core.simulated import spread

from .quiet import quiet_warnings

# A file's problem is a DoptraceError (each package's exception family) or an OSError; anything
# else is a bug in doptrace, still reported per analysis so that it never loses the others.
FILE_ERRORS = (DoptraceError, OSError)


@dataclass
class Outcome:
    """What one analysis left behind."""

    key: str
    outputs: list[dict] = field(default_factory=list)  # {"name", "path", "sha256"}
    error: str = ""
    seconds: float = 0.0
    cached: bool = False


def run_entry(entry, results_dir) -> Outcome:
    """Analyse one project entry and write its results; file problems become ``Outcome.error``."""
    from .conventions import check_result, write_netcdf
    from .provenance import sha256_file
    from .techniques import adapters

    quiet_warnings()
    outcome = Outcome(entry.key)
    start = time.perf_counter()
    try:
        # results of one entry rest on the same inputs: a simulator's marker on one is on all
        results = spread(adapters()[entry.technique].analyse(dict(entry.settings)))
        for name, ds in results.items():
            check_result(ds, f"{entry.key}/{name}")
        for name, ds in results.items():
            target = write_netcdf(ds, Path(results_dir) / f"{entry.key}__{name}.nc")
            outcome.outputs.append({"name": name, "path": str(target), "sha256": sha256_file(target)})
    except FILE_ERRORS as exc:
        outcome.error = short_message(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the other analyses; its traceback is logged
        # the log sits in the output folder (results_dir's parent), named after the analysis
        outcome.error = log_internal_error(exc, Path(results_dir).parent, f"doptrace-{entry.key}")
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_all(entries, results_dir, workers: int | None = None, scheduler: str | None = None,
            progress: bool = True) -> list[Outcome]:
    """Run ``entries`` (in this order of results) on ``workers`` local processes or a dask ``scheduler``.

    ``workers=1`` (or a single entry) runs in this process. ``scheduler`` is a dask.distributed
    address such as ``tcp://10.0.0.5:8786``; without it a local process pool of ``workers``
    processes (default: the CPU count) is used. A crashed worker fails only its own analysis
    (the pool's other analyses are run again, see :func:`_run_pool`).
    """
    entries = list(entries)
    outcomes: dict[int, Outcome] = {}
    with tqdm(total=len(entries), desc="analyses", unit="analysis", disable=not progress) as bar:
        def done(i: int, outcome: Outcome) -> None:
            outcomes[i] = outcome
            bar.set_postfix_str(entries[i].key + (" FAILED" if outcome.error else ""), refresh=False)
            bar.update()

        if scheduler:
            _run_dask(entries, results_dir, scheduler, done)
        else:
            workers = max(1, min(workers or os.cpu_count() or 1, len(entries)))
            if workers == 1:
                for i, entry in enumerate(entries):
                    done(i, run_entry(entry, results_dir))
            else:
                _run_pool(entries, results_dir, workers, done)
    return [outcomes[i] for i in range(len(entries))]


def _run_pool(entries, results_dir, workers: int, done) -> None:
    """Run on a spawn process pool; a worker that dies (killed, out of memory) breaks the whole pool,
    so the analyses it took down with it are run again on a fresh pool, and after a second break
    each in a pool of its own, so that only the analysis that kills its worker fails."""
    lost = _pool_round(entries, list(range(len(entries))), results_dir, workers, done, last=False)
    if lost:
        lost = _pool_round(entries, lost, results_dir, workers, done, last=False)
    for i in lost:
        _pool_round(entries, [i], results_dir, 1, done, last=True)


def _pool_round(entries, indices, results_dir, workers: int, done, last: bool) -> list[int]:
    """One pool over ``indices``; returns those lost to a broken pool (retried unless ``last``)."""
    # spawn, not fork: the parent may hold threads (tqdm, BLAS) that a forked child would inherit locked
    context = multiprocessing.get_context("spawn")
    lost = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=quiet_warnings) as pool:
        futures = {pool.submit(run_entry, entries[i], str(results_dir)): i for i in indices}
        for future in as_completed(futures):
            i = futures[future]
            try:
                done(i, future.result())
            except BrokenProcessPool as exc:
                if last:
                    done(i, Outcome(entries[i].key, error=f"worker died while analysing this file ({exc})"))
                else:
                    lost.append(i)
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result; fails this analysis only
                done(i, Outcome(entries[i].key, error=f"worker failed: {type(exc).__name__}: {exc}"))
    return sorted(lost)


def _run_dask(entries, results_dir, scheduler: str, done) -> None:
    from distributed import Client, as_completed as dask_completed

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None
    with client:
        run = uuid.uuid4().hex[:8]  # keys unique per run: a scheduler may still know an earlier run's
        futures = [client.submit(run_entry, entry, str(results_dir), pure=False, key=f"doptrace-{run}-{i}")
                   for i, entry in enumerate(entries)]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in dask_completed(futures):
            i = index[future.key]
            try:
                done(i, future.result())
            except Exception as exc:  # noqa: BLE001 - a lost worker fails only its own analysis
                done(i, Outcome(entries[i].key, error=f"worker failed: {type(exc).__name__}: {exc}"))
