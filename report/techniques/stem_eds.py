"""STEM-EDS adapter: ``doptrace eds info|maps|quantify|homogeneity``, project analyses, report section, demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "eds"
TITLE = "STEM-EDS: element maps, quantification, homogeneity"
ENTRY_SCHEMA = {
    "file": ("file", True),
    "elements": ("list", True),  # ["O", "B", "Mn", "Co", "Ni"] or line names ["Fe_Ka", "Pt_La"]
    "method": ("text", False),  # "model" (default) or "windows"
    "kfactors": ("file", False),  # TOML with source and [kfactors]; enables at% maps
    "quantify": ("list", False),  # elements quantified (default: all with a k-factor)
    "bin": ("number", False),
    "thickness_nm": ("number", False),  # thin-film absorption correction
    "lazy": ("bool", False),
}
DEMO_ELEMENTS = ["O", "B", "Mn", "Co", "Ni"]


# ----------------------------------------------------------------------------- pipeline
def _split(value) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def _intensities(da, elements, method: str, background="auto", width: float = 2.0, progress: bool = False):
    from doptrace.stem_eds import lines as xl
    from doptrace.stem_eds.model_fit import line_intensities

    lines = xl.parse_elements(elements, float(da["energy"].values[-1]), da.attrs.get("source", ""))
    if method == "windows":
        return line_intensities(da, lines, "windows", background=background, width=width, progress=progress)
    return line_intensities(da, lines, method, progress=progress)


def _region_mask(text: str | None, ints):
    """Boolean (y, x) mask from ``"X0:X1,Y0:Y1"`` (pixel index ranges, end exclusive); None for all."""
    from doptrace.stem_eds.errors import EDSError

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


def _quantified(da, factors, elements, method: str, thickness_nm=None, background="auto", width=2.0,
                progress: bool = False, region: str | None = None, dose: float | None = None):
    """Intensities of the k-factor lines, their per-pixel quantification and the total over a region
    (``region`` "X0:X1,Y0:Y1" in pixels; default the whole image). With ``dose`` (electrons per
    pixel) the lines and factors come from ``[zetafactors]`` and the zeta method is used; the
    region total then has dose x (pixels in the region)."""
    from doptrace.stem_eds.errors import EDSError
    from doptrace.stem_eds.model_fit import line_intensities
    from doptrace.stem_eds.quantify import lines_for, quantify, sum_region

    table = "kfactors" if dose is None else "zetafactors"
    if dose is not None and not (np.isfinite(dose) and dose > 0):
        raise EDSError(f"--dose {dose}: the electron dose per pixel must be a positive number")
    lines = lines_for(elements, factors, float(da["energy"].values[-1]), da.attrs.get("source", ""), table=table)
    kwargs = {"background": background, "width": width} if method == "windows" else {}
    ints = line_intensities(da, lines, method, progress=progress, **kwargs)

    def quant(values, pixels=1):
        if dose is None:
            return quantify(values, factors, thickness_nm=thickness_nm)
        return quantify(values, factors, method="zeta", dose=dose * pixels, absorption=bool(thickness_nm))

    result = quant(ints)
    spatial = [d for d in ints["intensity"].dims if d != "element"]
    if spatial:
        mask = _region_mask(region, ints)
        pixels = int(np.prod([ints.sizes[d] for d in spatial])) if mask is None else int(np.sum(mask))
        total = quant(sum_region(ints, mask), pixels)
        result.attrs["total_region"] = region or "whole image"
        for name in ("atomic_percent", "weight_percent"):
            result[f"total_{name}"] = total[name]
            result[f"total_{name}_stderr"] = total[f"{name}_stderr"]
        result.attrs["fitted"] += " total_atomic_percent total_weight_percent"
        from doptrace.core.quality import add_quality
        from doptrace.stem_eds.quality import quant_quality

        add_quality(result, *quant_quality(result))  # the region totals' own rules
    return result


def analyse(settings: dict) -> dict:
    """One project entry -> ``maps`` (intensities, at% with k-factors), ``homogeneity`` (spectrum images)."""
    from doptrace.stem_eds import bin_pixels, homogeneity, load_factors, read

    path = Path(settings["file"])
    da = bin_pixels(read(path, lazy=bool(settings.get("lazy", False))), int(settings.get("bin", 1) or 1))
    method = str(settings.get("method", "model"))
    elements = _split(settings["elements"])
    results = {}
    if settings.get("kfactors"):
        factors = load_factors(settings["kfactors"])
        wanted = _split(settings.get("quantify")) or [
            e for e in elements if any(n.split("_")[0] == e.split("_")[0] for n in factors["kfactors"])
        ]
        results["quant"] = _quantified(da, factors, wanted, method, settings.get("thickness_nm"))
        mapped = _intensities(da, elements, method)
        results["maps"] = mapped
        maps_for_h = results["quant"]
    else:
        results["maps"] = _intensities(da, elements, method)
        maps_for_h = results["maps"]
    if {"x", "y"} <= set(da.dims) and da.sizes["x"] >= 4 and da.sizes["y"] >= 4:
        results["homogeneity"] = homogeneity(maps_for_h)
    return results


# ----------------------------------------------------------------------------- CLI
def register_cli(subparsers) -> None:
    eds = subparsers.add_parser(NAME, help="STEM-EDS: element maps, quantification, homogeneity")
    sub = eds.add_subparsers(dest="eds_command", required=True)

    info = sub.add_parser("info", help="describe an EDS file (.emd, .bcf, .hspy)")
    info.add_argument("file")
    info.set_defaults(handler=_cmd_info)

    def common(p):
        p.add_argument("file")
        p.add_argument("--elements", required=True, help="comma list: O,B,Mn,Co,Ni or Fe_Ka,Pt_La")
        p.add_argument("--method", choices=["model", "windows"], default="model")
        p.add_argument("--bin", type=int, default=1, help="sum N x N pixels first")
        p.add_argument("--background", default="auto",
                       help="windows method: auto (clean windows), none, or LEFT,RIGHT distances in FWHM")
        p.add_argument("--width", type=float, default=2.0, help="windows method: integration width in FWHM")
        p.add_argument("--lazy", action="store_true", help="read with dask (large files)")
        p.add_argument("--out", required=True, help="output NetCDF file")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    maps = sub.add_parser("maps", help="element intensity maps (and at%% maps with --kfactors)")
    common(maps)
    maps.add_argument("--kfactors", help="TOML k-factor file: at%% maps too")
    maps.add_argument("--plot", help="PNG of the maps")
    maps.set_defaults(handler=_cmd_maps)

    quant = sub.add_parser("quantify", help="Cliff-Lorimer quantification with named k-factors")
    common(quant)
    quant.add_argument("--kfactors", required=True, help="TOML: source = ..., [kfactors] Fe_Ka = 1.45 ...")
    quant.add_argument("--thickness", type=float, help="thickness in nm for the absorption correction")
    quant.add_argument("--plot", help="PNG of the at%% maps")
    quant.add_argument("--region", help="total over pixels X0:X1,Y0:Y1 (default: the whole image)")
    quant.add_argument("--dose", type=float, help="electrons per pixel: zeta-factor method with the TOML's "
                       "[zetafactors] (--thickness then switches on its absorption correction)")
    quant.set_defaults(handler=_cmd_quantify)

    hom = sub.add_parser("homogeneity", help="homogeneity of an eds maps/quantify result")
    hom.add_argument("maps", help="NetCDF from doptrace eds maps or quantify")
    hom.add_argument("--tolerance", type=float, default=0.05, help="relative variation that must be detectable")
    hom.add_argument("--out", required=True)
    hom.add_argument("--plot", help="PNG of H versus block size")
    hom.set_defaults(handler=_cmd_homogeneity)


def _background(text: str):
    from doptrace.stem_eds.errors import EDSError

    if text in ("auto", "none"):
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise EDSError(f"--background {text!r}: expected auto, none or LEFT,RIGHT in FWHM") from None
    if len(values) != 2 or min(values) < 0:
        raise EDSError(f"--background {text!r}: expected two non-negative distances in FWHM")
    return tuple(values)


def _load(args):
    from doptrace.stem_eds import bin_pixels, read

    return bin_pixels(read(args.file, lazy=args.lazy), args.bin)


def _cmd_info(args) -> int:
    from doptrace.stem_eds import info

    for key, value in info(args.file).items():
        print(f"{key:18s} {value}")
    return 0


def _write(ds, out: str, plot: str | None, figure) -> None:
    from doptrace.core.atomic import save_figure
    from doptrace.report.conventions import check_result, write_netcdf

    check_result(ds, out)
    fig = figure(ds) if plot else None
    write_netcdf(ds, out)
    if fig is not None:
        save_figure(fig, plot, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)


def _cmd_maps(args) -> int:
    from doptrace.stem_eds import load_factors

    da = _load(args)
    if args.kfactors:
        ds = _quantified(da, load_factors(args.kfactors), _split(args.elements), args.method,
                         background=_background(args.background), width=args.width, progress=not args.quiet)
    else:
        ds = _intensities(da, _split(args.elements), args.method, _background(args.background), args.width,
                          progress=not args.quiet)
    _write(ds, args.out, args.plot, lambda d: maps_figure(d, Path(args.file).name))
    print(f"maps: {args.out} ({', '.join(str(l) for l in ds['line'].values)}; method {args.method})")
    return 0


def _cmd_quantify(args) -> int:
    from doptrace.core.fmt import format_value
    from doptrace.stem_eds import load_factors

    ds = _quantified(_load(args), load_factors(args.kfactors), _split(args.elements), args.method,
                     args.thickness, _background(args.background), args.width, progress=not args.quiet,
                     region=args.region, dose=args.dose)
    _write(ds, args.out, args.plot, lambda d: maps_figure(d, Path(args.file).name))
    key = "total_atomic_percent" if "total_atomic_percent" in ds else "atomic_percent"
    for element, line in zip(ds["element"].values, ds["line"].values):
        value = float(ds[key].sel(element=element))
        error = float(ds[f"{key}_stderr"].sel(element=element))
        print(f"{line:8s} {format_value(value, error, 'at%')}")
    return 0


def _cmd_homogeneity(args) -> int:
    from doptrace.report.conventions import read_netcdf
    from doptrace.stem_eds import homogeneity

    maps = read_netcdf(args.maps)
    # errors must name the file the user passed (the maps .nc), not the spectrum it was made from
    maps.attrs["source"] = str(args.maps)
    result = homogeneity(maps, tolerance=args.tolerance)
    result.attrs["source"] = str(args.maps)
    _write(result, args.out, args.plot, h_figure)
    for element, verdict in zip(result["element"].values, result["verdict"].values):
        print(f"{element:4s} {verdict}")
    return 0


# ----------------------------------------------------------------------------- figures
def _scale_bar(ax, ds, width_px: int):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x = np.asarray(ds["x"].values, float)
    if x.size < 2:
        return
    pixel = x[1] - x[0]
    target = pixel * width_px / 4
    nice = 10 ** np.floor(np.log10(target))
    length = max(m * nice for m in (1, 2, 5) if m * nice <= target)
    bar = AnchoredSizeBar(ax.transData, length / pixel, f"{length:g} {ds['x'].attrs.get('units', '')}",
                          "lower right", pad=0.2, color="black", frameon=True, size_vertical=width_px / 60,
                          fontproperties={"size": 7})
    bar.patch.set_alpha(0.7)
    ax.add_artist(bar)


def maps_figure(ds, title: str = ""):
    """One panel per element (at% when quantified, else net counts), colour bar with units, scale bar."""
    import matplotlib.pyplot as plt

    key = "atomic_percent" if "atomic_percent" in ds else "intensity"
    values = ds[key]
    if values.ndim != 3:
        fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
        ax.bar([str(l) for l in ds["line"].values], np.asarray(values.values, float),
               yerr=np.asarray(ds[f"{key}_stderr"].values, float), capsize=3)
        ax.set_ylabel(f"{key.replace('_', ' ')} ({values.attrs.get('units', '')})")
        ax.set_title(title)
        return fig
    elements = [str(e) for e in ds["element"].values]
    qualitative = dict(zip(elements, np.asarray(ds["qualitative"].values, int))) if "qualitative" in ds.coords else {}
    n = len(elements)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.7 * rows), layout="constrained", squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    # Pixels with almost no counts (vacuum, holes) carry no composition: left blank.
    total = np.asarray(ds["intensity"].sum("element").values, float)
    positive = total[total > 0]
    valid = total > 0.1 * (np.median(positive) if positive.size else 0.0)
    for ax, element, line in zip(axes.ravel(), elements, ds["line"].values):
        image = np.where(valid, np.asarray(values.sel(element=element).values, float), np.nan)
        finite = image[np.isfinite(image)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0, 1))
        # Counts and compositions cannot be negative: noise below 0 (a light line's at% can read
        # -60 % in a pixel) is shown at the bottom of the scale, not given half the colour range.
        lo = max(lo, 0.0)
        hi = hi if hi > lo else lo + 1.0
        im = ax.imshow(image, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_facecolor("0.85")
        ax.set_title(f"{line}" + (" (qualitative)" if qualitative.get(element) else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, ds, image.shape[1])
        label = "at%" if key == "atomic_percent" else "net counts"
        fig.colorbar(im, ax=ax, shrink=0.8, label=label, extend="both" if finite.size and finite.min() < lo else "max")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def h_figure(h, title: str = ""):
    """Block dispersion index H versus block size with its uncertainty; H = 1 is pure counting noise."""
    from doptrace.report.figures import new_figure

    fig, ax = new_figure(5.6, 3.8)
    sizes = np.asarray(h["block_size"].values, float)
    for element in h["element"].values:
        ax.errorbar(sizes, h["H"].sel(element=element).values, yerr=h["H_stderr"].sel(element=element).values,
                    marker="o", ms=4, capsize=3, label=str(element))
    ax.axhline(1.0, color="0.4", ls="--", lw=1, label="Poisson only")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("block size (px)")
    ax.set_ylabel("H = CV / CV_Poisson")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def radial_figure(h, title: str = ""):
    """Radial composition profile of each element about the count-weighted centre, Poisson error bars."""
    import matplotlib.pyplot as plt

    elements = [str(e) for e in h["element"].values]
    fig, axes = plt.subplots(1, len(elements), figsize=(2.3 * len(elements), 2.6), layout="constrained",
                             squeeze=False, sharex=True)
    r = np.asarray(h["radius"].values, float)
    for ax, element in zip(axes[0], elements):
        ax.errorbar(r, h["profile_radial"].sel(element=element).values,
                    yerr=h["profile_radial_stderr"].sel(element=element).values, marker="o", ms=3, capsize=2)
        ax.set_title(element, fontsize=9)
        ax.set_xlabel(f"radius ({h['radius'].attrs.get('units', '')})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"composition ({h['profile_radial'].attrs.get('units', '')})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# ----------------------------------------------------------------------------- section
def section(analyses) -> list:
    """Maps and at% maps with scale and colour bars, quantification, H plots, correlations, verdicts."""
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Plot, Table, Text

    blocks = [Text(
        "Line intensities come from a linear fit of Gaussian line families (exSpy line energies and weights, "
        "detector resolution from Mn Ka) plus a polynomial background over narrow energy ranges, so "
        "overlapping lines (Co Kb on Ni Ka, Mn L next to O K) are separated; the zero-energy peak is never used. "
        "Compositions are Cliff-Lorimer at% with named k-factors; errors are propagated Poisson. Homogeneity "
        "is tested on composition (never raw counts, which follow thickness): H = CV / CV_Poisson over block "
        "sizes and a chi-square dispersion test. Light-element lines (B K) are mapped but qualitative: "
        "B K sits on the zero-peak tail and the window-absorption edge, so its number depends on the background "
        "model and can be off by far more than its Poisson error (on a simulated sample with 2.1 at% B it reads "
        "1.4 at% with the automatic background and 3.4 to 7.6 at% with fixed polynomials of degree 4 to 2)."
    )]
    quant_rows, verdict_rows = [], []
    for analysis in analyses:
        sample = analysis.sample
        res = analysis.results
        name = Path(str(analysis.entry.settings.get("file", ""))).name
        maps = res.get("maps")
        if maps is not None and maps["intensity"].ndim == 3:
            blocks.append(Plot(maps_figure, (maps, f"{sample}: {name} net line intensities"),
                                 f"{sample}: element maps (net counts, {maps.attrs.get('method')} method)"))
        quant = res.get("quant")
        if quant is not None:
            if quant["atomic_percent"].ndim == 3:
                blocks.append(Plot(maps_figure, (quant, f"{sample}: at% maps"), f"{sample}: atomic-percent maps"))
            key = "total_atomic_percent" if "total_atomic_percent" in quant else "atomic_percent"
            for element, line, qual in zip(quant["element"].values, quant["line"].values, quant["qualitative"].values):
                quant_rows.append([
                    sample, str(line),
                    format_value(float(quant[key].sel(element=element)), float(quant[f"{key}_stderr"].sel(element=element)), "at%"),
                    "qualitative" if int(qual) else "quantitative", quant.attrs.get("factors_source", ""),
                ])
        h = res.get("homogeneity")
        if h is not None:
            blocks.append(Plot(h_figure, (h, f"{sample}: block dispersion index"),
                                 f"{sample}: H versus block size ({h.attrs.get('basis')})"))
            blocks.append(Plot(radial_figure, (h, f"{sample}: radial profiles"), f"{sample}: radial composition profiles"))
            elements = [str(e) for e in h["element"].values]
            blocks.append(Table([""] + elements,
                                [[a] + [f"{float(h['correlation'].sel(element=a, element_b=b)):.2f}" for b in elements]
                                 for a in elements], f"{sample}: Pearson correlation of composition maps (compositions sum to "
                                 "100 %, so counting noise alone makes the major element, O, anti-correlate with the "
                                 "others even in a homogeneous sample: read a negative r against O with that in mind)"))
            for element in elements:
                sel = h.sel(element=element)
                verdict_rows.append([
                    sample, element, str(sel["verdict"].values),
                    f"{float(sel['H'].max()):.2f}",
                    f"{float(sel['p_value'].min()):.3g}",
                    format_value(float(sel["slope_radial"]), float(sel["slope_radial_stderr"]),
                                 sel["slope_radial"].attrs.get("units", "")),
                ])
    if quant_rows:
        blocks.append(Table(["sample", "line", "composition", "status", "k-factors"], quant_rows,
                            "Cliff-Lorimer quantification of the whole image"))
    if verdict_rows:
        blocks.append(Table(["sample", "element", "verdict", "max H", "min p", "radial slope"], verdict_rows,
                            "Homogeneity verdicts"))
    return blocks


# ----------------------------------------------------------------------------- demo
def demo_entries(data_dir, sample: str, bulk_doped: bool, seed: int) -> list[dict]:
    """A simulated spectrum image of a Li-rich oxide particle: boron uniform in the bulk, or only in a rim."""
    from doptrace.core.atomic import write_text
    from doptrace.stem_eds.simulate import LRMO, kfactor_toml, simulate_spectrum_image

    data_dir = Path(data_dir)
    kpath = write_text(data_dir / "eds_kfactors_sim.toml", kfactor_toml())
    path = data_dir / f"{sample}_eds.hspy"
    if bulk_doped:
        simulate_spectrum_image(path, shape=(48, 48), kind="uniform", base={**LRMO, "B": 0.06},
                                thickness="particle", seed=seed)
    else:
        simulate_spectrum_image(path, shape=(48, 48), kind="rim", element="B", amplitude=0.4,
                                thickness="particle", seed=seed)
    return [{"file": path, "elements": DEMO_ELEMENTS, "method": "model", "kfactors": kpath}]
