"""Read EDS spectrum images (Velox ``.emd``, Bruker ``.bcf``, HyperSpy ``.hspy``) and single spectra
(EMSA/MSA ``.msa``/``.emsa``, Velox point spectra) through RosettaSciIO.

``read_signal(path)`` gives the HyperSpy/exSpy signal for users who want it; ``read(path)`` gives an
``xarray.DataArray`` over (``y``, ``x``, ``energy``) with coordinates in nm and keV and the
acquisition parameters (beam energy, dispersion, live time, detector geometry) in ``attrs``.
Files holding only a spectrum give a DataArray over ``energy`` alone. Frames and detectors can
be kept as ``frame`` and ``detector`` dims.

Safety: the sizes a container declares are checked against the file and the machine's memory
before RosettaSciIO allocates (:mod:`stem_eds._checks`), and on POSIX systems every read runs in a
forked child with a time limit (:mod:`stem_eds._guard`), so a file that sends the HDF5 library or
the Bruker decoder into an endless loop or a crash becomes an ``EDSError`` instead of a hang.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.simulated import ATTR, marker_in
from doptrace.core.units import length_nm

from . import _checks, _guard
from .errors import EDSError

#: Registry of readable formats by extension (content is checked by RosettaSciIO's own plugin).
FORMATS = {".emd": "Velox EMD (Thermo Fisher)", ".bcf": "Bruker Esprit BCF", ".hspy": "HyperSpy HDF5",
           ".msa": "EMSA/MSA spectrum", ".emsa": "EMSA/MSA spectrum"}


def _check_path(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise EDSError(f"{path}: no such file")
    if path.suffix.lower() not in FORMATS:
        raise EDSError(f"{path}: unsupported format {path.suffix!r} (readable: {', '.join(FORMATS)})")
    if path.stat().st_size == 0:
        raise EDSError(f"{path}: empty file")
    return path


def check_bcf_container(path) -> None:
    """Walk a Bruker ``.bcf`` SFS container before RosettaSciIO parses it (see :mod:`stem_eds._checks`)."""
    _checks.check_bcf_container(path)


def _preflight(path: Path, lazy: bool, sum_frames: bool) -> None:
    """Refuse declared sizes the file cannot hold or the machine cannot allocate, before loading."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".bcf":
            _checks.check_bcf_container(path)
            _checks.check_bcf_hypermap(path)
        elif suffix == ".hspy":
            _checks.check_hspy(path, eager=not lazy)
        elif suffix == ".emd":
            _checks.check_emd(path, eager=not lazy, sum_frames=sum_frames)
    except EDSError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # h5py/RosettaSciIO on a corrupt file: name the file once
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EDSError(f"{path}: cannot be read as {FORMATS[suffix]} ({message})") from None


def _load_all(path: Path, lazy: bool, sum_frames: bool, sum_detectors: bool) -> list:
    from . import lines  # noqa: F401  (imports HyperSpy with its import-time warnings silenced)
    import hyperspy.api as hs

    kwargs = {"lazy": lazy}
    _preflight(path, lazy, sum_frames)
    if path.suffix.lower() == ".emd":
        kwargs.update(sum_frames=sum_frames, sum_EDS_detectors=sum_detectors)
    # RosettaSciIO reports a pruned Velox file only as a log warning; we turn it into an error below.
    logging.getLogger("rsciio").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = hs.load(str(path), **kwargs)
    except MemoryError:
        raise
    except Exception as exc:  # RosettaSciIO raises many types on corrupt files; name the file once.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EDSError(f"{path}: cannot be read as {FORMATS[path.suffix.lower()]} ({message})") from None
    return loaded if isinstance(loaded, list) else [loaded]


def _is_eds(signal) -> bool:
    return str(signal.metadata.Signal.get_item("signal_type", "")).startswith("EDS") and (
        signal.axes_manager.signal_dimension == 1
    )


def _velox_has(path: Path, group_name: str) -> bool:
    """True when a Velox file has a non-empty group ``group_name``."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            group = h5.get(group_name)
            return isinstance(group, h5py.Group) and len(group) > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _velox_acquired_image(path: Path) -> bool:
    """True when a Velox file records a spectrum-image acquisition (``Data/SpectrumImage``)."""
    return _velox_has(path, "Data/SpectrumImage")


def _pick_signal(path: Path, loaded: list, sum_detectors: bool):
    signals = [s for s in loaded if _is_eds(s)]
    images = [s for s in signals if s.axes_manager.navigation_dimension > 0]
    if path.suffix.lower() == ".emd" and not images and _velox_acquired_image(path):
        raise EDSError(
            f"{path}: no EDS spectrum image: the Velox spectrum stream is missing "
            "(a 'pruned' file keeps only maps and sum spectra)"
        )
    if not signals:
        if path.suffix.lower() == ".emd" and _velox_has(path, "Data/Spectrum"):
            # RosettaSciIO reads Velox point spectra only from files without images
            raise EDSError(f"{path}: Velox point spectra stored beside images are not read by RosettaSciIO; "
                           "export the spectrum as EMSA (.msa) from Velox")
        raise EDSError(f"{path}: holds no EDS spectrum")
    if not images:
        if path.suffix.lower() == ".emd" and len(signals) > 1:
            # a Velox point spectrum: one spectrum per detector of the same acquisition
            return signals if not sum_detectors else _sum_detector_spectra(path, signals)
        return max(signals, key=lambda s: s.data.size)
    if not sum_detectors and len(images) > 1:
        return images
    return max(images, key=lambda s: s.axes_manager.navigation_size)


def _sum_detector_spectra(path: Path, signals: list):
    """Velox point spectra of several detectors (same energy axis) summed into one spectrum."""
    axes = {(s.axes_manager.signal_axes[0].size, float(s.axes_manager.signal_axes[0].scale),
             float(s.axes_manager.signal_axes[0].offset)) for s in signals}
    if len(axes) != 1:
        raise EDSError(f"{path}: {len(signals)} point spectra on different energy axes: cannot be summed")
    total = signals[0].deepcopy()
    total.data = np.sum([np.asarray(s.data, dtype=np.float64) for s in signals], axis=0)
    if all(np.issubdtype(np.asarray(s.data).dtype, np.integer) for s in signals):
        total.data = total.data.astype(np.int64)
    total.metadata.set_item("Signal.detectors_summed", len(signals))
    return total


def _load_signal(path: Path, lazy: bool, sum_frames: bool, sum_detectors: bool):
    return _pick_signal(path, _load_all(path, lazy, sum_frames, sum_detectors), sum_detectors)


def _check_load(path: Path, lazy: bool, sum_frames: bool, sum_detectors: bool) -> None:
    """What the watchdog child runs before an in-process load: the whole load, result dropped."""
    signal = _load_signal(path, lazy, sum_frames, sum_detectors)
    for s in signal if isinstance(signal, list) else [signal]:
        to_dataarray(s, path)


def read_signal(path, lazy: bool = False, sum_frames: bool = True, sum_detectors: bool = True,
                timeout: float | None = None):
    """The exSpy EDS signal of a file: the spectrum image (largest navigation size) or spectrum.

    With ``sum_detectors=False`` on a Velox file, a list of one signal per detector. A Velox point
    spectrum (no spectrum image acquired) gives its detectors' spectra summed.
    ``EDSError`` if the file holds no EDS spectrum, or (Velox) a spectrum image whose stream was
    pruned. The file is first loaded once in a child process with a time limit (``timeout`` s,
    default :func:`stem_eds._guard.default_timeout`), so a corrupt file cannot hang the caller;
    then it is loaded here.

    Examples
    --------
    >>> s = read_signal("EDS_TEM_FePt_nanoparticles.hspy")  # doctest: +SKIP
    >>> s.axes_manager.signal_axes[0].units  # doctest: +SKIP
    'keV'
    """
    path = _check_path(path)
    if _guard.available():
        _import_readers(path)
        _guard.run(path, _check_load, path, lazy, sum_frames, sum_detectors, timeout=timeout)
    return _load_signal(path, lazy, sum_frames, sum_detectors)


def _instrument(signal):
    for kind in ("TEM", "SEM"):
        node = signal.metadata.get_item(f"Acquisition_instrument.{kind}")
        if node is not None:
            return kind, node
    return "", None


def _velox_live_time(signal) -> float:
    detectors = signal.original_metadata.get_item("Detectors")
    if detectors is None:
        return float("nan")
    times = [
        float(d.get("LiveTime"))
        for d in detectors.as_dictionary().values()
        if isinstance(d, dict) and d.get("DetectorType") == "AnalyticalDetector" and d.get("LiveTime")
    ]
    return float(np.mean(times)) if times else float("nan")


def acquisition_attrs(signal, path) -> dict:
    """Beam energy, dispersion, live time and detector geometry of ``signal`` as flat attrs."""
    kind, inst = _instrument(signal)
    get = (lambda key, default=float("nan"): inst.get_item(key, default)) if inst else (lambda k, d=float("nan"): d)
    energy = signal.axes_manager.signal_axes[0]
    scale = float(energy.scale) / (1000.0 if energy.units == "eV" else 1.0)
    live = float(get("Detector.EDS.live_time"))
    if not np.isfinite(live):
        live = _velox_live_time(signal)
    elements = list(signal.metadata.get_item("Sample.elements", []) or [])
    return {
        "source": str(path),
        "signal_type": str(signal.metadata.Signal.signal_type),
        "microscope_kind": kind,
        "beam_energy_kev": float(get("beam_energy")),
        "dispersion_kev": scale,
        "live_time_s": live,
        "real_time_s": float(get("Detector.EDS.real_time")),
        "elevation_deg": float(get("Detector.EDS.elevation_angle")),
        "azimuth_deg": float(get("Detector.EDS.azimuth_angle")),
        "tilt_alpha_deg": float(get("Stage.tilt_alpha", 0.0)),
        "tilt_beta_deg": float(get("Stage.tilt_beta", 0.0)),
        "fwhm_mnka_ev": float(get("Detector.EDS.energy_resolution_MnKa", 130.0)),
        "beam_current_na": float(get("beam_current")),
        "file_elements": " ".join(str(e) for e in elements),
        # doptrace's simulator titles its files "doptrace simulated ..." (doptrace.core.simulated)
        **({ATTR: marker} if (marker := marker_in([str(signal.metadata.get_item("General.title", ""))])) else {}),
    }


def _nav_dim_name(axis, index: int, n_nav: int) -> str:
    name = str(axis.name).lower()
    if name in ("time", "frame", "frames", "t"):
        return "frame"
    if name in ("x", "width"):
        return "x"
    if name in ("y", "height"):
        return "y"
    return ["x", "y", "frame"][index] if n_nav <= 3 else f"nav{index}"


def to_dataarray(signal, path="") -> xr.DataArray:
    """Wrap an exSpy EDS signal as an ``xarray.DataArray`` (lazy data stay lazy)."""
    axes = signal.axes_manager
    sizes = tuple(a.size for a in reversed(list(axes.navigation_axes))) + tuple(a.size for a in axes.signal_axes)
    if tuple(signal.data.shape) != sizes:
        raise EDSError(f"{path}: the axes describe shape {sizes} but the data have shape {tuple(signal.data.shape)}")
    if len(axes.signal_axes) != 1:
        raise EDSError(f"{path}: {len(axes.signal_axes)} signal axes: not an EDS spectrum")
    nav = list(axes.navigation_axes)  # hyperspy order: fastest (x) first; the array is reversed
    dims, coords = [], {}
    for index, axis in reversed(list(enumerate(nav))):
        name = _nav_dim_name(axis, index, len(nav))
        values = axis.offset + axis.scale * np.arange(axis.size)
        if name in ("x", "y"):
            factor = length_nm(str(axis.units))
            units = "nm" if factor is not None else (str(axis.units) or "1")
            coords[name] = (name, values * (factor or 1.0), {"units": units})
        elif name == "frame":
            coords[name] = (name, np.arange(axis.size), {"units": "1"})
        else:
            coords[name] = (name, values, {"units": str(axis.units) or "1"})
        dims.append(name)
    energy = axes.signal_axes[0]
    factor = 1e-3 if energy.units == "eV" else 1.0
    coords["energy"] = ("energy", (energy.offset + energy.scale * np.arange(energy.size)) * factor, {"units": "keV"})
    dims.append("energy")
    da = xr.DataArray(signal.data, dims=dims, coords=coords, name="counts")
    da.attrs.update(acquisition_attrs(signal, path))
    da.attrs["units"] = "count"
    return da


def _validated(da: xr.DataArray, path, lazy: bool) -> xr.DataArray:
    if not lazy:
        values = np.asarray(da.values)
        if values.size == 0:
            raise EDSError(f"{path}: the spectrum image is empty")
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
            raise EDSError(f"{path}: counts of type {values.dtype} are not numbers")
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            raise EDSError(f"{path}: the spectrum image holds NaN or infinite counts")
        if not values.any():
            raise EDSError(f"{path}: the spectrum image holds zero counts")
        if values.min() < 0:
            # one policy for every doptrace reader (NEGATIVE_COUNTS): EDS channels hold raw counts
            raise EDSError(f"{path}: the spectrum image holds negative counts (minimum {values.min():g}): "
                           "EDS channels are detector counts")
    energy = da["energy"].values
    if energy.size < 16 or not np.all(np.isfinite(energy)) or not np.all(np.diff(energy) > 0):
        raise EDSError(f"{path}: the energy axis is not increasing or too short ({energy.size} channels)")
    for dim in da.dims:
        if dim != "energy" and dim in da.coords and not np.all(np.isfinite(da[dim].values)):
            raise EDSError(f"{path}: the {dim} axis holds NaN or infinite positions")
    return da


def _read_here(path: Path, lazy: bool, sum_frames: bool, sum_detectors: bool) -> xr.DataArray:
    signal = _load_signal(path, lazy, sum_frames, sum_detectors)
    if isinstance(signal, list):
        parts = [to_dataarray(s, path) for s in signal]
        if len({p.shape for p in parts}) != 1:
            raise EDSError(f"{path}: the detectors' spectra differ in shape: cannot stack them")
        da = xr.concat(parts, dim="detector", combine_attrs="override")
        da = da.assign_coords(detector=("detector", np.arange(len(parts)), {"units": "1"}))
    else:
        da = to_dataarray(signal, path)
    return _validated(da, path, lazy)


def _read_payload(path: Path, sum_frames: bool, sum_detectors: bool):
    """The watchdog child's work for an eager read: the DataArray as JSON metadata + arrays."""
    da = _read_here(path, False, sum_frames, sum_detectors)
    arrays = {"counts": np.asarray(da.values)}
    coords = {}
    for name, coord in da.coords.items():
        arrays[f"coord:{name}"] = np.asarray(coord.values)
        coords[name] = {"dims": list(coord.dims), "attrs": dict(coord.attrs)}
    meta = {"dims": list(da.dims), "name": da.name, "attrs": dict(da.attrs), "coords": coords}
    return meta, arrays


_READER_MODULES = {
    ".emd": ("rsciio.emd", "rsciio.emd._emd_velox", "rsciio.utils._fei_stream_readers", "sparse"),
    ".bcf": ("rsciio.bruker", "rsciio.bruker._api"),
    ".hspy": ("rsciio.hspy", "h5py"),
    ".msa": ("rsciio.msa",),
    ".emsa": ("rsciio.msa",),
}


def _import_readers(path: Path) -> None:
    """Import HyperSpy and the format's RosettaSciIO modules here, once, before forking: a child
    would otherwise import them again on every read (measured: +1.9 s per Velox file)."""
    import importlib

    from . import lines  # noqa: F401  (imports HyperSpy with its import-time warnings silenced)
    import hyperspy.api  # noqa: F401

    for name in _READER_MODULES.get(path.suffix.lower(), ()):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # the child reports what is missing


def read(path, lazy: bool = False, sum_frames: bool = True, sum_detectors: bool = True,
         timeout: float | None = None) -> xr.DataArray:
    """Read an EDS file into an ``xarray.DataArray`` over (``y``, ``x``, ``energy``).

    Parameters
    ----------
    path : path-like
        ``.emd`` (Velox), ``.bcf`` (Bruker), ``.hspy`` or ``.msa``/``.emsa`` (EMSA) file; opened
        read-only.
    lazy : bool
        Keep the counts as a dask array (large files).
    sum_frames, sum_detectors : bool
        Velox only: keep frames as a ``frame`` dim and the Super-X quadrants as a ``detector`` dim
        when False.
    timeout : float, optional
        Seconds the read may take before it is stopped (POSIX); default 12 s + 0.5 s per MB.

    Returns
    -------
    xarray.DataArray
        Counts (units ``count``); coords ``y``/``x`` in nm, ``energy`` in keV; attrs as in
        :func:`acquisition_attrs`. Single spectra (EMSA, Velox point spectra, sum spectra) are
        over ``energy`` alone.

    Raises
    ------
    EDSError
        ``"<path>: <problem>"`` for a missing, unsupported, corrupt, truncated, oversized file,
        NaN/negative/zero counts, or a read that did not finish within ``timeout``.

    Notes
    -----
    An eager read runs in a forked child (:mod:`stem_eds._guard`): the counts come back through a
    ``.npy`` file in ``/dev/shm``. A lazy read is checked the same way (the child opens the file and
    builds the lazy array), then built here; computing it later reads the file without a watchdog.

    Examples
    --------
    A 16 x 16 pixel spectrum image written by the simulator as ``.hspy``:

    >>> from doptrace import stem_eds
    >>> from doptrace.stem_eds.simulate import simulate_spectrum_image
    >>> sim = simulate_spectrum_image("lrmo.hspy", shape=(16, 16), seed=1)
    >>> da = stem_eds.read("lrmo.hspy")
    >>> da.dims, da.shape, da["energy"].attrs["units"], da.attrs["beam_energy_kev"]
    (('y', 'x', 'energy'), (16, 16, 1024), 'keV', 200.0)
    """
    path = _check_path(path)
    if not _guard.available():
        return _read_here(path, lazy, sum_frames, sum_detectors)
    _import_readers(path)
    if lazy:
        _guard.run(path, _check_lazy, path, sum_frames, sum_detectors, timeout=timeout)
        return _read_here(path, True, sum_frames, sum_detectors)
    meta, arrays = _guard.run(path, _read_payload, path, sum_frames, sum_detectors, timeout=timeout)
    coords = {name: (c["dims"], arrays[f"coord:{name}"], c["attrs"]) for name, c in meta["coords"].items()}
    return xr.DataArray(arrays["counts"], dims=meta["dims"], coords=coords, name=meta["name"], attrs=meta["attrs"])


def _check_lazy(path: Path, sum_frames: bool, sum_detectors: bool) -> None:
    _read_here(path, True, sum_frames, sum_detectors)


def info(path) -> dict:
    """Summary of a file for ``doptrace eds info``: shape, dims, axes and acquisition parameters."""
    # Lazy only for large files: RosettaSciIO's lazy Velox path (sparse + dask) is slow on small ones.
    da = read(path, lazy=Path(path).stat().st_size > 200 * 2**20)
    summary = {
        "file": str(path),
        "format": FORMATS[Path(path).suffix.lower()],
        "dims": " x ".join(f"{d}={n}" for d, n in da.sizes.items()),
        "energy_range_kev": f"{float(da.energy[0]):.3f} .. {float(da.energy[-1]):.3f}",
    }
    for dim in ("x", "y"):
        if dim in da.coords and da.sizes[dim] > 1:
            summary[f"pixel_{dim}"] = f"{float(da[dim][1] - da[dim][0]):.4g} {da[dim].attrs['units']}"
    summary.update({k: v for k, v in da.attrs.items() if k not in ("source", "units")})
    return summary




def bin_pixels(da: xr.DataArray, factor: int) -> xr.DataArray:
    """Sum ``factor`` x ``factor`` pixel blocks (edges that do not fill a block are dropped)."""
    if factor is None or int(factor) == 1:
        return da
    factor = int(factor)
    if factor < 1:
        raise EDSError(f"{da.attrs.get('source', 'spectrum')}: bin {factor} must be a positive number of pixels")
    if "x" not in da.dims or "y" not in da.dims:
        raise EDSError(f"{da.attrs.get('source', 'spectrum')}: --bin needs a spectrum image (x, y)")
    if da.sizes["x"] < factor or da.sizes["y"] < factor:
        raise EDSError(f"{da.attrs.get('source', 'spectrum')}: bin {factor} is larger than the image")
    binned = da.coarsen(x=factor, y=factor, boundary="trim").sum()
    for dim in ("x", "y"):
        binned[dim] = da[dim].coarsen({dim: factor}, boundary="trim").mean()
        binned[dim].attrs = dict(da[dim].attrs)
    binned.attrs = dict(da.attrs)
    binned.attrs["binning"] = factor
    return binned
