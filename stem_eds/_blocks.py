"""Row-block iteration shared by the window and model extractors: bounded memory, one progress bar.

A spectrum image (numpy, dask, or a dask array that is a plain view of an HDF5 dataset) is
processed a block of rows at a time, and of each block only the energy channels the reduction
needs (a few contiguous channel ranges) are ever touched:

- numpy: the block is a view; nothing is copied but the float batches.
- dask over an HDF5 dataset (what RosettaSciIO's lazy ``.hspy`` reader gives): read by h5py
  directly, one row of chunks at a time into buffers reused for every block; chunks holding
  whole spectra with no filter but byte-shuffle are read raw and decoded here (``_RawChunks``),
  anything else as an HDF5 hyperslab of the needed channels. Written by hand because going
  through dask costs a task graph per block and HDF5's own shuffle decoding copies each chunk
  several times (measured on a 256 x 256 x 2048 uint16 cube: ~2.5x a row of chunks of extra
  memory and ~0.3-0.6 GB/s, against ~1.6x and >1 GB/s here; see ``benchmarks/bench_eds.py``).
- any other dask array: one row of chunks is computed (synchronously) at a time.

Every pass sees every spectrum whatever the storage, so lazy and eager results agree: integer
sums are exact, and the per-spectrum matrix products differ at most by float rounding.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from tqdm import tqdm

try:  # small per-batch matrix products run fastest single-threaded (no BLAS thread oversubscription)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scipy's usual installs
    threadpool_limits = None

#: Target size of one block of rows (bytes of all channels in the stored dtype) for numpy input.
BLOCK_BYTES = 16 * 2**20
#: Size of one float batch of spectra handed to the reducing function (bytes).
BATCH_BYTES = 2 * 2**20


def hdf5_source(data):
    """The h5py ``Dataset`` a dask array is a plain, whole view of, else None.

    True for ``dask.array.from_array(dataset)`` (a graph of exactly the original-array layer and
    its getter layer) with the same shape and dtype; any later operation (slicing, binning,
    casting) adds a layer and the generic dask path is used instead.
    """
    graph = getattr(data, "dask", None)
    if graph is None or not hasattr(graph, "layers") or len(graph.layers) != 2:
        return None
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a RosettaSciIO dependency
        return None
    for name, layer in graph.layers.items():
        if name == data.name:
            continue
        values = list(layer.values()) if hasattr(layer, "values") and len(layer) == 1 else []
        if values and isinstance(values[0], h5py.Dataset):
            dset = values[0]
            if dset.shape == data.shape and dset.dtype == data.dtype and dset.id.valid:
                return dset
    return None


def _row_step(data, dset=None) -> int:
    if dset is not None and dset.chunks is not None:
        return max(1, int(dset.chunks[0]))
    chunks = getattr(data, "chunks", None)
    if dset is None and chunks is not None and not isinstance(data, np.ndarray) and data.ndim > 1:
        return max(1, int(chunks[0][0]))
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize)
    return max(1, BLOCK_BYTES // row_bytes)


def iter_blocks(data, ranges, progress: bool = False, desc: str = "spectra"):
    """Yield ``(start, stop, parts)`` per block of rows of ``data`` (..., energy).

    ``parts`` holds one 2-D array (spectra, channels) in the stored dtype per channel range
    ``(a, b)`` of ``ranges``. The arrays may be reused buffers: use them before the next block.
    """
    ranges = [(int(a), int(b)) for a, b in ranges]
    if data.ndim == 1:
        spectrum = np.asarray(data)
        yield 0, 1, [spectrum[a:b][None, :] for a, b in ranges]
        return
    dset = hdf5_source(data)
    n_rows = data.shape[0]
    step = _row_step(data, dset)
    starts = range(0, n_rows, step)
    bar = tqdm(starts, desc=desc, unit="block", disable=not progress or len(starts) < 2)
    raw = _RawChunks.open(dset, ranges) if dset is not None else None
    if raw is not None:
        for start in bar:
            stop = min(start + step, n_rows)
            parts = raw.read(start, stop)
            if parts is None:  # a chunk HDF5 must decode itself (unallocated, partly filtered)
                parts = _hyperslab(dset, start, stop, ranges)
            yield start, stop, parts
        return
    if dset is not None:
        middle = data.shape[1:-1]
        buffers = [np.empty((min(step, n_rows),) + middle + (b - a,), dtype=dset.dtype) for a, b in ranges]
        ellipsis = (slice(None),) * len(middle)
        for start in bar:
            stop = min(start + step, n_rows)
            parts = []
            for (a, b), buf in zip(ranges, buffers):
                view = buf[:stop - start]
                if b > a:
                    dset.read_direct(buf, np.s_[(slice(start, stop),) + ellipsis + (slice(a, b),)],
                                     np.s_[(slice(0, stop - start),) + ellipsis + (slice(None),)])
                parts.append(view.reshape(-1, b - a))
            yield start, stop, parts
        return
    lo, hi = min(a for a, _ in ranges), max(b for _, b in ranges)
    for start in bar:
        stop = min(start + step, n_rows)
        rows = data[start:stop, ..., lo:hi]
        # One row of chunks needs no thread pool (and no per-thread malloc arenas).
        block = np.asarray(rows.compute(scheduler="synchronous") if hasattr(rows, "compute") else rows)
        yield start, stop, [block[..., a - lo:b - lo].reshape(-1, b - a) for a, b in ranges]


def _hyperslab(dset, start, stop, ranges):
    middle = (slice(None),) * (dset.ndim - 2)
    return [dset[(slice(start, stop),) + middle + (slice(a, b),)].reshape(-1, b - a) for a, b in ranges]


class _RawChunks:
    """Rows of an HDF5 dataset chunked by whole rows, read as raw chunks and decoded here.

    Written by hand because HDF5 decodes its byte-shuffle filter (which RosettaSciIO always
    sets, even without compression) a whole chunk at a time into its own buffers before
    copying the selection out: ~3x a chunk of transient memory and ~1 GB/s. A chunk that
    holds whole spectra is read undecoded (h5py ``read_direct_chunk``, one read into a reused
    buffer) and the shuffle (byte ``j`` of every value stored in plane ``j``) is undone only
    on the channels needed. Used only for chunks with no filter but shuffle.
    """

    def __init__(self, dset, ranges, shuffle: bool):
        self.dset, self.ranges, self.shuffle = dset, ranges, shuffle
        self.rows = int(dset.chunks[0])
        self.spectra_per_row = int(np.prod(dset.shape[1:-1], dtype=np.int64))
        self.channels = int(dset.shape[-1])
        self.itemsize = dset.dtype.itemsize
        self.nbytes = self.rows * self.spectra_per_row * self.channels * self.itemsize
        self.raw = np.empty(self.nbytes, dtype=np.uint8)
        self.out = [np.empty((self.rows * self.spectra_per_row, b - a), dtype=dset.dtype) for a, b in ranges] \
            if shuffle else None
        # One reused buffer for the third and later shifted byte planes (fresh temporaries
        # would page-fault every block); 16-bit counts need none.
        widest = max((b - a for a, b in ranges), default=0)
        self.scratch = np.empty(self.rows * self.spectra_per_row * widest, dtype=f"u{self.itemsize}") \
            if shuffle and self.itemsize > 2 else None

    @classmethod
    def open(cls, dset, ranges):
        chunks = dset.chunks
        if chunks is None or tuple(chunks[1:]) != tuple(dset.shape[1:]) or dset.dtype.byteorder == ">" \
                or dset.dtype.kind not in "iuf" or not hasattr(dset.id, "read_direct_chunk"):
            return None
        plist = dset.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        if any(f != 2 for f in filters):  # 2 = H5Z_FILTER_SHUFFLE; anything else (gzip...) HDF5 decodes
            return None
        return cls(dset, ranges, shuffle=bool(filters))

    def read(self, start: int, stop: int):
        offsets = (start,) + (0,) * (self.dset.ndim - 1)
        try:
            info = self.dset.id.get_chunk_info_by_coord(offsets)
            if info.size != self.nbytes or info.filter_mask != 0:
                return None
            self.dset.id.read_direct_chunk(offsets, out=self.raw)
        except (KeyError, ValueError, RuntimeError, OSError):
            return None
        n = (stop - start) * self.spectra_per_row
        if not self.shuffle:
            spectra = self.raw.view(self.dset.dtype).reshape(-1, self.channels)[:n]
            return [spectra[:, a:b] for a, b in self.ranges]
        planes = self.raw.reshape(self.itemsize, -1, self.channels)
        parts = []
        for (a, b), out in zip(self.ranges, self.out):
            if self.itemsize == 1:
                parts.append(planes[0, :n, a:b])
                continue
            # value = sum_j byte_j << 8j on the unsigned view (little-endian planes; shifts and
            # ORs run ~10x faster than interleaving the bytes with strided copies). High planes
            # that are all zero (counts below 256) are skipped.
            target = out[:n].view(f"u{self.itemsize}")
            high = [j for j in range(1, self.itemsize) if planes[j, :n, a:b].any()]
            if not high:
                np.copyto(target, planes[0, :n, a:b])
            else:
                np.left_shift(planes[high[0], :n, a:b], 8 * high[0], out=target, dtype=target.dtype)
                for j in high[1:]:
                    scratch = self.scratch[:target.size].reshape(target.shape)
                    np.left_shift(planes[j, :n, a:b], 8 * j, out=scratch, dtype=target.dtype)
                    target |= scratch
                np.bitwise_or(target, planes[0, :n, a:b], out=target)
            parts.append(out[:n])
        return parts


def reduce_spectra(data, func, n_out: int, ranges, progress: bool = False, desc: str = "spectra") -> np.ndarray:
    """Apply ``func(parts) -> (n_spectra, n_out)`` over all spectra of ``data`` (..., energy).

    ``parts`` is a list of float64 arrays (spectra, channels), one per channel range ``(a, b)``
    of ``ranges``, for a batch of at most ``BATCH_BYTES`` of spectra (the counts are converted to
    float a batch at a time, so the conversion stays small and in cache).
    Returns an array of shape ``data.shape[:-1] + (n_out,)``.
    """
    lead = data.shape[:-1]
    out = np.empty((int(np.prod(lead, dtype=np.int64)), n_out), dtype=float)
    n_ch = max(1, sum(b - a for a, b in ranges))
    batch = max(1, BATCH_BYTES // (8 * n_ch))
    row_size = int(np.prod(lead[1:], dtype=np.int64)) if len(lead) > 1 else 1
    buffers = [np.empty((batch, b - a)) for a, b in ranges]
    with threadpool_limits(1) if threadpool_limits else nullcontext():
        for start, _, parts in iter_blocks(data, ranges, progress, desc):
            offset = start * row_size
            n = parts[0].shape[0]
            for i in range(0, n, batch):
                m = min(batch, n - i)
                # Converted into reused buffers: a fresh array per batch would page-fault anew.
                floats = [buf[:m] for buf in buffers]
                for f, p in zip(floats, parts):
                    np.copyto(f, p[i:i + m], casting="unsafe")
                out[offset + i:offset + i + m] = func(floats)
    return out.reshape(lead + (n_out,))


def sum_spectrum(data, ranges) -> list[np.ndarray]:
    """Sum of all spectra of ``data`` (..., energy) over each channel range, one row block at a time.

    Integer counts are summed exactly (int64), so the sum (and the fit weights derived from it)
    is identical for eager and lazy input; float counts are summed in float64.
    """
    acc = np.int64 if np.issubdtype(data.dtype, np.integer) else np.float64
    totals = [np.zeros(b - a, dtype=acc) for a, b in ranges]
    for _, _, parts in iter_blocks(data, ranges):
        for total, part in zip(totals, parts):
            total += part.sum(axis=0, dtype=acc)
    return [t.astype(float) for t in totals]
