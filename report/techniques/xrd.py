"""XRD adapter: ``doptrace xrd info|refine|simulate|sequence``, project entries, report section, demo."""

from __future__ import annotations

from pathlib import Path

NAME = "xrd"
#: ``doptrace xrd refine --strict`` exit code when the result's quality is ``failed``
EXIT_QUALITY_FAILED = 4
TITLE = "X-ray diffraction (Rietveld)"
LABEL = "XRD"
CODE = ("doptrace.xrd",)  # packages whose source decides this adapter's results (cache key)
#: this technique's thresholds in a project's [checks] table: key -> (kind, default, meaning)
CHECKED_RESULTS = ("refinement",)
THRESHOLDS = {
    "xrd_sites": ("list", [], "sites where the dopant is expected (default: every site named ':Li...')"),
    "xrd_expected_fraction": ("number", 0.03, "smallest site fraction the chemist expects on those sites"),
}
#: the dopant found on any one expected site supports bulk doping (see report.checks)
VERDICT_RULE = "any"
ENTRY_SCHEMA = {
    "recipe": ("file", True),
    "file": ("file", False),
    "instrument": ("file", False),
    "engine": ("text", False),
}

#: Counts at the strongest peak of the demo patterns: a lab D8 scan (Rwp 3.0 % on the demo, as the
#: model study's lab refinements, 3.1-3.3 %). B fractions of 0.06-0.08 on Li sites are then about a
#: 1-esd effect (esd 0.066 on LiTMO2:Li): the demo shows honestly that XRD cannot tell (at 1e6
#: counts, Rwp 0.5 %, it could).
DEMO_COUNTS = 3.0e4
DEMO_DOPANT = {"LiTMO2:Li": 0.06, "Li2MnO3:Li2c": 0.08, "Li2MnO3:Li4h": 0.08}
EXAMPLE_RECIPE = "xrd/li-rich-two-phase.toml"  # in doptrace.examples


# ------------------------------------------------------------------------------------------ CLI
def register_cli(subparsers) -> None:
    from ..batch import each

    parser = subparsers.add_parser(NAME, help="X-ray powder diffraction: read, refine, simulate")
    sub = parser.add_subparsers(dest="xrd_command", required=True)

    info = sub.add_parser("info", help="describe pattern files")
    info.add_argument("files", nargs="+", metavar="file", help="pattern file(s); glob patterns are expanded")
    info.set_defaults(handler=each(_info, {}, required=()))

    refine = sub.add_parser("refine", help="Rietveld refinement of a recipe")
    refine.add_argument("recipe")
    refine.add_argument("--data", nargs="+", help="pattern file(s) (override the recipe's [data] file); several "
                        "files or a glob pattern: one refinement each, outputs named with {stem} or --out-dir")
    refine.add_argument("--out-dir", help="folder for the outputs of several --data files")
    refine.add_argument("--instrument", help="instrument parameter file (.prm/.instprm)")
    refine.add_argument("--engine", choices=("builtin", "gsas2"), default="builtin")
    refine.add_argument("--out", help="result NetCDF file; {stem} = the --data file's name")
    refine.add_argument("--plot", help="obs/calc/difference plot (PNG/PDF/SVG); {stem} as for --out")
    refine.add_argument("--cif-out", help="folder for refined CIFs (built-in engine); {stem} as for --out")
    refine.add_argument("--quiet", action="store_true", help="no progress bar")
    refine.add_argument("--strict", action="store_true",
                        help=f"exit {EXIT_QUALITY_FAILED} when the refinement's quality is 'failed' (result still written)")
    refine.set_defaults(handler=each(_refine, {"out": ".nc", "plot": ".png", "cif_out": ""}, inputs="data",
                                     target="data"))

    simulate = sub.add_parser("simulate", help="simulate a recipe's pattern with Poisson noise")
    simulate.add_argument("recipe")
    simulate.add_argument("--out", required=True, help="output .xye file")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--counts", type=float, default=30000.0, help="counts at the strongest peak")
    simulate.add_argument("--dopant", action="append", default=[], metavar="PHASE:SITE=FRACTION",
                          help="true dopant fraction of a candidate site (repeatable)")
    simulate.add_argument("--step", type=float, default=0.02, help="2theta step (deg)")
    simulate.set_defaults(handler=_simulate)

    seq = sub.add_parser("sequence", help="sequential refinement of several patterns")
    seq.add_argument("recipe")
    seq.add_argument("files", nargs="+")
    seq.add_argument("--out", required=True, help="result NetCDF file")
    seq.add_argument("--quiet", action="store_true")
    seq.set_defaults(handler=_sequence)


def _info(args) -> int:
    from doptrace.xrd.read import describe

    print(describe(args.file))
    return 0


def _load(recipe_path, data=None, instrument=None):
    from doptrace.xrd.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    if data:
        recipe = recipe.with_data(data)
    if instrument:
        recipe = recipe.with_instrument(instrument)
    return recipe


def refine_recipe(recipe, engine: str = "builtin", progress: bool = False):
    """``(Dataset, Refinement or None)`` of a recipe through the chosen engine."""
    from doptrace.xrd.errors import XRDError

    if engine == "gsas2":
        try:
            from doptrace.xrd import gsas2
        except ImportError as exc:
            raise XRDError(f"{recipe.path}: GSAS-II is not installed ({exc})") from None
        if hasattr(gsas2, "available") and not gsas2.available():
            reason = gsas2.unavailable_reason() if hasattr(gsas2, "unavailable_reason") else ""
            raise XRDError(f"{recipe.path}: GSAS-II is not installed {reason}".rstrip())
        return gsas2.refine(recipe, progress=progress), None
    from doptrace.xrd.rietveld import run

    result = run(recipe, progress=progress)
    return result.dataset, result


def _refine(args) -> int:
    from doptrace.core.atomic import save_figure, write_text
    from doptrace.report.conventions import write_netcdf
    from doptrace.xrd.plot import plot_refinement

    if args.out is None:
        from doptrace.xrd.errors import XRDError

        raise XRDError(f"{args.recipe}: --out is required (the result NetCDF file)")
    recipe = _load(args.recipe, args.data, args.instrument)
    if args.cif_out and args.engine != "builtin":
        from doptrace.xrd.errors import XRDError

        raise XRDError(f"{recipe.path}: --cif-out needs the built-in engine")  # said before a long refinement
    ds, result = refine_recipe(recipe, args.engine, progress=not args.quiet)
    # everything is computed before the first file is written, so a failure leaves no output
    cifs = {}
    if args.cif_out:
        from doptrace.xrd.cif_out import cif_texts

        cifs = cif_texts(result)
    fig = plot_refinement(ds, recipe.path.stem) if args.plot else None
    write_netcdf(ds, args.out)
    if fig is not None:
        save_figure(fig, args.plot, dpi=120)
    for name, text in cifs.items():
        write_text(Path(args.cif_out) / f"{name}.cif", text)
    print(summary(ds))
    print(quality_lines(ds))
    if args.strict and ds.attrs.get("quality") == "failed":
        return EXIT_QUALITY_FAILED
    return 0


def quality_lines(ds) -> str:
    """``quality: ok|warning|failed`` and one indented line per reason (``xrd.quality`` rules)."""
    reasons = ds.attrs.get("quality_reasons", [])
    if isinstance(reasons, str):
        reasons = [reasons]
    return "\n".join([f"quality: {ds.attrs.get('quality', 'unknown')}"] + [f"  - {r}" for r in reasons])


def _simulate(args) -> int:
    from doptrace.core.atomic import write_text
    from doptrace.xrd.errors import XRDError
    from doptrace.xrd.simulate import simulate, xye_text

    recipe = _load(args.recipe)
    dopant = {}
    for item in args.dopant:
        site, _, value = item.partition("=")
        try:
            dopant[site.strip()] = float(value)
        except ValueError:
            raise XRDError(f"{args.recipe}: --dopant '{item}' is not PHASE:SITE=FRACTION") from None
    pattern, truth = simulate(recipe, dopant=dopant, counts=args.counts, seed=args.seed, step=args.step,
                              return_truth=True)
    write_text(args.out, xye_text(pattern, truth))
    print(f"{args.out}: {pattern.size} points, {float(pattern['two_theta'][0]):g}-"
          f"{float(pattern['two_theta'][-1]):g} deg, max {float(pattern.max()):.0f} counts")
    return 0


def _sequence(args) -> int:
    from doptrace.report.conventions import write_netcdf
    from doptrace.core.fmt import format_value
    from doptrace.xrd.sequence import sequence

    recipe = _load(args.recipe)
    ds = sequence(recipe, [Path(f) for f in args.files], progress=not args.quiet)
    write_netcdf(ds, args.out)
    for i in range(ds.sizes["scan"]):
        p003 = format_value(float(ds.peak_003[i]), float(ds.peak_003_stderr[i]), "deg")
        p101 = format_value(float(ds.peak_101[i]), float(ds.peak_101_stderr[i]), "deg")
        print(f"scan {i}: Rwp {float(ds.rwp[i]):.2f} %  (003) {p003}  (101) {p101}")
    return 0


def summary(ds) -> str:
    """A few lines: fit statistics, cells, weight fractions and dopant verdicts."""
    from doptrace.core.fmt import format_value

    lines = [f"Rwp {float(ds.rwp):.3f} %  Rp {float(ds.rp):.3f} %  GOF {float(ds.gof):.3f}  "
             f"Nobs {int(ds.nobs)}  Nvar {int(ds.nvar)}  ({ds.attrs.get('engine')})"]
    for k, phase in enumerate(ds.phase.values):
        cell = "  ".join(f"{n} {format_value(float(ds[n][k]), float(ds[n + '_stderr'][k]))}"
                         for n in ("a", "b", "c", "alpha", "beta", "gamma")
                         if n in ("a", "b", "c") or float(ds[n + "_stderr"][k]) > 0)
        if str(phase) in list(ds.attrs.get("lebail_phases", [])):
            lines.append(f"{phase}: {cell}  Le Bail (no weight fraction)")
            continue
        wf = format_value(float(ds.weight_fraction[k]), float(ds.weight_fraction_stderr[k]))
        lines.append(f"{phase}: {cell}  w {wf}")
    for j, site in enumerate(ds.site.values):
        element = str(ds["dopant"].values[j]) if "dopant" in ds.coords else ds.attrs.get("dopant_element", "dopant")
        site = str(site).split("@", 1)[-1]
        lines.append(f"{element} on {site}: "
                     f"{format_value(float(ds.dopant_fraction[j]), float(ds.dopant_fraction_stderr[j]))} "
                     f"-> {ds.dopant_verdict.values[j]}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ evidence
def xrd_checks(sample: str, refinement, th: dict) -> list:
    """Dopant fraction per site with its esd and the refinement's determinability verdict.

    ``determined`` (|d| >= 3 esd, positive) supports the dopant on that site. ``consistent with zero``
    contradicts it only when the refinement could have seen the expected fraction (its
    ``dopant_min_detectable`` is below ``xrd_expected_fraction``); otherwise nothing is determined.
    """
    from ..checks import CONTRADICTED, SUPPORTED, UNDETERMINED, Check

    ds = refinement
    dopant = str(ds.attrs.get("dopant_element", th["dopant"]))
    sigma = float(ds.attrs.get("dopant_min_detectable_sigma", 3.0))
    expected = float(th["xrd_expected_fraction"])
    sites = [str(s) for s in ds["site"].values] if "site" in ds.coords else []
    wanted = [str(s) for s in th["xrd_sites"]] or [s.split("@", 1)[-1] for s in sites
                                                    if s.split(":")[-1].startswith("Li")]
    rows = []
    elements = [str(e) for e in ds["dopant"].values] if "dopant" in ds.coords else [dopant] * len(sites)
    for i, (site, dopant) in enumerate(zip(sites, elements)):
        site = site.split("@", 1)[-1]  # several dopants: entries are ELEMENT@PHASE:SITE
        f = float(ds["dopant_fraction"].values[i])
        e = float(ds["dopant_fraction_stderr"].values[i])
        verdict_text = str(ds["dopant_verdict"].values[i])
        limit = float(ds["dopant_min_detectable"].values[i]) if "dopant_min_detectable" in ds else sigma * e
        value = f"{f:.4f} ± {e:.4f}"
        expected_here = site in wanted
        if verdict_text == "determined" and f > 0:
            verdict, reason = SUPPORTED, f"{dopant} on {site} refines to {value}, {abs(f) / e:.1f} esd above zero."
        elif verdict_text == "determined":
            verdict, reason = UNDETERMINED, (f"{dopant} on {site} refines to a negative {value}: the model "
                                             "absorbs something else there, so it says nothing about the dopant.")
        elif verdict_text == "consistent with zero" and not expected_here:
            verdict, reason = CONTRADICTED, (f"{dopant} on {site} refines to {value}, consistent with zero; any "
                                             f"fraction above {limit:.3f} ({sigma:g} esd) would have been seen.")
        elif verdict_text == "consistent with zero" and limit <= expected:
            verdict, reason = CONTRADICTED, (
                f"{dopant} on {site} refines to {value}, consistent with zero, although any fraction above "
                f"{limit:.3f} ({sigma:g} esd) would have been seen and {expected:g} is expected.")
        else:
            verdict, reason = UNDETERMINED, (
                f"{dopant} on {site} refines to {value}: only fractions above {limit:.3f} ({sigma:g} esd) could be "
                f"seen, more than the {expected:g} expected, so these data cannot tell.")
        rows.append(Check(sample, LABEL, f"{dopant} on {site}", "site fraction", f, e, "1",
                          f"|d| ≥ {sigma:g} esd" + (f"; detectable ≤ {expected:g}" if expected_here else ""),
                          verdict, reason, expected_here))
    return rows


def checks(sample: str, results: dict, th: dict, depth: dict) -> list:
    """Checks of one analysis: :func:`xrd_checks` of a refinement that refined dopant site fractions."""
    if "refinement" in results and "dopant_fraction" in results["refinement"]:
        return xrd_checks(sample, results["refinement"], th)
    return []


# ------------------------------------------------------------------------------------------ project
def analyse(settings) -> dict:
    """One project entry -> ``{"refinement": Dataset}``."""
    recipe = _load(settings["recipe"], settings.get("file"), settings.get("instrument"))
    ds, _ = refine_recipe(recipe, settings.get("engine", "builtin"))
    return {"refinement": ds}


def section(analyses) -> list:
    """Per refinement the Rietveld plot, then tables of refined parameters and dopant site fractions."""
    from doptrace.core.fmt import format_value
    from doptrace.report.html import Plot, Table, Text
    from doptrace.xrd.plot import plot_refinement

    blocks = []
    verdict_rows, param_rows = [], []
    weak = set()  # dopants whose fraction on a Li site was not determined
    for analysis in analyses:
        for name, ds in analysis.results.items():
            blocks.append(Plot(plot_refinement, (ds, analysis.sample),
                                 f"{analysis.sample}: observed, calculated and difference patterns "
                                 f"with reflection positions ({ds.attrs.get('engine')} engine)"))
            param_rows.append([analysis.sample, "fit", "Rwp / Rp / GOF",
                               f"{float(ds.rwp):.2f} % / {float(ds.rp):.2f} % / {float(ds.gof):.3f}"])
            for k, phase in enumerate(ds.phase.values):
                for var, units in (("a", "Å"), ("b", "Å"), ("c", "Å"), ("alpha", "deg"), ("beta", "deg"),
                                   ("gamma", "deg"), ("weight_fraction", "1")):
                    if var in ("alpha", "beta", "gamma") and not float(ds[var + "_stderr"][k]) > 0:
                        continue  # fixed by symmetry
                    param_rows.append([analysis.sample, str(phase), var,
                                       format_value(float(ds[var][k]), float(ds[var + "_stderr"][k]), units)])
            for j, site in enumerate(ds.site.values):
                verdict = str(ds.dopant_verdict.values[j])
                if verdict != "determined" and "Li" in str(site).split(":")[-1] and ds.attrs.get("dopant_element"):
                    weak.add(str(ds.attrs["dopant_element"]))
                verdict_rows.append([
                    analysis.sample, str(site),
                    format_value(float(ds.dopant_fraction[j]), float(ds.dopant_fraction_stderr[j])), verdict,
                    f"{float(ds.dopant_min_detectable[j]):.3f}", str(ds.dopant_correlations.values[j])])
    blocks.append(Table(["sample", "phase", "parameter", "value"], param_rows,
                        "Refined parameters (esd scaled by GOF)"))
    if verdict_rows:
        blocks.append(Table(["sample", "site", "dopant fraction", "verdict", "detectable at 3σ",
                             "strongest correlations"], verdict_rows, "Dopant site fractions"))
        blocks.append(Text(
            "Verdict rule: 'determined' if |d| ≥ 3 esd; 'consistent with zero' if |d| < 2 esd and esd ≤ 0.05; "
            "otherwise 'not determined by these data'. 'Detectable at 3σ' is the smallest fraction these counts "
            "would reveal (Fisher information of the pattern)."))
        if weak:
            import gemmi

            electrons = ", ".join(f"{el} {gemmi.Element(el).atomic_number}" for el in sorted(weak))
            blocks.append(Text(
                f"A {' or '.join(sorted(weak))} fraction on a Li site is weakly determined by laboratory XRD: it "
                f"changes the site's scattering only by the difference from Li's 3 electrons ({electrons}; fewer as "
                "ions) and correlates with the phase scales and the other Li sites of the overlapping phases; "
                "where the verdict is not 'determined' the number alone should not be trusted."))
    return blocks


def demo_entries(data_dir, sample, bulk_doped, seed) -> list:
    """Simulate the demo sample's pattern (boron on the Li sites when bulk doped) with its recipe."""
    from doptrace.core.atomic import write_text
    from doptrace.report.examples_data import example_text
    from doptrace.xrd.recipe import load_recipe
    from doptrace.xrd.simulate import simulate, xye_text

    data_dir = Path(data_dir)
    recipe_path = write_text(data_dir / "xrd_li-rich-two-phase.toml", example_text(EXAMPLE_RECIPE))
    recipe = load_recipe(recipe_path)
    dopant = DEMO_DOPANT if bulk_doped else {}
    pattern, truth = simulate(recipe, dopant=dopant, counts=DEMO_COUNTS, seed=seed, return_truth=True,
                              values={"displacement": 25.0})
    data = write_text(data_dir / f"{sample}_xrd.xye", xye_text(pattern, truth))
    return [{"recipe": recipe_path, "file": data}]
