"""ToF-SIMS adapter: ``doptrace tofsims ...`` commands, project analyses, checks, depth track, report section, demo.

The processing itself is :mod:`doptrace.tofsims.pipeline`; the figures are :mod:`doptrace.tofsims.plot`.
"""

from __future__ import annotations

from pathlib import Path

NAME = "tofsims"
TITLE = "ToF-SIMS: fragment maps, depth profiles, colocalization"
LABEL = "ToF-SIMS"
CODE = ("doptrace.tofsims",)  # packages whose source decides this adapter's results (cache key)
ENTRY_SCHEMA = {
    "file": ("file", True),
    "fragments": ("list", False),  # default: every fragment in the peak list
    "normalize": ("text", False),  # "total" (default), "fragments", a fragment name, or "none"
    "crater_depth_nm": ("number", False),
    "layer_rates": ("list", False),  # [[rate_nm_per_s, until_s], ..., [last_rate]] instead of a crater depth
    "surface_depth_nm": ("number", False),  # excluded from the uniformity test
    # fragments tested for uniformity with depth (default: the project's sims_fragment when the file has it)
    "uniformity": ("list", False),
    # colocalization pair "A:B" (default: the project's sims_fragment:sims_host when the file has both;
    # without either, no colocalization and the report says no pair was declared)
    "pair": ("text", False),
    "coloc_bin": ("number", False),
    "compare": ("list", False),  # fragments whose integrated intensities are compared between samples
    "roi_from": ("text", False),  # profile and integrate only where this fragment's map is high (Otsu)
    # Poisson dead-time correction; absent: applied when the file says it was not and it is
    # defined (shots per pixel known, no saturated voxel); true: always (error if impossible); false: never
    "dead_time": ("bool", False),
    "drift_correct": ("bool", False),
    "seed": ("number", False),
    # custom mass intervals instead of the peak list: ["BO-=26.98:27.03", "27.0048±0.02"] (ITM raw data,
    # or an ITA file's own peak-list intervals)
    "masses": ("list", False),
    "mva": ("text", False),  # "pca" or "nmf": also a multivariate analysis of the summed image
    "mva_components": ("number", False),
    "mva_scaling": ("text", False),  # "poisson" (default, Keenan & Kotula 2004) or "none"
}
#: this technique's thresholds in a project's [checks] table: key -> (kind, default, meaning)
CHECKED_RESULTS = ("uniformity", "coloc")
THRESHOLDS = {
    "sims_fragment": ("text", "", "ToF-SIMS fragment of the dopant"),
    "sims_host": ("text", "", "ToF-SIMS fragment of the host lattice"),
    "sims_alpha": ("number", 0.05, "significance level of the ToF-SIMS uniformity and colocalization tests"),
    "sims_max_surface_ratio": ("number", 2.0, "largest surface / bulk ratio of the dopant fragment"),
    "sims_min_r": ("number", 0.5, "smallest Pearson r of dopant and host images"),
    "sims_min_counts": ("number", 100.0, "fewest dopant counts below the surface for the tests to mean anything"),
}
#: keys of a project's [depth] table this adapter reads, and the kind of quantity each holds
DEPTH_KEYS = {"sims_crater_depth": "length"}
#: the demo's crater depth as a profilometer states it: ±5 %
CRATER_RELATIVE_STDERR = 0.05


# ----------------------------------------------------------------------------- project
def prepare_entry(settings: dict, depth: dict, surface_nm: float | None, where: str,
                  checks: dict | None = None) -> list[str]:
    """Hand the sample's crater depth, surface layer and declared fragments to one entry's settings;
    refuse contradictions.

    ``depth`` holds the sample's depth table (Quantities), ``surface_nm`` the surface depth when
    the project sets one (else None), ``checks`` the sample's ``[checks]`` values: its
    ``sims_fragment`` and ``sims_host`` become the entry's dopant and host fragments (the default
    uniformity test and colocalization pair; no fragment is a default in code). Returns the
    problems, each naming ``where``.
    """
    for key, setting in (("sims_fragment", "dopant_fragment"), ("sims_host", "host_fragment")):
        if (checks or {}).get(key):
            settings[setting] = str(checks[key])
    crater = depth.get("sims_crater_depth")
    own = settings.get("crater_depth_nm")
    problems = []
    if crater is not None and "layer_rates" in settings:
        problems.append(f"{where}: layer_rates and a depth table sims_crater_depth both convert depth; give one")
    elif crater is not None and own is not None and abs(float(own) - crater.value) > 1e-9 * crater.value:
        problems.append(f"{where}: crater_depth_nm = {own:g} nm disagrees with the depth table's {crater}")
    elif crater is not None:
        settings["crater_depth_nm"] = crater.value
    has_depth = "crater_depth_nm" in settings or "layer_rates" in settings
    # one definition of the surface layer for every technique, unless the entry sets its own
    if surface_nm is not None and has_depth and "surface_depth_nm" not in settings:
        settings["surface_depth_nm"] = surface_nm
    return problems


def analyse(settings: dict) -> dict:
    """One project entry -> :func:`doptrace.tofsims.pipeline.analyse` (whose keywords are the entry's keys)."""
    from doptrace.tofsims import pipeline

    return pipeline.analyse(Path(settings["file"]), **{k: v for k, v in settings.items() if k != "file"})


# ----------------------------------------------------------------------------- evidence
def sims_checks(sample: str, uniformity, coloc, profile, th: dict) -> list:
    """Dopant fragment uniform with depth, not piled up at the surface, and colocalized with the host."""
    import math

    import numpy as np

    from doptrace.tofsims.pipeline import counts_beyond

    from ..checks import CONTRADICTED, SUPPORTED, UNDETERMINED, Check
    from ..checks import percent as _pct

    frag, alpha = str(th["sims_fragment"]), float(th["sims_alpha"])
    rows = []
    nan = float("nan")
    if uniformity is not None and frag in [str(f) for f in uniformity["fragment"].values]:
        u = uniformity.sel(fragment=frag)
        low, high = (float(v) for v in uniformity.attrs.get("axis_range", [nan, nan]))
        units = "nm" if uniformity.attrs.get("axis") == "depth" else "s"
        counts_below = counts_beyond(profile, frag, low)
        rel, rel_se, p = float(u["relative_change"]), float(u["relative_change_stderr"]), float(u["p_value"])
        claim = f"{frag} uniform with depth below the surface"
        if counts_below < float(th["sims_min_counts"]):
            verdict, reason = UNDETERMINED, (f"Only {counts_below:.0f} {frag} counts lie beyond {low:.3g} {units}: "
                                             "too few to test a depth trend.")
        elif p < alpha:
            verdict, reason = CONTRADICTED, (f"{frag} changes by {_pct(rel)} ± {_pct(rel_se)} over {low:.3g}-{high:.3g} "
                                             f"{units} (p = {p:.2g} < {alpha:g}).")
        else:
            verdict, reason = SUPPORTED, (f"{frag} changes by {_pct(rel)} ± {_pct(rel_se)} over {low:.3g}-{high:.3g} "
                                          f"{units}, within counting noise (p = {p:.2g}).")
        rows.append(Check(sample, LABEL, claim, "relative change", 100 * rel, 100 * rel_se, "%",
                          f"p ≥ {alpha:g}", verdict, reason))
        ratio, ratio_se = float(u["surface_to_bulk"]), float(u["surface_to_bulk_stderr"])
        limit = float(th["sims_max_surface_ratio"])
        if not math.isfinite(ratio):
            verdict, reason = UNDETERMINED, f"The {frag} surface / bulk ratio is undefined (no bulk counts)."
        elif ratio - 2 * ratio_se > limit:
            verdict, reason = CONTRADICTED, (f"{frag} is {ratio:.3g} ± {ratio_se:.2g} times richer above {low:.3g} "
                                             f"{units} than below: the dopant piles up at the surface.")
        elif ratio + 2 * ratio_se <= limit:
            verdict, reason = SUPPORTED, (f"{frag} above {low:.3g} {units} is {ratio:.3g} ± {ratio_se:.2g} times its "
                                          f"level below, within {limit:g}.")
        else:
            verdict, reason = UNDETERMINED, f"{frag} surface / bulk is {ratio:.3g} ± {ratio_se:.2g}, too close to {limit:g}."
        rows.append(Check(sample, LABEL, f"{frag} not piled up at the surface", "surface / bulk",
                          ratio, ratio_se, "1", f"≤ {limit:g}", verdict, reason))
    if coloc is not None:
        a, b = str(coloc.attrs.get("fragment_a")), str(coloc.attrs.get("fragment_b"))
        r, p = float(coloc["pearson_r"]), float(coloc["p_value"])
        null = np.asarray(coloc["null_r"].values, float) if "null_r" in coloc else np.array([])
        spread = float(np.std(null)) if null.size else nan
        min_r = float(th["sims_min_r"])
        total_a = float(np.sum(coloc["image_a"].values))
        claim = f"{a} colocalized with {b}"
        if total_a < float(th["sims_min_counts"]):
            verdict, reason = UNDETERMINED, f"The {a} image holds only {total_a:.0f} counts: too few to compare."
        elif r >= min_r and p < alpha:
            verdict, reason = SUPPORTED, (f"{a} follows {b} laterally (r = {r:.3f}; p = {p:.2g} against "
                                          f"{null.size} shifted/rotated images).")
        else:
            verdict, reason = CONTRADICTED, (f"{a} does not follow {b} laterally (r = {r:.3f}, threshold {min_r:g}; "
                                             f"p = {p:.2g} against {null.size} shifted/rotated images).")
        # the uncertainty shown for r is the spread of r under the spatial null (no association)
        rows.append(Check(sample, LABEL, claim, "Pearson r (± null spread)", r, spread, "1",
                          f"r ≥ {min_r:g}, p < {alpha:g}", verdict, reason))
    return rows


def checks(sample: str, results: dict, th: dict, depth: dict) -> list:
    """Checks of one analysis with a uniformity test or a colocalization (:func:`sims_checks`)."""
    if "uniformity" not in results and "coloc" not in results:
        return []
    return sims_checks(sample, results.get("uniformity"), results.get("coloc"), results.get("profile"), th)


def depth_track(results: list[dict], th: dict, depth: dict):
    """Dopant fragment / total and dopant / host count ratios per scan on the common depth axis.

    From the first profile of an analysis with a uniformity test or colocalization; None when
    there is none. Depth ``z = D t / T`` for the sample's crater depth ``D ± σ_D``
    (``sims_crater_depth``) reached at the total sputter time ``T``; without one, the entry's own
    conversion (without an uncertainty). Poisson errors for the ratios.
    """
    import numpy as np

    from doptrace.tofsims.pipeline import total_sputter_time

    from ..depth import Track, poisson_ratio, sputter_depth

    profiles = [r["profile"] for r in results if ("uniformity" in r or "coloc" in r) and r.get("profile") is not None]
    if not profiles:
        return None
    profile, crater = profiles[0], depth.get("sims_crater_depth")
    fragment, host = str(th["sims_fragment"]), str(th["sims_host"])
    track = Track(sources=[str(profile.attrs.get("source", ""))], attrs={"fragment": fragment, "host": host})
    fragments = [str(f) for f in profile["fragment"].values]
    if fragment not in fragments:
        track.notes.append(f"ToF-SIMS profile has no {fragment}")
        return track
    t = np.asarray(profile["sputter_time"].values, float)
    total = total_sputter_time(profile)
    if crater is not None:
        z, dz = sputter_depth(t, crater, total)
    elif "depth" in profile.coords and np.all(np.isfinite(profile["depth"].values)):
        z, dz = np.asarray(profile["depth"].values, float), np.zeros(t.size)
        track.notes.append("ToF-SIMS depth from the entry's own conversion, without an uncertainty")
    else:
        track.notes.append("no crater depth given; ToF-SIMS not placed on the depth axis")
        return track
    counts = np.asarray(profile["counts"].sel(fragment=fragment).values, float)
    track.coords["sims_sputter_time"] = ("sims_scan", t, {"units": "s"})
    track.data.update(sims_depth=("sims_scan", z, {"units": "nm", "sputter_time_total_s": total}),
                      sims_depth_stderr=("sims_scan", dz, {"units": "nm"}))
    if "reference" in profile and profile.attrs.get("normalization") == "total":
        frac, frac_se = poisson_ratio(counts, np.asarray(profile["reference"].values, float), nested=True)
        shown = Track.plotted("sims_depth", "right", 1.0, "s--", f"ToF-SIMS {fragment}/total")
        track.data.update(sims_fraction=("sims_scan", frac, {"units": "1", "ratio": f"{fragment}/total", **shown}),
                          sims_fraction_stderr=("sims_scan", frac_se, {"units": "1"}))
    else:
        track.notes.append("ToF-SIMS profile not normalised to total counts; no fraction of total")
    if host in fragments:
        ratio, ratio_se = poisson_ratio(counts, np.asarray(profile["counts"].sel(fragment=host).values, float))
        shown = Track.plotted("sims_depth", "right", 1.0, "^--", f"ToF-SIMS {fragment}/{host}")
        track.data.update(sims_ratio=("sims_scan", ratio, {"units": "1", "ratio": f"{fragment}/{host}", **shown}),
                          sims_ratio_stderr=("sims_scan", ratio_se, {"units": "1"}))
    else:
        track.notes.append(f"ToF-SIMS profile has no {host}")
    track.axis_labels["right"] = "ToF-SIMS count ratio (1)"
    return track


# ----------------------------------------------------------------------------- section
def _uniformity_rows(sample, test):
    from doptrace.core.fmt import format_value

    rows = []
    for name in test["fragment"].values:
        t = test.sel(fragment=name)
        rows.append([
            sample, str(name),
            format_value(float(t["relative_change"]) * 100, float(t["relative_change_stderr"]) * 100, "%"),
            f"{float(t['p_slope']):.3g}", f"{float(t['p_dispersion']):.3g}", f"{float(t['p_value']):.3g}",
            format_value(float(t["surface_to_bulk"]), float(t["surface_to_bulk_stderr"])),
            "uniform" if int(t["uniform"]) else "NOT uniform",
        ])
    return rows


def section(analyses) -> list:
    """Maps with scale bars, depth profiles with the uniformity test, coloc scatter, sample comparison."""
    from doptrace.report.html import Figure, Plot, Table, Text
    from doptrace.tofsims.pipeline import compare_integrated
    from doptrace.tofsims.plot import plot_coloc, plot_compare, plot_maps, plot_profile, plot_projections

    blocks = [Text(
        "Counts are summed exactly from the instrument file; error bars and intervals are Poisson unless said "
        "otherwise. 'Uniform with depth' combines a weighted slope test and a dispersion test of depth slabs "
        "against counting statistics (Bonferroni p-value); colocalization p-values come from a spatial null "
        "(random shifts, rotations and flips of one image), not from pixel counts."
    )]
    uniform_rows, coloc_rows = [], []
    for analysis in analyses:
        res = analysis.results
        sample = analysis.sample
        if "maps" in res:
            blocks.append(Plot(plot_maps, (res["maps"], sample),
                                 f"{sample}: fragment maps summed over scans {res['maps'].attrs['scan_first']}-"
                                 f"{res['maps'].attrs['scan_last']} ({Path(str(res['maps'].attrs['source'])).name})"
                                 + (f"; last panel: pixel ratio {res['maps'].attrs['ratio']} with its own colour scale"
                                    if "ratio" in res["maps"] else "")))
        if "profile" in res:
            blocks.append(Plot(plot_profile, (res["profile"], res.get("uniformity"), sample),
                                 f"{sample}: depth profiles with Poisson error bars"))
        if "projections" in res:
            blocks.append(Plot(plot_projections, (res["projections"], sample),
                                 f"{sample}: side projections of the {res['projections'].attrs.get('fragment')} volume"))
        if "mva" in res:
            from doptrace.tofsims.plot_mva import plot_mva

            m = res["mva"]
            blocks.append(Plot(plot_mva, (m, sample), f"{sample}: {m.attrs['method'].upper()} of the summed image "
                                 f"({m.attrs['scaling']} scaling): score maps and loadings against mass"))
        if "uniformity" in res:
            uniform_rows += _uniformity_rows(sample, res["uniformity"])
        if "coloc" in res:
            c = res["coloc"]
            blocks.append(Plot(plot_coloc, (c, sample), f"{sample}: colocalization of {c.attrs['fragment_a']} "
                                 f"and {c.attrs['fragment_b']}"))
            coloc_rows.append([sample, f"{c.attrs['fragment_a']}:{c.attrs['fragment_b']}",
                               f"{float(c['pearson_r']):.3f}", f"{float(c['p_value']):.3g}",
                               f"{float(c['manders_m1']):.3f}", f"{float(c['manders_m2']):.3f}",
                               f"{float(c['p_m1']):.3g}", f"{float(c['p_m2']):.3g}",
                               "Costes" if int(c.attrs.get("costes_converged", 0)) else "Otsu (no Costes)"])
    if uniform_rows:
        blocks.append(Table(["sample", "fragment", "relative change over depth", "p slope", "p dispersion",
                             "p", "surface / bulk", "verdict (alpha 0.05)"], uniform_rows,
                            "Uniformity with depth (beyond the surface layer)"))
    if coloc_rows:
        blocks.append(Table(["sample", "pair", "Pearson r", "p (spatial null)", "Manders M1", "Manders M2",
                             "p M1", "p M2", "thresholds"], coloc_rows, "Colocalization (Costes thresholds)"))
    integrated = [a for a in analyses if "integrated" in a.results]
    if len(integrated) >= 2:
        reference = integrated[0]
        for other in integrated[1:]:
            cmp = compare_integrated(reference.results["integrated"], other.results["integrated"])
            if cmp is None:  # no common fragment, or normalised differently
                continue
            common = [str(f) for f in cmp["fragment"].values]
            blocks.append(Figure(plot_compare(cmp), f"Comparison {other.sample} vs {reference.sample}"))
            rows = [[str(f), f"{float(cmp['ratio'].sel(fragment=f)):.3f}",
                     f"{float(cmp['ratio_poisson_low'].sel(fragment=f)):.3f} - "
                     f"{float(cmp['ratio_poisson_high'].sel(fragment=f)):.3f}",
                     f"{float(cmp['ratio_boot_low'].sel(fragment=f)):.3f} - "
                     f"{float(cmp['ratio_boot_high'].sel(fragment=f)):.3f}",
                     f"{float(cmp['p_equal'].sel(fragment=f)):.3g}"] for f in common]
            blocks.append(Table(["fragment", f"ratio {cmp.attrs['ratio']}", "95 % CI (Poisson)",
                                 "95 % CI (tile bootstrap)", "p (ratio = 1)"], rows, "Sample comparison"))
    return blocks


# ----------------------------------------------------------------------------- demo
def demo_entries(data_dir, sample: str, bulk_doped: bool, seed: int) -> list[dict]:
    """Simulate the sample's ITA depth-profile image stack and return its project entry."""
    from doptrace.tofsims import simulate

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{sample}_tofsims.ita"
    truth = simulate.demo_volume(sample, bulk_doped, seed=seed)
    simulate.write_ita(path, truth, seed=seed)
    return [{
        "file": path,
        "fragments": ["BO-", "MnO-", "InO-", "ClO-"],
        "normalize": "total",
        "crater_depth_nm": float(truth.attrs.get("crater_depth_nm", 500.0)),
        "pair": "BO-:MnO-",
        "compare": ["InO-", "ClO-"],
        "seed": int(seed),
    }]


def demo_depth(entries: list[dict]) -> dict:
    """Move the simulated crater depth out of the demo entries into the sample's depth table, with the
    profilometer's esd."""
    depth = {}
    for entry in entries:
        crater = entry.pop("crater_depth_nm", None)
        if crater is not None:
            depth["sims_crater_depth"] = f"{crater:g} ± {CRATER_RELATIVE_STDERR * crater:g} nm"
    return depth


# ----------------------------------------------------------------------------- CLI
def register_cli(subparsers) -> None:
    from ..batch import add_export_options, add_inputs, each

    parser = subparsers.add_parser(NAME, help="ToF-SIMS: info, calibrate, maps, depth, coloc, compare")
    sub = parser.add_subparsers(dest="tofsims_command", required=True)

    p = sub.add_parser("info", help="summarise ToF-SIMS files")
    p.add_argument("files", nargs="+", metavar="file", help="input file(s); glob patterns are expanded")
    p.set_defaults(handler=each(_info, {}, required=()))

    p = sub.add_parser("calibrate", help="fit t = k0 + sf sqrt(m) on calibrant peaks of a spectrum")
    p.add_argument("spectrum")
    p.add_argument("--peaks", help="calibrant names, e.g. H-,C-,CH-,O-,OH-,C2- (default: by polarity)")
    p.add_argument("--strict", action="store_true",
                   help="exit 4 when the result's quality is 'failed' (the result is still written)")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_calibrate)

    def common(p, fragments_required=False, roi=True):
        p.add_argument("--fragments", required=fragments_required, help="comma-separated, e.g. BO-,MnO-")
        dead = p.add_mutually_exclusive_group()
        dead.add_argument("--dead-time", action="store_true", default=None,
                          help="Poisson dead-time correction even where the default would skip it "
                               "(error if impossible); default: applied when the file says it was not "
                               "and the shots per pixel allow it")
        dead.add_argument("--no-dead-time", dest="dead_time", action="store_false",
                          help="never apply the dead-time correction")
        p.add_argument("--drift-correct", action="store_true", help="align scans by phase correlation")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--strict", action="store_true",
                   help="exit 4 when the result's quality is 'failed' (the result is still written)")
        p.add_argument("--scans", help="scan range first:last (inclusive)")
        p.add_argument("--mass", action="append", metavar="INTERVAL",
                       help="custom mass interval instead of the peak list, NAME=LOW:HIGH or CENTRE±HALF in u "
                            "(repeatable), e.g. --mass BO-=26.98:27.03; cut from an ITM file's raw ions, or one of "
                            "an ITA file's own peak-list intervals")
        if roi:  # maps and coloc work on whole images; an ROI there would be silently ignored
            p.add_argument("--roi", help="region x0,x1,y0,y1 in um")
            p.add_argument("--roi-from", help="region where this fragment's map is high, Otsu threshold")

    p = sub.add_parser("maps", help="fragment maps summed over scans")
    add_inputs(p)
    common(p, roi=False)
    p.add_argument("--normalize", help="total, fragments or a reference fragment")
    p.add_argument("--bin", type=int, default=1)
    p.add_argument("--ratio", help="also a ratio map A:B, e.g. BO-:MnO- (drawn as the last panel of --plot)")
    p.add_argument("--out", help="output NetCDF; {stem} = the input's name (default with --out-dir: <stem>.nc)")
    p.add_argument("--plot", help="figure; {stem} = the input's name")
    add_export_options(p, "maps/profiles")
    p.set_defaults(handler=each(_maps, {"out": ".nc", "plot": ".png"}))

    p = sub.add_parser("depth", help="depth profiles and the uniformity test")
    add_inputs(p)
    common(p)
    p.add_argument("--normalize", default="total", help="total (default), fragments, a fragment, or none")
    p.add_argument("--crater-depth", help="crater depth, e.g. 500nm")
    p.add_argument("--rates", help="per-layer sputter rates instead: nm/s:until_s,...,last nm/s, e.g. 1.0:30,0.5")
    p.add_argument("--surface-depth", type=float, help="nm excluded from the uniformity test")
    p.add_argument("--out", help="output NetCDF; {stem} = the input's name (default with --out-dir: <stem>.nc)")
    p.add_argument("--plot", help="figure; {stem} = the input's name")
    add_export_options(p, "maps/profiles")
    p.set_defaults(handler=each(_depth, {"out": ".nc", "plot": ".png"}))

    p = sub.add_parser("coloc", help="colocalization of two fragments")
    p.add_argument("file")
    common(p, roi=False)
    p.add_argument("--pair", required=True, help="A:B, e.g. BO-:MnO-")
    p.add_argument("--bin", type=int, default=4)
    p.add_argument("--null", type=int, default=199, help="number of spatial-null images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.set_defaults(handler=_coloc)

    p = sub.add_parser("mva", help="PCA or NMF of the image (or depth profile), Poisson-scaled")
    p.add_argument("file")
    common(p, roi=False)
    p.add_argument("--method", choices=["pca", "nmf"], default="pca")
    p.add_argument("--components", type=int, default=4, help="components kept (default 4)")
    p.add_argument("--over", choices=["image", "depth"], default="image",
                   help="decompose the pixels of the summed image (default) or the scans of the depth profile")
    p.add_argument("--scaling", choices=["poisson", "none"], default="poisson",
                   help="Poisson scaling (Keenan & Kotula 2004, as SurfaceLab) or raw counts")
    p.add_argument("--no-centre", action="store_true", help="PCA without mean-centring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--plot", help="score maps and loadings against mass")
    add_export_options(p, "maps/profiles")
    p.set_defaults(handler=_mva)

    p = sub.add_parser("peaks", help="peak search on the total spectrum, with assignment candidates")
    p.add_argument("file", help="ITA/ITM file (its summed spectrum) or a spectrum export")
    p.add_argument("--top", type=int, help="only the N peaks with the most counts")
    p.add_argument("--sigma", type=float, default=5.0, help="Poisson significance of a peak (default 5)")
    p.add_argument("--tolerance", type=float, default=200.0, help="list candidates within this many ppm (or 3 esd)")
    p.add_argument("--candidates", help="extra candidate ions, e.g. BO-,C2H3-")
    p.add_argument("--no-calibrate", action="store_true",
                   help="use the file's own sf, k0 instead of calibrating on the spectrum's calibrant peaks")
    p.add_argument("--table", help="CSV table of the peaks")
    p.add_argument("--out", help="NetCDF result")
    p.set_defaults(handler=_peaks)

    p = sub.add_parser("compare", help="compare normalised integrated intensities of two samples")
    p.add_argument("file_a")
    p.add_argument("file_b")
    common(p, fragments_required=True)
    p.add_argument("--normalize", default="total", help="total (default), fragments, a fragment, or none")
    p.add_argument("--tile", type=int, default=8, help="tile size (px) for the bootstrap")
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.set_defaults(handler=_compare)


def _progress(args) -> bool:
    import sys

    # Bars only on a terminal: a captured stderr keeps its one-line error messages.
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _load_options(args) -> dict:
    """:func:`doptrace.tofsims.pipeline.load` keywords from the common options."""
    return {"dead_time": args.dead_time, "drift_correct": args.drift_correct, "progress": _progress(args),
            "masses": getattr(args, "mass", None)}


def _load_args(args, path):
    from doptrace.tofsims.pipeline import load

    return load(path, **_load_options(args))


def _export(result, args) -> None:
    """``--export DIR [--format]``, ``--tiff DIR``, ``--ascii DIR``: maps/profiles as files with an axes sidecar."""
    from ..batch import write_exports

    write_exports(result, args, stem=lambda: f"{Path(args.file).stem}_{args.tofsims_command}")


def _write(ds, out, fig=None, plot=None) -> None:
    from doptrace.core.atomic import save_figure
    from doptrace.report.conventions import check_result, write_netcdf

    check_result(ds, str(out))
    if plot:
        from matplotlib.backend_bases import FigureCanvasBase
        from doptrace.tofsims.errors import ToFSIMSError

        formats = FigureCanvasBase.get_supported_filetypes()
        if Path(plot).suffix.lower().lstrip(".") not in formats:
            raise ToFSIMSError(f"{plot}: unsupported figure format (use one of {', '.join(sorted(formats))})")
    if fig is not None and plot:
        save_figure(fig, plot, dpi=110)
    write_netcdf(ds, out)
    print(f"wrote {out}" + (f" and {plot}" if plot else ""))


def _done(result, args, fig=None, lines=(), strict=None) -> int:
    """Write the result (and figure, exports), print ``lines``, then its quality; the exit code."""
    from doptrace.report.conventions import print_quality

    _write(result, args.out, fig, getattr(args, "plot", None))
    _export(result, args)
    for line in lines:
        print(line)
    return print_quality(result, args.strict if strict is None else strict)


def _info(args) -> int:
    from doptrace.tofsims.pipeline import describe

    print(describe(args.file))
    return 0


def _calibrate(args) -> int:
    from doptrace.report.conventions import EXIT_QUALITY_FAILED
    from doptrace.tofsims import calibration
    from doptrace.tofsims.pipeline import read_spectrum, split_names
    from doptrace.tofsims.summary import calibration_lines

    result = calibration.calibrate(read_spectrum(args.spectrum), split_names(args.peaks))
    _write(result, args.out)
    print("\n".join(calibration_lines(result)))
    return EXIT_QUALITY_FAILED if args.strict and result.attrs["quality"] == "failed" else 0


def _maps(args) -> int:
    from doptrace.tofsims import maps
    from doptrace.tofsims.pipeline import normalization, parse_scans, split_names, with_ratio
    from doptrace.tofsims.plot import plot_maps

    ds, scans = _load_args(args, args.file), parse_scans(args.scans)
    result = maps.fragment_maps(ds, split_names(args.fragments), scans=scans, normalize=normalization(args.normalize),
                                bin=args.bin)
    if args.ratio:
        with_ratio(result, ds, args.ratio, scans=scans, bin=args.bin)
    return _done(result, args, plot_maps(result, Path(args.file).name) if args.plot else None)


def _depth(args) -> int:
    from doptrace.tofsims.pipeline import depth, depth_result, parse_length_nm
    from doptrace.tofsims.plot import plot_profile
    from doptrace.tofsims.summary import uniformity_lines

    profile, test = depth(args.file, args.fragments, args.normalize,
                          parse_length_nm(args.crater_depth) if args.crater_depth else None, args.rates, args.scans,
                          args.roi, args.roi_from, args.surface_depth, **_load_options(args))
    fig = plot_profile(profile, test, Path(args.file).name) if args.plot else None
    return _done(depth_result(profile, test), args, fig, uniformity_lines(test))


def _mva(args) -> int:
    from doptrace.tofsims.mva import mva
    from doptrace.tofsims.pipeline import parse_scans, split_names
    from doptrace.tofsims.plot_mva import plot_mva
    from doptrace.tofsims.summary import mva_lines

    result = mva(_load_args(args, args.file), args.method, args.components, over=args.over, scaling=args.scaling,
                 centre=False if args.no_centre else None, fragments=split_names(args.fragments),
                 scans=parse_scans(args.scans), seed=args.seed)
    return _done(result, args, plot_mva(result, Path(args.file).name) if args.plot else None, mva_lines(result))


def _peaks(args) -> int:
    import csv

    from doptrace.core.atomic import atomic_open
    from doptrace.report.conventions import print_quality
    from doptrace.tofsims.peaks import peak_table_rows
    from doptrace.tofsims.pipeline import peaks

    result, note = peaks(args.file, not args.no_calibrate, args.sigma, args.top, args.tolerance, args.candidates)
    if note:
        print(note)
    header, rows = peak_table_rows(result)
    if args.table:
        with atomic_open(args.table, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    if args.out:
        _write(result, args.out)
    print(f"{result.sizes['peak']} peaks above {args.sigma:g} sigma; masses from {result.attrs['calibration']}")
    print(f"{'m/z (u)':>11s} {'esd':>8s} {'counts':>10s} {'sigma':>7s}  assignment (ppm error)")
    for row in rows:
        print(f"{row[0]:>11s} {row[1]:>8s} {row[2]:>10s} {row[4]:>7s}  {row[9] or '-'}")
    if args.table:
        print(f"wrote {args.table}")
    return print_quality(result, False)


def _coloc(args) -> int:
    from doptrace.tofsims import coloc
    from doptrace.tofsims.pipeline import parse_scans
    from doptrace.tofsims.plot import plot_coloc

    result = coloc.colocalization(_load_args(args, args.file), args.pair, bin=args.bin, scans=parse_scans(args.scans),
                                  n_null=args.null, seed=args.seed)
    line = (f"{args.pair}: r = {float(result['pearson_r']):.3f}, p = {float(result['p_value']):.3g}, "
            f"M1 = {float(result['manders_m1']):.3f}, M2 = {float(result['manders_m2']):.3f}")
    return _done(result, args, plot_coloc(result, Path(args.file).name) if args.plot else None, [line])


def _compare(args) -> int:
    from doptrace.tofsims.pipeline import compare_files
    from doptrace.tofsims.plot import plot_compare

    result = compare_files(args.file_a, args.file_b, args.fragments, args.normalize, args.scans, args.roi,
                           args.roi_from, args.tile, args.boot, args.seed, **_load_options(args))
    lines = [f"{name}: ratio {result.attrs['ratio']} = {float(result.sel(fragment=name)['ratio']):.3f} (95 % CI "
             f"{float(result.sel(fragment=name)['ratio_boot_low']):.3f}-"
             f"{float(result.sel(fragment=name)['ratio_boot_high']):.3f}, bootstrap)" for name in result["fragment"].values]
    return _done(result, args, plot_compare(result) if args.plot else None, lines)
