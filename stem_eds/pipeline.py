"""The STEM-EDS pipeline: line intensities, quantification over a region, and one file's results.

These are the steps ``doptrace eds ...`` and a project's ``[[sample.eds]]`` entries run, as plain
functions, so a scientist in Python gets the same results without the report::

    from doptrace.stem_eds import pipeline
    results = pipeline.analyse("particle.hspy", ["O", "Mn", "Co", "Ni"], kfactors="k.toml")
    results["quant"]["total_atomic_percent"]

The cube is fitted once per file: the mapped lines and the quantified lines go into one model
fit (the fit is the expensive step; it reads every spectrum).
"""

from __future__ import annotations

import numpy as np

from doptrace.core.simulated import carry

from .errors import EDSError


def split_names(value) -> list[str]:
    """``"O, Mn"`` or ``["O", "Mn"]`` -> ``["O", "Mn"]`` (empty items dropped)."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def _fit(da, lines, method: str, background="auto", width: float = 2.0, progress: bool = False):
    from .model_fit import line_intensities

    if method == "windows":
        return line_intensities(da, lines, "windows", background=background, width=width, progress=progress)
    return line_intensities(da, lines, method, progress=progress)


def intensities(da, elements, method: str = "model", background="auto", width: float = 2.0,
                progress: bool = False):
    """Net line intensities of ``elements`` in every spectrum.

    Parameters
    ----------
    da : xarray.DataArray
        Counts over (..., ``energy`` keV) from :func:`doptrace.stem_eds.read`.
    elements : str or list of str
        ``"O,Mn,Co"`` or line names ``["Fe_Ka", "Pt_La"]``; an element picks its default line.
    method : {"model", "windows"}
        Linear line-family model fit, or background-subtracted windows.
    background, width
        Windows method only: background placement (``"auto"``, ``"none"`` or (left, right) in FWHM)
        and integration width in FWHM.
    progress : bool
        Progress bar over the spectra.

    Returns
    -------
    xarray.Dataset
        ``intensity`` and ``intensity_stderr`` over ``element`` and the spatial dims.
    """
    from .lines import parse_elements

    lines = parse_elements(elements, float(da["energy"].values[-1]), da.attrs.get("source", ""))
    return _fit(da, lines, method, background, width, progress)


def region_mask(text: str | None, ints):
    """Boolean (y, x) mask from ``"X0:X1,Y0:Y1"`` (pixel index ranges, end exclusive); None for all.

    Examples
    --------
    >>> import xarray as xr
    >>> ints = xr.Dataset(coords={"y": range(4), "x": range(6)})
    >>> int(region_mask("1:3,0:2", ints).sum())
    4
    """
    if not text:
        return None
    try:
        xs, ys = (part.split(":") for part in text.split(","))
        x0, x1, y0, y1 = int(xs[0]), int(xs[1]), int(ys[0]), int(ys[1])
    except ValueError:
        raise EDSError(f"--region {text!r}: expected X0:X1,Y0:Y1 in pixels") from None
    ny, nx = ints.sizes.get("y", 0), ints.sizes.get("x", 0)
    if not (0 <= x0 < x1 <= nx and 0 <= y0 < y1 <= ny):
        raise EDSError(f"--region {text!r}: outside the {nx} x {ny} pixel map")
    mask = np.zeros((ny, nx), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def quantify_intensities(ints, factors, thickness_nm=None, region: str | None = None, dose: float | None = None):
    """Per-pixel quantification of line intensities and the total over a region.

    Parameters
    ----------
    ints : xarray.Dataset
        Intensities of the lines ``factors`` names (see :func:`doptrace.stem_eds.quantify.lines_for`).
    factors : dict
        From :func:`doptrace.stem_eds.load_factors`.
    thickness_nm : float, optional
        Thin-film absorption correction (Cliff-Lorimer); with ``dose`` it switches on the zeta
        method's own absorption correction.
    region : str, optional
        Pixels ``"X0:X1,Y0:Y1"`` summed for the total (default: the whole image).
    dose : float, optional
        Electrons per pixel: zeta-factor method; the region total then has dose x pixels.

    Returns
    -------
    xarray.Dataset
        As :func:`doptrace.stem_eds.quantify`, plus ``total_atomic_percent`` and
        ``total_weight_percent`` (+ ``_stderr``) of the region for spectrum images.
    """
    from .quantify import quantify, sum_region

    def quant(values, pixels=1):
        if dose is None:
            return quantify(values, factors, thickness_nm=thickness_nm)
        return quantify(values, factors, method="zeta", dose=dose * pixels, absorption=bool(thickness_nm))

    result = quant(ints)
    spatial = [d for d in ints["intensity"].dims if d != "element"]
    if spatial:
        mask = region_mask(region, ints)
        pixels = int(np.prod([ints.sizes[d] for d in spatial])) if mask is None else int(np.sum(mask))
        total = quant(sum_region(ints, mask), pixels)
        result.attrs["total_region"] = region or "whole image"
        for name in ("atomic_percent", "weight_percent"):
            result[f"total_{name}"] = total[name]
            result[f"total_{name}_stderr"] = total[f"{name}_stderr"]
        result.attrs["fitted"] += " total_atomic_percent total_weight_percent"
        from doptrace.core.quality import add_quality

        from .quality import quant_quality

        add_quality(result, *quant_quality(result))  # the region totals' own rules
    return result


def _check_dose(dose) -> None:
    if dose is not None and not (np.isfinite(dose) and dose > 0):
        raise EDSError(f"--dose {dose}: the electron dose per pixel must be a positive number")


def quantified(da, factors, elements, method: str = "model", thickness_nm=None, background="auto",
               width: float = 2.0, progress: bool = False, region: str | None = None, dose: float | None = None):
    """Intensities of the factor table's lines, their quantification and the region total.

    Parameters
    ----------
    da : xarray.DataArray
        Counts from :func:`doptrace.stem_eds.read`.
    factors : dict
        From :func:`doptrace.stem_eds.load_factors`; its ``[kfactors]`` (or, with ``dose``,
        ``[zetafactors]``) name the lines.
    elements : str or list of str
        Elements (or line names) to quantify.
    method, background, width, progress
        As for :func:`intensities`.
    thickness_nm, region, dose
        As for :func:`quantify_intensities`.

    Returns
    -------
    xarray.Dataset
        As :func:`quantify_intensities`.
    """
    from .quantify import lines_for

    _check_dose(dose)
    table = "kfactors" if dose is None else "zetafactors"
    lines = lines_for(elements, factors, float(da["energy"].values[-1]), da.attrs.get("source", ""), table=table)
    ints = _fit(da, lines, method, background, width, progress)
    return quantify_intensities(ints, factors, thickness_nm, region, dose)


def _take(ints, elements: list[str]):
    return ints.isel(element=[[str(e) for e in ints["element"].values].index(e) for e in elements])


def parse_blocks(value, source: str = "") -> tuple[int, ...] | None:
    """Homogeneity block sizes from ``"2,4,8,16"`` or ``[2, 4, 8, 16]``; None for the default.

    Examples
    --------
    >>> parse_blocks("2, 4,8")
    (2, 4, 8)
    """
    if value is None or value == "" or value == []:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        sizes = tuple(int(str(v).strip()) for v in items if str(v).strip())
        if any(float(str(v).strip()) != int(str(v).strip()) for v in items if str(v).strip()):
            raise ValueError
    except ValueError:
        raise EDSError(f"{source + ': ' if source else ''}block sizes {value!r}: expected whole numbers of pixels, "
                       "e.g. 2,4,8,16") from None
    if not sizes or min(sizes) < 1:
        raise EDSError(f"{source + ': ' if source else ''}block sizes {value!r}: each must be at least 1 pixel")
    return tuple(sorted(set(sizes)))


def analyse(path, elements, method: str = "model", kfactors=None, quantify=None, bin: int = 1,
            thickness_nm=None, lazy: bool = False, blocks=None) -> dict:
    """Every result of one EDS file: element maps, and with k-factors at% maps and homogeneity.

    Parameters
    ----------
    path : str or path-like
        ``.emd``, ``.bcf``, ``.hspy`` ... (see :func:`doptrace.stem_eds.read`).
    elements : str or list of str
        Elements (or line names) mapped.
    method : {"model", "windows"}
        Intensity extraction (see :func:`intensities`).
    kfactors : str or path-like, optional
        TOML k-factor file: quantify too.
    quantify : list of str, optional
        Elements quantified (default: every mapped element the k-factor file has).
    bin : int
        Sum ``bin`` x ``bin`` pixels first.
    thickness_nm : float, optional
        Thin-film absorption correction.
    lazy : bool
        Read with dask (files larger than memory).
    blocks : str or list of int, optional
        Homogeneity block sizes in pixels (:func:`parse_blocks`; default
        :data:`doptrace.stem_eds.homogeneity.BLOCK_SIZES`).

    Returns
    -------
    dict of str to xarray.Dataset
        ``maps`` (intensities), ``quant`` (with k-factors) and ``homogeneity`` (spectrum images
        of at least 4 x 4 pixels; of the composition when quantified, else of the intensities).

    Notes
    -----
    The cube is fitted once: mapped and quantified lines are fitted together and the maps and the
    quantification take their lines from that one fit. Only when the k-factor file names another
    line of a mapped element than the map uses (e.g. ``Mn_La`` against the map's ``Mn_Ka``) is that
    line fitted separately, since one result holds one line per element.
    """
    from .homogeneity import homogeneity
    from .lines import parse_elements
    from .quantify import lines_for, load_factors
    from .read import bin_pixels, read

    da = bin_pixels(read(path, lazy=bool(lazy)), int(bin or 1))
    source, emax = da.attrs.get("source", ""), float(da["energy"].values[-1])
    mapped = parse_elements(split_names(elements), emax, source)
    results = {}
    if not kfactors:
        results["maps"] = _fit(da, mapped, method)
        basis = results["maps"]
    else:
        factors = load_factors(kfactors)
        wanted = split_names(quantify) or [
            e for e in split_names(elements) if any(n.split("_")[0] == e.split("_")[0] for n in factors["kfactors"])
        ]
        quant_lines = lines_for(wanted, factors, emax, source)
        by_element = {line.element: line for line in mapped}
        other_line = [q for q in quant_lines if q.element in by_element and by_element[q.element].name != q.name]
        fitted = mapped + [q for q in quant_lines if q.element not in by_element]
        ints = _fit(da, fitted, method)
        results["maps"] = _take(ints, [line.element for line in mapped])
        if other_line:
            quant_ints = _fit(da, quant_lines, method)
        else:
            quant_ints = _take(ints, [q.element for q in quant_lines])
        results["quant"] = quantify_intensities(quant_ints, factors, thickness_nm)
        basis = results["quant"]
    if {"x", "y"} <= set(da.dims) and da.sizes["x"] >= 4 and da.sizes["y"] >= 4:
        sizes = parse_blocks(blocks, str(path))
        results["homogeneity"] = homogeneity(basis, **({"block_sizes": sizes} if sizes else {}))
    return carry(da, results)  # a simulated file's marker (doptrace.core.simulated) on every result
