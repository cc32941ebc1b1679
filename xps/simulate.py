"""Forward simulator: real VAMAS etch-depth series with known components, for the demo and round-trip tests.

Each spectrum is ``sum_j A_j GL(x; E_j, F_j) + b0 + k * integral_{x_0}^{x} peaks`` (a Shirley-type
step that follows the peaks), in counts per second, converted to counts with the dwell time and
scan number and drawn from a Poisson distribution. A per-level charging shift moves every region
of that level (C 1s adventitious carbon then sits at 284.8 eV + shift), so charge correction can be
tested. :func:`simulate_series` writes the file through :func:`xps.formats.vamas.write` and
returns the ground truth.

Model chemistry (Li-rich layered cathode with boron, Li3InCl6 electrolyte):

- B 1s: B-O-B 192.0 eV (Li2B4O7) and TM-O-B 191.1 eV (boron in the oxide lattice);
  ``bulk_doped=True``: TM-O-B share rises 0.1 -> 0.5 over the first half of the etch levels, then
  stays flat; ``bulk_doped=False`` (coating only): it starts at 0.5 at the surface and falls to ~0,
  and the boron signal itself fades with depth.
- Al 2p (for projects about an Al dopant; the 2p3/2-2p1/2 split of 0.44 eV is not resolved at
  lab resolution, so one peak each): Al-O-Al 74.6 eV (an alumina coating) and TM-O-Al 73.7 eV
  (Al in the oxide lattice), with the TM-O-B depth behaviour of B 1s.
- In 3d: chloride 3d5/2 446.0 eV with 3d3/2 at +7.54 eV (area 2:3), and an In-O (In2O3) doublet
  at 444.5 eV whose share grows with depth from 0.1 to 0.3.
- O 1s: lattice oxygen 529.6 eV and surface/borate oxygen 531.8 eV.
- C 1s: adventitious C-C 284.8 eV and C-O 286.4 eV, fading with depth.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .backgrounds import cumulative_integral
from .errors import XPSError
from .lineshapes import shape_function

HV = 1486.6  # Al K-alpha, eV
IN3D_SPLIT = 7.54
DEMO_ETCH_TIMES = (0.0, 20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0)
WINDOWS = {"B 1s": (184.0, 199.0), "Al 2p": (68.0, 80.0), "In 3d": (438.0, 460.0), "O 1s": (524.0, 538.0), "C 1s": (279.0, 293.0)}


def spectrum(x, components, b0: float, k: float):
    """Noise-free spectrum (per second) of ``components`` = [(area, center, fwhm, shape), ...].

    ``y = sum_j A_j f_j(x) + b0 + k * integral_{x_0}^{x} sum_j A_j f_j dx'``
    """
    x = np.asarray(x, dtype=float)
    peaks = np.zeros_like(x)
    for area, center, fwhm, shape in components:
        peaks = peaks + area * shape_function(shape)(x, center, fwhm)
    return peaks + b0 + k * cumulative_integral(x, peaks)


def b1s_share(etch_time, bulk_doped: bool, flat_from: float = 150.0):
    """TM-O-B share of the B 1s area at each etch time (s)."""
    t = np.asarray(etch_time, dtype=float)
    if bulk_doped:
        return 0.1 + 0.4 * np.clip(t / flat_from, 0.0, 1.0)
    return 0.5 * np.exp(-t / 60.0) + 0.005


def level_components(region: str, etch_time: float, bulk_doped: bool, intensity: float = 1.0):
    """``(names, [(area, center, fwhm, shape)], b0, k)`` of one region at one etch time (no charging)."""
    t = float(etch_time)
    if region == "B 1s":
        share = float(b1s_share(t, bulk_doped))
        total = 6000.0 * intensity * (1.0 if bulk_doped else 0.25 + 0.75 * math.exp(-t / 120.0))
        comps = [((1 - share) * total, 192.0, 1.4, "GL(30)"), (share * total, 191.1, 1.4, "GL(30)")]
        return ["B-O-B", "TM-O-B"], comps, 300.0 * intensity, 0.06
    if region == "Al 2p":
        share = float(b1s_share(t, bulk_doped))
        total = 5000.0 * intensity * (1.0 if bulk_doped else 0.25 + 0.75 * math.exp(-t / 120.0))
        comps = [((1 - share) * total, 74.6, 1.5, "GL(30)"), (share * total, 73.7, 1.5, "GL(30)")]
        return ["Al-O-Al", "TM-O-Al"], comps, 250.0 * intensity, 0.05
    if region == "In 3d":
        oxide = 0.1 + 0.2 * min(t / 200.0, 1.0)
        total = 40000.0 * intensity
        chl, ox = (1 - oxide) * total * 0.6, oxide * total * 0.6
        comps = [(chl, 446.0, 1.3, "GL(30)"), (chl * 2 / 3, 446.0 + IN3D_SPLIT, 1.3, "GL(30)"),
                 (ox, 444.5, 1.5, "GL(30)"), (ox * 2 / 3, 444.5 + IN3D_SPLIT, 1.5, "GL(30)")]
        names = ["In3d5/2 chloride", "In3d3/2 chloride", "In3d5/2 oxide", "In3d3/2 oxide"]
        return names, comps, 2000.0 * intensity, 0.05
    if region == "O 1s":
        surface = 0.6 * math.exp(-t / 80.0) + 0.1
        total = 30000.0 * intensity
        comps = [((1 - surface) * total, 529.6, 1.2, "GL(30)"), (surface * total, 531.8, 1.6, "GL(30)")]
        return ["O lattice", "O surface"], comps, 1500.0 * intensity, 0.05
    if region == "C 1s":
        total = 15000.0 * intensity * (0.1 + 0.9 * math.exp(-t / 30.0))
        comps = [(0.8 * total, 284.8, 1.3, "GL(30)"), (0.2 * total, 286.4, 1.5, "GL(30)")]
        return ["C-C adventitious", "C-O"], comps, 800.0 * intensity, 0.04
    raise XPSError(f"simulate: unknown region {region!r} (known: {', '.join(WINDOWS)})")


def simulate_series(path: str | os.PathLike, etch_times=DEMO_ETCH_TIMES, bulk_doped: bool = True,
                    regions=("B 1s", "In 3d", "O 1s", "C 1s"), seed: int = 0, intensity: float = 1.0,
                    charge=None, step: float = 0.1, dwell_time: float = 0.2, scans: int = 5,
                    sample: str = "simulated") -> dict:
    """Write a VAMAS etch series (one block per region and level) and return the ground truth.

    Parameters
    ----------
    path : path-like
        Output ``.vms`` file (written atomically).
    etch_times : sequence of float
        Ar-ion etch time of every level (s).
    bulk_doped : bool
        Boron doped into the bulk lattice (True) or only at the surface (False).
    charge : sequence of float, optional
        Charging shift (eV) of every level, added to every binding energy; default 0.
    seed : int
        Seed of the Poisson noise.

    Returns
    -------
    dict
        ``{"etch_time": (L,), "charge": (L,), "counts_per_unit": float, "regions": {region:
        {"components": [names], "area": (L, C), "center": (L, C) (uncharged), "fwhm": (L, C),
        "fraction": (L, C)}}}``; areas in counts/s x eV.

    Examples
    --------
    >>> truth = simulate_series("b1s.vms", regions=("B 1s",), seed=1)
    >>> truth["regions"]["B 1s"]["fraction"][:, 1].round(3).tolist()  # TM-O-B share per level
    [0.1, 0.153, 0.233, 0.367, 0.5, 0.5, 0.5, 0.5]
    """
    from .formats._spectrum import make_spectrum
    from .formats.vamas import write

    etch_times = np.asarray(etch_times, dtype=float)
    if etch_times.ndim != 1 or etch_times.size == 0 or not np.all(np.isfinite(etch_times)):
        raise XPSError(f"{path}: etch_times must be a non-empty list of finite numbers")
    charge = np.zeros_like(etch_times) if charge is None else np.asarray(charge, dtype=float)
    if charge.shape != etch_times.shape:
        raise XPSError(f"{path}: charge needs one value per etch level")
    rng = np.random.default_rng(seed)
    cpu = dwell_time * scans
    truth = {"etch_time": etch_times, "charge": charge, "counts_per_unit": cpu, "regions": {}}
    blocks = []
    for level, t in enumerate(etch_times):
        for region in regions:
            names, comps, b0, k = level_components(region, t, bulk_doped, intensity)
            lo, hi = WINDOWS[region]
            x = np.round(np.arange(lo, hi + step / 2, step), 6)
            shifted = [(a, c + charge[level], f, s) for a, c, f, s in comps]
            counts = rng.poisson(np.clip(spectrum(x, shifted, b0, k), 0, None) * cpu).astype(float)
            blocks.append(make_spectrum(
                str(path), x, counts, abscissa="binding energy", excitation_energy=HV, region=region,
                sample=sample, block_index=len(blocks), pass_energy=20.0, dwell_time=dwell_time, scans=scans,
                etch_time=float(t), experimental_variables={"Etch Time": float(t)}))
            entry = truth["regions"].setdefault(region, {"components": names, "area": [], "center": [],
                                                         "fwhm": [], "fraction": []})
            areas = np.array([c[0] for c in comps])
            entry["area"].append(areas)
            entry["center"].append([c[1] for c in comps])
            entry["fwhm"].append([c[2] for c in comps])
            entry["fraction"].append(areas / areas.sum())
    for entry in truth["regions"].values():
        for key in ("area", "center", "fwhm", "fraction"):
            entry[key] = np.asarray(entry[key], dtype=float)
    write(Path(path), blocks, sample=sample, instrument="doptrace simulator (Kratos Axis-like, Al Ka)")
    return truth


#: spin-orbit partners of an orbital: (major, minor) subshell suffixes
_SPLIT = {"p": ("3/2", "1/2"), "d": ("5/2", "3/2"), "f": ("7/2", "5/2")}
#: Fermi-edge model of the simulated valence band: DOS height and slope per eV, d band, background
VALENCE = {"height": 400.0, "slope": 40.0, "d_band": (3000.0, 4.5, 1.5), "background": 30.0, "fwhm": 0.45,
           "temperature": 300.0, "window": (-3.0, 9.0)}


def line_peaks(table, line: str):
    """``(region, [(share, binding_energy)], window)`` of an orbital line from a bundled table: one
    peak for an s level, the two spin-orbit lines (shares from their cross-sections, positions from
    the table's binding energies) for p, d, f."""
    from .rsf import line_key

    key = line_key(line)
    el, orb = key.split()
    region = f"{el.capitalize()} {orb}"
    if orb[-1] in _SPLIT and "/" not in orb:
        parts = [f"{key}{j}" for j in _SPLIT[orb[-1]]]
        if all(p in table.values for p in parts):
            total = sum(table.values[p] for p in parts)
            peaks = [(table.values[p] / total, table.energies[p]) for p in parts]
        else:
            peaks = [(1.0, table.energies[key])]
    else:
        peaks = [(1.0, table.energies[key])]
    energies = [e for _, e in peaks]
    return region, peaks, (min(energies) - 8.0, max(energies) + 8.0)


def valence_spectrum(x, shift: float = 0.0, intensity: float = 1.0):
    """Noise-free valence band (per second): Fermi edge at ``shift`` eV (:data:`VALENCE`)."""
    from .charge import K_B, fermi_dirac_edge

    v = VALENCE
    a, c, w = v["d_band"]
    y = fermi_dirac_edge(x, shift, v["fwhm"], v["height"] * intensity, v["slope"] * intensity, 0.0,
                         K_B * v["temperature"])
    d_band = a * intensity * shape_function("GL(30)")(np.asarray(x, float), c + shift, w)
    return y + d_band + v["background"] * intensity


def simulate_composition(path: str | os.PathLike, composition: dict, etch_times=(0.0, 100.0, 200.0),
                         table: str = "scofield", imfp=None, transmission_exponent: float | None = None,
                         scale: float = 20000.0, charge=None, valence: bool = False, seed: int = 0,
                         step: float = 0.1, dwell_time: float = 0.2, scans: int = 5, fwhm: float = 1.3,
                         sample: str = "simulated") -> dict:
    """Write a VAMAS series with one region per line whose areas follow a known composition.

    Forward model (the inverse of :func:`doptrace.xps.quantify`): the area of line ``i`` at a level
    is ``scale * X_i * RSF_i * T(KE_i) * IMFP(KE_i)`` (counts/s x eV), split over its spin-orbit
    lines by their cross-sections, each a GL(30) line of ``fwhm`` on a Shirley-type step and a flat
    background of ``0.1 * area + 0.002 * scale`` per eV, with Poisson noise. ``KE_i = hv - BE`` of the line's major component (Al Ka).

    Parameters
    ----------
    composition : dict
        ``{line: fraction or (L,) fractions}`` (``{"O 1s": 0.6, "Mn 2p": [0.2, 0.3, 0.4], ...}``);
        the fractions of a level are normalised to 1.
    table : str
        Bundled table (``scofield``, ``kratos``) or a user TOML, for the RSFs (and, for bundled ones,
        the binding energies).
    imfp : IMFP model, optional
        Default: ``KE^0.6`` when the table needs one, none otherwise (as quantification does).
    transmission_exponent : float, optional
        Write a transmission ``T = (KE / 1000 eV)^t`` with every block (e.g. -0.5); none by default.
    valence : bool
        Also write a ``Valence`` region with a Fermi edge at 0 eV + the level's charge
        (:func:`valence_spectrum`).

    Returns
    -------
    dict
        ``{"etch_time", "charge", "atomic_fraction": {line: (L,)}, "area": {line: (L,)},
        "kinetic_energy": {line}, "rsf": {line}, "transmission": {line: (L,)}, "imfp": {line}}``.
    """
    from .formats._spectrum import make_spectrum
    from .formats.vamas import write
    from .quantify import _imfp_model
    from .rsf import load_table

    etch_times = np.asarray(etch_times, dtype=float)
    n = etch_times.size
    charge = np.zeros(n) if charge is None else np.broadcast_to(np.asarray(charge, float), (n,))
    rsf = load_table(table, HV, str(path))
    bundled = load_table("scofield", HV, str(path))  # binding energies of the lines
    energies = rsf if rsf.energies else bundled
    model = _imfp_model(rsf, imfp, None, str(path))
    fractions = {line: np.broadcast_to(np.asarray(f, float), (n,)) for line, f in composition.items()}
    total = sum(fractions.values())
    fractions = {line: f / total for line, f in fractions.items()}
    rng = np.random.default_rng(seed)
    cpu = dwell_time * scans
    truth = {"etch_time": etch_times, "charge": np.asarray(charge, float), "atomic_fraction": fractions,
             "area": {}, "kinetic_energy": {}, "rsf": {}, "transmission": {}, "imfp": {}}
    blocks = []
    for level, t in enumerate(etch_times):
        regions = [(line, *line_peaks(energies, line)) for line in composition]
        if valence:
            regions.append(("Valence", "Valence", None, VALENCE["window"]))
        for line, region, peaks, (lo, hi) in regions:
            x = np.round(np.arange(lo, hi + step / 2, step), 6)
            t_curve = None
            if peaks is None:
                y = valence_spectrum(x, charge[level])
            else:
                ke = HV - peaks[0][1]
                factor = float(model.imfp(ke)) if not (hasattr(model, "exponent") and model.exponent == 0) else 1.0
                trans = 1.0 if transmission_exponent is None else (ke / 1000.0) ** transmission_exponent
                area = scale * fractions[line][level] * rsf.factor(line, str(path)) * trans * factor
                comps = [(area * share, be + charge[level], fwhm, "GL(30)") for share, be in peaks]
                y = spectrum(x, comps, 0.1 * area + 0.002 * scale, 0.03)  # flat level near each line's own
                for key, value in (("area", area), ("transmission", trans)):
                    truth[key].setdefault(line, np.zeros(n))[level] = value
                truth["kinetic_energy"][line], truth["rsf"][line], truth["imfp"][line] = (
                    ke, rsf.factor(line, str(path)), factor)
            if transmission_exponent is not None:
                t_curve = ((HV - x) / 1000.0) ** transmission_exponent
            counts = rng.poisson(np.clip(y, 0, None) * cpu).astype(float)
            blocks.append(make_spectrum(
                str(path), x, counts, abscissa="binding energy", excitation_energy=HV, region=region,
                sample=sample, block_index=len(blocks), pass_energy=20.0, dwell_time=dwell_time, scans=scans,
                etch_time=float(t), experimental_variables={"Etch Time": float(t)}, transmission=t_curve))
    write(Path(path), blocks, sample=sample, instrument="doptrace simulator (Al Ka, known composition)")
    return truth
