"""ToF-SIMS adapter: ``doptrace tofsims ...`` commands, project analyses, report section, demo files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from doptrace.core.units import length_nm

NAME = "tofsims"
TITLE = "ToF-SIMS: fragment maps, depth profiles, colocalization"
ENTRY_SCHEMA = {
    "file": ("file", True),
    "fragments": ("list", False),  # default: every fragment in the peak list
    "normalize": ("text", False),  # "total" (default), "fragments", a fragment name, or "none"
    "crater_depth_nm": ("number", False),
    "layer_rates": ("list", False),  # [[rate_nm_per_s, until_s], ..., [last_rate]] instead of a crater depth
    "surface_depth_nm": ("number", False),  # excluded from the uniformity test
    "uniformity": ("list", False),  # fragments tested for uniformity with depth (default: BO- if present)
    "pair": ("text", False),  # colocalization pair "BO-:MnO-"
    "coloc_bin": ("number", False),
    "compare": ("list", False),  # fragments whose integrated intensities are compared between samples
    "roi_from": ("text", False),  # profile and integrate only where this fragment's map is high (Otsu)
    # Poisson dead-time correction; absent: applied when the file says it was not and it is
    # defined (shots per pixel known, no saturated voxel); true: always (error if impossible); false: never
    "dead_time": ("bool", False),
    "drift_correct": ("bool", False),
    "seed": ("number", False),
}
DEFAULT_FRAGMENTS = ["BO-", "MnO-", "InO-", "ClO-"]


# ----------------------------------------------------------------------------- helpers
def parse_length_nm(text) -> float:
    """``"500nm"``, ``"0.5 um"``, ``"500"`` (nm) -> 500.0."""
    from doptrace.tofsims.errors import ToFSIMSError

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


def _split(text) -> list[str] | None:
    if text is None:
        return None
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    return [str(i).strip() for i in items if str(i).strip()] or None


def _normalization(value) -> str | None:
    return None if value in (None, "", "none") else str(value)


def parse_rates(text) -> list[tuple[float, float]]:
    """``"1.0:30,2.0:60,0.5"`` (nm/s until s, last layer open) or ``[[1.0, 30], [2.0, 60], [0.5]]``
    -> ``[(30, 1.0), (60, 2.0), (inf, 0.5)]`` as :func:`tofsims.processing.sputter_to_depth` takes them."""
    from doptrace.tofsims.errors import ToFSIMSError

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


def load(path, dead_time: bool | None = None, drift_correct: bool = False, crater_depth_nm=None, layer_rates=None,
         progress: bool = False):
    """Read a file and apply the requested corrections, in the order the physics needs.

    ``dead_time``: None applies the Poisson dead-time correction when the file says it was not
    applied and it is defined (:func:`tofsims.processing.dead_time_auto`), True always (an error
    when impossible), False never."""
    from doptrace import tofsims
    from doptrace.tofsims import processing
    from doptrace.tofsims.errors import ToFSIMSError

    from doptrace.tofsims.formats import detect

    ds = tofsims.read(path, **({"progress": progress} if detect(path) == "ita" else {}))
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
    if crater_depth_nm is not None or layer_rates is not None:
        ds = processing.sputter_to_depth(ds, crater_depth_nm=None if crater_depth_nm is None else float(crater_depth_nm),
                                         rates=None if layer_rates is None else parse_rates(layer_rates))
    return ds


def _profile_export(path, fragments, normalize, crater_depth_nm=None, layer_rates=None):
    """The profile of a depth-profile ASCII export, or None when ``path`` holds something else."""
    from doptrace import tofsims
    from doptrace.tofsims import processing, profiles
    from doptrace.tofsims.formats import detect

    if detect(path) != "profile":
        return None
    ds = tofsims.read(path)
    columns = [str(n).lower() for n in ds["fragment"].values]
    if normalize == "total" and "total" not in columns:
        normalize = None  # the default; this export has no total-ion column
    profile = profiles.profile_from_export(ds, fragments, _normalization(normalize))
    if crater_depth_nm is not None or layer_rates is not None:
        profile = processing.sputter_to_depth(
            profile, crater_depth_nm=None if crater_depth_nm is None else float(crater_depth_nm),
            rates=None if layer_rates is None else parse_rates(layer_rates))
    return profile


def make_roi(ds, rect=None, from_fragment=None):
    """ROI mask from ``rect`` ("x0,x1,y0,y1" in um) and/or the Otsu-thresholded map of a fragment."""
    from doptrace.tofsims import processing
    from doptrace.tofsims.errors import ToFSIMSError

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


def _fragments_in(ds, wanted) -> list[str]:
    names = [str(n) for n in ds["fragment"].values]
    if wanted:
        return list(wanted)
    chosen = [f for f in DEFAULT_FRAGMENTS if f in names]
    return chosen or names


# ----------------------------------------------------------------------------- analyse
def analyse(settings: dict) -> dict:
    """One project entry -> ``maps``, ``profile``, ``uniformity``, ``coloc``, ``projections``, ``integrated``."""
    from doptrace.tofsims import coloc, compare, maps, profiles, volume

    path = Path(settings["file"])
    crater = settings.get("crater_depth_nm")
    export = _profile_export(path, _split(settings.get("fragments")), settings.get("normalize", "total"),
                             crater, settings.get("layer_rates"))
    if export is not None:
        tested = _split(settings.get("uniformity")) or [f for f in ("BO-",) if f in export["fragment"].values] or None
        return {"profile": export, "uniformity": profiles.uniformity_test(
            export, tested, surface_depth=settings.get("surface_depth_nm"))}
    ds = load(path, dead_time=None if settings.get("dead_time") is None else bool(settings["dead_time"]),
              drift_correct=bool(settings.get("drift_correct", False)), crater_depth_nm=crater,
              layer_rates=settings.get("layer_rates"))
    fragments = _fragments_in(ds, _split(settings.get("fragments")))
    normalize = _normalization(settings.get("normalize", "total" if "total" in ds else None))
    seed = int(settings.get("seed", 0))
    results = {}
    results["maps"] = maps.fragment_maps(ds, fragments, normalize=normalize)
    roi = make_roi(ds, from_fragment=settings.get("roi_from"))
    profile = profiles.depth_profile(ds, fragments, roi=roi, normalize=normalize)
    results["profile"] = profile
    tested = _split(settings.get("uniformity")) or [f for f in ("BO-",) if f in fragments] or fragments[:1]
    results["uniformity"] = profiles.uniformity_test(profile, tested, surface_depth=settings.get("surface_depth_nm"))
    pair = settings.get("pair")
    if pair is None and {"BO-", "MnO-"} <= set(str(n) for n in ds["fragment"].values):
        pair = "BO-:MnO-"
    if pair:
        results["coloc"] = coloc.colocalization(ds, pair, bin=int(settings.get("coloc_bin", 4)), seed=seed)
    results["projections"] = volume.projections(ds, tested[0])
    compared = _split(settings.get("compare")) or fragments
    results["integrated"] = compare.integrated_intensities(ds, compared, normalize=normalize, roi=roi)
    return results


# ----------------------------------------------------------------------------- figures
def _scale_bar(ax, ds, image_width_px: int):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x = np.asarray(ds["x"].values, float)
    if x.size < 2 or ds["x"].attrs.get("units") != "um":
        return
    width_um = (x[-1] - x[0]) + (x[1] - x[0])
    target = width_um / 4
    nice = 10 ** np.floor(np.log10(target))
    length = max(m * nice for m in (1, 2, 5) if m * nice <= target)
    ax.add_artist(AnchoredSizeBar(ax.transData, length / width_um * image_width_px, f"{length:g} µm", "lower right",
                                  pad=0.3, color="white", frameon=False, size_vertical=image_width_px / 80))


def maps_figure(result, title: str = ""):
    """One panel per fragment (normalised intensity when present), each with a scale bar."""
    import matplotlib.pyplot as plt

    fragments = [str(f) for f in result["fragment"].values]
    values = result["intensity"] if "intensity" in result else result["counts"]
    n = len(fragments)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.9 * rows), layout="constrained", squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), fragments):
        image = np.asarray(values.sel(fragment=name).values, float)
        im = ax.imshow(image, cmap="magma", origin="upper", interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, result, image.shape[1])
        label = "counts / " + result.attrs.get("normalization", "") if "intensity" in result else "counts"
        fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    if title:
        fig.suptitle(title)
    return fig


def profile_figure(profile, uniformity=None, title: str = ""):
    """Normalised intensity (or counts) per scan with Poisson error bars, versus depth or time."""
    from doptrace.report.figures import new_figure

    fig, ax = new_figure(6.4, 4.0)
    use_depth = "depth" in profile.coords and np.all(np.isfinite(profile["depth"].values))
    x = profile["depth"].values if use_depth else profile["sputter_time"].values
    key = "intensity" if "intensity" in profile else "counts"
    for name in profile["fragment"].values:
        y = profile[key].sel(fragment=name).values
        e = profile[f"{key}_stderr"].sel(fragment=name).values
        ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, lw=1, label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("depth (nm)" if use_depth else "sputter time (s)")
    ax.set_ylabel(f"counts / {profile.attrs.get('normalization')}" if key == "intensity" else "counts per scan")
    if uniformity is not None:
        low = float(uniformity.attrs.get("surface_excluded_below", np.nan))
        if np.isfinite(low):
            ax.axvspan(min(x), low, color="0.9", zorder=0, label="surface (excluded from test)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def coloc_figure(result, title: str = ""):
    """Scatter of binned pixel counts of the pair with Costes thresholds, r, p, M1, M2."""
    from doptrace.report.figures import new_figure

    fig, ax = new_figure(4.8, 4.2)
    a = result["image_a"].values.ravel()
    b = result["image_b"].values.ravel()
    ax.scatter(a, b, s=6, alpha=0.5, color="tab:blue", edgecolors="none")
    ax.axvline(float(result["threshold_a"]), color="0.5", ls="--", lw=1)
    ax.axhline(float(result["threshold_b"]), color="0.5", ls="--", lw=1)
    bin_px = result.attrs.get("binning", 1)
    ax.set_xlabel(f"{result.attrs['fragment_a']} counts ({bin_px}x{bin_px} px)")
    ax.set_ylabel(f"{result.attrs['fragment_b']} counts ({bin_px}x{bin_px} px)")
    ax.set_title(
        (title + "\n" if title else "")
        + f"r = {float(result['pearson_r']):.3f}, p = {float(result['p_value']):.3g} (spatial null, "
        f"N = {result.attrs['n_null']}); M1 = {float(result['manders_m1']):.2f}, M2 = {float(result['manders_m2']):.2f}",
        fontsize=9,
    )
    return fig


def projection_figure(result, title: str = ""):
    """Side views of one fragment's volume: counts summed over y (depth vs x) and over x (depth vs y)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0), layout="constrained", squeeze=False)
    use_depth = "depth" in result.coords and np.all(np.isfinite(result["depth"].values))
    z = result["depth"].values if use_depth else result["scan"].values
    for ax, key, lateral in zip(axes[0], ("proj_xz", "proj_yz"), ("x", "y")):
        image = np.asarray(result[key].values, float)
        pos = result[lateral].values
        dz = (z[1] - z[0]) if z.size > 1 else 1.0
        dp = (pos[1] - pos[0]) if pos.size > 1 else 1.0
        im = ax.imshow(image, aspect="auto", cmap="magma", interpolation="nearest", origin="upper",
                       extent=(pos[0] - dp / 2, pos[-1] + dp / 2, z[-1] + dz / 2, z[0] - dz / 2))
        ax.set_xlabel(f"{lateral} ({result[lateral].attrs.get('units', '')})")
        ax.set_ylabel("depth (nm)" if use_depth else "scan")
        ax.set_title(f"{result.attrs.get('fragment')} summed over {'y' if lateral == 'x' else 'x'}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="counts")
    if title:
        fig.suptitle(title)
    return fig


def compare_figure(result):
    """Normalised intensities per fragment and sample, with Poisson (thick) and bootstrap (thin) intervals."""
    from doptrace.report.figures import new_figure

    fig, ax = new_figure(6.4, 3.8)
    fragments = [str(f) for f in result["fragment"].values]
    samples = [str(s) for s in result["sample"].values]
    width = 0.8 / len(samples)
    positions = np.arange(len(fragments))
    for k, sample in enumerate(samples):
        sel = result.sel(sample=sample)
        xk = positions + (k - (len(samples) - 1) / 2) * width
        values = sel["intensity"].values
        ax.bar(xk, values, width * 0.9, label=sample, alpha=0.8)
        ax.errorbar(xk, values, yerr=[values - sel["boot_low"].values, sel["boot_high"].values - values],
                    fmt="none", ecolor="k", capsize=4, lw=1)
        ax.errorbar(xk, values, yerr=[values - sel["poisson_low"].values, sel["poisson_high"].values - values],
                    fmt="none", ecolor="k", lw=3)
    ax.set_xticks(positions, fragments)
    ax.set_ylabel(f"counts / {result.attrs.get('normalization')}")
    ax.legend(fontsize=8)
    ax.set_title(f"{int(100 * result.attrs['confidence'])} % intervals: Poisson (thick), tile bootstrap (thin)",
                 fontsize=9)
    return fig


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
    from doptrace.tofsims.compare import compare_samples

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
            blocks.append(Plot(maps_figure, (res["maps"], sample),
                                 f"{sample}: fragment maps summed over scans {res['maps'].attrs['scan_first']}-"
                                 f"{res['maps'].attrs['scan_last']} ({Path(str(res['maps'].attrs['source'])).name})"))
        if "profile" in res:
            blocks.append(Plot(profile_figure, (res["profile"], res.get("uniformity"), sample),
                                 f"{sample}: depth profiles with Poisson error bars"))
        if "projections" in res:
            blocks.append(Plot(projection_figure, (res["projections"], sample),
                                 f"{sample}: side projections of the {res['projections'].attrs.get('fragment')} volume"))
        if "uniformity" in res:
            uniform_rows += _uniformity_rows(sample, res["uniformity"])
        if "coloc" in res:
            c = res["coloc"]
            blocks.append(Plot(coloc_figure, (c, sample), f"{sample}: colocalization of {c.attrs['fragment_a']} "
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
            ia, ib = reference.results["integrated"], other.results["integrated"]
            common = [f for f in ia["fragment"].values if f in list(ib["fragment"].values)]
            if not common or ia.attrs.get("normalization") != ib.attrs.get("normalization"):
                continue
            cmp = compare_samples(ia.sel(fragment=common), ib.sel(fragment=common))
            blocks.append(Figure(compare_figure(cmp), f"Comparison {other.sample} vs {reference.sample}"))
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


# ----------------------------------------------------------------------------- CLI
def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(NAME, help="ToF-SIMS: info, calibrate, maps, depth, coloc, compare")
    sub = parser.add_subparsers(dest="tofsims_command", required=True)

    p = sub.add_parser("info", help="summarise a ToF-SIMS file")
    p.add_argument("file")
    p.set_defaults(handler=_info)

    p = sub.add_parser("calibrate", help="fit t = k0 + sf sqrt(m) on calibrant peaks of a spectrum")
    p.add_argument("spectrum")
    p.add_argument("--peaks", help="calibrant names, e.g. H-,C-,CH-,O-,OH-,C2- (default: by polarity)")
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
        p.add_argument("--scans", help="scan range first:last (inclusive)")
        if roi:  # maps and coloc work on whole images; an ROI there would be silently ignored
            p.add_argument("--roi", help="region x0,x1,y0,y1 in um")
            p.add_argument("--roi-from", help="region where this fragment's map is high, Otsu threshold")

    p = sub.add_parser("maps", help="fragment maps summed over scans")
    p.add_argument("file")
    common(p, roi=False)
    p.add_argument("--normalize", help="total, fragments or a reference fragment")
    p.add_argument("--bin", type=int, default=1)
    p.add_argument("--ratio", help="also a ratio map A:B, e.g. BO-:MnO-")
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.set_defaults(handler=_maps)

    p = sub.add_parser("depth", help="depth profiles and the uniformity test")
    p.add_argument("file")
    common(p)
    p.add_argument("--normalize", default="total", help="total (default), fragments, a fragment, or none")
    p.add_argument("--crater-depth", help="crater depth, e.g. 500nm")
    p.add_argument("--rates", help="per-layer sputter rates instead: nm/s:until_s,...,last nm/s, e.g. 1.0:30,0.5")
    p.add_argument("--surface-depth", type=float, help="nm excluded from the uniformity test")
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.set_defaults(handler=_depth)

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


def _scans(text):
    from doptrace.tofsims.errors import ToFSIMSError

    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[:-]\s*(\d+)\s*", text)
    if not match:
        raise ToFSIMSError(f"--scans {text!r}: expected first:last, e.g. 0:23")
    return int(match.group(1)), int(match.group(2))


def _load_args(args, path, crater=None, rates=None):
    import sys

    # Bars only on a terminal: a captured stderr keeps its one-line error messages.
    progress = not args.quiet and sys.stderr.isatty()
    return load(path, dead_time=args.dead_time, drift_correct=args.drift_correct, crater_depth_nm=crater,
                progress=progress,
                layer_rates=rates)


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
        import matplotlib.pyplot as plt

        save_figure(fig, plot, dpi=110)
        plt.close(fig)
    write_netcdf(ds, out)
    print(f"wrote {out}" + (f" and {plot}" if plot else ""))


def _info(args) -> int:
    from doptrace import tofsims

    ds = tofsims.read(args.file)
    print(f"file: {args.file}")
    for key in ("format", "sample", "polarity", "primary_ion", "field_of_view_um", "shots_per_pixel",
                "sputter_time_total", "dead_time_corrected", "sf", "k0", "channel_width_ns", "binning"):
        if key in ds.attrs:
            print(f"{key}: {ds.attrs[key]}")
    print("dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    if "fragment" in ds.coords:
        sums = None
        if "counts" in ds and "fragment" in ds["counts"].dims:
            sums = ds["counts"].sum([d for d in ds["counts"].dims if d != "fragment"]).compute()  # one pass
        for name in ds["fragment"].values:
            line = f"  {name}"
            if "fragment_mass" in ds.coords:
                sel = ds.sel(fragment=name)
                line += f"  {float(sel['fragment_mass']):.4f} u"
                if "mass_low" in ds.coords:
                    line += f"  [{float(sel['mass_low']):.4f}, {float(sel['mass_high']):.4f}]"
            if sums is not None:
                line += f"  {int(sums.sel(fragment=name))} counts"
            print(line)
    if "intensity" in ds:
        print(f"total intensity: {float(ds['intensity'].sum()):.6g}")
    return 0


def _calibrate(args) -> int:
    from doptrace import tofsims
    from doptrace.tofsims import calibration
    from doptrace.tofsims.formats import detect

    if detect(args.spectrum) == "ita":
        from doptrace.tofsims.formats.ita import read_spectrum

        spectrum = read_spectrum(args.spectrum)
    else:
        spectrum = tofsims.read(args.spectrum)
    peaks = _split(args.peaks)
    result = calibration.calibrate(spectrum, peaks)
    _write(result, args.out)
    width = result.attrs.get("channel_width_ns")
    print(f"sf = {float(result['sf']):.6g} ± {float(result['sf_stderr']):.2g} channel/u^0.5, "
          f"k0 = {float(result['k0']):.6g} ± {float(result['k0_stderr']):.2g} channel, "
          f"binning {result.attrs.get('binning')}" + (f", channel width {width:g} ns" if np.isfinite(width or np.nan) else ""))
    for name in result["calibrant"].values:
        r = result.sel(calibrant=name)
        print(f"  {name:8s} {float(r['mass']):10.5f} u  residual {float(r['residual_channel']):+8.2f} channel "
              f"{float(r['residual_mass']):+.5f} u {float(r['residual_ppm']):+8.1f} ppm"
              f"{'' if int(r['used']) else '  (not used)'}")
    attrs = result.attrs
    print(f"rms residual {attrs['rms_residual_ppm']:.1f} ppm over {attrs['n_used']} calibrants; calibration esd "
          f"{attrs['mass_esd_27u']:.2g} u at 27 u, {attrs['mass_esd_200u']:.2g} u at 200 u; quality {attrs['quality']}")
    for reason in attrs.get("quality_reasons", []):
        print(f"  - {reason}")
    return 0


def _maps(args) -> int:
    from doptrace.tofsims import maps

    ds = _load_args(args, args.file)
    fragments = _split(args.fragments)
    result = maps.fragment_maps(ds, fragments, scans=_scans(args.scans), normalize=_normalization(args.normalize),
                                bin=args.bin)
    if args.ratio:
        a, _, b = args.ratio.partition(":")
        ratio = maps.ratio_map(ds, a.strip(), b.strip(), scans=_scans(args.scans), bin=args.bin)
        result["ratio"] = ratio["ratio"]
        result["ratio_stderr"] = ratio["ratio_stderr"]
        result.attrs["ratio"] = f"{a.strip()}/{b.strip()}"
    fig = maps_figure(result, Path(args.file).name) if args.plot else None
    _write(result, args.out, fig, args.plot)
    return 0


def _depth(args) -> int:
    from doptrace.tofsims import profiles

    crater = parse_length_nm(args.crater_depth) if args.crater_depth else None
    fragments = _split(args.fragments)
    profile = _profile_export(args.file, fragments, args.normalize, crater, args.rates)
    if profile is None:
        ds = _load_args(args, args.file, crater, args.rates)
        if _scans(args.scans):
            from doptrace.tofsims.maps import scan_selection

            ds = scan_selection(ds, _scans(args.scans))
        roi = make_roi(ds, args.roi, args.roi_from)
        profile = profiles.depth_profile(ds, fragments, roi=roi, normalize=_normalization(args.normalize))
    test = profiles.uniformity_test(profile, surface_depth=args.surface_depth)
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
    fig = profile_figure(profile, test, Path(args.file).name) if args.plot else None
    _write(result, args.out, fig, args.plot)
    for name in test["fragment"].values:
        t = test.sel(fragment=name)
        print(f"{name}: relative change {100 * float(t['relative_change']):+.1f} ± "
              f"{100 * float(t['relative_change_stderr']):.1f} % over {test.attrs['axis']}, "
              f"p = {float(t['p_value']):.3g} -> {'uniform' if int(t['uniform']) else 'NOT uniform'}")
    return 0


def _coloc(args) -> int:
    from doptrace.tofsims import coloc

    ds = _load_args(args, args.file)
    result = coloc.colocalization(ds, args.pair, bin=args.bin, scans=_scans(args.scans), n_null=args.null,
                                  seed=args.seed)
    fig = coloc_figure(result, Path(args.file).name) if args.plot else None
    _write(result, args.out, fig, args.plot)
    print(f"{args.pair}: r = {float(result['pearson_r']):.3f}, p = {float(result['p_value']):.3g}, "
          f"M1 = {float(result['manders_m1']):.3f}, M2 = {float(result['manders_m2']):.3f}")
    return 0


def _compare(args) -> int:
    from doptrace.tofsims import compare

    fragments = _split(args.fragments)
    a = _load_args(args, args.file_a)
    b = _load_args(args, args.file_b)
    scans = _scans(args.scans)
    normalize = _normalization(args.normalize)
    result = compare.compare_samples(
        compare.integrated_intensities(a, fragments, normalize, scans, make_roi(a, args.roi, args.roi_from), args.tile),
        compare.integrated_intensities(b, fragments, normalize, scans, make_roi(b, args.roi, args.roi_from), args.tile),
        n_boot=args.boot, seed=args.seed,
    )
    fig = compare_figure(result) if args.plot else None
    _write(result, args.out, fig, args.plot)
    for name in result["fragment"].values:
        r = result.sel(fragment=name)
        print(f"{name}: ratio {result.attrs['ratio']} = {float(r['ratio']):.3f} "
              f"(95 % CI {float(r['ratio_boot_low']):.3f}-{float(r['ratio_boot_high']):.3f}, bootstrap)")
    return 0
