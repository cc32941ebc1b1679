"""The ToF-SIMS pipeline: read a file, correct it in the order the physics needs, and analyse it.

These are the steps ``doptrace tofsims ...`` and a project's ``[[sample.tofsims]]`` entries run,
as plain functions of paths and Datasets, so a scientist in Python gets the same results without
the report::

    from doptrace.tofsims import pipeline
    results = pipeline.analyse("sample.ita", crater_depth_nm=500.0, dopant_fragment="BO-", host_fragment="MnO-")
    results["uniformity"].sel(fragment="BO-")

No fragment is special in code: which fragment carries the dopant and which the host lattice is
the caller's (a project's ``sims_fragment`` and ``sims_host``).

Order of corrections (:func:`load`): dead time first (it acts on raw counts per shot), then lateral
drift (it moves whole corrected images), then the sputter-time to depth conversion (it only
relabels the scan axis).
"""

from __future__ import annotations

import re

import numpy as np

from doptrace.core.simulated import carry
from doptrace.core.units import length_nm

from .errors import ToFSIMSError


def parse_length_nm(text) -> float:
    """A crater depth given as text, in nm.

    Parameters
    ----------
    text : str or float
        ``"500nm"``, ``"0.5 um"``, ``"5000A"`` or a bare number (nm).

    Returns
    -------
    float
        The positive length in nm.

    Raises
    ------
    ToFSIMSError
        When the text is not a positive length.

    Examples
    --------
    >>> parse_length_nm("0.5 um")
    500.0
    """
    match = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([a-zA-Zµå]*)\s*", str(text))
    factor = (length_nm(match.group(2), any_case=True) if match.group(2) else 1.0) if match else None
    if factor is None:
        raise ToFSIMSError(f"crater depth {text!r}: expected a length such as 500nm or 0.5um")
    try:
        value = float(match.group(1)) * factor
    except ValueError:
        raise ToFSIMSError(f"crater depth {text!r}: not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ToFSIMSError(f"crater depth {text!r}: must be a positive length")
    return value


def parse_rates(text) -> list[tuple[float, float]]:
    """Per-layer sputter rates as :func:`doptrace.tofsims.processing.sputter_to_depth` takes them.

    Parameters
    ----------
    text : str or list
        ``"1.0:30,2.0:60,0.5"`` (nm/s until s, the last layer open) or ``[[1.0, 30], [2.0, 60], [0.5]]``.

    Returns
    -------
    list of (float, float)
        ``(until_s, rate_nm_per_s)`` per layer, the last one until infinity.

    Examples
    --------
    >>> parse_rates("1.0:30,0.5")
    [(30.0, 1.0), (inf, 0.5)]
    """
    items = text if isinstance(text, (list, tuple)) else [i.split(":") for i in str(text).split(",") if i.strip()]
    layers = []
    try:
        for item in items:
            item = list(item) if isinstance(item, (list, tuple)) else [item]
            rate = float(item[0])
            until = float(item[1]) if len(item) > 1 else float("inf")
            layers.append((until, rate))
    except (ValueError, IndexError, TypeError):
        raise ToFSIMSError(f"sputter rates {text!r}: expected rate:until_s,...,last_rate, e.g. 1.0:30,0.5") from None
    if not layers or any(not np.isfinite(u) for u, _ in layers[:-1]):
        raise ToFSIMSError(f"sputter rates {text!r}: every layer but the last needs an end time")
    return layers


def split_names(text) -> list[str] | None:
    """``"BO-, MnO-"`` or ``["BO-", "MnO-"]`` -> ``["BO-", "MnO-"]``; None or empty -> None."""
    if text is None:
        return None
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    return [str(i).strip() for i in items if str(i).strip()] or None


def normalization(value) -> str | None:
    """A normalisation setting: ``None``, ``""`` and ``"none"`` mean none; anything else as text."""
    return None if value in (None, "", "none") else str(value)


def describe(path) -> str:
    """A few lines about a ToF-SIMS file: acquisition metadata, dims, fragments with masses and counts.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`doptrace.tofsims.read` reads.

    Returns
    -------
    str
        What ``doptrace tofsims info`` prints (counts summed in one pass over the cube).
    """
    from .read import read

    ds = read(path)
    lines = [f"file: {path}"]
    for key in ("format", "sample", "polarity", "primary_ion", "field_of_view_um", "shots_per_pixel",
                "sputter_time_total", "dead_time_corrected", "sf", "k0", "channel_width_ns", "binning"):
        if key in ds.attrs:
            lines.append(f"{key}: {ds.attrs[key]}")
    lines.append("dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    if "fragment" in ds.coords:
        sums = None
        if "counts" in ds and "fragment" in ds["counts"].dims:
            sums = ds["counts"].sum([d for d in ds["counts"].dims if d != "fragment"]).compute()  # one pass
        for name in ds["fragment"].values:
            line = f"  {name}"
            if "fragment_mass" in ds.coords:
                sel = ds.sel(fragment=name)
                mass = float(sel["fragment_mass"])
                line += f"  {mass:.4f} u" if np.isfinite(mass) else "  (no mass)"
                if "mass_low" in ds.coords:
                    line += f"  [{float(sel['mass_low']):.4f}, {float(sel['mass_high']):.4f}]"
            if sums is not None:
                line += f"  {int(sums.sel(fragment=name))} counts"
            lines.append(line)
    if "intensity" in ds:
        lines.append(f"total intensity: {float(ds['intensity'].sum()):.6g}")
    lines.append(_raw_data_line(path))
    for key in ("ratio_note", "notes", "note"):
        if ds.attrs.get(key):
            lines.append(f"{key.replace('_', ' ')}: {ds.attrs[key]}")
    return "\n".join(lines)


def _raw_data_line(path) -> str:
    """Whether custom mass intervals can be cut from the file (``--mass``)."""
    from .formats import detect

    kind = detect(path)
    if kind == "ita":
        from .formats import itm, itstr

        with itstr.ITStrFile(path) as f:
            raw = itm.has_raw_data(f)
        return ("raw ion data: yes (any mass interval can be cut with --mass)" if raw else
                "raw ion data: no (only the peak list's images; --mass can only name those intervals)")
    if kind == "events":
        return "raw ion data: yes (event list)"
    return "raw ion data: no (an export)"


def read_spectrum(path):
    """The mass spectrum of a file, for calibration: an ITA's summed spectrum, else what
    :func:`doptrace.tofsims.read` gives (a spectrum export)."""
    from .formats import detect
    from .read import read

    if detect(path) == "ita":
        from .formats.ita import read_spectrum as ita_spectrum

        return ita_spectrum(path)
    return read(path)


def _to_depth(ds, crater_depth_nm, layer_rates):
    from . import processing

    if crater_depth_nm is None and layer_rates is None:
        return ds
    return processing.sputter_to_depth(ds, crater_depth_nm=None if crater_depth_nm is None else float(crater_depth_nm),
                                       rates=None if layer_rates is None else parse_rates(layer_rates))


def load(path, dead_time: bool | None = None, drift_correct: bool = False, crater_depth_nm=None, layer_rates=None,
         progress: bool = False, masses=None):
    """Read an image stack and apply the requested corrections, in the order the physics needs.

    Parameters
    ----------
    path : str or path-like
        An ITA, ITM, GRD-exported or imzML image stack (see :func:`doptrace.tofsims.read`).
    dead_time : bool, optional
        None applies the Poisson dead-time correction when the file says it was not applied and it
        is defined (:func:`doptrace.tofsims.processing.dead_time_auto`); True always (an error when
        impossible); False never.
    drift_correct : bool
        Align scans by phase correlation.
    crater_depth_nm : float, optional
        Crater depth reached at the end of sputtering; adds a ``depth`` coordinate.
    layer_rates : str or list, optional
        Per-layer sputter rates instead (see :func:`parse_rates`).
    progress : bool
        Progress bars while reading and estimating drift.
    masses : str or list of str, optional
        Custom mass intervals instead of the peak list (``"BO-=26.98:27.03"``, ``"27.0048±0.02"``;
        :mod:`doptrace.tofsims.intervals`): histogrammed from an ITM file's raw ions, or matched to
        an ITA file's own peak-list intervals (any other interval is an error naming the file).

    Returns
    -------
    xarray.Dataset
        ``counts`` over (``scan``, ``y``, ``x``, ``fragment``), kept in memory when it fits
        comfortably (several results each reduce it), else lazy.
    """
    from . import processing
    from .formats import detect
    from .read import read

    if masses:
        from .intervals import parse_intervals, read_intervals

        ds = read_intervals(path, parse_intervals(masses), progress=progress)
    else:
        ds = read(path, **({"progress": progress} if detect(path) == "ita" else {}))
    if "counts" not in ds:
        raise ToFSIMSError(f"{path}: holds no image stack (a spectrum or profile export?)")
    if hasattr(ds["counts"].data, "dask"):
        import psutil

        # Several results each reduce the cube: keep it in memory (one read pass) when it fits
        # comfortably, otherwise every result streams it again, chunk by chunk.
        if ds.nbytes < 0.4 * psutil.virtual_memory().available:
            ds = ds.persist()
    if dead_time is None:
        ds = processing.dead_time_auto(ds)
    elif dead_time:
        ds = processing.dead_time_correct(ds)
    if drift_correct:
        ds = processing.correct_drift(ds, processing.estimate_drift(ds, progress=progress))
    return _to_depth(ds, crater_depth_nm, layer_rates)


def profile_export(path, fragments=None, normalize="total", crater_depth_nm=None, layer_rates=None):
    """The depth profile of a depth-profile ASCII export, or None when ``path`` holds something else.

    Parameters
    ----------
    path : str or path-like
        A file; only depth-profile exports (:func:`doptrace.tofsims.formats.detect` says
        ``"profile"``) give a profile.
    fragments : list of str, optional
        Columns to keep (default: all).
    normalize : str or None
        ``"total"`` (skipped when the export has no total-ion column), a column name, or None.
    crater_depth_nm, layer_rates
        As for :func:`load`.

    Returns
    -------
    xarray.Dataset or None
        As :func:`doptrace.tofsims.profiles.profile_from_export`.
    """
    from . import profiles
    from .formats import detect
    from .read import read

    if detect(path) != "profile":
        return None
    ds = read(path)
    columns = [str(n).lower() for n in ds["fragment"].values]
    if normalize == "total" and "total" not in columns:
        normalize = None  # the default; this export has no total-ion column
    profile = carry(ds, profiles.profile_from_export(ds, fragments, normalization(normalize)))
    return _to_depth(profile, crater_depth_nm, layer_rates)


def make_roi(ds, rect=None, from_fragment=None):
    """Region-of-interest mask from a rectangle and/or where one fragment's map is high.

    Parameters
    ----------
    ds : xarray.Dataset
        An image stack from :func:`load`.
    rect : str or sequence of 4 floats, optional
        ``"x0,x1,y0,y1"`` in um.
    from_fragment : str, optional
        Keep pixels where this fragment's map (summed over scans) is above its Otsu threshold.

    Returns
    -------
    xarray.DataArray or None
        Boolean (``y``, ``x``) mask; None when neither is given.
    """
    from . import processing

    if not rect and not from_fragment:
        return None
    box = None
    if rect:
        try:
            box = tuple(float(v) for v in (rect.split(",") if isinstance(rect, str) else rect))
        except ValueError:
            box = ()
        if len(box) != 4 or not all(np.isfinite(box)):
            raise ToFSIMSError(f"ROI {rect!r}: expected x0,x1,y0,y1 in um")
    image = None
    if from_fragment:
        image = processing.select_fragments(ds, [from_fragment])["counts"].isel(fragment=0).sum("scan").compute()
    return processing.roi_mask(ds, rect=box, image=image, threshold="otsu" if image is not None else None)


def with_ratio(maps, ds, pair: str, scans=None, bin: int = 1):
    """Add the pixel ratio map ``A/B`` (:func:`doptrace.tofsims.maps.ratio_map`) of ``pair`` (``"A:B"``)
    to a maps result as ``ratio`` and ``ratio_stderr`` (in place; returns it)."""
    from .maps import ratio_map

    a, sep, b = str(pair).partition(":")
    if not sep or not a.strip() or not b.strip():
        raise ToFSIMSError(f"ratio {pair!r}: expected A:B, e.g. BO-:MnO-")
    ratio = ratio_map(ds, a.strip(), b.strip(), scans=scans, bin=bin)
    maps["ratio"] = ratio["ratio"]
    maps["ratio_stderr"] = ratio["ratio_stderr"]
    maps.attrs["ratio"] = f"{a.strip()}/{b.strip()}"
    return maps


def choose_fragments(ds, wanted=None, dopant_fragment=None, host_fragment=None) -> list[str]:
    """The fragments to analyse: ``wanted`` (with the dopant and host fragments added when the file
    has them), else every fragment of the file."""
    names = [str(n) for n in ds["fragment"].values]
    if not wanted:
        return names
    extra = [f for f in (dopant_fragment, host_fragment) if f and f in names and f not in wanted]
    return list(wanted) + extra


def declared_pair(names, dopant_fragment=None, host_fragment=None) -> str | None:
    """``"dopant:host"`` when both are declared and among ``names``; else None.

    Examples
    --------
    >>> declared_pair(["AlO-", "MnO-", "O-"], "AlO-", "MnO-")
    'AlO-:MnO-'
    >>> declared_pair(["MnO-", "O-"], "AlO-", "MnO-") is None
    True
    """
    names = [str(n) for n in names]
    if dopant_fragment and host_fragment and dopant_fragment in names and host_fragment in names:
        return f"{dopant_fragment}:{host_fragment}"
    return None


def uniformity_fragments(names, uniformity=None, pair=None, dopant_fragment=None) -> list[str] | None:
    """Fragments of the uniformity test: ``uniformity``, else the pair's first, else the declared
    dopant fragment when among ``names``, else None (every fragment).

    Examples
    --------
    >>> uniformity_fragments(["AlO-", "MnO-"], dopant_fragment="AlO-")
    ['AlO-']
    >>> uniformity_fragments(["AlO-", "MnO-"]) is None
    True
    """
    names = [str(n) for n in names]
    if split_names(uniformity):
        return split_names(uniformity)
    if pair:
        return [str(pair).partition(":")[0].strip()]
    return [dopant_fragment] if dopant_fragment and dopant_fragment in names else None


def depth_result(profile, test):
    """A profile with its uniformity test merged in: the one result of ``doptrace tofsims depth``."""
    result = profile.copy()
    for name in test.data_vars:
        result[f"uniformity_{name}" if not name.startswith(("slope", "intercept")) else name] = test[name]
    for name in ("slab", "slab_low", "slab_high"):
        result = result.assign_coords({name: test[name]})
    result.attrs["fitted"] = "slope intercept"
    result.attrs["uniformity_axis"] = test.attrs["axis"]
    result.attrs["surface_excluded_below"] = test.attrs["surface_excluded_below"]
    result.attrs["quality"] = test.attrs["quality"]  # the test's record already holds the profile's
    result.attrs["quality_reasons"] = list(test.attrs["quality_reasons"])
    return result


def analyse(path, fragments=None, normalize=None, crater_depth_nm=None, layer_rates=None, surface_depth_nm=None,
            uniformity=None, pair=None, coloc_bin: int = 4, compare=None, roi_from=None, dead_time=None,
            drift_correct: bool = False, seed: int = 0, masses=None, mva=None, mva_components: int = 4,
            mva_scaling: str = "poisson", dopant_fragment=None, host_fragment=None) -> dict:
    """Every result of one ToF-SIMS file: maps, depth profile, uniformity, colocalization, volume, totals.

    Parameters
    ----------
    path : str or path-like
        An image stack, or a depth-profile ASCII export (then only ``profile`` and ``uniformity``).
    fragments : list of str, optional
        Default: :func:`choose_fragments`.
    normalize : str, optional
        ``"total"`` (the default when the file has total counts), ``"fragments"``, a fragment
        name, or ``"none"``.
    crater_depth_nm, layer_rates : optional
        Depth conversion, as for :func:`load`.
    surface_depth_nm : float, optional
        Depth (nm) excluded from the uniformity test.
    uniformity : list of str, optional
        Fragments tested for uniformity (default: :func:`uniformity_fragments`: the pair's first, else
        ``dopant_fragment`` when the file has it, else every analysed fragment).
    pair : str, optional
        Colocalized pair ``"A:B"`` (default: ``dopant_fragment:host_fragment`` when the file has
        both; without them no colocalization).
    coloc_bin : int
        Lateral binning of the colocalization images.
    compare : list of str, optional
        Fragments whose integrated intensities are kept for comparison between samples
        (default: the analysed fragments).
    roi_from : str, optional
        Profile and integrate only where this fragment's map is high (:func:`make_roi`).
    dead_time, drift_correct
        As for :func:`load`.
    seed : int
        Seed of the colocalization's spatial null.
    masses : list of str, optional
        Custom mass intervals instead of the peak list (see :func:`load`).
    mva : {"pca", "nmf"}, optional
        Also a multivariate analysis of the summed image (:func:`doptrace.tofsims.mva.mva`) of
        every mass interval read, with ``mva_components`` components and ``mva_scaling``.
    dopant_fragment, host_fragment : str, optional
        The fragment that carries the dopant and one of the host lattice (e.g. ``"BO-"`` and
        ``"MnO-"`` for boron in a Mn-rich oxide): the defaults of ``uniformity`` and ``pair`` when
        the file holds them, and always analysed. Neither has a default.

    Returns
    -------
    dict of str to xarray.Dataset
        ``maps`` (with the pair's ratio map), ``profile``, ``uniformity``, ``coloc`` (with a pair),
        ``projections``, ``integrated`` and ``mva`` (when asked); a profile export gives
        ``profile`` and ``uniformity`` only.
    """
    from . import coloc, profiles, volume
    from .compare import integrated_intensities
    from .maps import fragment_maps

    export = profile_export(path, split_names(fragments), "total" if normalize is None else normalize,
                            crater_depth_nm, layer_rates)
    if export is not None:
        tested = uniformity_fragments(export["fragment"].values, uniformity, None, dopant_fragment)
        return carry(export, {"profile": export,
                              "uniformity": profiles.uniformity_test(export, tested, surface_depth=surface_depth_nm)})
    ds = load(path, dead_time=None if dead_time is None else bool(dead_time), drift_correct=bool(drift_correct),
              crater_depth_nm=crater_depth_nm, layer_rates=layer_rates, masses=masses)
    chosen = choose_fragments(ds, split_names(fragments), dopant_fragment, host_fragment)
    pair = pair or declared_pair(ds["fragment"].values, dopant_fragment, host_fragment)
    if pair:  # the pair's fragments are always analysed (the first is the default uniformity test)
        chosen += [f.strip() for f in str(pair).split(":") if f.strip() not in chosen]
    norm = normalization(normalize if normalize is not None else ("total" if "total" in ds else None))
    results = {"maps": fragment_maps(ds, chosen, normalize=norm)}
    if pair:
        with_ratio(results["maps"], ds, pair)
    roi = make_roi(ds, from_fragment=roi_from)
    profile = profiles.depth_profile(ds, chosen, roi=roi, normalize=norm)
    results["profile"] = profile
    tested = uniformity_fragments(chosen, uniformity, pair, dopant_fragment) or chosen
    results["uniformity"] = profiles.uniformity_test(profile, tested, surface_depth=surface_depth_nm)
    if pair:
        results["coloc"] = coloc.colocalization(ds, pair, bin=int(coloc_bin), seed=int(seed))
    results["projections"] = volume.projections(ds, tested[0])
    results["integrated"] = integrated_intensities(ds, split_names(compare) or chosen, normalize=norm, roi=roi)
    if mva:
        from .mva import mva as decompose

        results["mva"] = decompose(ds, str(mva), int(mva_components), scaling=str(mva_scaling), seed=int(seed))
    return carry(ds, results)  # a simulated file's marker (doptrace.core.simulated) on every result


def parse_scans(text) -> tuple[int, int] | None:
    """A scan range ``"first:last"`` (inclusive; ``"0-23"`` too) as a pair; None or empty -> None.

    Examples
    --------
    >>> parse_scans("0:23")
    (0, 23)
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, (list, tuple)) and len(text) == 2:
        return int(text[0]), int(text[1])
    match = re.fullmatch(r"\s*(\d+)\s*[:-]\s*(\d+)\s*", str(text))
    if not match:
        raise ToFSIMSError(f"scans {text!r}: expected first:last, e.g. 0:23")
    return int(match.group(1)), int(match.group(2))


def total_sputter_time(profile) -> float:
    """The sputter time at the crater's bottom: ``attrs["sputter_time_total"]`` when the file gives
    it, else the last scan's start plus one scan (the median scan time).

    Examples
    --------
    >>> import xarray as xr
    >>> total_sputter_time(xr.Dataset(coords={"sputter_time": ("scan", [0.0, 50.0, 100.0])}))
    150.0
    """
    t = np.asarray(profile["sputter_time"].values, float)
    if "sputter_time_total" in profile.attrs:
        return float(profile.attrs["sputter_time_total"])
    return float(t[-1] + (np.median(np.diff(t)) if t.size > 1 else 0.0))


def counts_beyond(profile, fragment: str, start: float) -> float:
    """Counts of ``fragment`` in the scans at or beyond ``start`` (nm on a depth axis, else s);
    infinite when the profile lacks the fragment (nothing to test, nothing to count)."""
    if profile is None or fragment not in [str(f) for f in profile["fragment"].values]:
        return float("inf")
    axis = profile["depth"] if "depth" in profile.coords else profile["sputter_time"]
    keep = np.asarray(axis.values, float) >= start
    return float(np.sum(profile["counts"].sel(fragment=fragment).values[keep]))


def depth(path, fragments=None, normalize="total", crater_depth_nm=None, layer_rates=None, scans=None,
          roi=None, roi_from=None, surface_depth_nm=None, dead_time=None, drift_correct: bool = False,
          masses=None, progress: bool = False):
    """Depth profiles and their uniformity test of one file: ``doptrace tofsims depth``.

    Parameters
    ----------
    path : str or path-like
        An image stack (:func:`load`) or a depth-profile export (:func:`profile_export`).
    fragments : list of str, optional
        Default: every fragment.
    normalize : str or None
        ``"total"``, ``"fragments"``, a fragment name, or None.
    crater_depth_nm, layer_rates, dead_time, drift_correct, masses, progress
        As for :func:`load`.
    scans : str or (int, int), optional
        Scan range (:func:`parse_scans`) of an image stack.
    roi, roi_from
        Region of interest of an image stack (:func:`make_roi`).
    surface_depth_nm : float, optional
        Excluded from the uniformity test.

    Returns
    -------
    (xarray.Dataset, xarray.Dataset)
        The profile (:func:`doptrace.tofsims.profiles.depth_profile` or of the export) and its
        :func:`doptrace.tofsims.profiles.uniformity_test` over every fragment; :func:`depth_result`
        merges them into one Dataset.
    """
    from . import profiles
    from .maps import scan_selection

    fragments = split_names(fragments)
    profile = profile_export(path, fragments, normalize, crater_depth_nm, layer_rates)
    if profile is None:
        ds = load(path, dead_time=dead_time, drift_correct=drift_correct, crater_depth_nm=crater_depth_nm,
                  layer_rates=layer_rates, progress=progress, masses=masses)
        if parse_scans(scans):
            ds = scan_selection(ds, parse_scans(scans))
        profile = carry(ds, profiles.depth_profile(ds, fragments, roi=make_roi(ds, roi, roi_from),
                                                   normalize=normalization(normalize)))
    return profile, carry(profile, profiles.uniformity_test(profile, surface_depth=surface_depth_nm))


def compare_files(path_a, path_b, fragments, normalize="total", scans=None, roi=None, roi_from=None,
                  tile: int = 8, n_boot: int = 2000, seed: int = 0, **load_options):
    """Normalised integrated intensities of two image stacks and their ratio ``b / a`` with Poisson
    and tile-bootstrap intervals (:func:`doptrace.tofsims.compare.compare_samples`).

    ``load_options`` go to :func:`load` for both files (dead_time, drift_correct, masses, ...);
    ``roi``/``roi_from`` make each file's own region (:func:`make_roi`).
    """
    from .compare import compare_samples, integrated_intensities

    fragments, scans, norm = split_names(fragments), parse_scans(scans), normalization(normalize)
    sides = []
    for path in (path_a, path_b):
        ds = load(path, **load_options)
        sides.append(integrated_intensities(ds, fragments, norm, scans, make_roi(ds, roi, roi_from), tile))
    return compare_samples(*sides, n_boot=n_boot, seed=seed)


def peaks(path, calibrate: bool = True, n_sigma: float = 5.0, top=None, tolerance_ppm: float = 200.0,
          candidates=()):
    """Peak search on a file's summed spectrum, on a fresh mass calibration when it succeeds.

    Returns
    -------
    (xarray.Dataset, str)
        :func:`doptrace.tofsims.peaks.peak_search`'s result and a note ("" or why the file's own
        sf, k0 were used: the calibration failed).
    """
    from . import calibration
    from .peaks import peak_search

    spectrum = read_spectrum(path)
    if "channel" not in spectrum.coords:
        raise ToFSIMSError(f"{path}: peak search needs a spectrum over time-of-flight channels")
    cal, note = (calibration.calibrate(spectrum) if calibrate else None), ""
    if cal is not None and cal.attrs.get("quality") == "failed":
        note = f"calibration failed ({'; '.join(cal.attrs.get('quality_reasons', []))}): using the file's sf, k0"
        cal = None
    result = peak_search(spectrum, cal, n_sigma=n_sigma, top=top, tolerance_ppm=tolerance_ppm,
                         candidates=split_names(candidates) or ())
    return carry(spectrum, result), note


def compare_integrated(a, b):
    """The ratio ``b / a`` of two analyses' ``integrated`` results over their common fragments, or
    None when they share none or were normalised differently."""
    from .compare import compare_samples

    common = [f for f in a["fragment"].values if f in list(b["fragment"].values)]
    if not common or a.attrs.get("normalization") != b.attrs.get("normalization"):
        return None
    return compare_samples(a.sel(fragment=common), b.sel(fragment=common))
