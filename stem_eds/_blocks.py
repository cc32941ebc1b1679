"""Row-block iteration shared by the window and model extractors: bounded memory, one progress bar.

A spectrum image (numpy or dask) is processed a block of rows at a time: each block is
materialised once (for dask: one row of chunks), turned to float, reduced along ``energy`` and
dropped. Peak memory is therefore about one block, whatever the file size.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

#: Target size of one materialised float block (bytes).
BLOCK_BYTES = 64 * 2**20


def _row_step(data, channels: int) -> int:
    chunks = getattr(data, "chunks", None)
    if chunks is not None and data.ndim > 1:
        return max(1, int(chunks[0][0]))
    row_bytes = max(1, int(np.prod(data.shape[1:-1], dtype=np.int64)) * channels * 8)
    return max(1, BLOCK_BYTES // row_bytes)


def reduce_spectra(data, func, n_out: int, channels: slice | None = None, progress: bool = False,
                   desc: str = "spectra") -> np.ndarray:
    """Apply ``func(block2d) -> (n_spectra, n_out)`` over all spectra of ``data`` (..., energy).

    ``channels`` restricts what is materialised to the energy channels ``func`` needs.
    Returns an array of shape ``data.shape[:-1] + (n_out,)``.
    """
    channels = channels or slice(None)
    n_ch = len(range(*channels.indices(data.shape[-1])))
    lead = data.shape[:-1]
    out = np.empty(lead + (n_out,), dtype=float)
    if data.ndim == 1:
        out[:] = func(np.asarray(data[channels], dtype=float)[None, :])[0]
        return out
    step = _row_step(data, n_ch)
    starts = range(0, lead[0], step)
    for start in tqdm(starts, desc=desc, unit="block", disable=not progress or len(starts) < 2):
        block = data[start:start + step, ..., channels]
        block = np.asarray(block.compute() if hasattr(block, "compute") else block)
        flat = block.reshape(-1, n_ch).astype(float, copy=False)
        out[start:start + step] = func(flat).reshape(block.shape[:-1] + (n_out,))
    return out
