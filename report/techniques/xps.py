"""XPS adapter: ``doptrace xps info|fit|quantify``, project analyses, report section, demo files."""

from __future__ import annotations

import math
from pathlib import Path

NAME = "xps"
TITLE = "XPS: chemical states across etch depth"
LABEL = "XPS"
ENTRY_SCHEMA = {
    "file": ("file", True),
    "model": ("file", False),       # model TOML; or casa = true
    "casa": ("bool", False),        # refit with the CasaXPS model stored in the file
    "region": ("text", False),      # default: the model's region
    "shift": ("number", False),     # charge shift added to binding energies (eV)
    "c1s": ("bool", False),         # charge correction from C 1s (adventitious C at 284.8 eV)
    "charge_ref": ("text", False),  # charge reference: "C 1s=285.0", "component:C-C=285.0", "Au 4f7/2=84.0"
    "fermi_edge": ("text", False),  # charge reference: the Fermi edge of this valence-band region at 0 eV
    "quantify": ("list", False),    # regions to quantify, e.g. ["B 1s", "O 1s", "Mn 2p"]
    "rsf": ("text", False),         # "scofield" (default) or "kratos"
    "rsf_file": ("file", False),    # a user RSF table (TOML with [rsf] "B 1s" = ...), instead of rsf
    "ke_exponent": ("number", False),  # IMFP ~ KE^g (default 0.6 for tables that need one)
    "imfp": ("text", False),        # instead: "tpp2m" or "tpp2m:density=..,nv=..,m=..,eg=.."
    "headline": ("text", False),    # component whose fraction is the headline (default: the project's xps_component)
}
CODE = ("doptrace.xps",)  # packages whose source decides this adapter's results (cache key)
#: this technique's thresholds in a project's [checks] table: key -> (kind, default, meaning)
CHECKED_RESULTS = ("fit",)  # the results the checks rest on: their quality decides the rows'
THRESHOLDS = {
    "xps_component": ("text", "", "XPS component whose share marks dopant in the host lattice"),
    "xps_min_share": ("number", 0.05, "smallest share of that component beyond the surface for bulk doping"),
    "xps_max_scatter": ("number", 2.0, "largest scatter about the mean, in units of the counting noise"),
}
#: keys of a project's [depth] table this adapter reads, and the kind of quantity each holds
DEPTH_KEYS = {"xps_etch_rate": "rate"}
#: the demo's etch rate as a lab would state it: calibrated on a reference film (±10 %); with 0.4 nm/s
#: the XPS simulator's surface layer (share settled after 150 s of etching) ends near 60 nm
DEMO_ETCH_RATE = "0.40 ± 0.04 nm/s"


# ----------------------------------------------------------------------------- analysis
def _charge_reference(path, charge_ref=None, fermi_edge=None, shift=None, c1s: bool = False):
    """The charge reference of the options (None: none or a plain shift / --c1s); more than one is refused."""
    from doptrace.xps.charge import fermi_reference, parse_charge_ref
    from doptrace.xps.errors import XPSError

    given = [name for name, v in (("a shift", shift), ("the C 1s charge correction", c1s or None),
                                  ("a charge reference", charge_ref), ("a Fermi edge", fermi_edge)) if v is not None]
    if len(given) > 1:
        raise XPSError(f"{path}: give one charge correction, not {' and '.join(given)}")
    if charge_ref is not None:
        return parse_charge_ref(charge_ref, str(path))
    if fermi_edge is not None:
        return fermi_reference(fermi_edge, where=str(path))
    return None


def _fit(path: Path, model=None, casa: bool = False, region=None, shift=None, c1s: bool = False,
         charge_ref=None, fermi_edge=None):
    from doptrace import xps

    return _fit_blocks(xps.read(path), path, model, casa, region, shift, c1s, charge_ref, fermi_edge)


def _fit_blocks(blocks, path: Path, model=None, casa: bool = False, region=None, shift=None, c1s: bool = False,
                charge_ref=None, fermi_edge=None):
    """Fit the blocks read from ``path`` (a model file, or the CasaXPS model they hold) with one charge correction."""
    from doptrace import xps
    from doptrace.xps.charge import fit_region_referenced
    from doptrace.xps.errors import XPSError
    from doptrace.xps.series import fit_casa, fit_region

    reference = _charge_reference(path, charge_ref, fermi_edge, shift, c1s)
    if casa:
        if reference is not None or shift is not None or c1s:
            raise XPSError(f"{path}: a CasaXPS refit uses CasaXPS's own calibration; no charge correction with --casa")
        return fit_casa(blocks, region, source=str(path))
    if model is None:
        raise XPSError(f"{path}: fitting needs a model file (--model M.toml) or --casa")
    if reference is not None:
        return fit_region_referenced(blocks, xps.load_model(model), reference, region=region, source=str(path))
    ds = fit_region(blocks, xps.load_model(model), region=region, shift=shift, c1s=c1s, source=str(path))
    ds.attrs["charge_reference"] = ("C 1s C-C at 284.8 eV (--c1s)" if c1s else
                                    f"fixed shift {shift:+g} eV" if shift is not None else "none")
    return ds


def _quantify(path: Path, regions, fits=(), table="scofield", ke_exponent=None, imfp=None, lines=None,
              charge_ref=None, fermi_edge=None, shift=None, c1s: bool = False):
    """Quantify a file's regions and fitted components; a charge correction moves the regions' BE windows
    (whole regions and fitted components do not depend on it, so it is measured only when a window is given)."""
    from doptrace import xps
    from doptrace.xps.charge import annotate, reference_shifts
    from doptrace.xps.quantify import parse_region, quantify
    from doptrace.xps.series import c1s_shifts, region_levels

    blocks = xps.read(path)
    reference = _charge_reference(path, charge_ref, fermi_edge, shift, c1s)
    record, shifts = None, shift
    windows = [r for r in regions if parse_region(r, str(path))[1] is not None]
    if (reference is not None or c1s) and windows:  # only BE windows depend on the charge correction
        from doptrace.xps.quantify import _region_name

        chosen, _, _, _ = region_levels(blocks, _region_name(blocks, parse_region(regions[0], str(path))[0]), str(path))
        if reference is not None:
            record = reference_shifts(blocks, chosen, reference, None, str(path))
            shifts = record["shift"]
        else:
            shifts = c1s_shifts(blocks, chosen, str(path))
    q = quantify(blocks, regions, table=table, ke_exponent=ke_exponent, imfp=imfp, fits=fits, lines=lines,
                 shift=shifts, source=str(path))
    if record is not None:
        q = annotate(q, record)
    elif windows and shifts is not None:
        q.attrs["charge_reference"] = "C 1s C-C at 284.8 eV (--c1s)" if c1s else f"fixed shift {shift:+g} eV"
    return q


def analyse(settings: dict) -> dict:
    """One project entry -> ``{"fit": Dataset}`` and, with ``quantify``, ``{"quant": Dataset}``."""
    from doptrace import xps
    from doptrace.xps.quantify import quantify

    path = Path(settings["file"])
    results = {}
    if settings.get("model") is not None or settings.get("casa"):
        results["fit"] = _fit(path, settings.get("model"), bool(settings.get("casa", False)),
                              settings.get("region"), settings.get("shift"), bool(settings.get("c1s", False)),
                              settings.get("charge_ref"), settings.get("fermi_edge"))
        if settings.get("headline"):
            results["fit"].attrs["headline"] = str(settings["headline"])
    if settings.get("quantify"):
        ke = settings.get("ke_exponent")
        results["quant"] = _quantify(path, [str(r) for r in settings["quantify"]],
                                     table=str(settings.get("rsf_file") or settings.get("rsf", "scofield")),
                                     ke_exponent=None if ke is None else float(ke), imfp=settings.get("imfp"),
                                     charge_ref=settings.get("charge_ref"), fermi_edge=settings.get("fermi_edge"),
                                     shift=settings.get("shift"), c1s=bool(settings.get("c1s", False)))
    if not results:
        from doptrace.xps.errors import XPSError

        raise XPSError(f"{path}: the xps entry needs a model, casa = true or a quantify list")
    return results


def prepare_entry(settings: dict, depth: dict, surface_nm: float | None, where: str,
                  checks: dict | None = None) -> list[str]:
    """The project's declared ``xps_component`` is the entry's headline unless the entry names one."""
    if "headline" not in settings and (checks or {}).get("xps_component"):
        settings["headline"] = str(checks["xps_component"])
    return []


# ----------------------------------------------------------------------------- evidence
def xps_checks(sample: str, depth_nm, share, share_stderr, rate_rel_stderr: float, th: dict) -> list:
    """The component's share beyond the surface layer: present (mean) and flat (slope, scatter).

    ``depth_nm`` are the levels' depths; ``rate_rel_stderr`` the relative uncertainty of the etch rate,
    a scale error common to all depths that widens the slope's esd but not the mean's.
    """
    import numpy as np

    from ..checks import CONTRADICTED, SUPPORTED, UNDETERMINED, Check, percent, weighted_line

    comp, surface = str(th["xps_component"]), float(th["surface_depth"])
    depth_nm, share, share_stderr = (np.asarray(v, float) for v in (depth_nm, share, share_stderr))
    beyond = (depth_nm >= surface) & np.isfinite(share) & (share_stderr > 0)
    claim_present, claim_flat = f"{comp} share beyond {surface:g} nm", f"{comp} share flat beyond {surface:g} nm"
    if beyond.sum() < 3:
        why = f"only {int(beyond.sum())} XPS level(s) lie beyond {surface:g} nm; 3 are needed to test a trend."
        nan = float("nan")
        return [Check(sample, LABEL, claim_present, "mean share", nan, nan, "%",
                      f"≥ {100 * th['xps_min_share']:g} %", UNDETERMINED, why),
                Check(sample, LABEL, claim_flat, "slope", nan, nan, "% per 100 nm",
                      f"|slope| < {th['slope_sigma']:g} esd", UNDETERMINED, why)]
    b, se_b, mean, se_mean, chi2, dof = weighted_line(depth_nm[beyond], share[beyond], share_stderr[beyond])
    se_b = math.hypot(se_b, b * rate_rel_stderr)
    scatter = math.sqrt(chi2 / dof)
    # A scatter beyond the noise makes the stated errors too small: widen the mean's esd by it.
    se_mean *= max(1.0, scatter)
    minimum = float(th["xps_min_share"])
    span = f"{depth_nm[beyond].min():.3g}-{depth_nm[beyond].max():.3g} nm"
    if mean + 2 * se_mean < minimum:
        present = (CONTRADICTED, f"The {comp} share over {span} is {percent(mean)} ± {percent(se_mean)}, below the "
                                 f"{percent(minimum)} a bulk dopant would give: the dopant bonds into the host near the "
                                 "surface only.")
    elif mean - 2 * se_mean >= minimum:
        present = (SUPPORTED, f"The {comp} share over {span} is {percent(mean)} ± {percent(se_mean)}, above "
                              f"{percent(minimum)}.")
    else:
        present = (UNDETERMINED, f"The {comp} share over {span} is {percent(mean)} ± {percent(se_mean)}, too close to "
                                 f"{percent(minimum)} to tell.")
    z = abs(b) / se_b
    per_100 = f"{100 * b * 100:.3g} ± {100 * se_b * 100:.3g} % per 100 nm"
    if z >= float(th["slope_sigma"]):
        flat = (CONTRADICTED, f"The {comp} share changes with depth over {span} ({per_100}, {z:.1f} esd from zero).")
    elif scatter > float(th["xps_max_scatter"]):
        flat = (CONTRADICTED, f"The {comp} share scatters {scatter:.2g}x its counting noise over {span}: "
                              "not one flat level.")
    else:
        flat = (SUPPORTED, f"The {comp} share is flat over {span} ({per_100}, {z:.1f} esd; scatter "
                           f"{scatter:.2g}x noise).")
    # shares in %, slopes in percentage points per 100 nm: the numbers a reader compares
    return [
        Check(sample, LABEL, claim_present, "mean share", 100 * mean, 100 * se_mean, "%", f"≥ {100 * minimum:g} %",
              *present),
        Check(sample, LABEL, claim_flat, "slope", 1e4 * b, 1e4 * se_b, "% per 100 nm",
              f"|slope| < {th['slope_sigma']:g} esd; scatter ≤ {th['xps_max_scatter']:g}x noise", *flat),
    ]


def _has_component(results: dict, th: dict) -> bool:
    return "fit" in results and th["xps_component"] in [str(c) for c in results["fit"]["component"].values]


def checks(sample: str, results: dict, th: dict, depth: dict) -> list:
    """Checks of one analysis: the headline component's share beyond the surface, present and flat.

    Analyses without a fit of ``th["xps_component"]`` give no rows. The levels are placed on the
    depth axis with the sample's ``xps_etch_rate``; without one nothing is tested.
    """
    from ..checks import UNDETERMINED, Check
    from ..depth import etch_depth

    if not _has_component(results, th):
        return []
    fit, rate, comp = results["fit"], depth.get("xps_etch_rate"), str(th["xps_component"])
    if fit.attrs.get("level_dim", "etch_time") != "etch_time" or rate is None:
        nan = float("nan")
        why = ("no XPS etch rate in the project's depth table, so the surface layer cannot be placed"
               if rate is None else "the XPS levels are not etch times")
        return [Check(sample, LABEL, f"{comp} share flat beyond {th['surface_depth']:g} nm", "slope", nan, nan,
                      "1/nm", "-", UNDETERMINED, f"Not tested: {why} ({Path(str(fit.attrs.get('source', ''))).name}).")]
    share = fit["fraction"].sel(component=comp).values
    share_se = fit["fraction_stderr"].sel(component=comp).values
    return xps_checks(sample, etch_depth(fit["etch_time"].values, rate)[0], share, share_se,
                      rate.stderr / rate.value, th)


def depth_track(results: list[dict], th: dict, depth: dict):
    """The headline component's share per etch level on the common depth axis (:class:`report.depth.Track`).

    From the first of the sample's fits that has ``th["xps_component"]``; None when there is none.
    Depth ``z = r t`` for the etch rate ``r ± σ_r``, so ``σ_z = σ_r t``.
    """
    import numpy as np

    from ..depth import Track, etch_depth

    fits = [r["fit"] for r in results if _has_component(r, th)]
    if not fits:
        return None
    fit, rate, component = fits[0], depth.get("xps_etch_rate"), str(th["xps_component"])
    track = Track(sources=[str(fit.attrs.get("source", ""))], attrs={"component": component})
    if fit.attrs.get("level_dim", "etch_time") != "etch_time" or "etch_time" not in fit.coords:
        track.notes.append("XPS levels are not etch times; not placed on the depth axis")
    elif rate is None:
        track.notes.append("no XPS etch rate given; XPS not placed on the depth axis")
    else:
        t = np.asarray(fit["etch_time"].values, float)
        z, dz = etch_depth(t, rate)
        share = fit["fraction"].sel(component=component).values
        share_se = fit["fraction_stderr"].sel(component=component).values
        track.coords["xps_etch_time"] = ("xps_level", t, {"units": "s"})
        track.data.update(
            xps_depth=("xps_level", z, {"units": "nm", "etch_rate_nm_per_s": rate.value,
                                        "etch_rate_stderr_nm_per_s": rate.stderr}),
            xps_depth_stderr=("xps_level", dz, {"units": "nm"}),
            xps_share=("xps_level", np.asarray(share, float),
                       {"units": "1", "component": component, **Track.plotted("xps_depth", "left", 100.0, "o-",
                                                                             f"XPS {component} share (%)")}),
            xps_share_stderr=("xps_level", np.asarray(share_se, float), {"units": "1"}),
        )
        track.axis_labels["left"] = f"XPS {component} share of {fit.attrs.get('region') or 'its region'} (%)"
    return track


# ----------------------------------------------------------------------------- tables
def _table(ds):
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Table
    from doptrace.xps.plot import level_label

    dim = ds.attrs.get("level_dim", "etch_time")
    units = ds["area"].attrs.get("units", "")
    rows = []
    for i in range(ds.sizes[dim]):
        for name in ds["component"].values:
            one = ds.isel({dim: i}).sel(component=name)
            row = [level_label(ds, i), str(name),
                   format_value(float(one["center"]), float(one["center_stderr"]), "eV"),
                   format_value(float(one["fwhm"]), float(one["fwhm_stderr"]), "eV"),
                   format_value(float(one["area"]), float(one["area_stderr"])),
                   format_value(float(one["fraction"]), float(one["fraction_stderr"]))]
            if "casa_area" in ds:
                casa = float(one["casa_area"])
                diff = (float(one["area"]) - casa) / casa if casa else float("nan")
                row += [f"{casa:.4g}", f"{100 * diff:+.3g} %"]
            rows.append(row)
    header = ["level", "component", "center", "FWHM", f"area ({units})", "fraction"]
    if "casa_area" in ds:
        header += ["CasaXPS area", "refit - CasaXPS"]
    return Table(header, rows, f"{ds.attrs.get('region', '')} fit results (value ± 1 sigma)")


def _quant_table(q):
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Table

    dim = q.attrs.get("level_dim", "etch_time")
    lines = [str(v) for v in q["line"].values]
    rows = []
    for i in range(q.sizes[dim]):
        one = q.isel({dim: i})
        detected = one["detected"].values if "detected" in one else [1] * len(lines)
        # below the detection limit is "not detected (< limit)", never a concentration
        rows.append([f"{q[dim].values[i]:g}"] + [
            format_value(float(one["atomic_percent"].values[k]), float(one["atomic_percent_stderr"].values[k]))
            if int(detected[k]) else
            f"not detected (< {q.attrs.get('detection_sigmas', 3):g} x {float(one['atomic_percent_stderr'].values[k]):.2g})"
            for k in range(len(lines))])
    return Table([dim] + [f"{line} (at%)" for line in lines], rows,
                 f"Atomic % ({q.attrs.get('rsf_table', '')}; IMFP factor {q.attrs.get('imfp_model', '')}"
                 + (f"; charge reference {q.attrs['charge_reference']}" if q.attrs.get("charge_reference") else "")
                 + ")")


def section(analyses) -> list:
    """Headline fraction plot over all samples, then per analysis a fit plot and result tables."""
    import numpy as np

    from doptrace.report.html import Plot, Text
    from doptrace.xps.plot import gallery_levels, plot_fractions, plot_gallery
    from doptrace.xps.series import headline_component

    blocks = []
    fits = [(a.sample, a.results["fit"]) for a in analyses if "fit" in a.results]
    by_region: dict[str, list] = {}
    for sample, ds in fits:
        by_region.setdefault(ds.attrs.get("region", ""), []).append((sample, ds))
    for region, items in by_region.items():
        comp = headline_component(items[0][1])
        blocks.append(Plot(plot_fractions, (items, f"{region}: {comp} share vs etch depth"),
                             f"{region}: share of {comp} in the fitted {region} area versus etch time "
                             "(error bars: 1 sigma from the full covariance of the areas)."))
    for a in analyses:
        if "fit" in a.results:
            ds = a.results["fit"]
            blocks.append(Text(f"{a.sample}: {ds.attrs.get('region', '')} in {Path(str(ds.attrs.get('source', ''))).name}"
                               f", background {ds.attrs.get('background', '')}, model {Path(str(ds.attrs.get('model', ''))).name}, "
                               f"charge shift {np.nanmean(ds['charge_shift'].values):+.2f} eV (mean)"
                               + (f", charge reference {ds.attrs['charge_reference']}"
                                  if ds.attrs.get("charge_reference", "none") != "none" else "") + "."))
            dim = ds.attrs.get("level_dim", "etch_time")
            shown, total = len(gallery_levels(ds)), ds.sizes[dim]
            blocks.append(Plot(plot_gallery, (ds,), f"{a.sample}: fit of every level" if shown == total else
                               f"{a.sample}: fits of {shown} of the {total} levels (evenly spaced)"
                               "; residual (data - envelope) under each."))
            blocks.append(_table(ds))
        if "quant" in a.results:
            blocks.append(_quant_table(a.results["quant"]))
    return blocks


# ----------------------------------------------------------------------------- demo
def demo_entries(data_dir, sample: str, bulk_doped: bool, seed: int) -> list[dict]:
    """Simulate a VAMAS etch series (B 1s, In 3d, O 1s, C 1s, with surface charging) and its models."""
    import numpy as np

    from doptrace.core.atomic import write_text
    from doptrace.report.examples_data import example_text
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


def demo_depth(entries: list[dict]) -> dict:
    """The demo sample's ``[sample.depth]`` keys for its XPS entries: the etch rate."""
    return {"xps_etch_rate": DEMO_ETCH_RATE} if entries else {}


# ----------------------------------------------------------------------------- CLI
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")


def register_cli(subparsers) -> None:
    from ..batch import add_inputs

    parser = subparsers.add_parser("xps", help="XPS: inspect, fit and quantify instrument files")
    sub = parser.add_subparsers(dest="xps_command", required=True)

    info = sub.add_parser("info", help="blocks, regions, etch levels and CasaXPS models of files")
    info.add_argument("files", nargs="+", metavar="file", help="input file(s); glob patterns are expanded")
    info.set_defaults(handler=_cmd_info)

    fit = sub.add_parser("fit", help="fit one region in every block (etch series) of each file")
    add_inputs(fit)
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model TOML file")
    source.add_argument("--casa", action="store_true", help="refit with the CasaXPS model stored in the file")
    fit.add_argument("--out", help="result NetCDF file (.nc); {stem} = the input's name (default with "
                                   "--out-dir: <stem>.nc)")
    fit.add_argument("--table", help="components table per level (.csv or .xlsx): centre, FWHM, area, share, "
                                     "each with its esd")
    fit.add_argument("--vamas-out", help="VAMAS file (.vms) of the spectra with the fit as CasaXPS "
                                         "'CASA region'/'CASA comp' lines, for CasaXPS")
    fit.add_argument("--plot", help="figure (.png/.svg/.pdf): every level's fit with its residual "
                                    "(a gallery), or one level with --plot-level")
    fit.add_argument("--plot-level", type=int, help="draw only this level (index) in --plot")
    fit.add_argument("--region", help="region to fit (default: the model's)")
    _charge_options(fit)
    fit.add_argument("--strict", action="store_true",
                   help="exit 4 when the result's quality is 'failed' (the result is still written)")
    fit.set_defaults(handler=_cmd_fit)

    quant = sub.add_parser("quantify", help="atomic %% per etch level from region areas")
    add_inputs(quant)
    quant.add_argument("--regions", default="",
                       help='comma-separated regions, each NAME or NAME:LOW-HIGH (BE window, eV), e.g. '
                            '"B 1s,O 1s:526-536,Mo 3d5/2:226-231"')
    quant.add_argument("--fit", action="append", default=[], metavar="RESULT.nc",
                       help="a fit result of this file (doptrace xps fit --out; {stem} = the input's name); its "
                            "components are quantified (repeatable)")
    quant.add_argument("--line", action="append", default=[], metavar="COMPONENT=LINE",
                       help='RSF line of a fitted component other than its region\'s orbital, e.g. '
                            '"Mo3d5/2 MoS2=Mo 3d5/2", or "S 2s=-" to leave a component out (repeatable)')
    quant.add_argument("--out", help="result NetCDF file (.nc); {stem} = the input's name (default with "
                                     "--out-dir: <stem>.nc)")
    quant.add_argument("--table", help="atomic %% table per level (.csv or .xlsx), with esds")
    quant.add_argument("--rsf", default="scofield",
                       help="scofield (Scofield 1976 cross-sections; Al or Mg Ka from the file, or scofield-al / "
                            "scofield-mg), kratos (factors that include the IMFP: no KE correction) or a TOML "
                            "table declaring ke_correction")
    imfp = quant.add_mutually_exclusive_group()
    imfp.add_argument("--ke-exponent", type=float, default=None,
                      help="IMFP ~ KE^g correction (default 0.6 for tables that need one; 0: off)")
    imfp.add_argument("--imfp", help='IMFP model: "tpp2m" (SiO2 defaults) or "tpp2m:density=5.2,nv=40,m=231.5,eg=3"')
    _charge_options(quant)
    quant.add_argument("--strict", action="store_true",
                   help="exit 4 when the result's quality is 'failed' (the result is still written)")
    quant.set_defaults(handler=_cmd_quantify)


def _charge_options(parser) -> None:
    charge = parser.add_mutually_exclusive_group()
    charge.add_argument("--shift", type=float, help="charge shift added to binding energies (eV)")
    charge.add_argument("--c1s", action="store_true", help="charge-correct with C 1s (C-C at 284.8 eV)")
    charge.add_argument("--charge-ref", metavar="REF",
                        help='charge reference per level: "C 1s=285.0", "Au 4f7/2=84.0" (strongest peak of the '
                             'region), "component:C-C=285.0" (a component of the model) or '
                             '"component:C-C@c1s.toml=285.0"')
    charge.add_argument("--fermi-edge", metavar="REGION",
                        help="charge-correct so that the Fermi edge of this valence-band region sits at 0 eV")


def _outputs(args, extra: dict):
    """The multi-file output namer of a command, every output checked (names, suffixes) up front."""
    from doptrace.core.table import TABLE_SUFFIXES
    from doptrace.xps.errors import XPSError

    from ..batch import Outputs, check_suffix

    names = Outputs(args.files, args.out_dir, XPSError)
    options = {"--out": (args.out, ".nc", True), "--table": (getattr(args, "table", None), ".csv", False), **extra}
    names.check_all(options)
    for source in names.inputs:
        check_suffix(names.path(args.out, source, ".nc", "--out", True), NETCDF_SUFFIXES, "--out",
                     "tables go to --table F.csv or F.xlsx", XPSError)
        check_suffix(names.path(getattr(args, "table", None), source, ".csv", "--table"), TABLE_SUFFIXES,
                     "--table", "", XPSError)
        if "--vamas-out" in options:
            check_suffix(names.path(args.vamas_out, source, ".vms", "--vamas-out"), (".vms", ".vamas"),
                         "--vamas-out", "", XPSError)
        if "--plot" in options and args.plot:
            _check_plot_format(names.path(args.plot, source, ".png", "--plot"))
    return names


def _cmd_info(args) -> int:
    from doptrace.xps.errors import XPSError

    from ..batch import expand, run_each

    return run_each(expand(args.files, XPSError), _info_one)


def _info_one(path) -> int:
    import numpy as np

    from doptrace import xps
    from doptrace.xps.formats import casa

    blocks = xps.read(path)
    print(f"{path}: {len(blocks)} block(s)")
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
    from ..batch import run_each

    names = _outputs(args, {"--vamas-out": (args.vamas_out, ".vms", False), "--plot": (args.plot, ".png", False)})
    return run_each(names.inputs, lambda path: _fit_one(args, names, path))


def _fit_one(args, names, path: Path) -> int:
    import numpy as np

    from doptrace import xps
    from doptrace.core.atomic import save_figure
    from doptrace.report.conventions import check_result, print_quality, write_netcdf
    from doptrace.xps.plot import plot_fit, plot_gallery

    out = names.path(args.out, path, ".nc", "--out", True)
    table = names.path(args.table, path, ".csv", "--table")
    vamas = names.path(args.vamas_out, path, ".vms", "--vamas-out")
    plot = names.path(args.plot, path, ".png", "--plot")
    blocks = xps.read(path)
    ds = _fit_blocks(blocks, path, args.model, args.casa, args.region, args.shift, args.c1s, args.charge_ref,
                     args.fermi_edge)
    check_result(ds, str(out))
    dim = ds.attrs.get("level_dim", "etch_time")
    levels = ds.sizes[dim]
    figure = None
    if plot is not None:
        if args.plot_level is not None:
            if not -levels <= args.plot_level < levels:
                from doptrace.xps.errors import XPSError

                raise XPSError(f"{path}: --plot-level {args.plot_level} is out of range "
                               f"(the fit has {levels} level(s): 0..{levels - 1})")
            figure = plot_fit(ds, args.plot_level % levels)
        else:
            figure = plot_gallery(ds)
    casa_model = _casa_model(blocks, ds, args) if vamas is not None else None
    write_netcdf(ds, out)
    written = [str(out)]
    if table is not None:
        written.append(str(write_fit_table(ds, table)))
    if vamas is not None:
        from doptrace.xps.casa_export import write_vamas

        _, notes = write_vamas(vamas, blocks, ds, casa_model)
        written.append(str(vamas))
        for note in notes:
            print(f"  CasaXPS: {note}")
    if figure is not None:
        save_figure(figure, plot)
        written.append(str(plot))
    print(f"{', '.join(written)}: {ds.attrs.get('region', '')}, {levels} level(s), "
          f"{ds.sizes['component']} component(s), median reduced chi2 {float(np.median(ds['redchi'])):.2f}")
    return print_quality(ds, args.strict)


def _casa_model(blocks, ds, args):
    """The model a fit used, for --vamas-out: the model file, or the CasaXPS model of the first fitted block."""
    from doptrace import xps
    from doptrace.xps.formats import casa
    from doptrace.xps.model import from_casa

    if not args.casa:
        return xps.load_model(args.model)
    first = int(ds["block_index"].values[0])
    block = next(b for b in blocks if int(b.attrs.get("block_index", -1)) == first)
    return from_casa(casa.from_block(block), float(block.attrs.get("excitation_energy", math.nan)),
                     source=f"{block.attrs.get('source', '')}: block {first}")


def write_fit_table(ds, path):
    """Components per level of an XPS fit as CSV/XLSX: centre, FWHM, area, share with esds."""
    from doptrace.core.table import dataset_table, write_table
    from doptrace.xps.errors import XPSError

    header, rows = dataset_table(ds, ds.attrs.get("level_dim", "etch_time"), "component")
    return write_table(path, header, rows, sheet=f"{ds.attrs.get('region', 'fit')} fit", error=XPSError)


def write_quant_table(q, path):
    """Atomic % per level and line of an XPS quantification as CSV/XLSX, with esds."""
    from doptrace.core.table import dataset_table, write_table
    from doptrace.xps.errors import XPSError

    dim = q.attrs.get("level_dim", "etch_time")
    item = next(d for d in q["atomic_percent"].dims if d != dim)  # "element" (with its "line" coordinate)
    header, rows = dataset_table(q, dim, item)
    return write_table(path, header, rows, sheet="atomic percent", error=XPSError)


def _check_plot_format(plot) -> None:
    """Refuse a figure path whose suffix matplotlib cannot write (naming the path)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from doptrace.xps.errors import XPSError

    suffix = Path(plot).suffix.lstrip(".").lower() or "png"
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if suffix not in supported:
        raise XPSError(f"{plot}: unknown figure format '.{suffix}' (use one of: {', '.join(sorted(supported))})")


def _read_fit(path):
    """A fit result written by ``doptrace xps fit --out`` (NetCDF), loaded into memory."""
    import xarray as xr

    from doptrace.xps.errors import XPSError

    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError) as err:
        raise XPSError(f"{path}: not a readable fit result (NetCDF from doptrace xps fit --out): {err}") from None
    if not {"area", "area_stderr", "center", "charge_shift"} <= set(ds.data_vars) or "component" not in ds.dims:
        raise XPSError(f"{path}: not an XPS fit result (needs area, center, charge_shift over component)")
    return ds


def _cmd_quantify(args) -> int:
    from ..batch import run_each

    names = _outputs(args, {})
    return run_each(names.inputs, lambda path: _quantify_one(args, names, path))


def _quantify_one(args, names, path: Path) -> int:
    from doptrace.report.conventions import check_result, print_quality, write_netcdf
    from doptrace.xps.errors import XPSError

    out = names.path(args.out, path, ".nc", "--out", True)
    table = names.path(args.table, path, ".csv", "--table")
    fits = [_read_fit(f.format(stem=path.stem, name=path.name) if "{" in f else f) for f in args.fit]
    lines = {}
    for item in args.line:
        comp, sep, line = item.rpartition("=")
        if not sep or not comp.strip() or not line.strip():
            raise XPSError(f"{path}: --line {item!r}: write COMPONENT=LINE")
        lines[comp.strip()] = line.strip()
    regions = [r for r in args.regions.split(",") if r.strip()]
    q = _quantify(path, regions, fits=fits, table=args.rsf, ke_exponent=args.ke_exponent,
                  imfp=args.imfp, lines=lines, charge_ref=args.charge_ref, fermi_edge=args.fermi_edge,
                  shift=args.shift, c1s=args.c1s)
    check_result(q, str(out))
    write_netcdf(q, out)
    written = [str(out)]
    if table is not None:
        written.append(str(write_quant_table(q, table)))
    print(f"{', '.join(written)}: atomic % of {', '.join(str(v) for v in q['line'].values)} at "
          f"{q.sizes[q.attrs['level_dim']]} level(s) ({q.attrs['rsf_table'].split(':')[0]}; IMFP {q.attrs['imfp_model']})")
    return print_quality(q, args.strict)
