"""IONTOF ITA/ITM images and spectra: what the ITStr blocks mean (read and write).

Paths (as pySPM and IONTOF SurfaceLab <= 6 use them)::

    Meta/SI Image/{res_x, res_y, fieldofview (m), intensdata (zlib float32 total image)}
    MassIntervalList/mi[k]/{id, assign, desc, SN, cmass, lmass, umass}
    filterdata/TofCorrection/ImageStack/Reduced Data/
        NumberOfScans
        ImageStackScans/{Image.XSize, Image.YSize, Image.NumberOfImages, Image.NumberOfScans}
        ImageStackScans/Image[k]/ImageArray.Long[scan]        zlib uint32 (y, x)
        ImageStackScansAdded/Image[k]/ImageArray.Long         zlib uint32 (y, x), sum over scans
    filterdata/TofCorrection/Spectrum/Reduced Data/
        IMassScaleSFK0/{sf, k0}
        IITFSpecArray/CorrectedData                           zlib float32, one value per 2 channels
    MassScale/{sf, k0}
    propstart/<key>, propend/<key>                            key-value records

Image ``k`` belongs to the mass interval whose ``id`` is ``k``; id 0 is the total-ion image and
id 1 the "sum of the rest" (counts outside every interval); fragments start at id 2.

Properties read from ``propend`` (``propstart`` as fallback): ``Instrument.Analyzer_Polarity_Switch``
(polarity), ``Registration.Raster.ShotsPerPixel``, ``Registration.TimeResolution`` (channel width,
s), ``Analysis.SputterTime`` or ``Measurement.SputterTime`` (total sputter time, s),
``Instrument.LMIG.Species`` (primary ion). Two keys are this project's own (IONTOF files do not
carry them; our simulator writes them): ``Analysis.DeadTimeCorrection`` (0/1) and
``Analysis.SampleName``.

Files without per-scan stacks: an ITM file's ``rawdata`` ion streams are histogrammed into the
cube (:mod:`tofsims.formats.itm`); otherwise the summed images are read as one scan.

Scan ``i`` of an interleaved depth profile is recorded after ``i`` sputter cycles, so its
``sputter_time`` coordinate is ``i * total / n_scans`` (the first scan sees the pristine surface).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import xarray as xr
from tqdm import tqdm

from ..errors import ToFSIMSError
from . import _iontof, itm, itstr
from ._cube import make_cube
from ._iontof import (  # noqa: F401  header, peak_list and the paths stay importable from here
    ADDED, FIRST_FRAGMENT_ID, IMAGES, MAX_SCANS, MAX_SIDE, REST_ID, SCANS, SPECTRUM, TOTAL_ID, header, peak_list,
)

ZLIB_MAX_RATIO = 1040  # deflate cannot compress better than ~1032:1
LAZY_BYTES = 1 << 30  # cubes above 1 GiB come back as lazy dask arrays


def _scan_leaves(f: itstr.ITStrFile, image_id: int, n_pixels_bytes: int) -> list[itstr.Entry]:
    """The per-scan leaves of image ``image_id`` ordered by scan, each checked for plausibility."""
    block = f.find(f"{SCANS}/Image[{image_id}]")
    if block is None:
        raise ToFSIMSError(f"{f.path}: no per-scan images for mass interval {image_id} ({SCANS}/Image[{image_id}])")
    leaves = sorted((e for e in f.children(block) if e.name == "ImageArray.Long"), key=lambda e: e.id)
    for e in leaves:
        if e.length * ZLIB_MAX_RATIO < n_pixels_bytes:
            raise ToFSIMSError(
                f"{f.path}: absurd image size: a {n_pixels_bytes}-byte image cannot be stored in "
                f"{e.length} compressed bytes (scan {e.id} of image {image_id})"
            )
    return leaves


def _load_leaf(path: str, offset: int, length: int, nbytes: int, shape) -> np.ndarray:
    """Read and inflate one image leaf with plain reads (used by the lazy dask path)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        head = handle.read(itstr.HEADER.size)
        name_len = struct.unpack_from("<I", head, 5)[0]
        handle.seek(offset + itstr.HEADER.size + name_len)
        data = handle.read(length)
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, nbytes)
    if len(out) != nbytes or inflater.unconsumed_tail:
        raise ToFSIMSError(f"{path}: image leaf at offset {offset} does not inflate to {nbytes} bytes")
    return np.frombuffer(out, "<u4").reshape(shape).astype(np.uint32, copy=False)


def _inflate_into(f: itstr.ITStrFile, entry: itstr.Entry, out: np.ndarray) -> None:
    block = f.block_at(entry.offset)
    data = f.decompress(block, out.nbytes)
    out[...] = np.frombuffer(data, "<u4").reshape(out.shape)


def _inflate_all(f: itstr.ITStrFile, jobs, workers: int | None, progress: bool = False) -> None:
    """Inflate ``[(out, entry)]``; zlib releases the GIL, so a few threads share the work."""
    workers = min(4, os.cpu_count() or 1) if workers is None else max(int(workers), 1)
    bar = tqdm(total=len(jobs), desc="ITA images", unit="img", disable=not progress, leave=False)
    if workers == 1 or len(jobs) < 4:
        for out, entry in jobs:
            _inflate_into(f, entry, out)
            bar.update()
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda job: _inflate_into(f, job[1], job[0]), jobs):
                bar.update()
    bar.close()


def read_stack(path, fragment, scans=None, *, workers: int | None = None) -> np.ndarray:
    """Per-scan images of one fragment as a uint32 array (scan, y, x).

    ``fragment`` is a name from the peak list ("BO-"), ``"total"``, or an interval id (int).

    Examples
    --------
    >>> stack = read_stack("depth.ita", "BO-")                            # doctest: +SKIP
    >>> stack.shape                                                        # doctest: +SKIP
    (50, 128, 128)
    """
    with itstr.ITStrFile(path) as f:
        head = header(f)
        image_id = _image_id(f, fragment)
        ny, nx = head["ny"], head["nx"]
        if f.find(f"{SCANS}/Image[{image_id}]") is None and f.find("rawdata") is not None:
            # an ITM file: histogram its raw events
            names = {p["id"]: p["name"] for p in peak_list(f)}
            if image_id != TOTAL_ID and image_id not in names:
                raise ToFSIMSError(f"{f.path}: no mass interval with id {image_id}")
            cube = itm.read(path, fragments=None if image_id == TOTAL_ID else [names[image_id]])
            stack = cube["total"] if image_id == TOTAL_ID else cube["counts"][0]
            return np.ascontiguousarray(stack.values if scans is None else stack.values[np.atleast_1d(scans)])
        leaves = _scan_leaves(f, image_id, ny * nx * 4)
        if scans is not None:
            leaves = [leaves[i] for i in np.atleast_1d(scans)]
        out = np.empty((len(leaves), ny, nx), np.uint32)
        _inflate_all(f, [(out[i], entry) for i, entry in enumerate(leaves)], workers)
        return out


def _image_id(f: itstr.ITStrFile, fragment) -> int:
    if isinstance(fragment, (int, np.integer)):
        return int(fragment)
    if str(fragment).lower() == "total":
        return TOTAL_ID
    peaks = peak_list(f)
    for peak in peaks:
        if fragment in (peak["name"], peak["assign"], peak["desc"]):
            return peak["id"]
    names = ", ".join(p["name"] for p in peaks if p["id"] >= FIRST_FRAGMENT_ID)
    raise ToFSIMSError(f"{f.path}: no fragment {fragment!r} in the peak list (have: {names})")


def read(path, fragments=None, scans=None, *, lazy: bool | None = None, progress: bool = False,
         workers: int | None = None) -> xr.Dataset:
    """Read an ITA file's per-scan fragment images as ``counts`` (fragment, scan, y, x).

    Parameters
    ----------
    path : path-like
        ``.ita`` / ``.itm`` file (opened read-only).
    fragments : list of str, optional
        Fragment names from the file's peak list; all by default.
    scans : slice or sequence of int, optional
        Scans to read; all by default.
    lazy : bool, optional
        Return a dask array read block by block (default: only when the cube exceeds 1 GiB).
    progress : bool
        Show a tqdm bar over the images read.
    workers : int, optional
        Threads inflating images (zlib releases the GIL); default min(4, CPUs).

    Returns
    -------
    xarray.Dataset
        ``counts`` uint32 (fragment, scan, y, x), ``total`` uint32 (scan, y, x) when the file has
        the total-ion image, coords and attrs as in the ToF-SIMS data contract.

    Examples
    --------
    >>> ds = read("depth.ita", fragments=["BO-", "MnO-"])                 # doctest: +SKIP
    >>> ds["counts"].sel(fragment="BO-").sum("scan")                      # doctest: +SKIP
    """
    with itstr.ITStrFile(path) as f:
        head = header(f)
        peaks = [p for p in peak_list(f) if p["id"] >= FIRST_FRAGMENT_ID]
        if fragments is None:
            chosen = peaks
        else:
            by_name = {}
            for p in peaks:
                by_name.setdefault(p["name"], p)
            missing = [fr for fr in fragments if fr not in by_name]
            if missing:
                have = ", ".join(by_name) or "none"
                raise ToFSIMSError(f"{f.path}: fragments {missing} not in the peak list (have: {have})")
            chosen = [by_name[fr] for fr in fragments]
        if not chosen:
            raise ToFSIMSError(f"{f.path}: the peak list has no fragment intervals (only total/rest)")
        ny, nx = head["ny"], head["nx"]
        if f.find(f"{SCANS}/Image[{chosen[0]['id']}]") is None:
            if f.find("rawdata") is not None:  # an ITM file: build the cube from its raw events
                return itm.read(path, fragments=[p["name"] for p in chosen], progress=progress)
            if f.find(f"{ADDED}/Image[{chosen[0]['id']}]"):
                return _read_added(f, path, head, chosen)
        has_total = f.find(f"{SCANS}/Image[{TOTAL_ID}]") is not None
        ids = [p["id"] for p in chosen] + ([TOTAL_ID] if has_total else [])
        leaves = {i: _scan_leaves(f, i, ny * nx * 4) for i in ids}
        n_file_scans = head["n_scans"] or (len(leaves[ids[0]]) if ids else 0)
        for i, ls in leaves.items():
            if len(ls) != n_file_scans:
                raise ToFSIMSError(
                    f"{f.path}: image {i} has {len(ls)} scans, the file says {n_file_scans} (truncated?)"
                )
        scan_index = np.arange(n_file_scans)
        if scans is not None:
            scan_index = scan_index[scans] if isinstance(scans, slice) else np.asarray(scans, dtype=int)
            if scan_index.size and (scan_index.min() < 0 or scan_index.max() >= n_file_scans):
                raise ToFSIMSError(f"{f.path}: scans {scans} outside 0..{n_file_scans - 1}")
        shape = (len(chosen), len(scan_index), ny, nx)
        nbytes = int(np.prod(shape, dtype=np.int64)) * 4
        if lazy is None:
            lazy = nbytes > LAZY_BYTES
        if lazy:
            counts = _lazy_cube(f, [leaves[p["id"]] for p in chosen], scan_index, (ny, nx))
            total = _lazy_cube(f, [leaves[TOTAL_ID]], scan_index, (ny, nx))[0] if has_total else None
        else:
            counts = np.empty(shape, np.uint32)
            total = np.empty(shape[1:], np.uint32) if has_total else None
            jobs = [(counts[k, j], leaves[p["id"]][s]) for k, p in enumerate(chosen) for j, s in enumerate(scan_index)]
            if has_total:
                jobs += [(total[j], leaves[TOTAL_ID][s]) for j, s in enumerate(scan_index)]
            _inflate_all(f, jobs, workers, progress)
        return _dataset(path, head, chosen, scan_index, n_file_scans, counts, total)


def _read_added(f: itstr.ITStrFile, path, head: dict, chosen: list) -> xr.Dataset:
    """Files without per-scan stacks: the summed images as a single "scan" (attr ``scans_summed``)."""
    ny, nx = head["ny"], head["nx"]
    counts = np.empty((len(chosen), 1, ny, nx), np.uint32)
    for k, peak in enumerate(chosen):
        block = f.find(f"{ADDED}/Image[{peak['id']}]/ImageArray.Long")
        if block is None:
            raise ToFSIMSError(f"{f.path}: no image for mass interval {peak['name']!r}")
        if block.length * ZLIB_MAX_RATIO < ny * nx * 4:
            raise ToFSIMSError(f"{f.path}: absurd image size {nx} x {ny} for {block.length} stored bytes")
        counts[k, 0] = np.frombuffer(f.decompress(block, ny * nx * 4), "<u4").reshape(ny, nx)
    total_block = f.find(f"{ADDED}/Image[{TOTAL_ID}]/ImageArray.Long")
    total = None
    if total_block is not None:
        total = np.frombuffer(f.decompress(total_block, ny * nx * 4), "<u4").reshape(1, ny, nx).copy()
    ds = _dataset(path, head, chosen, np.arange(1), 1, counts, total)
    ds.attrs["scans_summed"] = int(head["n_scans"] or 0)
    return ds


def _lazy_cube(f, leaf_lists, scan_index, shape):
    import dask
    import dask.array as da

    nbytes = shape[0] * shape[1] * 4
    load = dask.delayed(_load_leaf, pure=True)
    rows = []
    for leaves in leaf_lists:
        images = [
            da.from_delayed(
                load(str(f.path), leaves[s].offset, leaves[s].length, nbytes, shape), shape=shape, dtype=np.uint32
            )
            for s in scan_index
        ]
        rows.append(da.stack(images))
    return da.stack(rows)


def _dataset(path, head, chosen, scan_index, n_file_scans, counts, total) -> xr.Dataset:
    return make_cube(
        path, counts, [p["name"] for p in chosen], file_format="IONTOF ITA (ITStr)", total=total,
        fragment_mass=[p["cmass"] for p in chosen], mass_low=[p["lmass"] for p in chosen],
        mass_high=[p["umass"] for p in chosen], scan=scan_index, n_scans_file=n_file_scans,
        sputter_time_total=head["sputter_time_total"], field_of_view_um=head["field_of_view_um"],
        polarity=head["polarity"], dead_time_corrected=head["dead_time_corrected"],
        attrs={
            "sf": head["sf"],
            "k0": head["k0"],
            "channel_width_ns": head["channel_width_ns"],
            "shots_per_pixel": head["shots_per_pixel"],
            "primary_ion": head["primary_ion"],
            "sample": head["sample"] or os.path.splitext(os.path.basename(os.fspath(path)))[0],
            "n_scans_file": int(n_file_scans),
            **{key: head[key] for key in ("comment", "simulated") if head[key]},
        },
    )


def read_spectrum(path) -> xr.Dataset:
    """The file's summed spectrum: ``intensity`` over ``channel`` (unbinned channel numbers)."""
    with itstr.ITStrFile(path) as f:
        head = header(f)
        block = f.find(SPECTRUM + "/IITFSpecArray/CorrectedData") or f.find(SPECTRUM + "/IITFSpecArray/Data")
        if block is None:
            raise ToFSIMSError(f"{f.path}: no spectrum ({SPECTRUM}/IITFSpecArray)")
        values = f.array(block, "<f4").astype(np.float64)
    binning = 2  # IONTOF stores the reduced spectrum with one value per two channels
    channel = binning * np.arange(values.size) + binning / 2
    return xr.Dataset(
        {"intensity": (("channel",), values, {"units": "counts"})},
        coords={"channel": ("channel", channel, {"units": "1", "long_name": "time-of-flight channel (bin centre)"})},
        attrs={
            "source": os.fspath(path),
            "technique": "ToF-SIMS",
            "binning": binning,
            "dead_time_corrected": head["dead_time_corrected"],
            "polarity": head["polarity"],
            "channel_width_ns": head["channel_width_ns"],
            "sf": head["sf"],
            "k0": head["k0"],
            **{key: head[key] for key in ("comment", "simulated") if head[key]},
        },
    )


def info(path) -> dict:
    """Header, peak list and the full block tree summary of an ITA/ITM file (no images read)."""
    with itstr.ITStrFile(path) as f:
        head = header(f)
        head["peaks"] = peak_list(f)
        head["n_blocks"] = sum(1 for _ in f.walk())
        head["file_size"] = f.size
        return head


# -- writing ------------------------------------------------------------------------------------
def write(path, ds: xr.Dataset, spectrum: xr.Dataset | None = None, *, level: int = 6,
          progress: bool = False, images: bool = True, raw_seed: int | None = None) -> None:
    """Write ``counts`` (fragment, scan, y, x) [+ ``total``] as an ITA file pySPM and :func:`read` open.

    ``images=False`` leaves out the image stacks; ``raw_seed`` adds the ions as ITM raw data
    (:func:`tofsims.formats.itm.add_raw_data`, channels drawn with that seed): both together make
    an ITM file.

    ``ds`` follows the ToF-SIMS data contract (coords ``fragment_mass``, ``mass_low``,
    ``mass_high``; attrs ``field_of_view_um``, ``polarity``, ``sf``, ``k0``, ...). ``total``
    defaults to the sum of the fragments; image id 1 ("sum of rest") holds ``total - sum``.
    """
    counts = np.asarray(ds["counts"].transpose("fragment", "scan", "y", "x").values)
    if counts.dtype != np.uint32:
        if np.any(counts < 0) or np.any(counts != np.round(counts)):
            raise ToFSIMSError(f"{path}: counts to write must be non-negative integers")
        counts = counts.astype(np.uint32)
    n_frag, n_scans, ny, nx = counts.shape
    summed = counts.sum(axis=0, dtype=np.uint64)
    total = (
        np.asarray(ds["total"].transpose("scan", "y", "x").values, np.uint64) if "total" in ds else summed
    )
    if np.any(total < summed):
        raise ToFSIMSError(f"{path}: total counts below the sum of the fragments")
    rest = (total - summed).astype(np.uint32)
    total = total.astype(np.uint32)
    attrs = ds.attrs
    fov_m = float(attrs.get("field_of_view_um", 100.0)) * 1e-6
    sf, k0 = float(attrs.get("sf", 32985.0)), float(attrs.get("k0", -368.0))
    polarity = str(attrs.get("polarity", "negative"))

    root = itstr.new_root()
    si = root.path("Meta/SI Image")
    si.int32("res_x", nx)
    si.int32("res_y", ny)
    si.float64("fieldofview", fov_m)
    si.text("description", "total")
    si.array("intensdata", total.sum(axis=0), "<f4")

    mil = root.path("MassIntervalList")
    names = [str(v) for v in ds["fragment"].values]
    intervals = [(TOTAL_ID, "total", "", np.nan, np.nan, np.nan), (REST_ID, "sum of rest", "", np.nan, np.nan, np.nan)]
    for k, name in enumerate(names):
        intervals.append(
            (
                FIRST_FRAGMENT_ID + k,
                "",
                name,
                float(ds["fragment_mass"].values[k]) if "fragment_mass" in ds.coords else np.nan,
                float(ds["mass_low"].values[k]) if "mass_low" in ds.coords else np.nan,
                float(ds["mass_high"].values[k]) if "mass_high" in ds.coords else np.nan,
            )
        )
    for mid, desc, assign, cmass, lmass, umass in intervals:
        mi = mil.dir("mi", mid)
        mi.int32("id", mid)
        mi.text("assign", assign)
        mi.text("desc", desc)
        mi.text("SN", f"{{00000000-0000-0000-0000-{mid:012d}}}")
        mi.float64("cmass", 0.0 if np.isnan(cmass) else cmass)
        mi.float64("lmass", 0.0 if np.isnan(lmass) else lmass)
        mi.float64("umass", 0.0 if np.isnan(umass) else umass)

    reduced = root.path(IMAGES)
    reduced.int32("NumberOfScans", n_scans)
    stack = root.path(SCANS)
    stack.uint32("Image.XSize", nx)
    stack.uint32("Image.YSize", ny)
    stack.uint32("Image.NumberOfImages", n_frag + FIRST_FRAGMENT_ID)
    stack.uint32("Image.NumberOfScans", n_scans)
    added = root.path(ADDED)
    stacks = [total, rest] + [counts[k] for k in range(n_frag)] if images else []
    for image_id, cube in enumerate(tqdm(stacks, desc="ITA write", unit="image", disable=not progress, leave=False)):
        node = stack.dir("Image", image_id)
        for s in range(n_scans):
            node.array("ImageArray.Long", cube[s], "<u4", id=s, level=level)
        added.dir("Image", image_id).array("ImageArray.Long", cube.sum(axis=0, dtype=np.uint32), "<u4", level=level)

    spec_root = root.path(SPECTRUM)
    cal = spec_root.dir("IMassScaleSFK0")
    cal.float64("sf", sf)
    cal.float64("k0", k0)
    scale = root.path("MassScale")
    scale.float64("sf", sf)
    scale.float64("k0", k0)
    if spectrum is not None:
        spec_root.dir("IITFSpecArray").array("CorrectedData", spectrum["intensity"].values, "<f4")

    width_s = float(attrs.get("channel_width_ns", 0.1)) * 1e-9
    sputter = float(attrs.get("sputter_time_total", 0.0))
    properties = [
        ("Instrument.Analyzer_Polarity_Switch", 0, 0.0, polarity.capitalize()),
        ("Registration.Raster.ShotsPerPixel", int(attrs.get("shots_per_pixel", 1)), 0.0, ""),
        ("Registration.Raster.Resolution", nx, float(nx), f"{nx}"),
        ("Registration.Raster.FieldOfView", 0, fov_m, f"{fov_m * 1e6:g} um"),
        ("Registration.TimeResolution", 0, width_s, f"{width_s * 1e9:g} ns"),
        ("Measurement.ScanNumber", n_scans, float(n_scans), f"{n_scans}"),
        ("Analysis.SputterTime", 0, sputter, f"{sputter:g} s"),
        ("Instrument.LMIG.Species", 0, 0.0, str(attrs.get("primary_ion", "Bi3+"))),
        ("Analysis.DeadTimeCorrection", int(attrs.get("dead_time_corrected", 0)), 0.0, ""),
        ("Analysis.SampleName", 0, 0.0, str(attrs.get("sample", ""))),
    ] + ([(_iontof.COMMENT, 0, 0.0, str(attrs["comment"]))] if attrs.get("comment") else [])
    for section in ("propstart", "propend"):
        node = root.path(section)
        for key, ivalue, fvalue, text in properties:
            node.property(key, int_value=ivalue, float_value=fvalue, text=text)
    if raw_seed is not None:
        itm.add_raw_data(root, ds, seed=raw_seed)
    itstr.write(path, root)
