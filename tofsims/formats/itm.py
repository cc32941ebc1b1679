"""IONTOF ITM raw data: the per-scan event streams under ``rawdata`` (read and write).

An ITM file is an ITStr container like an ITA file, but instead of reduced image stacks it keeps
every detected ion. Layout (as pySPM documents and reads it)::

    rawdata/
        "   6"[scan]   uint32 scan number; starts the blocks of one scan
        "  14"[k]      zlib stream of uint32 words, for every pixel visited:
                       0xC0000000 | x,  0xD0000000 | y,  0x40000000 | pixel number,
                       then one word per ion: its time-of-flight channel (< 2^30)

:func:`read` decodes each scan's stream with a handful of vectorised numpy operations (the
header words are found by their top bits, every channel word is tied to the pixel header before
it) and histograms the ions into fragment windows with the same code as event lists
(:mod:`tofsims.formats.events`), one scan at a time.
"""

from __future__ import annotations

import zlib

import numpy as np
import xarray as xr
from tqdm import tqdm

from ..errors import ToFSIMSError
from . import _iontof, events, itstr

SCAN_BLOCK, DATA_BLOCK = "   6", "  14"
X_TAG, Y_TAG, ID_TAG = 0xC0000000, 0xD0000000, 0x40000000
TOP4, TOP2 = 0xF0000000, 0xC0000000


def has_raw_data(f: itstr.ITStrFile) -> bool:
    """Whether the container holds a ``rawdata`` directory."""
    return f.find("rawdata") is not None


def _scan_blocks(f: itstr.ITStrFile):
    """``[(scan, [data entries])]`` in file order."""
    block = f.find("rawdata")
    if block is None:
        raise ToFSIMSError(f"{f.path}: no raw data (rawdata) in the file")
    scans, current = [], None
    for entry in f.children(block):
        if entry.name == SCAN_BLOCK:
            current = (entry.id, [])
            scans.append(current)
        elif entry.name == DATA_BLOCK:
            if current is None:
                raise ToFSIMSError(f"{f.path}: raw data block before the first scan marker")
            current[1].append(entry)
    return scans


def decode(words: np.ndarray, scan: int = 0, path="raw data") -> np.ndarray:
    """Event records (n, 5) uint32 ``scan, 0, x, y, tof`` from one scan's uint32 word stream.

    Examples
    --------
    >>> w = np.array([0xC0000001, 0xD0000002, 0x40000011, 500, 700], np.uint32)
    >>> decode(w)[:, [2, 3, 4]].tolist()
    [[1, 2, 500], [1, 2, 700]]
    """
    words = np.asarray(words, np.uint32)
    top = words & TOP4
    starts = np.flatnonzero(top == X_TAG)
    if words.size and (starts.size == 0 or starts[0] != 0):
        raise ToFSIMSError(f"{path}: scan {scan}: ion words before the first pixel header")
    if starts.size and starts[-1] + 2 >= words.size:
        raise ToFSIMSError(f"{path}: scan {scan}: truncated pixel header at the end of the stream")
    if np.any(top[starts + 1] != Y_TAG) or np.any((words[starts + 2] & TOP2) != ID_TAG):
        raise ToFSIMSError(f"{path}: scan {scan}: corrupt pixel header (x, y, pixel words out of order)")
    is_ion = (words & TOP2) == 0
    header_words = np.zeros(words.size, bool)
    header_words[starts] = header_words[starts + 1] = header_words[starts + 2] = True
    if np.count_nonzero(~is_ion & ~header_words):
        raise ToFSIMSError(f"{path}: scan {scan}: stray tagged words outside pixel headers")
    pixel = np.cumsum(header_words[:] & (top == X_TAG)) - 1  # index of the header each word follows
    ion = np.flatnonzero(is_ion)
    records = np.empty((ion.size, events.RECORD), np.uint32)
    records[:, events.SCAN] = scan
    records[:, events.SHOT] = 0
    records[:, events.X] = words[starts][pixel[ion]] & 0x0FFFFFFF
    records[:, events.Y] = words[starts + 1][pixel[ion]] & 0x0FFFFFFF
    records[:, events.TOF] = words[ion]
    return records


def iter_scans(path):
    """Yield ``(scan, records)`` for each scan of an ITM file, records as in :func:`decode`."""
    with itstr.ITStrFile(path) as f:
        for scan, entries in _scan_blocks(f):
            parts = [f.decompress(f.block_at(e.offset)) for e in entries]
            data = b"".join(parts)
            if len(data) % 4:
                raise ToFSIMSError(f"{f.path}: scan {scan}: raw data is not a whole number of uint32 words")
            yield scan, decode(np.frombuffer(data, "<u4"), scan, f.path)


def read(path, fragments=None, windows: xr.Dataset | None = None, *, sf: float | None = None,
         k0: float | None = None, progress: bool = False) -> xr.Dataset:
    """Histogram an ITM file's raw events into ``counts`` (fragment, scan, y, x) and ``total``.

    Parameters
    ----------
    path : path-like
    fragments : list of str, optional
        Names from the file's peak list (default: all of its fragment intervals).
    windows : xarray.Dataset, optional
        Mass windows (``mass_low``/``mass_high`` over ``fragment``) instead of the peak list.
    sf, k0 : float, optional
        Mass calibration (default: the file's).
    """
    with itstr.ITStrFile(path) as f:
        head = _iontof.header(f)
        peaks = [p for p in _iontof.peak_list(f) if p["id"] >= _iontof.FIRST_FRAGMENT_ID]
        n_scans = head["n_scans"] or len(_scan_blocks(f))
    sf = head["sf"] if sf is None else sf
    k0 = head["k0"] if k0 is None else k0
    if not (np.isfinite(sf) and np.isfinite(k0)):
        raise ToFSIMSError(f"{path}: no mass calibration (sf, k0) in the file; pass sf= and k0=")
    if windows is None:
        by_name = {p["name"]: p for p in peaks}
        names = list(by_name) if fragments is None else list(fragments)
        missing = [n for n in names if n not in by_name]
        if missing or not names:
            raise ToFSIMSError(f"{path}: fragments {missing or 'none'} not in the peak list (have: {list(by_name)})")
        windows = xr.Dataset(
            coords={
                "fragment": ("fragment", names),
                "fragment_mass": ("fragment", [by_name[n]["cmass"] for n in names], {"units": "u"}),
                "mass_low": ("fragment", [by_name[n]["lmass"] for n in names], {"units": "u"}),
                "mass_high": ("fragment", [by_name[n]["umass"] for n in names], {"units": "u"}),
            }
        )
    names, lo, hi = events._windows(windows, sf, k0, path)
    lut = events._lookup(lo, hi)
    ny, nx = head["ny"], head["nx"]
    planes = np.zeros((len(names) + 1, n_scans, ny, nx), np.uint32)
    done = 0
    for scan, records in tqdm(iter_scans(path), total=n_scans, desc="ITM scans", disable=not progress, leave=False):
        if scan >= n_scans:
            raise ToFSIMSError(f"{path}: raw data for scan {scan}, the file has {n_scans} scans")
        if records.size:
            events._accumulate(path, records, done, lut, len(names) + 1, planes)
        done += len(records)
    counts, total = planes[: len(names)], planes[len(names)]
    for s in range(n_scans):
        total[s] += counts[:, s].sum(axis=0, dtype=np.uint32)
    ds = events._dataset(path, names, lo, hi, counts, total, windows, sf, k0, head["sputter_time_total"],
                         head["field_of_view_um"], head["polarity"])
    ds.attrs.update(
        format="IONTOF ITM raw data (ITStr)",
        channel_width_ns=head["channel_width_ns"],
        shots_per_pixel=head["shots_per_pixel"],
        primary_ion=head["primary_ion"],
        sample=head["sample"],
        dead_time_corrected=head["dead_time_corrected"],
        n_events=int(done),
        **{key: head[key] for key in ("comment", "simulated") if head[key]},
    )
    return ds


def add_raw_data(root: itstr.Node, truth: xr.Dataset, *, seed: int = 0, rows_per_block: int = 16) -> None:
    """Add a ``rawdata`` directory holding ``truth["counts"]`` (+ ``total``) as ion streams.

    Each ion gets a channel drawn as for event lists (:func:`tofsims.formats.events.draw_channels`);
    within a pixel the channels are in increasing order, as the detector records them.
    """
    rng = np.random.default_rng(seed)
    counts = truth["counts"].transpose("fragment", "scan", "y", "x").values
    n_frag, n_scans, ny, nx = counts.shape
    lows, highs = events.code_channels(truth)
    rest = events.rest_counts(truth)
    raw = root.dir("rawdata")
    block_id = 0
    for s in range(n_scans):
        raw.uint32(SCAN_BLOCK, s, id=s)
        per_code = np.concatenate([counts[:, s], rest[None, s]]).reshape(n_frag + 1, -1)  # (code, pixel)
        flat = np.ascontiguousarray(per_code.T)  # (pixel, code)
        pixel, code = np.nonzero(flat)
        reps = flat[pixel, code].astype(np.int64)
        pixel, code = np.repeat(pixel, reps), np.repeat(code, reps)
        tof = events.draw_channels(code, lows, highs, rng)
        order = np.lexsort((tof, pixel))
        pixel, tof = pixel[order], tof[order]
        n_per_pixel = np.bincount(pixel, minlength=ny * nx)
        start = 3 * np.arange(ny * nx) + np.concatenate([[0], np.cumsum(n_per_pixel)[:-1]])
        words = np.empty(3 * ny * nx + tof.size, np.uint32)
        is_ion = np.ones(words.size, bool)
        for k in range(3):
            is_ion[start + k] = False
        p = np.arange(ny * nx)
        words[start] = X_TAG | (p % nx)
        words[start + 1] = Y_TAG | (p // nx)
        words[start + 2] = ID_TAG | p
        words[is_ion] = tof
        cuts = start[::rows_per_block * nx][1:]
        for part in np.split(words, cuts):
            raw.leaf(DATA_BLOCK, zlib.compress(part.astype("<u4").tobytes(), 6), id=block_id, compressed=True)
            block_id += 1
