"""Raw ToF-SIMS event lists -> fragment cube, streamed scan by scan.

File layout (``.events`` / ``.bin``): headerless little-endian records of 5 x uint32 per detected
ion: ``scan, shot, x, y, tof`` (``shot`` is not used; ``tof`` in time-of-flight channels, with
m = ((tof - k0) / sf)^2). Records come sorted by scan, as an instrument writes them (unsorted
lists are still counted right, only more slowly).

:func:`events_to_cube` walks the read-only mapped file in fixed-size chunks, cuts each chunk at
its last scan boundary (the rest starts the next chunk), histograms only the scans the chunk
covers and releases the pages it has done with: memory stays at the cube plus about two chunks,
never one global bincount over the whole volume. Each event's fragment comes from a lookup
table over channels (one gather instead of a search per event); ions outside every window count
towards ``total`` only.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from doptrace.core.atomic import atomic_open

from .._files import existing_file
from ..errors import ToFSIMSError
from ._cube import make_cube

RECORD = 5  # uint32 per event
RECORD_BYTES = 4 * RECORD
SCAN, SHOT, X, Y, TOF = range(RECORD)
MAX_CHANNEL = 1 << 26  # lookup-table limit (67 M channels ~ 6.7 ms at 100 ps)


def channel_edges(mass_low, mass_high, sf: float, k0: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer channel windows [lo, hi) for mass windows [m_low, m_high): ceil(k0 + sf sqrt(m))."""
    lo = np.ceil(k0 + sf * np.sqrt(np.asarray(mass_low, float))).astype(np.int64)
    hi = np.ceil(k0 + sf * np.sqrt(np.asarray(mass_high, float))).astype(np.int64)
    return lo, hi


def _windows(windows, sf, k0, where="events_to_cube"):
    """Names and integer channel windows from a Dataset with mass windows or a {name: (lo, hi)} dict."""
    if isinstance(windows, (xr.Dataset, xr.DataArray)):
        if sf is None or k0 is None:
            raise ToFSIMSError(f"{where}: mass windows need sf and k0 to convert to channels")
        names = [str(n) for n in windows["fragment"].values]
        lo, hi = channel_edges(windows["mass_low"].values, windows["mass_high"].values, sf, k0)
    else:
        names = [str(n) for n in windows]
        bounds = np.array([windows[n] for n in names], float).reshape(len(names), 2)
        if sf is not None and k0 is not None:
            lo, hi = channel_edges(bounds[:, 0], bounds[:, 1], sf, k0)
        else:
            lo, hi = np.ceil(bounds[:, 0]).astype(np.int64), np.ceil(bounds[:, 1]).astype(np.int64)
    if not names:
        raise ToFSIMSError(f"{where}: no windows")
    if np.any(hi <= lo) or np.any(lo < 0) or hi.max() > MAX_CHANNEL:
        raise ToFSIMSError(f"{where}: empty, negative or absurd channel windows "
                           f"{[(int(a), int(b)) for a, b in zip(lo, hi)]} (mass calibration sf, k0 = {sf}, {k0})")
    order = np.argsort(lo)
    if np.any(lo[order][1:] < hi[order][:-1]):
        raise ToFSIMSError(f"{where}: fragment windows overlap")
    return names, lo, hi


def _lookup(lo, hi) -> np.ndarray:
    """Channel -> fragment code (len(lo) means outside every window); one slot past the last edge."""
    n = len(lo)
    lut = np.full(int(hi.max()) + 1, n, dtype=np.uint8 if n < 255 else np.uint16)
    for k, (a, b) in enumerate(zip(lo, hi)):
        lut[a:b] = k
    return lut


def events_to_cube(
    path,
    windows,
    shape,
    *,
    sf: float | None = None,
    k0: float | None = None,
    chunk_events: int = 1 << 17,
    sputter_time_total: float | None = None,
    field_of_view_um: float | None = None,
    polarity: str = "unknown",
    progress: bool = False,
) -> xr.Dataset:
    """Histogram an event list into ``counts`` (fragment, scan, y, x) and ``total`` (scan, y, x).

    Parameters
    ----------
    path : path-like
        Event file (5 x uint32 records, normally sorted by scan).
    windows : xarray.Dataset or dict
        A :func:`tofsims.masses.peak_windows` Dataset (mass windows, needs ``sf``/``k0``) or
        ``{fragment: (low, high)}`` in u (with ``sf``/``k0``) or in channels (without).
    shape : (n_scans, ny, nx)
    chunk_events : int
        Events per read (default 2**17 = 2.6 MB: the repeated column passes then stay in the CPU
        cache); memory is the cube plus about two chunks.

    Examples
    --------
    >>> w = peak_windows(["BO-", "MnO-"])                                  # doctest: +SKIP
    >>> cube = events_to_cube("run.events", w, (50, 128, 128), sf=32985, k0=-368)   # doctest: +SKIP
    """
    path = existing_file(path)
    size = path.stat().st_size
    if size % RECORD_BYTES:
        raise ToFSIMSError(f"{path}: truncated event list ({size} bytes is not a multiple of {RECORD_BYTES})")
    n_scans, ny, nx = (int(v) for v in shape)
    if min(n_scans, ny, nx) <= 0 or n_scans * ny * nx > 1 << 34:
        raise ToFSIMSError(f"{path}: absurd cube shape {shape}")
    names, lo, hi = _windows(windows, sf, k0, path)
    lut = _lookup(lo, hi)
    outside = len(names)
    n_codes = outside + 1
    # one plane per fragment plus one for ions outside every window; that plane becomes the
    # total at the end, so no per-chunk sum over fragments is needed
    planes = np.zeros((n_codes, n_scans, ny, nx), np.uint32)
    # a chunk twice one scan's histogram keeps the histogram work per event small
    chunk_events = max(int(chunk_events), 1, min(2 * n_codes * ny * nx, 1 << 22))
    n_events = size // RECORD_BYTES
    bar = tqdm(total=n_events, desc="events", unit="ev", unit_scale=True, disable=not progress, leave=False)
    # The file is mapped read-only and walked chunk by chunk; pages already histogrammed are
    # dropped again (MADV_DONTNEED), so resident memory stays at the cube plus the pages of about
    # two chunks, without copying every record through a read buffer.
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        records = np.frombuffer(mapped, "<u4").reshape(-1, RECORD)
        start, released, problem = 0, 0, None
        try:
            while start < n_events:
                end = min(n_events, start + chunk_events)
                if end < n_events:
                    scans = records[start:end, SCAN]
                    boundary = start + int(np.searchsorted(scans, scans[-1], side="left"))
                    if boundary > start:
                        end = boundary  # the last, possibly unfinished scan goes to the next chunk
                chunk = records[start:end]
                _accumulate(path, chunk, start, lut, n_codes, planes)
                bar.update(end - start)
                start = end
                drop = (start * RECORD_BYTES // mmap.PAGESIZE) * mmap.PAGESIZE
                if hasattr(mmap, "MADV_DONTNEED") and drop > released:
                    mapped.madvise(mmap.MADV_DONTNEED, released, drop - released)
                    released = drop
        except ToFSIMSError as exc:
            problem = str(exc)  # re-raised once the map is closed (the traceback pins its buffer)
        finally:
            del records
            chunk = scans = None
    if problem:
        raise ToFSIMSError(problem)
    bar.close()
    counts, total = planes[:outside], planes[outside]
    for s in range(n_scans):  # total = outside + all fragments, one scan at a time
        total[s] += counts[:, s].sum(axis=0, dtype=np.uint32)
    return _dataset(path, names, lo, hi, counts, total, windows, sf, k0, sputter_time_total, field_of_view_um,
                    polarity)


def _accumulate(path, chunk, first_event, lut, n_codes, planes):
    """Add one chunk's events to ``planes`` (code, scan, y, x).

    Dense chunks (few scans, many events) are histogrammed over just the scans they span;
    sparse or unsorted chunks, whose span would need a histogram much larger than the chunk,
    are counted by sorting instead, so memory follows the chunk, never the whole volume.
    """
    scan, x, y, tof = chunk[:, SCAN], chunk[:, X], chunk[:, Y], chunk[:, TOF]
    n_scans, ny, nx = planes.shape[1:]
    s0, s1 = int(scan.min()), int(scan.max())
    if s1 >= n_scans or x.max() >= nx or y.max() >= ny:
        raise ToFSIMSError(
            f"{path}: event outside the {nx} x {ny} x {n_scans} cube "
            f"(max x {int(x.max())}, y {int(y.max())}, scan {s1}) near event {first_event}"
        )
    code = np.take(lut, tof, mode="clip")  # channels past the table are outside every window
    n_local = s1 - s0 + 1
    n_bins = n_codes * n_local * ny * nx
    if n_bins > 8 * len(chunk) + n_codes * ny * nx:
        index = code.astype(np.int64)
        index *= n_scans
        index += scan
        index *= ny
        index += y
        index *= nx
        index += x
        cells, hits = np.unique(index, return_counts=True)
        flat = planes.reshape(-1)
        flat[cells] += hits.astype(np.uint32)
        return
    # uint32 index arithmetic halves the memory traffic when the histogram is small enough
    index = code.astype(np.uint32 if n_bins < 2**32 else np.int64)
    index *= n_local
    index += scan
    index -= s0
    index *= ny
    index += y
    index *= nx
    index += x
    hist = np.bincount(index, minlength=n_bins).reshape(n_codes, n_local, ny, nx)
    target = planes[:, s0 : s1 + 1]
    np.add(target, hist, out=target, casting="unsafe")


def _dataset(path, names, lo, hi, counts, total, windows, sf, k0, sputter_time_total, fov, polarity):
    if isinstance(windows, xr.Dataset) and "mass_low" in windows.coords:
        mass_low, mass_high = windows["mass_low"].values, windows["mass_high"].values
        centre = windows["fragment_mass"].values if "fragment_mass" in windows.coords else (mass_low + mass_high) / 2
    elif sf is not None and k0 is not None:
        mass_low, mass_high = ((lo - k0) / sf) ** 2, ((hi - k0) / sf) ** 2
        centre = (mass_low + mass_high) / 2
    else:
        mass_low = mass_high = centre = None
    return make_cube(
        path, counts, names, file_format="raw event list", total=total, fragment_mass=centre,
        mass_low=mass_low, mass_high=mass_high, sputter_time_total=sputter_time_total or None,
        field_of_view_um=fov or None, polarity=polarity,
        fragment_coords={"tof_low": (lo, {"units": "1"}), "tof_high": (hi, {"units": "1"})},
        attrs={"sf": float("nan") if sf is None else float(sf), "k0": float("nan") if k0 is None else float(k0)},
    )


def read(path, windows=None, shape=None, **kw) -> xr.Dataset:
    """Registry entry: :func:`events_to_cube` (``windows`` and ``shape`` are required)."""
    if windows is None or shape is None:
        raise ToFSIMSError(f"{path}: an event list needs windows= and shape= (n_scans, ny, nx) to build a cube")
    return events_to_cube(path, windows, shape, **kw)


def code_channels(truth: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Integer channel windows per code: the fragments' windows, then a gap at 3.5-3.9 u (where
    no fragment window lies) for the ions outside every window."""
    sf, k0 = float(truth.attrs["sf"]), float(truth.attrs["k0"])
    lo, hi = channel_edges(truth["mass_low"].values, truth["mass_high"].values, sf, k0)
    gap_lo, gap_hi = channel_edges([3.5], [3.9], sf, k0)
    return np.append(lo, gap_lo), np.append(hi, gap_hi)


def rest_counts(truth: xr.Dataset) -> np.ndarray:
    """``total - sum(fragments)`` per (scan, y, x) (zeros without ``total``)."""
    counts = truth["counts"].transpose("fragment", "scan", "y", "x").values
    if "total" not in truth:
        return np.zeros(counts.shape[1:], counts.dtype)
    rest = truth["total"].transpose("scan", "y", "x").values.astype(np.int64) - counts.sum(axis=0, dtype=np.int64)
    if np.any(rest < 0):
        raise ToFSIMSError("total counts below the sum of the fragments")
    return rest.astype(counts.dtype)


def draw_channels(code: np.ndarray, lows: np.ndarray, highs: np.ndarray, rng) -> np.ndarray:
    """A time-of-flight channel for each ion, uniform in its code's window [low, high)."""
    return rng.integers(lows[code], highs[code])


def write(path, truth: xr.Dataset, *, seed: int = 0, chunk_scans: int = 8) -> xr.Dataset:
    """Write ``truth["counts"]`` (+ ``total``) as a scan-sorted event list (see module doc).

    Each ion gets a channel drawn uniformly in its fragment's window; ``total - sum`` ions get
    channels between 3.5 and 3.9 u, where no fragment window lies. Returns ``truth`` with the
    integer channel windows as coords ``tof_low``/``tof_high``.
    """
    rng = np.random.default_rng(seed)
    lows, highs = code_channels(truth)
    counts = truth["counts"].transpose("fragment", "scan", "y", "x").values
    n_frag, n_scans, ny, nx = counts.shape
    rest = rest_counts(truth)
    with atomic_open(Path(path), "wb") as out:
        for s0 in range(0, n_scans, chunk_scans):
            s1 = min(n_scans, s0 + chunk_scans)
            block = np.concatenate([counts[:, s0:s1], rest[None, s0:s1]])  # (code, scan, y, x)
            flat = np.ascontiguousarray(block.reshape(n_frag + 1, -1).T)  # (voxel, code): raster order
            voxel, code = np.nonzero(flat)
            reps = flat[voxel, code].astype(np.int64)
            code = np.repeat(code, reps)
            voxel = np.repeat(voxel, reps)
            scan, rem = np.divmod(voxel, ny * nx)
            y, x = np.divmod(rem, nx)
            tof = draw_channels(code, lows, highs, rng)
            records = np.empty((code.size, RECORD), "<u4")
            records[:, SCAN] = scan + s0
            records[:, SHOT] = rng.integers(0, max(int(truth.attrs.get("shots_per_pixel", 1)), 1), code.size)
            records[:, X], records[:, Y], records[:, TOF] = x, y, tof
            out.write(records.tobytes())
    truth = truth.copy()
    lo, hi = lows[:-1], highs[:-1]
    truth = truth.assign_coords(tof_low=("fragment", lo, {"units": "1"}), tof_high=("fragment", hi, {"units": "1"}))
    return truth
