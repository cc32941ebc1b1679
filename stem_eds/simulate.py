"""Forward simulator: STEM-EDS spectrum images of a Li-rich layered oxide with known truth (``.hspy``).

Per pixel, counts per channel are

    lambda(E) = D t(y,x) [ sum_e n_e(y,x) sum_f s_{e,f} sum_l w_l G(E; E_l, FWHM(E_l))
                           + b Zbar (E0 - E) / E * eff(E) ] + Z0 G(E; 0, FWHM_0)

with ``n_e`` atoms per formula unit (the composition field), ``s_{e,f}`` the per-atom yield of a
family's 'a' line, ``w_l`` exSpy's line weights (Co Kb really lands on Ni Ka, Mn L next to O K),
FWHM from the Mn Ka resolution (Fiori), Kramers bremsstrahlung with a window-absorption
efficiency ``eff(E) = exp(-(0.15 keV / E)^3)``, a zero-energy noise peak, a thickness field
``t`` and Poisson noise. The Cliff-Lorimer k-factors that invert it exactly are known:
k_i = (A_i / s_i) / (A_Mn / s_Mn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.atomic import atomic_write

from . import lines as xl
from .errors import EDSError
from .model_fit import families, gaussian_channels

#: Li1.2Mn0.54Ni0.13Co0.13O2 (Li is invisible to EDS), atoms per formula unit.
LRMO = {"Li": 1.2, "Mn": 0.54, "Ni": 0.13, "Co": 0.13, "O": 2.0}
#: Per-atom yield of each family's 'a' line (counts per unit dose, arbitrary but fixed).
YIELD = {"Mn_K": 1.0, "Co_K": 0.93, "Ni_K": 0.86, "O_K": 0.50, "B_K": 0.06,
         "Mn_L": 0.22, "Co_L": 0.18, "Ni_L": 0.15, "Fe_K": 0.97,
         "Al_K": 0.70}
ZERO_PEAK_FWHM_KEV = 0.07
BREMS_PER_Z = 2e-6


def kfactors(elements=("Mn", "Co", "Ni", "O", "B")) -> dict[str, float]:
    """Cliff-Lorimer k-factors (weight basis, Mn Ka = 1) of the simulated K lines, by line name."""
    ref = xl.atomic_weight("Mn") / YIELD["Mn_K"]
    return {f"{e}_Ka": xl.atomic_weight(e) / YIELD[f"{e}_K"] / ref for e in elements}


def kfactor_toml(elements=("Mn", "Co", "Ni", "O", "B")) -> str:
    """TOML text of :func:`kfactors`, in the format :func:`stem_eds.quantify.load_factors` reads."""
    body = "\n".join(f"{name} = {value:.6f}" for name, value in kfactors(elements).items())
    return f'source = "doptrace stem_eds.simulate yields (exact for simulated files)"\n\n[kfactors]\n{body}\n'


def composition_field(shape, kind: str = "uniform", element: str = "Mn", amplitude: float = 0.3,
                      base=None, radius: float = 0.2, rim: float = 0.12) -> dict[str, np.ndarray]:
    """Atoms per formula unit over (y, x) for each element.

    kind: ``uniform``; ``inclusion`` (a disc of ``radius`` x width where ``element`` is
    ``1 + amplitude`` times richer); ``gradient`` (``element`` varies linearly along x by a total
    fraction ``amplitude``); ``rim`` (``element`` only in a band ``rim`` x width wide along the
    particle surface, with ``amplitude`` atoms per formula unit there).
    """
    base = dict(LRMO if base is None else base)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    field_ = {e: np.full(shape, float(v)) for e, v in base.items()}
    field_.setdefault(element, np.zeros(shape))
    if kind == "uniform":
        return field_
    if kind == "inclusion":
        inside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 <= (radius * nx) ** 2
        field_[element] = field_[element] * np.where(inside, 1.0 + amplitude, 1.0)
    elif kind == "gradient":
        field_[element] = field_[element] * (1.0 + amplitude * (xx / max(nx - 1, 1) - 0.5))
    elif kind == "rim":
        r = _radius(shape)
        field_[element] = np.where((r > 1.0 - rim / 0.45) & (r <= 1.0), amplitude, 0.0)
    else:
        raise EDSError(f"composition field: unknown kind {kind!r} (uniform, inclusion, gradient, rim)")
    return field_


def _radius(shape) -> np.ndarray:
    """Distance from the image centre in units of a particle radius of 0.45 x width."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    return np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2) / (0.45 * nx)


def thickness_field(shape, kind: str = "wedge") -> np.ndarray:
    """Relative mass thickness: ``wedge`` (0.7 to 1.3 along y), ``particle`` (a sphere, vacuum outside), ``flat``."""
    ny, nx = shape
    if kind == "flat":
        return np.ones(shape)
    if kind == "wedge":
        return np.repeat(np.linspace(0.7, 1.3, ny)[:, None], nx, axis=1)
    if kind == "particle":
        r = _radius(shape)
        return np.sqrt(np.clip(1.0 - r**2, 0.0, None))
    raise EDSError(f"thickness field: unknown kind {kind!r} (flat, wedge, particle)")


def energy_axis(n_channels: int = 1024, dispersion_kev: float = 0.01, offset_kev: float = -0.1) -> np.ndarray:
    """Channel centres in keV."""
    return offset_kev + dispersion_kev * np.arange(n_channels)


def expected_spectra(comp: dict[str, np.ndarray], thickness: np.ndarray, energy: np.ndarray, dose: float,
                     fwhm_mnka_ev: float = 130.0, beam_energy_kev: float = 200.0,
                     zero_peak: float = 200.0) -> np.ndarray:
    """Noise-free counts (y, x, energy) for a composition field: the formula of the module docstring."""
    scale = float(energy[1] - energy[0])
    edges = np.concatenate([energy - scale / 2, [energy[-1] + scale / 2]])
    visible = [e for e in comp if e != "Li"]
    shapes, amounts = [], []
    for fam in families(visible, xl.MIN_ENERGY_KEV * 0.5, energy[-1], beam_energy_kev):
        if fam.name not in YIELD:
            continue
        shapes.append(fam.shape(edges, fwhm_mnka_ev) * YIELD[fam.name])
        amounts.append(comp[fam.element])
    e = np.clip(energy, 1e-3, None)
    z_of = {"Li": 3, "B": 5, "O": 8, "Al": 13, "Mn": 25, "Fe": 26, "Co": 27, "Ni": 28}
    atoms = sum(comp[el] for el in comp)
    zbar = sum(comp[el] * z_of.get(el, 20) for el in comp) / np.where(atoms > 0, atoms, 1.0)
    brems = BREMS_PER_Z * (beam_energy_kev - e) / e * np.exp(-((0.15 / e) ** 3)) * (energy > 0.02)
    lines_part = np.tensordot(np.stack(amounts, axis=-1), np.stack(shapes), axes=(-1, 0))
    total = dose * thickness[..., None] * (lines_part + zbar[..., None] * brems * atoms[..., None] / 4.0)
    zero = gaussian_channels(edges, 0.0, ZERO_PEAK_FWHM_KEV)
    return total + zero_peak * zero


@dataclass
class Simulation:
    """A written file and its ground truth."""

    path: Path
    atomic_percent: xr.DataArray  # over (element, y, x), among the visible elements
    kfactors: dict = field(default_factory=dict)
    composition: dict = field(default_factory=dict)


def truth_atomic_percent(comp: dict[str, np.ndarray], elements) -> xr.DataArray:
    """At% among ``elements`` of a composition field (the truth quantification should return)."""
    stack = np.stack([comp.get(e, np.zeros_like(next(iter(comp.values())))) for e in elements])
    total = stack.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = 100.0 * stack / total
    return xr.DataArray(values, dims=("element", "y", "x"), coords={"element": list(elements)},
                        attrs={"units": "%"})


def simulate_spectrum_image(path, shape=(32, 32), kind: str = "uniform", element: str = "Mn",
                            amplitude: float = 0.3, thickness: str = "wedge", base=None, dose: float = 6000.0,
                            n_channels: int = 1024, dispersion_kev: float = 0.01, offset_kev: float = -0.1,
                            fwhm_mnka_ev: float = 130.0, beam_energy_kev: float = 200.0, pixel_nm: float = 2.0,
                            seed: int = 0, composition=None) -> Simulation:
    """Write a simulated Li-rich oxide spectrum image as ``.hspy`` (atomically) and return its truth.

    Parameters
    ----------
    path : path-like
        Destination ``.hspy`` file.
    shape : (int, int)
        (y, x) pixels.
    kind, element, amplitude : see :func:`composition_field`.
    thickness : see :func:`thickness_field`.
    dose : float
        Mn Ka counts per Mn atom per formula unit at unit thickness (sets the count level).
    seed : int
        Poisson noise seed.

    Examples
    --------
    >>> sim = simulate_spectrum_image("lrmo.hspy", shape=(16, 16), kind="inclusion", element="Mn", amplitude=0.3)
    >>> round(float(sim.atomic_percent.sel(element="Mn").mean()), 1)
    19.8
    """
    import exspy  # noqa: F401  (registers the EDS_TEM signal type)
    import hyperspy.api as hs

    path = Path(path)
    if path.suffix != ".hspy":
        raise EDSError(f"{path}: the simulator writes .hspy files")
    comp = composition or composition_field(shape, kind, element, amplitude, base)
    t = thickness_field(shape, thickness)
    energy = energy_axis(n_channels, dispersion_kev, offset_kev)
    lam = expected_spectra(comp, t, energy, dose, fwhm_mnka_ev, beam_energy_kev)
    counts = np.random.default_rng(seed).poisson(lam).astype(np.uint32)
    signal = hs.signals.Signal1D(counts)
    signal.set_signal_type("EDS_TEM")
    names = ["y", "x"]
    for axis, name in zip(signal.axes_manager.navigation_axes[::-1], names):
        axis.name, axis.units, axis.scale, axis.offset = name, "nm", pixel_nm, 0.0
    eaxis = signal.axes_manager.signal_axes[0]
    eaxis.name, eaxis.units, eaxis.scale, eaxis.offset = "Energy", "keV", dispersion_kev, offset_kev
    visible = sorted(e for e in comp if e != "Li" and np.any(comp[e] > 0))
    signal.metadata.set_item("Sample.elements", visible)
    signal.metadata.set_item("General.title", f"doptrace simulated LRMO ({kind} {element})")
    tem = "Acquisition_instrument.TEM."
    for key, value in {
        "beam_energy": beam_energy_kev, "beam_current": 0.5, "Detector.EDS.live_time": 0.05 * shape[0] * shape[1],
        "Detector.EDS.energy_resolution_MnKa": fwhm_mnka_ev, "Detector.EDS.elevation_angle": 18.0,
        "Detector.EDS.azimuth_angle": 45.0, "Stage.tilt_alpha": 0.0, "Stage.tilt_beta": 0.0,
    }.items():
        signal.metadata.set_item(tem + key, value)
    # hyperspy picks the format by the name's extension, so the temporary file keeps it
    atomic_write(path, lambda tmp: signal.save(str(tmp), overwrite=True), suffix=Path(path).suffix)
    quantified = [e for e in ("Mn", "Co", "Ni", "O", "B", "Al") if e in comp]
    return Simulation(path, truth_atomic_percent(comp, quantified), kfactors(quantified), comp)
