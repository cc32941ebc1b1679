"""imzML (+ .ibd) imaging mass spectra via pyimzml, the vendor-neutral route into the cube.

Each pixel spectrum is integrated over the fragment mass windows; the imzML ``z`` coordinate
(1-based) becomes the scan index, ``x``/``y`` (1-based) the pixel. pyimzml parses the XML with
the standard library, so the file is first streamed once through defusedxml, which rejects
entity expansion and external references before pyimzml sees it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from .._files import existing_file
from ..errors import ToFSIMSError
from ..masses import peak_windows
from ._cube import make_cube

MAX_PIXELS = 1 << 28


def _check_xml(path: Path) -> None:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    try:
        # imzML files carry no DTD: any DOCTYPE (internal entities, external DTD) is refused
        for _event, element in iterparse(path, events=("end",), forbid_dtd=True):
            element.clear()
    except DefusedXmlException as exc:
        raise ToFSIMSError(f"{path}: unsafe XML rejected ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise ToFSIMSError(f"{path}: not well-formed imzML XML ({exc})") from None


def read(path, fragments=None, windows: xr.Dataset | None = None, *, progress: bool = False) -> xr.Dataset:
    """Integrate every pixel spectrum of an imzML file over fragment windows.

    Parameters
    ----------
    path : path-like
        ``.imzML`` file (its ``.ibd`` next to it).
    fragments : list of str, optional
        Fragment names; windows from :func:`tofsims.masses.peak_windows`.
    windows : xarray.Dataset, optional
        Explicit windows (coords ``mass_low``, ``mass_high`` over ``fragment``).

    Returns
    -------
    xarray.Dataset
        ``counts`` (fragment, scan, y, x), uint32 when every integrated value is a whole number
        (float64 otherwise), and ``total`` (the sum of each whole spectrum).
    """
    path = existing_file(path)
    if windows is None:
        if not fragments:
            raise ToFSIMSError(f"{path}: imzML needs fragments= or windows= to integrate the spectra")
        windows = peak_windows(fragments)
    _check_xml(path)
    from pyimzml.ImzMLParser import ImzMLParser

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = ImzMLParser(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - pyimzml raises assorted errors on bad files
        raise ToFSIMSError(f"{path}: cannot parse imzML ({type(exc).__name__}: {exc})") from None
    try:
        return _read_spectra(path, parser, windows, progress)
    finally:
        handle = getattr(parser, "m", None)
        if handle is not None:
            handle.close()


def _check_offsets(path: Path, parser) -> None:
    """Every spectrum's m/z and intensity arrays lie inside the .ibd file (no seek past its end,
    no read of a declared length the file cannot hold: bounded memory on absurd headers)."""
    size = os.fstat(parser.m.fileno()).st_size
    for kind, offsets, lengths, precision in (
        ("m/z", parser.mzOffsets, parser.mzLengths, parser.mzPrecision),
        ("intensity", parser.intensityOffsets, parser.intensityLengths, parser.intensityPrecision),
    ):
        item = int(parser.sizeDict.get(precision, 8))
        for i, (offset, length) in enumerate(zip(offsets, lengths)):
            offset, length = int(offset), int(length)
            if offset < 0 or length < 0 or offset + length * item > size:
                raise ToFSIMSError(
                    f"{path}: spectrum {i}: {kind} array at offset {offset}, {length} values, lies outside "
                    f"the {size}-byte .ibd file"
                )


def _read_spectra(path: Path, parser, windows: xr.Dataset, progress: bool) -> xr.Dataset:
    """Integrate the spectra of an opened ``ImzMLParser`` (see :func:`read`)."""
    try:
        coords = np.asarray(parser.coordinates, dtype=np.int64).reshape(-1, 3)
    except (OverflowError, ValueError, TypeError):
        raise ToFSIMSError(f"{path}: pixel coordinates are not (x, y, z) integers in the 64-bit range") from None
    if coords.size == 0:
        raise ToFSIMSError(f"{path}: no spectra")
    if coords.min() < 1:
        raise ToFSIMSError(f"{path}: pixel coordinates must start at 1")
    nx, ny, n_scans = (int(v) for v in coords.max(axis=0))
    n_frag = windows.sizes["fragment"]
    if n_frag * nx * ny * n_scans > MAX_PIXELS:
        raise ToFSIMSError(f"{path}: absurd image size {nx} x {ny} x {n_scans}")
    _check_offsets(path, parser)
    edges = np.column_stack([windows["mass_low"].values, windows["mass_high"].values])
    cube = np.zeros((n_frag, n_scans, ny, nx))
    total = np.zeros((n_scans, ny, nx))
    try:
        for i, (x, y, z) in enumerate(tqdm(coords, desc="imzML", unit="px", disable=not progress, leave=False)):
            mzs, intensities = parser.getspectrum(i)
            mzs = np.asarray(mzs, float)
            values = np.asarray(intensities, float)
            if mzs.size != values.size or not np.all(np.isfinite(values)):
                raise ToFSIMSError(f"{path}: spectrum {i} has mismatched or non-finite values")
            cumulative = np.concatenate([[0.0], np.cumsum(values)])
            lo = np.searchsorted(mzs, edges[:, 0], side="left")
            hi = np.searchsorted(mzs, edges[:, 1], side="left")
            cube[:, z - 1, y - 1, x - 1] = cumulative[hi] - cumulative[lo]
            total[z - 1, y - 1, x - 1] = cumulative[-1]
    except (OSError, ValueError, OverflowError) as exc:
        if isinstance(exc, ToFSIMSError):
            raise
        raise ToFSIMSError(f"{path}: cannot read spectra from the .ibd file ({exc})") from None
    integral = np.all(cube == np.round(cube)) and np.all(total == np.round(total)) and cube.max(initial=0) < 2**32
    if integral:
        cube, total = cube.astype(np.uint32), total.astype(np.uint32)
    polarity = str(getattr(parser, "polarity", "") or "unknown").lower()
    meta = getattr(parser, "imzmldict", {}) or {}
    pixel = meta.get("pixel size x")  # imzML states the pixel size in um
    extra = {k: (v.values, dict(v.attrs)) for k, v in windows.coords.items()
             if k not in ("fragment",) and windows[k].dims == ("fragment",)}
    coord = windows.coords
    return make_cube(
        path, cube, [str(v) for v in windows["fragment"].values], file_format="imzML", total=total,
        fragment_mass=coord["fragment_mass"].values if "fragment_mass" in coord else None,
        mass_low=coord["mass_low"].values, mass_high=coord["mass_high"].values,
        field_of_view_um=float(pixel) * nx if pixel else None, pixel_size_um=float(pixel) if pixel else None,
        polarity=polarity, fragment_coords=extra,
    )
