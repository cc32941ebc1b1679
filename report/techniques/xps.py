"""XPS adapter: ``doptrace xps info|fit|quantify``, project analyses, report section, demo files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from doptrace.core.atomic import write_text

from ..examples_data import example_text

NAME = "xps"
TITLE = "XPS: chemical states across etch depth"
ENTRY_SCHEMA = {
    "file": ("file", True),
    "model": ("file", False),       # model TOML; or casa = true
    "casa": ("bool", False),        # refit with the CasaXPS model stored in the file
    "region": ("text", False),      # default: the model's region
    "shift": ("number", False),     # charge shift added to binding energies (eV)
    "c1s": ("bool", False),         # charge correction from C 1s (adventitious C at 284.8 eV)
    "quantify": ("list", False),    # regions to quantify, e.g. ["B 1s", "O 1s", "Mn 2p"]
    "rsf": ("text", False),         # "scofield" (default) or "kratos"
    "rsf_file": ("file", False),    # a user RSF table (TOML with [rsf] "B 1s" = ...), instead of rsf
    "ke_exponent": ("number", False),
    "headline": ("text", False),    # component whose fraction is the headline (default TM-O-B when present)
}
HEADLINE_DEFAULT = "TM-O-B"


# ----------------------------------------------------------------------------- analysis
def _fit(path: Path, model=None, casa: bool = False, region=None, shift=None, c1s: bool = False):
    from doptrace import xps
    from doptrace.xps.errors import XPSError
    from doptrace.xps.series import fit_casa, fit_region

    if shift is not None and c1s:
        raise XPSError(f"{path}: give either a shift or the C 1s charge correction, not both")
    blocks = xps.read(path)
    if casa:
        return fit_casa(blocks, region, source=str(path))
    if model is None:
        raise XPSError(f"{path}: fitting needs a model file (--model M.toml) or --casa")
    return fit_region(blocks, xps.load_model(model), region=region, shift=shift, c1s=c1s, source=str(path))


def analyse(settings: dict) -> dict:
    """One project entry -> ``{"fit": Dataset}`` and, with ``quantify``, ``{"quant": Dataset}``."""
    from doptrace import xps
    from doptrace.xps.quantify import quantify

    path = Path(settings["file"])
    results = {}
    if settings.get("model") is not None or settings.get("casa"):
        results["fit"] = _fit(path, settings.get("model"), bool(settings.get("casa", False)),
                              settings.get("region"), settings.get("shift"), bool(settings.get("c1s", False)))
        if settings.get("headline"):
            results["fit"].attrs["headline"] = str(settings["headline"])
    if settings.get("quantify"):
        results["quant"] = quantify(xps.read(path), [str(r) for r in settings["quantify"]],
                                    table=str(settings.get("rsf_file") or settings.get("rsf", "scofield")),
                                    ke_exponent=float(settings.get("ke_exponent", 0.6)), source=str(path))
    if not results:
        from doptrace.xps.errors import XPSError

        raise XPSError(f"{path}: the xps entry needs a model, casa = true or a quantify list")
    return results


# ----------------------------------------------------------------------------- figures
def _level_label(ds, i: int) -> str:
    dim = ds.attrs.get("level_dim", "etch_time")
    value = ds[dim].values[i]
    if dim == "etch_time":
        return f"etch {value:g} s"
    units = ds[dim].attrs.get("units", "1")
    return f"{dim} {value:g}" + ("" if units == "1" else f" {units}")


def fit_figure(ds, level: int = 0, title: str = ""):
    """Data, background, components and envelope of one level, binding energy decreasing to the right."""
    from doptrace.report.figures import new_figure

    dim = ds.attrs.get("level_dim", "etch_time")
    one = ds.isel({dim: level})
    x = np.asarray(one["binding_energy"].values, float)
    units = ds["data"].attrs.get("units", "counts/s")
    fig, ax = new_figure(6.4, 4.2)
    ax.plot(x, one["data"].values, ".", ms=3, color="k", label="data")
    background = np.asarray(one["background"].values, float)
    ax.plot(x, background, "--", color="0.5", label="background")
    for name in ds["component"].values:
        curve = np.asarray(one["component_curve"].sel(component=name).values, float)
        ax.fill_between(x, background, background + curve, alpha=0.35, label=str(name))
    ax.plot(x, one["envelope"].values, "-", color="crimson", lw=1.2, label="envelope")
    ax.set_xlim(np.nanmax(x), np.nanmin(x))
    ax.set_xlabel("binding energy (eV)")
    ax.set_ylabel(f"intensity ({units})")
    ax.set_title(title or f"{ds.attrs.get('region', '')}, {_level_label(ds, level)}, "
                          f"reduced chi2 {float(one['redchi']):.2f}")
    ax.legend(fontsize=7)
    return fig


def headline_component(ds) -> str:
    """The component (or group of components, e.g. "In-O") whose share is the headline."""
    names = [str(n) for n in ds["component"].values]
    groups = [str(g) for g in ds["group"].values] if "group" in ds.coords else []
    wanted = ds.attrs.get("headline") or HEADLINE_DEFAULT
    if wanted in names or wanted in groups:
        return wanted
    return names[-1] if len(names) > 1 else names[0]


def headline_share(ds, name: str):
    """(share, stderr) over the levels of a component or of a group of components."""
    if "group" in ds.coords and name in [str(g) for g in ds["group"].values] and name not in [str(n) for n in ds["component"].values]:
        return ds["group_fraction"].sel(group=name).values, ds["group_fraction_stderr"].sel(group=name).values
    return ds["fraction"].sel(component=name).values, ds["fraction_stderr"].sel(component=name).values


def fraction_figure(items, title: str = ""):
    """Headline: share of one component in the region's fitted area vs etch time, per sample, with 1-sigma bars."""
    from doptrace.report.figures import new_figure

    fig, ax = new_figure(6.4, 4.0)
    for label, ds in items:
        comp = headline_component(ds)
        dim = ds.attrs.get("level_dim", "etch_time")
        share, err = headline_share(ds, comp)
        ax.errorbar(ds[dim].values, share, yerr=err, marker="o", capsize=3, label=f"{label}: {comp}")
    dims = {d.attrs.get("level_dim", "etch_time") for _, d in items}
    dim = dims.pop() if len(dims) == 1 else "level"
    units = items[0][1][dim].attrs.get("units", "1") if dim in items[0][1] else "1"
    ax.set_xlabel("etch time (s)" if dim == "etch_time" else dim.replace("_", " ") + ("" if units == "1" else f" ({units})"))
    ax.set_ylabel("fraction of fitted area (1)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    if len(items) <= 12:  # a legend of hundreds of samples would squeeze the axes to nothing
        ax.legend(fontsize=8)
    else:
        ax.text(0.99, 0.02, f"{len(items)} samples", transform=ax.transAxes, ha="right", fontsize=8)
    return fig


def _table(ds):
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Table

    dim = ds.attrs.get("level_dim", "etch_time")
    units = ds["area"].attrs.get("units", "")
    rows = []
    for i in range(ds.sizes[dim]):
        for name in ds["component"].values:
            one = ds.isel({dim: i}).sel(component=name)
            row = [_level_label(ds, i), str(name),
                   format_value(float(one["center"]), float(one["center_stderr"]), "eV"),
                   format_value(float(one["fwhm"]), float(one["fwhm_stderr"]), "eV"),
                   format_value(float(one["area"]), float(one["area_stderr"])),
                   format_value(float(one["fraction"]), float(one["fraction_stderr"]))]
            if "casa_area" in ds:
                row.append(f"{float(one['casa_area']):.4g}")
            rows.append(row)
    header = ["level", "component", "center", "FWHM", f"area ({units})", "fraction"]
    if "casa_area" in ds:
        header.append("CasaXPS area")
    return Table(header, rows, f"{ds.attrs.get('region', '')} fit results (value ± 1 sigma)")


def _quant_table(q):
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Table

    dim = q.attrs.get("level_dim", "etch_time")
    lines = [str(v) for v in q["line"].values]
    rows = []
    for i in range(q.sizes[dim]):
        one = q.isel({dim: i})
        rows.append([f"{q[dim].values[i]:g}"] + [
            format_value(float(one["atomic_percent"].values[k]), float(one["atomic_percent_stderr"].values[k]))
            for k in range(len(lines))])
    return Table([dim] + [f"{line} (at%)" for line in lines], rows,
                 f"Atomic % ({q.attrs.get('rsf_table', '')}; KE^{q.attrs.get('ke_exponent', 0.6)})")


def section(analyses) -> list:
    """Headline fraction plot over all samples, then per analysis a fit plot and result tables."""
    from doptrace.report.html import Figure, Plot, Text

    blocks = []
    fits = [(a.sample, a.results["fit"]) for a in analyses if "fit" in a.results]
    by_region: dict[str, list] = {}
    for sample, ds in fits:
        by_region.setdefault(ds.attrs.get("region", ""), []).append((sample, ds))
    for region, items in by_region.items():
        comp = headline_component(items[0][1])
        blocks.append(Figure(fraction_figure(items, f"{region}: {comp} share vs etch depth"),
                             f"{region}: share of {comp} in the fitted {region} area versus etch time "
                             "(error bars: 1 sigma from the full covariance of the areas)."))
    for a in analyses:
        if "fit" in a.results:
            ds = a.results["fit"]
            blocks.append(Text(f"{a.sample}: {ds.attrs.get('region', '')} in {Path(str(ds.attrs.get('source', ''))).name}"
                               f", background {ds.attrs.get('background', '')}, model {Path(str(ds.attrs.get('model', ''))).name}, "
                               f"charge shift {np.nanmean(ds['charge_shift'].values):+.2f} eV (mean)."))
            blocks.append(Plot(fit_figure, (ds, 0), f"{a.sample}: fit of the first level."))
            blocks.append(_table(ds))
        if "quant" in a.results:
            blocks.append(_quant_table(a.results["quant"]))
    return blocks


# ----------------------------------------------------------------------------- demo
def demo_entries(data_dir, sample: str, bulk_doped: bool, seed: int) -> list[dict]:
    """Simulate a VAMAS etch series (B 1s, In 3d, O 1s, C 1s, with surface charging) and its models."""
    from doptrace.xps.simulate import DEMO_ETCH_TIMES, simulate_series

    data_dir = Path(data_dir)
    vms = data_dir / f"{sample}_xps.vms"
    charge = np.linspace(0.6, 0.2, len(DEMO_ETCH_TIMES))
    simulate_series(vms, bulk_doped=bulk_doped, seed=seed, charge=charge, sample=sample)
    b1s = write_text(data_dir / "xps_b1s.toml", example_text("xps/b1s.toml"))
    in3d = write_text(data_dir / "xps_in3d.toml", example_text("xps/in3d_oxide.toml"))
    return [
        {"file": vms, "model": b1s, "c1s": True, "quantify": ["B 1s", "O 1s", "In 3d", "C 1s"]},
        {"file": vms, "model": in3d, "c1s": True, "headline": "In-O"},
    ]




# ----------------------------------------------------------------------------- CLI
def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("xps", help="XPS: inspect, fit and quantify instrument files")
    sub = parser.add_subparsers(dest="xps_command", required=True)

    info = sub.add_parser("info", help="blocks, regions, etch levels and CasaXPS models of a file")
    info.add_argument("file")
    info.set_defaults(handler=_cmd_info)

    fit = sub.add_parser("fit", help="fit one region in every block (etch series) of a file")
    fit.add_argument("file")
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model TOML file")
    source.add_argument("--casa", action="store_true", help="refit with the CasaXPS model stored in the file")
    fit.add_argument("--out", required=True, help="result NetCDF file (.nc)")
    fit.add_argument("--plot", help="figure of one level's fit (.png/.svg/.pdf)")
    fit.add_argument("--plot-level", type=int, default=0, help="level shown by --plot (index, default 0)")
    fit.add_argument("--region", help="region to fit (default: the model's)")
    charge = fit.add_mutually_exclusive_group()
    charge.add_argument("--shift", type=float, help="charge shift added to binding energies (eV)")
    charge.add_argument("--c1s", action="store_true", help="charge-correct with C 1s (C-C at 284.8 eV)")
    fit.set_defaults(handler=_cmd_fit)

    quant = sub.add_parser("quantify", help="atomic %% per etch level from region areas")
    quant.add_argument("file")
    quant.add_argument("--regions", required=True, help='comma-separated regions, e.g. "B 1s,O 1s,Mn 2p"')
    quant.add_argument("--out", required=True, help="result NetCDF file (.nc)")
    quant.add_argument("--rsf", default="scofield", help="scofield (default), kratos or a TOML table")
    quant.add_argument("--ke-exponent", type=float, default=0.6, help="IMFP ~ KE^g correction (0: off)")
    quant.set_defaults(handler=_cmd_quantify)


def _cmd_info(args) -> int:
    from doptrace import xps
    from doptrace.xps.formats import casa

    blocks = xps.read(args.file)
    print(f"{args.file}: {len(blocks)} block(s)")
    regions: dict[str, list] = {}
    for b in blocks:
        regions.setdefault(str(b.attrs.get("region", "")), []).append(b)
    for region, items in regions.items():
        x = np.concatenate([np.asarray(b[b.dims[0]].values, float) for b in items])
        axis = "KE" if items[0].dims[0] == "kinetic_energy" else "BE"
        times = [float(b.attrs.get("etch_time", math.nan)) for b in items]
        known = sorted(t for t in times if math.isfinite(t))
        comps = 0
        for b in items:
            found = casa.from_block(b)
            comps += len(found.comps) if found else 0
        levels = ", ".join(f"{t:g}" for t in known) if known else "none"
        print(f"  {region or '(unnamed)'}: {len(items)} block(s), {axis} {x.min():.2f}-{x.max():.2f} eV, "
              f"etch times (s): {levels}" + (f", CASA comps: {comps}" if comps else ""))
        for note in dict.fromkeys(str(b.attrs.get("notes", "")) for b in items):
            if note:
                print(f"    note: {note}")
    return 0


def _cmd_fit(args) -> int:
    from doptrace.core.atomic import save_figure
    from doptrace.report.conventions import check_result, write_netcdf

    if args.plot:
        _check_plot_format(args.plot)  # before any output, so a bad --plot leaves no result file
    ds = _fit(Path(args.file), args.model, args.casa, args.region, args.shift, args.c1s)
    check_result(ds, args.out)
    figure = None
    if args.plot:
        dim = ds.attrs.get("level_dim", "etch_time")
        levels = ds.sizes[dim]
        if not -levels <= args.plot_level < levels:
            from doptrace.xps.errors import XPSError

            raise XPSError(f"{args.file}: --plot-level {args.plot_level} is out of range "
                           f"(the fit has {levels} level(s): 0..{levels - 1})")
        figure = fit_figure(ds, args.plot_level % levels)
    write_netcdf(ds, args.out)
    if figure is not None:
        import matplotlib.pyplot as plt

        save_figure(figure, args.plot)
        plt.close(figure)
    dim = ds.attrs.get("level_dim", "etch_time")
    print(f"{args.out}: {ds.attrs.get('region', '')}, {ds.sizes[dim]} level(s), "
          f"{ds.sizes['component']} component(s), median reduced chi2 {float(np.median(ds['redchi'])):.2f}")
    return 0


def _check_plot_format(plot) -> None:
    """Refuse a figure path whose suffix matplotlib cannot write (naming the path)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from doptrace.xps.errors import XPSError

    suffix = Path(plot).suffix.lstrip(".").lower() or "png"
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if suffix not in supported:
        raise XPSError(f"{plot}: unknown figure format '.{suffix}' (use one of: {', '.join(sorted(supported))})")


def _cmd_quantify(args) -> int:
    from doptrace import xps
    from doptrace.report.conventions import check_result, write_netcdf
    from doptrace.xps.quantify import quantify

    q = quantify(xps.read(args.file), args.regions.split(","), table=args.rsf, ke_exponent=args.ke_exponent,
                 source=args.file)
    check_result(q, args.out)
    write_netcdf(q, args.out)
    print(f"{args.out}: atomic % of {', '.join(str(v) for v in q['line'].values)} at {q.sizes[q.attrs['level_dim']]} level(s)")
    return 0
