"""STEM-EDS adapter: ``doptrace eds info|maps|quantify|homogeneity``, project analyses, checks, report section, demo.

The processing itself is :mod:`doptrace.stem_eds.pipeline`; the figures are :mod:`doptrace.stem_eds.plot`.
"""

from __future__ import annotations

from pathlib import Path

NAME = "eds"
TITLE = "STEM-EDS: element maps, quantification, homogeneity"
LABEL = "STEM-EDS"
CODE = ("doptrace.stem_eds",)  # packages whose source decides this adapter's results (cache key)
ENTRY_SCHEMA = {
    "file": ("file", True),
    "elements": ("list", True),  # ["O", "B", "Mn", "Co", "Ni"] or line names ["Fe_Ka", "Pt_La"]
    "method": ("text", False),  # "model" (default) or "windows"
    "kfactors": ("file", False),  # TOML with source and [kfactors]; enables at% maps
    "quantify": ("list", False),  # elements quantified (default: all with a k-factor)
    "bin": ("number", False),
    "thickness_nm": ("number", False),  # thin-film absorption correction
    "lazy": ("bool", False),
    "blocks": ("list", False),  # homogeneity block sizes in pixels, e.g. [2, 4, 8, 16] (default 2-32)
}
#: this technique's thresholds in a project's [checks] table: key -> (kind, default, meaning)
CHECKED_RESULTS = ("homogeneity",)
THRESHOLDS = {
    "eds_elements": ("list", [], "elements whose homogeneity is reported (default: all mapped)"),
}
DEMO_ELEMENTS = ["O", "B", "Mn", "Co", "Ni"]


def analyse(settings: dict) -> dict:
    """One project entry -> :func:`doptrace.stem_eds.pipeline.analyse` (whose keywords are the entry's keys)."""
    from doptrace.stem_eds import pipeline

    options = {k: v for k, v in settings.items() if k not in ("file", "elements")}
    return pipeline.analyse(Path(settings["file"]), settings["elements"], **options)


# ----------------------------------------------------------------------------- evidence


def eds_checks(sample: str, homogeneity, th: dict) -> list:
    """Homogeneity index H = CV_observed / CV_Poisson per element at the most telling block size.

    Only the dopant's row is decisive; the host elements' rows say whether the host itself is even.
    """
    import numpy as np

    from ..checks import CONTRADICTED, SUPPORTED, UNDETERMINED, Check
    from ..checks import percent as _pct

    ds = homogeneity
    dopant = str(th["dopant"])
    elements = [str(e) for e in th["eds_elements"]] or [str(e) for e in ds["element"].values]
    alpha = float(ds.attrs.get("alpha", float("nan")))
    pixel = float(ds.attrs.get("pixel_size", 1.0))
    rows = []
    for element in elements:
        if element not in [str(e) for e in ds["element"].values]:
            continue
        e = ds.sel(element=element)
        h, h_se = np.asarray(e["H"].values, float), np.asarray(e["H_stderr"].values, float)
        j = int(np.nanargmax(h))
        text = str(e["verdict"].values)
        size = int(ds["block_size"].values[j])
        detectable = float(e["detectable_cv"])
        qualitative = bool(int(e["qualitative"])) if "qualitative" in e.coords else False
        line = str(e["line"].values) if "line" in e.coords else element
        note = f" ({line} is qualitative in EDS)" if qualitative else ""
        if text.startswith("inhomogeneous"):
            verdict = CONTRADICTED
            reason = (f"{element} varies more than counting noise allows: H = {h[j]:.2f} ± {h_se[j]:.2f} in "
                      f"{size * pixel:g}-nm blocks (p = {float(e['p_value'].values[j]):.2g} < {alpha:.2g}){note}.")
        elif text == "homogeneous":
            verdict = SUPPORTED
            reason = (f"{element} is even to within counting noise (largest H = {h[j]:.2f} ± {h_se[j]:.2f}); a "
                      f"{_pct(detectable)} variation would have been seen{note}.")
        else:
            verdict = UNDETERMINED
            reason = (f"Too few {element} counts: only a variation above {_pct(detectable)} could be seen "
                      f"(largest H = {h[j]:.2f} ± {h_se[j]:.2f}){note}.")
        rows.append(Check(sample, LABEL, f"{element} homogeneous", "H (largest)", float(h[j]), float(h_se[j]),
                          "1", f"p ≥ {alpha:.2g}; detectable CV ≤ {float(ds.attrs.get('tolerance', 0.05)):g}",
                          verdict, reason, element == dopant))
    return rows


def checks(sample: str, results: dict, th: dict, depth: dict) -> list:
    """Checks of one analysis with a homogeneity result (:func:`eds_checks`)."""
    return eds_checks(sample, results["homogeneity"], th) if "homogeneity" in results else []


# ----------------------------------------------------------------------------- section
def section(analyses) -> list:
    """Maps and at% maps with scale and colour bars, quantification, H plots, correlations, verdicts."""
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Plot, Table, Text
    from doptrace.stem_eds.plot import plot_homogeneity, plot_maps, plot_radial

    blocks = [Text(
        "Line intensities come from a linear fit of Gaussian line families (exSpy line energies and weights, "
        "detector resolution from Mn Ka) plus a polynomial background over narrow energy ranges, so "
        "overlapping lines (Co Kb on Ni Ka, Mn L next to O K) are separated; the zero-energy peak is never used. "
        "Compositions are Cliff-Lorimer at% with named k-factors; errors are propagated Poisson. Homogeneity "
        "is tested on composition (never raw counts, which follow thickness): H = CV / CV_Poisson over block "
        "sizes and a chi-square dispersion test."
    )]
    qualitative = sorted({str(line) for a in analyses for ds in a.results.values() if "qualitative" in ds.coords
                          and "line" in ds.coords for line, q in zip(ds["line"].values, ds["qualitative"].values)
                          if int(q)})
    if qualitative:  # named only when mapped, so a report without them never mentions them
        blocks.append(Text(
            f"Light-element lines ({', '.join(qualitative)}) are mapped but qualitative: they sit on the zero-peak "
            "tail and the window-absorption edge, so their numbers depend on the background model and can be off "
            "by far more than their Poisson error"
            # measured with the B K line, so said only where B K is mapped
            + (" (on a simulated sample with 2.1 at% B, B K reads 1.4 at% with the automatic background and 3.4 "
               "to 7.6 at% with fixed polynomials of degree 4 to 2)" if "B_Ka" in qualitative else "") + "."))
    quant_rows, verdict_rows = [], []
    for analysis in analyses:
        sample = analysis.sample
        res = analysis.results
        name = Path(str(analysis.entry.settings.get("file", ""))).name
        maps = res.get("maps")
        if maps is not None and maps["intensity"].ndim == 3:
            blocks.append(Plot(plot_maps, (maps, f"{sample}: {name} net line intensities"),
                                 f"{sample}: element maps (net counts, {maps.attrs.get('method')} method)"))
        quant = res.get("quant")
        if quant is not None:
            if quant["atomic_percent"].ndim == 3:
                blocks.append(Plot(plot_maps, (quant, f"{sample}: at% maps"), f"{sample}: atomic-percent maps"))
            key = "total_atomic_percent" if "total_atomic_percent" in quant else "atomic_percent"
            for element, line, qual in zip(quant["element"].values, quant["line"].values, quant["qualitative"].values):
                quant_rows.append([
                    sample, str(line),
                    format_value(float(quant[key].sel(element=element)), float(quant[f"{key}_stderr"].sel(element=element)), "at%"),
                    "qualitative" if int(qual) else "quantitative", quant.attrs.get("factors_source", ""),
                ])
        h = res.get("homogeneity")
        if h is not None:
            blocks.append(Plot(plot_homogeneity, (h, f"{sample}: block dispersion index"),
                                 f"{sample}: H versus block size ({h.attrs.get('basis')})"))
            blocks.append(Plot(plot_radial, (h, f"{sample}: radial profiles"), f"{sample}: radial composition profiles"))
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


# ----------------------------------------------------------------------------- CLI
def register_cli(subparsers) -> None:
    from ..batch import add_export_options, add_inputs, each

    eds = subparsers.add_parser(NAME, help="STEM-EDS: element maps, quantification, homogeneity")
    sub = eds.add_subparsers(dest="eds_command", required=True)

    info = sub.add_parser("info", help="describe EDS files (.emd, .bcf, .hspy, .msa)")
    info.add_argument("files", nargs="+", metavar="file", help="input file(s); glob patterns are expanded")
    info.set_defaults(handler=each(_cmd_info, {}, required=()))

    def common(p):
        add_inputs(p)
        p.add_argument("--elements", required=True, help="comma list: O,B,Mn,Co,Ni or Fe_Ka,Pt_La")
        p.add_argument("--method", choices=["model", "windows"], default="model")
        p.add_argument("--bin", type=int, default=1, help="sum N x N pixels first")
        p.add_argument("--background", default="auto",
                       help="windows method: auto (clean windows), none, or LEFT,RIGHT distances in FWHM")
        p.add_argument("--width", type=float, default=2.0, help="windows method: integration width in FWHM")
        p.add_argument("--lazy", action="store_true", help="read with dask (large files)")
        p.add_argument("--out", help="output NetCDF file; {stem} = the input's name (default with --out-dir: "
                                     "<stem>.nc)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    maps = sub.add_parser("maps", help="element intensity maps (and at%% maps with --kfactors)")
    common(maps)
    maps.add_argument("--kfactors", help="TOML k-factor file: at%% maps too")
    maps.add_argument("--plot", help="PNG of the maps (a single spectrum: the spectrum with its windows or fit)")
    add_export_options(maps)
    maps.set_defaults(handler=each(_cmd_maps, {"out": ".nc", "plot": ".png"}))

    quant = sub.add_parser("quantify", help="Cliff-Lorimer quantification with named k-factors")
    common(quant)
    quant.add_argument("--kfactors", required=True, help="TOML: source = ..., [kfactors] Fe_Ka = 1.45 ...")
    quant.add_argument("--thickness", type=float, help="thickness in nm for the absorption correction")
    quant.add_argument("--plot", help="PNG of the at%% maps (a single spectrum: the spectrum with its integration "
                       "and background windows, or its model fit)")
    add_export_options(quant)
    quant.add_argument("--region", help="total over pixels X0:X1,Y0:Y1 (default: the whole image)")
    quant.add_argument("--dose", type=float, help="electrons per pixel: zeta-factor method with the TOML's "
                       "[zetafactors] (--thickness then switches on its absorption correction)")
    quant.set_defaults(handler=each(_cmd_quantify, {"out": ".nc", "plot": ".png"}))

    hom = sub.add_parser("homogeneity", help="homogeneity of an eds maps/quantify result")
    hom.add_argument("maps", nargs="+", help="NetCDF from doptrace eds maps or quantify (one or more; globs expanded)")
    hom.add_argument("--out-dir", help="folder for the outputs; --out/--plot may use {stem} of each input")
    hom.add_argument("--tolerance", type=float, default=0.05, help="relative variation that must be detectable")
    hom.add_argument("--blocks", help="block sizes in pixels, e.g. 2,4,8,16 (default 2,4,8,16,32)")
    hom.add_argument("--out", help="output NetCDF; {stem} = the input's name (default with --out-dir: <stem>.nc)")
    hom.add_argument("--plot", help="PNG of H versus block size")
    hom.set_defaults(handler=each(_cmd_homogeneity, {"out": ".nc", "plot": ".png"}, inputs="maps", target="maps"))


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


def _split(value) -> list[str]:
    from doptrace.stem_eds.pipeline import split_names

    return split_names(value)


def _figure_for(da, name: str, fallback):
    """The plot of a result: a single spectrum's own figure (spectrum, windows, fit), else ``fallback``."""
    from doptrace.stem_eds.plot_spectrum import plot_spectrum

    if da.ndim == 1:
        return lambda d: plot_spectrum(da, d, name)
    return fallback


def _export(ds, args) -> None:
    from ..batch import write_exports

    write_exports(ds, args, stem=lambda: f"{Path(args.file).stem}_{args.eds_command}")


def _write(ds, out: str, plot: str | None, figure) -> None:
    from doptrace.core.atomic import save_figure
    from doptrace.report.conventions import check_result, write_netcdf

    check_result(ds, out)
    fig = figure(ds) if plot else None
    write_netcdf(ds, out)
    if fig is not None:
        save_figure(fig, plot, dpi=110)


def _cmd_maps(args) -> int:
    from doptrace.stem_eds import load_factors
    from doptrace.stem_eds.pipeline import intensities, quantified
    from doptrace.stem_eds.plot import plot_maps

    da = _load(args)
    if args.kfactors:
        ds = quantified(da, load_factors(args.kfactors), _split(args.elements), args.method,
                         background=_background(args.background), width=args.width, progress=not args.quiet)
    else:
        ds = intensities(da, _split(args.elements), args.method, _background(args.background), args.width,
                          progress=not args.quiet)
    name = Path(args.file).name
    _write(ds, args.out, args.plot, _figure_for(da, name, lambda d: plot_maps(d, name)))
    _export(ds, args)
    print(f"maps: {args.out} ({', '.join(str(l) for l in ds['line'].values)}; method {args.method})")
    return 0


def _cmd_quantify(args) -> int:
    from doptrace.core.fmt import format_value
    from doptrace.stem_eds import load_factors
    from doptrace.stem_eds.pipeline import quantified
    from doptrace.stem_eds.plot import plot_maps

    da = _load(args)
    ds = quantified(da, load_factors(args.kfactors), _split(args.elements), args.method,
                     args.thickness, _background(args.background), args.width, progress=not args.quiet,
                     region=args.region, dose=args.dose)
    name = Path(args.file).name
    _write(ds, args.out, args.plot, _figure_for(da, name, lambda d: plot_maps(d, name)))
    _export(ds, args)
    key = "total_atomic_percent" if "total_atomic_percent" in ds else "atomic_percent"
    for element, line in zip(ds["element"].values, ds["line"].values):
        value = float(ds[key].sel(element=element))
        error = float(ds[f"{key}_stderr"].sel(element=element))
        print(f"{line:8s} {format_value(value, error, 'at%')}")
    return 0


def _cmd_homogeneity(args) -> int:
    from doptrace.report.conventions import read_netcdf
    from doptrace.stem_eds import homogeneity
    from doptrace.stem_eds.plot import plot_homogeneity

    maps = read_netcdf(args.maps)
    # errors must name the file the user passed (the maps .nc), not the spectrum it was made from
    maps.attrs["source"] = str(args.maps)
    from doptrace.stem_eds.pipeline import parse_blocks

    sizes = parse_blocks(args.blocks, str(args.maps))
    result = homogeneity(maps, tolerance=args.tolerance, **({"block_sizes": sizes} if sizes else {}))
    result.attrs["source"] = str(args.maps)
    _write(result, args.out, args.plot, plot_homogeneity)
    for element, verdict in zip(result["element"].values, result["verdict"].values):
        print(f"{element:4s} {verdict}")
    return 0
