"""Forward simulator: a known 3D fragment distribution -> Poisson counts -> real instrument files.

The phantom is a cathode composite seen by ToF-SIMS in negative polarity: columnar oxide grains
(LiTMO2, MnO- rich) in a Li3InCl6 electrolyte matrix (InO-, ClO-), an In-O-rich degraded rim
around every grain, and boron either doped into the oxide lattice (BO- uniform with depth inside
the grains, optionally with a relative gradient) or only in a surface layer (BO- high in the
first scans, then background everywhere).

``truth = write_ita(path, ...)`` writes an ITA file and returns the ground truth: ``truth["counts"]``
is exactly what :func:`tofsims.read` must return, ``truth["expected"]`` the Poisson means.

Example
-------
>>> truth = write_ita("demo.ita", phantom(shape=(10, 32, 32), bulk_doped=True), seed=1)   # doctest: +SKIP
>>> bool((tofsims.read("demo.ita")["counts"] == truth["counts"]).all())                  # doctest: +SKIP
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage

from .formats import ascii as ascii_format
from .formats import events as events_format
from .formats import ita as ita_format
from .masses import fragment_mass, peak_windows

DEFAULT_FRAGMENTS = ("BO-", "MnO-", "InO-", "ClO-", "BO2-", "LiO-", "O-")
#: fragments that carry the dopant in :func:`phantom`, with their rate relative to the first
DOPANT_FRAGMENTS = {"BO-": 1.0, "BO2-": 0.3}
#: calibrant peaks always present in a spectrum, per polarity (mean counts per peak)
SPECTRUM_CALIBRANTS = {
    "negative": {"H-": 4e5, "C-": 2e5, "CH-": 1.5e5, "O-": 6e5, "OH-": 4e5, "C2-": 1e5, "C2H-": 8e4, "Cl-": 2e5},
    "positive": {"H+": 2e5, "C+": 1e5, "CH3+": 3e5, "Na+": 5e5, "Li+": 4e5, "Mn+": 2e5},
}
SF, K0, CHANNEL_WIDTH_NS = 32985.0, -368.0, 0.1

# mean counts per voxel and scan in oxide grains, electrolyte matrix, degraded rim
RATES = {
    "MnO-": (20.0, 0.4, 2.0),
    "LiO-": (8.0, 4.0, 5.0),
    "O-": (60.0, 20.0, 40.0),
    "InO-": (0.3, 6.0, 15.0),
    "ClO-": (0.3, 10.0, 6.0),
}
OTHER_IONS = (40.0, 30.0, 35.0)  # counts outside every fragment window (total - sum)


def grains(shape_yx, n_grains: int = 9, radius_fraction: float = 0.16, rim_px: float = 2.0, seed: int = 0):
    """Oxide-grain, electrolyte and rim masks ``(y, x)`` from random discs.

    Returns three boolean arrays: ``oxide`` (inside a disc), ``rim`` (electrolyte within ``rim_px``
    pixels of a grain) and ``electrolyte`` (the rest).
    """
    ny, nx = shape_yx
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    oxide = np.zeros((ny, nx), bool)
    radius = radius_fraction * min(ny, nx)
    centres = zip(rng.uniform(0, ny, n_grains), rng.uniform(0, nx, n_grains), rng.uniform(0.7, 1.3, n_grains) * radius)
    for cy, cx, r in centres:
        oxide |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    distance = ndimage.distance_transform_edt(~oxide)
    rim = (~oxide) & (distance <= rim_px)
    return oxide, rim, ~oxide & ~rim


def phantom(
    shape=(24, 64, 64),
    *,
    bulk_doped: bool = True,
    b_rate: float = 5.0,
    b_gradient: float = 0.0,
    surface_scans: int = 3,
    surface_b: float | None = None,
    fragments=DEFAULT_FRAGMENTS,
    dopant_fragments=None,
    field_of_view_um: float = 100.0,
    sputter_time_total: float = 1200.0,
    crater_depth_nm: float = 500.0,
    n_grains: int = 9,
    rim_px: float = 2.0,
    sample: str = "synthetic",
    shots_per_pixel: int = 1000,
    seed: int = 0,
) -> xr.Dataset:
    """Expected counts per voxel: ``expected`` (fragment, scan, y, x) and ``expected_total``.

    Parameters
    ----------
    shape : (n_scans, ny, nx)
    fragments : sequence of str
        Fragments written (their masses from :func:`doptrace.tofsims.masses.fragment_mass`).
    dopant_fragments : dict of str to float
        Fragments that carry the dopant (below: "BO-") and their rate relative to ``b_rate``
        (default :data:`DOPANT_FRAGMENTS`: BO- 1, BO2- 0.3, the boron demo; e.g. ``{"AlO-": 1.0}`` for an Al-doped oxide).
        Fragments neither here nor in :data:`RATES` get 0.5 counts per voxel everywhere.
    bulk_doped : bool
        True: BO- at ``b_rate`` inside the oxide grains at every depth (times
        ``1 + b_gradient * depth / crater_depth``). False: BO- only in a surface layer.
    shots_per_pixel : int
        Primary-ion shots per pixel and scan written to the file; it must exceed every voxel's
        count for the dead-time correction to apply (see :func:`poisson_counts` ``dead_time``).
    b_gradient : float
        Relative change of the bulk BO- rate from the first to the last scan (0.2 = +20 %).
    surface_scans, surface_b : int, float
        Scans of the B-rich surface layer and its BO- rate everywhere (default 15 when not
        ``bulk_doped``, else 0).
    sputter_time_total, crater_depth_nm : float
        Scan ``i`` sits at sputter time ``i * total / n_scans`` and at true depth
        ``crater_depth * i / n_scans`` (coordinate ``true_depth``).
    """
    n_scans, ny, nx = (int(v) for v in shape)
    dopant_fragments = DOPANT_FRAGMENTS if dopant_fragments is None else dict(dopant_fragments)
    oxide, rim, matrix = grains((ny, nx), n_grains=n_grains, rim_px=rim_px, seed=seed)
    phase = np.stack([oxide, matrix, rim]).astype(float)  # (phase, y, x)
    depth_fraction = np.arange(n_scans) / n_scans
    if surface_b is None:
        surface_b = 0.0 if bulk_doped else 15.0
    surface = np.where(np.arange(n_scans) < surface_scans, surface_b, 0.0)[:, None, None]
    if bulk_doped:
        b_bulk = (b_rate * (1 + b_gradient * np.arange(n_scans) / max(n_scans - 1, 1)))[:, None, None] * oxide
    else:
        b_bulk = np.zeros((n_scans, 1, 1)) + 0.0 * oxide
    b_bulk = b_bulk + 0.05  # detector/background counts everywhere
    maps = {}
    for name in fragments:
        if name in dopant_fragments:
            maps[name] = float(dopant_fragments[name]) * (b_bulk + surface)
        elif name in RATES:
            maps[name] = np.broadcast_to(np.tensordot(RATES[name], phase, axes=1), (n_scans, ny, nx))
        else:
            maps[name] = np.full((n_scans, ny, nx), 0.5)
    expected = np.stack([np.broadcast_to(maps[name], (n_scans, ny, nx)) for name in fragments]).astype(float)
    other = np.broadcast_to(np.tensordot(OTHER_IONS, phase, axes=1), (n_scans, ny, nx))
    windows = peak_windows(list(fragments))
    pixel = field_of_view_um / nx
    coords = dict(windows.coords)
    coords.update(
        {
            "scan": ("scan", np.arange(n_scans, dtype=np.int64), {"units": "1"}),
            "sputter_time": ("scan", np.arange(n_scans) * sputter_time_total / n_scans, {"units": "s"}),
            "depth": ("scan", np.full(n_scans, np.nan), {"units": "nm", "method": "none"}),
            "true_depth": ("scan", crater_depth_nm * depth_fraction, {"units": "nm"}),
            "y": ("y", (np.arange(ny) + 0.5) * pixel, {"units": "um"}),
            "x": ("x", (np.arange(nx) + 0.5) * pixel, {"units": "um"}),
        }
    )
    for name in ("background_low", "background_high"):
        coords.pop(name, None)
    return xr.Dataset(
        {
            "expected": (("fragment", "scan", "y", "x"), expected, {"units": "counts"}),
            "expected_total": (("scan", "y", "x"), expected.sum(axis=0) + other, {"units": "counts"}),
            "oxide": (("y", "x"), oxide, {"units": "1"}),
            "rim": (("y", "x"), rim, {"units": "1"}),
            "electrolyte": (("y", "x"), matrix, {"units": "1"}),
        },
        coords=coords,
        attrs={
            "technique": "ToF-SIMS",
            "source": "tofsims.simulate.phantom",
            "polarity": "negative",
            "field_of_view_um": float(field_of_view_um),
            "sf": SF,
            "k0": K0,
            "channel_width_ns": CHANNEL_WIDTH_NS,
            "shots_per_pixel": int(shots_per_pixel),
            "sputter_time_total": float(sputter_time_total),
            "crater_depth_nm": float(crater_depth_nm),
            "dead_time_corrected": 0,
            "primary_ion": "Bi3+",
            "sample": sample,
            "bulk_doped": int(bulk_doped),
            "b_gradient": float(b_gradient),
        },
    )


def poisson_counts(expected: xr.Dataset, seed: int = 0, dead_time: bool = False) -> xr.Dataset:
    """Draw ``counts`` (uint32) and ``total`` from the Poisson means of :func:`phantom`.

    ``total`` = sum of the fragments + Poisson(other ions), so it is never below the sum.

    With ``dead_time`` the detector sees at most one ion per mass window and shot: out of
    ``n = attrs["shots_per_pixel"]`` shots a voxel of true mean ``lambda`` records

        N ~ Binomial(n, 1 - exp(-lambda / n)),    E[N] = n (1 - exp(-lambda / n)) < lambda

    (the saturation the Poisson dead-time correction undoes); the file then says
    ``dead_time_corrected = 0``. Without it the counts are plain Poisson, the true counts a
    dead-time-corrected file holds, and the file says ``dead_time_corrected = 1``.
    """
    rng = np.random.default_rng(seed)
    other = expected["expected_total"].values - expected["expected"].values.sum(axis=0)
    if dead_time:
        n = int(expected.attrs.get("shots_per_pixel", 0))
        if n < 1:
            raise ValueError("dead_time needs attrs['shots_per_pixel'] >= 1")
        counts = rng.binomial(n, -np.expm1(-expected["expected"].values / n)).astype(np.uint32)
        rest = rng.binomial(n, -np.expm1(-np.clip(other, 0, None) / n)).astype(np.uint32)
    else:
        counts = rng.poisson(expected["expected"].values).astype(np.uint32)
        rest = rng.poisson(np.clip(other, 0, None)).astype(np.uint32)
    total = counts.sum(axis=0, dtype=np.uint32) + rest
    truth = expected.copy()
    truth["counts"] = (("fragment", "scan", "y", "x"), counts, {"units": "counts"})
    truth["total"] = (("scan", "y", "x"), total, {"units": "counts"})
    truth.attrs["seed"] = int(seed)
    truth.attrs["dead_time_corrected"] = 0 if dead_time else 1
    return truth


def demo_volume(sample: str, bulk_doped: bool, seed: int = 0, shape=(24, 48, 48)) -> xr.Dataset:
    """The demo samples' truth: "LBO-LRMO" (bulk_doped: BO- uniform in the MnO- grains) or
    "BM-LRMO" (surface-only: BO- high in the first scans, then ~0)."""
    return poisson_counts(phantom(shape, bulk_doped=bulk_doped, sample=sample, seed=seed), seed=seed)


def spectrum(truth: xr.Dataset, *, max_mass: float = 200.0, resolving_power: float = 4000.0, binning: int = 2,
             seed: int = 0) -> xr.Dataset:
    """A summed spectrum over channels with the fragments' and calibrants' peaks (Gaussian in t).

    t = k0 + sf * sqrt(m) (channels); a peak of FWHM ``t / (2 R)``. ``intensity`` holds Poisson
    counts summed over ``binning`` channels, the coordinate ``channel`` the bin centres.
    """
    sf, k0 = float(truth.attrs.get("sf", SF)), float(truth.attrs.get("k0", K0))
    polarity = str(truth.attrs.get("polarity", "negative"))
    peaks = dict(SPECTRUM_CALIBRANTS[polarity])
    if "counts" in truth:
        for name in truth["fragment"].values:
            peaks[str(name)] = peaks.get(str(name), 0.0) + float(truth["counts"].sel(fragment=name).sum())
    masses = [fragment_mass(name) for name in peaks]
    out = spectrum_from_peaks(masses, list(peaks.values()), sf=sf, k0=k0, resolving_power=resolving_power,
                              binning=binning, polarity=polarity, background=0.02, seed=seed, max_mass=max_mass)
    out.attrs["source"] = "tofsims.simulate.spectrum"
    return out


def spectrum_from_peaks(masses, areas, *, sf: float = SF, k0: float = K0, resolving_power: float = 4000.0,
                        binning: int = 2, polarity: str = "unknown", background: float = 0.02, seed: int = 0,
                        max_mass: float | None = None) -> xr.Dataset:
    """A spectrum (``intensity`` over ``channel``) with a Gaussian peak at each given mass.

    For calibration tests on real peak lists: e.g. the measured peak centres and summed counts of
    a SurfaceLab export, placed with a known (sf, k0); ``mz_file`` holds the true m/z of every
    bin centre (the check, never an input).
    """
    from scipy.special import erf

    masses, areas = np.asarray(masses, float), np.asarray(areas, float)
    top = float(max_mass if max_mass is not None else masses.max() * 1.02 + 1)
    n_bins = int((k0 + sf * np.sqrt(top)) // binning) + 1
    edges = np.arange(n_bins + 1, dtype=float) * binning
    mean = np.full(n_bins, background * binning)
    for m, area in zip(masses, areas):
        centre = k0 + sf * np.sqrt(m)
        sigma = centre / (2 * resolving_power) / 2.3548
        lo, hi = int(max(0, (centre - 8 * sigma) // binning)), int(min(n_bins, (centre + 8 * sigma) // binning + 2))
        if lo >= hi:
            continue
        cdf = 0.5 * (1 + erf((edges[lo : hi + 1] - centre) / (np.sqrt(2) * sigma)))
        mean[lo:hi] += area * np.diff(cdf)
    counts = np.random.default_rng(seed).poisson(mean).astype(np.float64)
    channel = edges[:-1] + binning / 2
    return xr.Dataset(
        {"intensity": (("channel",), counts, {"units": "counts"})},
        coords={"channel": ("channel", channel, {"units": "1"}),
                "mz_file": ("channel", ((channel - k0) / sf) ** 2, {"units": "u"})},
        attrs={"binning": binning, "dead_time_corrected": 0, "polarity": polarity, "sf": sf, "k0": k0,
               "technique": "ToF-SIMS", "source": "tofsims.simulate.spectrum_from_peaks"},
    )


#: the comment every simulated file carries (:mod:`doptrace.core.simulated`); event lists, which
#: have no header, cannot carry it
MARKER = "doptrace ToF-SIMS simulation"


def _marked(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """A shallow copy of ``ds`` whose ``comment`` attribute says the file is simulated."""
    marked = ds.copy()
    marked.attrs["comment"] = f"{MARKER} (seed {int(seed)}), not a measurement"
    return marked


def write_ita(path, truth: xr.Dataset | None = None, *, seed: int = 0, with_spectrum: bool = True,
              **phantom_kw) -> xr.Dataset:
    """Write an ITA file from ``truth`` (a :func:`phantom` or :func:`poisson_counts` Dataset).

    Without ``truth`` a :func:`phantom` is made from ``phantom_kw``. Expected-only input is sampled
    with :func:`poisson_counts` (``seed``). Returns the truth with exact ``counts`` and ``total``.
    """
    if truth is None:
        truth = phantom(seed=seed, **phantom_kw)
    if "counts" not in truth:
        truth = poisson_counts(truth, seed=seed)
    spec = None
    if with_spectrum:
        spec = spectrum(truth, seed=seed, binning=2)
    ita_format.write(path, _marked(truth, seed), spectrum=spec)
    truth = truth.copy()
    truth.attrs["source"] = str(Path(path))
    return truth


def write_itm(path, truth: xr.Dataset | None = None, *, seed: int = 0, with_spectrum: bool = True,
              **phantom_kw) -> xr.Dataset:
    """Write an ITM file: the same header, peak list and calibration as :func:`write_ita`, but
    every ion as raw data (``rawdata`` streams) instead of image stacks. Returns the truth."""
    if truth is None:
        truth = phantom(seed=seed, **phantom_kw)
    if "counts" not in truth:
        truth = poisson_counts(truth, seed=seed)
    spec = spectrum(truth, seed=seed, binning=2) if with_spectrum else None
    ita_format.write(path, _marked(truth, seed), spectrum=spec, images=False, raw_seed=seed)
    truth = truth.copy()
    truth.attrs["source"] = str(Path(path))
    return truth


def write_ascii_exports(folder, truth: xr.Dataset, *, stem: str = "sim", spectrum_binning: int = 200,
                        seed: int = 0) -> dict:
    """Write the IONTOF-style ASCII exports of ``truth`` into ``folder``.

    Files: ``<stem>_spectrum.txt`` (``Channel m/z Intensity``), ``<stem>_profile.txt`` (sputter
    time + summed counts per fragment) and one ``<stem> - <fragment>.txt`` image/3D export per
    fragment (x y scan counts). Returns ``{"spectrum": Path, "profile": Path, "images": {fragment: Path}}``.
    """
    folder = Path(folder)
    out = {"spectrum": folder / f"{stem}_spectrum.txt", "profile": folder / f"{stem}_profile.txt", "images": {}}
    marked = _marked(truth, seed)
    ascii_format.write_spectrum(out["spectrum"], _marked(spectrum(truth, binning=spectrum_binning, seed=seed), seed))
    ascii_format.write_depth_profile(out["profile"], marked)
    for name in truth["fragment"].values:
        path = folder / f"{stem} - {name}.txt"
        ascii_format.write_image(path, truth["counts"].sel(fragment=name), fragment=str(name),
                                 comment=marked.attrs["comment"])
        out["images"][str(name)] = path
    return out


def write_events(path, truth: xr.Dataset, *, seed: int = 0, chunk_scans: int = 8) -> xr.Dataset:
    """Write ``truth["counts"]`` as a raw event list: one record per counted ion.

    Each ion gets a time-of-flight channel drawn uniformly inside its fragment's mass window
    (t = k0 + sf * sqrt(m)); the counts outside every window (``total - sum``) get channels in
    gaps between windows. Records are sorted by scan. Returns ``truth`` (with the windows in
    channels as attrs-free coords ``tof_low``/``tof_high``).
    """
    return events_format.write(path, truth, seed=seed, chunk_scans=chunk_scans)
