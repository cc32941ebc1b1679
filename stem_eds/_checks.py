"""Bounds checks run before RosettaSciIO parses an EDS container, so a corrupt file is refused
before it makes the reader allocate, loop or crash.

Written here because RosettaSciIO trusts the sizes a file declares: a Bruker ``.bcf`` whose SFS
tree address is wrong sends its reader through gigabytes of reads; an ``.hspy`` axis of size 2**31
makes HyperSpy build a 16 GB axis vector; a Velox channel count of 2**32 asks for a spectrum image
of that depth.  Every check compares a declared size with what the file can actually hold (its
byte size, its stored HDF5 chunks) or with the memory of the machine; none compares with a size
"expected" from another header field, so valid files that RosettaSciIO reads are not refused.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from .errors import EDSError

_SFS_MAGIC = b"AAMVHFSS"
_SFS_BASE = 0x118        # chunk k starts at 0x118 + k * chunk size (a 32-byte chunk header, then data)
_SFS_ITEM = 0x200        # one file-tree entry
_SFS_ITEM_FORMAT = "<iQQQQIi176s?3s256s32s"
#: Largest number of SFS tree entries accepted (Esprit writes a handful).
MAX_SFS_ITEMS = 100_000
#: Largest deflate ratio: zlib cannot expand a stream more than ~1032x.
MAX_DEFLATE_RATIO = 1100


def memory_budget() -> int:
    """Bytes one eager read may allocate for its counts: half the machine's physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 8 * 2**30
    return int(total) // 2


def _check_budget(path, what: str, nbytes: float) -> None:
    budget = memory_budget()
    if not math.isfinite(nbytes) or nbytes > budget:
        raise EDSError(f"{path}: {what} would need {nbytes / 2**30:.3g} GiB, more than the "
                       f"{budget / 2**30:.3g} GiB allowed for one read (corrupt sizes? or read it lazily)")


# --- Bruker .bcf (AidAim SFS container) ----------------------------------------------------------

def check_bcf_container(path) -> None:
    """Walk the SFS container of a ``.bcf`` the way RosettaSciIO will, checking every address.

    The header gives the chunk size (uint32 at 0x128) and the file tree's first chunk, entry count
    and the container's chunk count (uint32 at 0x140, 0x144, 0x148).  Each tree entry gives a file
    size and the chunk of its pointer table; each pointer is a chunk number.  Every chunk read must
    lie inside the file, every file must fit in the file's chunks, parents must form a tree.
    Written here because RosettaSciIO's compiled unpacker crashes the interpreter on a truncated
    file and its tree walk trusts the header (a zero tree address allocates gigabytes).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(0x150)
        if len(head) < 0x14C or head[:8] != _SFS_MAGIC:
            raise EDSError(f"{path}: not a Bruker BCF file (no SFS container header)")
        chunk = struct.unpack_from("<I", head, 0x128)[0]
        tree_at, n_items, n_declared = struct.unpack_from("<III", head, 0x140)
        if not (0x220 <= chunk <= 2**24):
            raise EDSError(f"{path}: corrupt BCF container header (chunk size {chunk})")
        usable = chunk - 32
        n_chunks = (size - _SFS_BASE) // chunk + (1 if (size - _SFS_BASE) % chunk else 0)

        declared_size = _SFS_BASE + chunk * n_declared

        def need(offset: int, length: int, what: str) -> None:
            if offset < 0 or offset + length > size:
                kind = "truncated BCF file" if offset + length <= declared_size else "corrupt BCF container"
                raise EDSError(f"{path}: {kind}: {what} needs bytes {offset}..{offset + length} "
                               f"but the file has {size}")

        def chunk_at(index: int, what: str) -> int:
            if not 0 <= index < n_chunks:
                if n_chunks <= index < n_declared:
                    raise EDSError(f"{path}: truncated BCF file ({size} of {declared_size} bytes): {what} "
                                   f"is in chunk {index}, beyond the end of the file")
                raise EDSError(f"{path}: corrupt BCF container: {what} points to chunk {index}, "
                               f"the file holds {n_chunks} chunks")
            return _SFS_BASE + index * chunk

        def chain(first: int, count: int, what: str, take: int) -> bytes:
            """``take`` bytes of each of ``count`` chunks linked by the next-chunk number in their headers."""
            out, index, seen = [], first, set()
            for _ in range(count):
                if index in seen:
                    raise EDSError(f"{path}: corrupt BCF container: {what} chunk chain loops")
                seen.add(index)
                start = chunk_at(index, what)
                need(start, 32, what)
                handle.seek(start)
                index = struct.unpack("<I", handle.read(4))[0]
                handle.seek(start + 32)
                out.append(handle.read(take))
            return b"".join(out)

        if not 1 <= n_items <= min(MAX_SFS_ITEMS, size // _SFS_ITEM):
            raise EDSError(f"{path}: corrupt BCF container: {n_items} file-tree entries in a {size}-byte file")
        tree_chunks = math.ceil(n_items * _SFS_ITEM / usable)
        if tree_chunks == 1:
            start = chunk_at(tree_at, "the file tree") + 32
            need(start, n_items * _SFS_ITEM, "the file tree")
            handle.seek(start)
            raw = handle.read(n_items * _SFS_ITEM)
        else:
            raw = chain(tree_at, tree_chunks, "the file tree", (usable // _SFS_ITEM) * _SFS_ITEM)
            if len(raw) < n_items * _SFS_ITEM:
                raise EDSError(f"{path}: truncated BCF container: the file tree is cut short")
        parents = []
        for i in range(n_items):
            entry = struct.unpack_from(_SFS_ITEM_FORMAT, raw, i * _SFS_ITEM)
            table_at, item_size, parent, is_dir = entry[0], entry[1], entry[6], entry[8]
            name = entry[10].split(b"\x00", 1)[0].decode("utf-8", "replace")
            parents.append(parent)
            if not -1 <= parent < n_items or parent == i:
                raise EDSError(f"{path}: corrupt BCF container: entry {name!r} has parent {parent}")
            if is_dir:
                continue
            if item_size > n_chunks * usable:
                raise EDSError(f"{path}: corrupt BCF container: {name!r} declares {item_size} bytes, "
                               f"more than the {size}-byte file holds")
            in_chunks = math.ceil(item_size / usable)
            if in_chunks == 0:
                raise EDSError(f"{path}: corrupt BCF container: {name!r} is empty")
            table_chunks = math.ceil(in_chunks / (usable // 4))
            if table_chunks > 1:
                table = chain(table_at, table_chunks, f"the pointer table of {name!r}", usable)
            else:
                start = chunk_at(table_at, f"the pointer table of {name!r}") + 32
                need(start, 4 * in_chunks, f"the pointer table of {name!r}")
                handle.seek(start)
                table = handle.read(4 * in_chunks)
            if len(table) < 4 * in_chunks:
                raise EDSError(f"{path}: truncated BCF container: the pointer table of {name!r} is cut short")
            pointers = np.frombuffer(table[: 4 * in_chunks], dtype="<u4")
            last = item_size - (in_chunks - 1) * usable
            for k, pointer in enumerate(pointers.tolist()):
                start = chunk_at(pointer, f"chunk {k} of {name!r}") + 32
                need(start, usable if k < in_chunks - 1 else last, f"chunk {k} of {name!r}")
            handle.seek(_SFS_BASE + int(pointers[0]) * chunk + 32)
            aacs, block, _, n_blocks = struct.unpack("<IIII", handle.read(16).ljust(16, b"\x00"))
            if aacs == 0x53434141:  # "AACS": zlib-compressed blocks
                if n_blocks * 16 > item_size or block * n_blocks > MAX_DEFLATE_RATIO * item_size:
                    raise EDSError(f"{path}: corrupt BCF container: {name!r} declares {n_blocks} compressed "
                                   f"blocks of {block} bytes in {item_size} bytes")
                _check_budget(path, f"{name!r} inflated", float(block))
        for i in range(n_items):  # parents must reach the root (-1) without a loop
            j, steps = i, 0
            while j != -1:
                j, steps = parents[j], steps + 1
                if steps > n_items:
                    raise EDSError(f"{path}: corrupt BCF container: the file tree has a loop")


def check_bcf_hypermap(path) -> None:
    """Check the spectrum image a ``.bcf`` header declares fits in memory (after the container check)."""
    from rsciio.bruker._api import BCF_reader

    reader = BCF_reader(str(path))
    header = reader.header
    height, width = int(header.image.height), int(header.image.width)
    if height < 1 or width < 1:
        raise EDSError(f"{path}: the BCF header declares a {width} x {height} pixel map")
    for index in reader.available_indexes:
        channels = int(header.spectra_data[index].data.size)
        depth = np.dtype(header.estimate_map_depth(index=index)).itemsize
        _check_budget(path, f"a {height} x {width} x {channels} spectrum image", float(height * width * channels * depth))


# --- HDF5 (.hspy, .emd) -------------------------------------------------------------------------

def _dataset_bounds(path, name: str, dset, eager: bool) -> None:
    """A dataset's declared size must be storable by the file and (eager) fit in memory."""
    nbytes = float(np.prod(dset.shape, dtype=float)) * dset.dtype.itemsize
    if eager:
        _check_budget(path, f"dataset {name!r} of shape {dset.shape}", nbytes)
    if nbytes > 64 * 2**20:
        stored = dset.id.get_storage_size()
        if nbytes > MAX_DEFLATE_RATIO * max(stored, 1):
            raise EDSError(f"{path}: dataset {name!r} declares shape {dset.shape} ({nbytes / 2**20:.0f} MiB) "
                           f"but the file stores {stored} bytes of it")


def check_hspy(path, eager: bool = True) -> None:
    """Every signal of an ``.hspy`` file: axes agree with the data, sizes are storable and fit."""
    import h5py

    with h5py.File(path, "r") as h5:
        experiments = h5.get("Experiments")
        if experiments is None or not isinstance(experiments, h5py.Group):
            raise EDSError(f"{path}: no 'Experiments' group: not a HyperSpy file")
        for title, group in experiments.items():
            if not isinstance(group, h5py.Group) or "data" not in group:
                continue
            data = group["data"]
            if not isinstance(data, h5py.Dataset):
                raise EDSError(f"{path}: signal {title!r}: 'data' is not a dataset")
            if data.dtype.kind not in "uifb":
                raise EDSError(f"{path}: signal {title!r}: data of type {data.dtype} are not counts")
            axes = sorted((k for k in group if k.startswith("axis-")), key=lambda k: int(k[5:]) if k[5:].isdigit() else -1)
            if len(axes) != data.ndim:
                raise EDSError(f"{path}: signal {title!r}: {len(axes)} axes for data of {data.ndim} dimensions {data.shape}")
            for dim, key in enumerate(axes):
                attrs = group[key].attrs
                axis_size = attrs.get("size")
                if axis_size is not None:
                    try:
                        ok = int(axis_size) == data.shape[dim]
                    except (TypeError, ValueError, OverflowError):
                        ok = False
                    if not ok:
                        shown = axis_size.item() if hasattr(axis_size, "item") else axis_size
                        raise EDSError(f"{path}: signal {title!r}: {key} has size {shown!r} but the data "
                                       f"have {data.shape[dim]} along that dimension {data.shape}")
                for field in ("scale", "offset"):
                    value = attrs.get(field)
                    if value is not None:
                        try:
                            finite = math.isfinite(float(value))
                        except (TypeError, ValueError, OverflowError):
                            finite = False
                        if not finite:
                            shown = value.item() if hasattr(value, "item") else value
                            raise EDSError(f"{path}: signal {title!r}: {key} {field} is {shown!r}")
                if attrs.get("scale") is not None and float(attrs["scale"]) == 0 and data.shape[dim] > 1:
                    raise EDSError(f"{path}: signal {title!r}: {key} scale is 0")
            _dataset_bounds(path, f"{title}/data", data, eager)


def _json_of(value) -> dict:
    """A Velox JSON blob (bytes, a bytes array or a uint8 array) as a dict."""
    if isinstance(value, (bytes, np.bytes_)):
        blob = bytes(value)
    else:
        raw = np.asarray(value)
        blob = raw.tobytes() if raw.dtype.kind in "uiS" else str(raw).encode()
    return json.loads(blob.rstrip(b"\x00").decode("utf-8", "replace"))


def check_emd(path, eager: bool = True, sum_frames: bool = True) -> None:
    """Every dataset of an ``.emd`` is storable (and fits, eager); Velox spectrum streams declare
    a sane channel count and their spectrum image fits in memory."""
    import h5py

    with h5py.File(path, "r") as h5:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                _dataset_bounds(path, name, obj, eager)
        h5.visititems(visit)
        streams = h5.get("Data/SpectrumStream")
        if not isinstance(streams, h5py.Group):
            return
        pixels = 1
        for group_name in ("Image", "SpectrumImage"):
            images = h5.get(f"Data/{group_name}")
            if isinstance(images, h5py.Group):
                for key in images:
                    data = images[key].get("Data") if isinstance(images[key], h5py.Group) else None
                    if isinstance(data, h5py.Dataset) and data.ndim >= 2:
                        pixels = max(pixels, int(data.shape[0]) * int(data.shape[1]))
        frames = 1
        if not sum_frames:
            try:
                settings = h5["Data/SpectrumImage"]
                first = settings[next(iter(settings))]["SpectrumImageSettings"]
                frames = int(_json_of(first[0] if first.ndim else first)["endFramePosition"])
            except Exception:  # noqa: BLE001 - RosettaSciIO then counts frames in the stream itself
                frames = 1
        for key in streams:
            group = streams[key]
            if not isinstance(group, h5py.Group) or "AcquisitionSettings" not in group:
                continue
            try:
                settings = _json_of(group["AcquisitionSettings"][0])
                bins = int(settings["bincount"])
            except (KeyError, ValueError, TypeError, IndexError, OverflowError):
                raise EDSError(f"{path}: spectrum stream {key}: no readable channel count (bincount)") from None
            try:
                itemsize = np.dtype(str(settings.get("StreamEncoding", "uint16"))).itemsize
            except TypeError:
                itemsize = 8
            if not 16 <= bins <= 65536:
                raise EDSError(f"{path}: spectrum stream {key}: {bins} channels is not an EDS spectrum")
            if eager:
                _check_budget(path, f"a {pixels}-pixel x {bins}-channel x {frames}-frame spectrum image",
                              float(pixels) * bins * max(frames, 1) * itemsize)
