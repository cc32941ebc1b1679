"""Row-block iteration shared by the window and model extractors: bounded memory, one progress bar.

A spectrum image (numpy or dask) is processed a block of rows at a time: each block is
materialised once (for dask: one row of chunks), turned to float, reduced along ``energy`` and
dropped. Peak memory is therefore about one block, whatever the file size.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from tqdm import tqdm

try:  # small per-batch matrix products run fastest single-threaded (no BLAS thread oversubscription)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scipy's usual installs
    threadpool_limits = None

#: Target size of one materialised block of rows (bytes, numpy input; dask input uses its row chunks).
BLOCK_BYTES = 64 * 2**20
#: Size of one float batch of spectra handed to the reducing function (bytes).
BATCH_BYTES = 4 * 2**20


def _row_step(data, channels: int) -> int:
    chunks = getattr(data, "chunks", None)
    if chunks is not None and data.ndim > 1:
        return max(1, int(chunks[0][0]))
    row_bytes = max(1, int(np.prod(data.shape[1:-1], dtype=np.int64)) * channels * 8)
    return max(1, BLOCK_BYTES // row_bytes)


def reduce_spectra(data, func, n_out: int, channels: slice | None = None, progress: bool = False,
                   desc: str = "spectra", as_float: bool = True) -> np.ndarray:
    """Apply ``func(block2d) -> (n_spectra, n_out)`` over all spectra of ``data`` (..., energy).

    ``channels`` restricts what is materialised to the energy channels ``func`` needs; with
    ``as_float=False`` ``func`` receives the counts in their stored dtype (and converts only
    the channels it uses).
    Returns an array of shape ``data.shape[:-1] + (n_out,)``.
    """
    channels = channels or slice(None)
    n_ch = len(range(*channels.indices(data.shape[-1])))
    lead = data.shape[:-1]
    out = np.empty(lead + (n_out,), dtype=float)
    if data.ndim == 1:
        spectrum = np.asarray(data[channels])
        out[:] = func((spectrum.astype(float) if as_float else spectrum)[None, :])[0]
        return out
    step = _row_step(data, n_ch)
    starts = range(0, lead[0], step)
    batch = max(1, BATCH_BYTES // (8 * n_ch))
    with threadpool_limits(1) if threadpool_limits else nullcontext():
        _loop(data, func, out, starts, step, channels, n_ch, n_out, batch, as_float, progress, desc)
    return out


def _loop(data, func, out, starts, step, channels, n_ch, n_out, batch, as_float, progress, desc) -> None:
    for start in tqdm(starts, desc=desc, unit="block", disable=not progress or len(starts) < 2):
        rows = data[start:start + step]
        # Whole rows of chunks are read (HDF5 stores full spectra per chunk anyway) and the
        # channels taken as a view, so no second copy of the block is made.
        # One row of chunks needs no thread pool (and no per-thread malloc arenas).
        block = np.asarray(rows.compute(scheduler="synchronous") if hasattr(rows, "compute") else rows)[..., channels]
        flat = block.reshape(-1, n_ch)
        result = np.empty((flat.shape[0], n_out))
        # Float conversion a batch of spectra at a time keeps the extra memory small and in cache.
        for i in range(0, flat.shape[0], batch):
            part = flat[i:i + batch]
            result[i:i + batch] = func(part.astype(float) if as_float else part)
        out[start:start + step] = result.reshape(block.shape[:-1] + (n_out,))


def sum_spectrum(data, max_blocks: int | None = 4) -> np.ndarray:
    """Sum of all spectra (..., energy), one row block at a time.

    For dask input with more than ``max_blocks`` row blocks, an evenly strided subset of
    ``max_blocks`` blocks is summed and scaled to the full count: enough counts to set fit
    weights, resolution and background degree, for a fraction of a second full pass over the
    file (so a lazy fit of a large file can differ from the eager one in the last digits).
    """
    if data.ndim == 1:
        return np.asarray(data, dtype=float)
    if not hasattr(data, "dask"):
        return np.asarray(data, dtype=np.float64).sum(axis=tuple(range(data.ndim - 1))) if data.dtype.kind == "f" \
            else data.reshape(-1, data.shape[-1]).sum(axis=0, dtype=np.int64).astype(float)
    step = _row_step(data, data.shape[-1])
    starts = list(range(0, data.shape[0], step))
    chosen = starts if max_blocks is None or len(starts) <= max_blocks else \
        [starts[int(i)] for i in np.linspace(0, len(starts) - 1, max_blocks).round()]
    total = np.zeros(data.shape[-1])
    rows = 0
    for start in dict.fromkeys(chosen):
        block = np.asarray(data[start:start + step].compute(scheduler="synchronous"))
        total += block.reshape(-1, data.shape[-1]).sum(axis=0, dtype=np.float64)
        rows += block.shape[0]
    return total * (data.shape[0] / rows)
