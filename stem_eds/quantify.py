"""Quantification: Cliff-Lorimer with named k-factors, zeta factors with dose, thin-film absorption.

Cliff-Lorimer (weight fractions)   c_i = k_i I_i / sum_j k_j I_j
Atomic fractions                   x_i = (k_i I_i / A_i) / sum_j (k_j I_j / A_j)      (A: atomic weight)
Zeta factor (Watanabe & Williams)  c_i = z_i I_i / sum_j z_j I_j,   rho t = sum_j z_j I_j / D_e
Thin-film absorption               I_i -> I_i / A_i,   A_i = (1 - exp(-chi_i rho t)) / (chi_i rho t),
                                   chi_i = (mu/rho)_mix(E_i) / sin(take-off angle)

Every fraction is a ratio u_i / U of linear terms, so its Poisson variance follows exactly to
first order: var x_i = [var u_i (U - u_i)^2 + u_i^2 sum_{j != i} var u_j] / U^4.
K-factors are matched to lines by name, never by position.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from doptrace.core.quality import add_quality
from doptrace.core.tomlfile import Problems, read_toml

from . import lines as xl
from .errors import EDSError
from .quality import quant_quality

ELEMENTARY_CHARGE = 1.602176634e-19


def load_factors(path) -> dict:
    """Read a k-factor TOML file: ``source = "..."``, ``[kfactors]`` {line: k}, optional
    ``[kfactors_stderr]``, ``[zetafactors]`` (kg electrons / (m^2 photons)) and ``[zetafactors_stderr]``.

    Every problem of the file is reported at once, each with its line (:class:`EDSError`).

    Examples
    --------
    >>> from importlib.resources import files
    >>> factors = load_factors(files("doptrace.examples") / "eds" / "fept_exspy.toml")
    >>> factors["kfactors"]["Fe_Ka"]
    1.450226
    """
    path = Path(path)
    if not path.is_file():
        raise EDSError(f"{path}: no such k-factor file")
    doc = read_toml(path, EDSError, "k-factor file")
    data, problems = doc.data, Problems(doc)
    if "kfactors" not in data and "zetafactors" not in data:
        raise EDSError(f"{path}: no [kfactors] (or [zetafactors]) table")
    out = {"source": str(data.get("source", "")), "path": str(path)}
    for table in ("kfactors", "kfactors_stderr", "zetafactors", "zetafactors_stderr"):
        values = data.get(table, {})
        if not isinstance(values, dict):
            problems.add((table,), f"[{table}] must be a table of line = value")
            values = {}
        checked = {}
        for name, value in values.items():
            try:
                xl.line(name, str(path))  # the name must be a real X-ray line
            except EDSError as exc:
                problems.add((table, name), str(exc).removeprefix(f"{path}: "))
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                problems.add((table, name), f"{table}.{name} is not a finite number")
            elif value <= 0 and not table.endswith("stderr"):
                problems.add((table, name), f"{table}.{name} = {value} must be positive")
            else:
                checked[name] = float(value)
        out[table] = checked
    problems.raise_if_any(EDSError)
    if not out["kfactors"] and not out["zetafactors"]:
        raise EDSError(f"{path}: the factor tables are empty")
    return out


def lines_for(elements, factors: dict, max_energy: float, source: str = "", table: str = "kfactors") -> list:
    """The line of each element that ``factors[table]`` names, checked to lie on the energy axis.

    ``EDSError`` when an element has no factor, or its factor is for a line the spectrum does not hold.
    """
    items = [e.strip() for e in (elements.split(",") if isinstance(elements, str) else elements) if e.strip()]
    chosen = []
    for item in items:
        if "_" in item:
            candidates = [item] if item in factors[table] else []
            element = item.split("_")[0]
        else:
            xl.element_lines(item, source)
            element = item
            candidates = [name for name in factors[table] if name.split("_")[0] == item]
        if not candidates:
            raise EDSError(f"{factors['path']}: no {table[:-1]} for {item} (file has {', '.join(factors[table]) or 'none'})")
        on_axis = [xl.line(n) for n in candidates if xl.MIN_ENERGY_KEV < xl.line(n).energy < max_energy]
        if not on_axis:
            raise EDSError(
                f"{factors['path']}: {table[:-1]} for {', '.join(candidates)}, a line not present in "
                f"{source or 'the spectrum'} (energy axis ends at {max_energy:.2f} keV)"
            )
        preferred = [l for l in on_axis if l.name == f"{element}_{l.family}a"]
        chosen.append((preferred or on_axis)[0])
    return chosen


def _ratio_with_errors(u: np.ndarray, var_u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x_i = u_i / sum u and its first-order variance; element on axis 0."""
    total = u.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = u / total
        var_total = var_u.sum(axis=0)
        var_x = (var_u * (total - u) ** 2 + u**2 * (var_total - var_u)) / total**4
    return x, np.sqrt(np.maximum(var_x, 0.0))


def absorption_factors(weight_fraction: np.ndarray, elements, lines, mass_thickness_g_cm2: float,
                       take_off_deg: float) -> np.ndarray:
    """Thin-film absorption factors A_i in (0, 1] for a mean composition (weight fractions)."""
    from exspy.material import mass_absorption_mixture

    mu = np.asarray(
        mass_absorption_mixture(weight_percent=list(100.0 * np.asarray(weight_fraction)), elements=list(elements),
                                energies=[l.name for l in lines]), dtype=float)
    chi_rt = mu / math.sin(math.radians(take_off_deg)) * mass_thickness_g_cm2
    return np.where(chi_rt > 1e-12, -np.expm1(-chi_rt) / np.maximum(chi_rt, 1e-300), 1.0)


def _factor_array(ds: xr.Dataset, factors: dict, table: str) -> tuple[np.ndarray, np.ndarray]:
    source = ds.attrs.get("source", "intensities")
    values, errors = [], []
    for name in ds["line"].values:
        if name not in factors[table]:
            raise EDSError(f"{factors['path']}: no {table[:-1]} for {name} quantified in {source}")
        values.append(factors[table][name])
        errors.append(factors.get(f"{table}_stderr", {}).get(name, 0.0))
    return np.asarray(values), np.asarray(errors)


def quantify(ds: xr.Dataset, factors: dict, method: str = "cl", thickness_nm: float | None = None,
             density_g_cm3: float | None = None, dose: float | None = None, absorption: bool = False,
             iterations: int = 6) -> xr.Dataset:
    """Weight and atomic percent from line intensities (``element`` dim, any spatial dims).

    Parameters
    ----------
    ds : xarray.Dataset
        ``intensity`` and ``intensity_stderr`` with a ``line`` coord, from the intensity extractors.
    factors : dict
        From :func:`load_factors`; lines matched by name.
    method : {"cl", "zeta"}
        Cliff-Lorimer k-factors, or zeta factors (needs ``dose``, electrons per spectrum).
    thickness_nm, density_g_cm3 : float, optional
        With CL, apply the thin-film absorption correction (density defaults to the mixture's).
    dose : float, optional
        Electrons per spectrum (zeta method): beam current x live time / e.
    absorption : bool
        Zeta method: correct absorption with the mass thickness it measures (zeta factors must
        then be in kg electrons / (m^2 photons)).

    Returns
    -------
    xarray.Dataset
        ``atomic_percent``, ``weight_percent`` (+ ``_stderr``) over ``element`` and the spatial
        dims; ``mass_thickness`` (kg/m^2) with the zeta method; light lines flagged in ``qualitative``.

    References
    ----------
    G. Cliff and G. W. Lorimer, J. Microsc. 103 (1975) 203-207 (k-factors). M. Watanabe and D. B.
    Williams, J. Microsc. 221 (2006) 89-109 (zeta factors, absorption).

    Examples
    --------
    A simulated Li-rich oxide (Mn 19.3, Co 4.6, Ni 4.6, O 71.4 at% without Li) quantified with the
    k-factors of ``examples/eds/lrmo_simulated.toml``:

    >>> from importlib.resources import files
    >>> from doptrace import stem_eds
    >>> from doptrace.stem_eds.simulate import simulate_spectrum_image
    >>> sim = simulate_spectrum_image("lrmo.hspy", shape=(16, 16), seed=1)
    >>> da = stem_eds.read("lrmo.hspy")
    >>> intensities = stem_eds.line_intensities(da, stem_eds.parse_elements("Mn,Co,Ni,O", 20.0))
    >>> q = stem_eds.quantify(intensities, stem_eds.load_factors(files("doptrace.examples") / "eds" / "lrmo_simulated.toml"))
    >>> q["atomic_percent"].mean(("y", "x")).values.round(1).tolist()
    [19.3, 4.6, 4.7, 71.4]
    >>> sim.atomic_percent.mean(("y", "x")).values.round(1).tolist()
    [19.3, 4.6, 4.6, 71.4]
    """
    source = ds.attrs.get("source", "intensities")
    table = "kfactors" if method == "cl" else "zetafactors"
    if method not in ("cl", "zeta"):
        raise EDSError(f"{source}: unknown quantification method {method!r} (cl or zeta)")
    k, k_err = _factor_array(ds, factors, table)
    elements = [str(e) for e in ds["element"].values]
    lines = [xl.line(str(n)) for n in ds["line"].values]
    weights = np.array([xl.atomic_weight(e) for e in elements])
    intensity = np.asarray(ds["intensity"].values, dtype=float)
    var_i = np.asarray(ds["intensity_stderr"].values, dtype=float) ** 2
    if not np.all(np.isfinite(intensity)):
        raise EDSError(f"{source}: intensities hold NaN")
    if np.all(intensity.sum(axis=tuple(range(1, intensity.ndim))) <= 0):
        raise EDSError(f"{source}: every line intensity is zero (no counts to quantify)")
    shape = (-1,) + (1,) * (intensity.ndim - 1)
    kk, kerr = k.reshape(shape), k_err.reshape(shape)
    correction = np.ones(len(lines))
    mass_thickness = None
    toa = xl.take_off_angle(float(ds.attrs.get("tilt_alpha_deg", 0.0) or 0.0), float(ds.attrs.get("azimuth_deg", 0.0) or 0.0),
                            float(ds.attrs.get("elevation_deg", 22.0) or 22.0), float(ds.attrs.get("tilt_beta_deg", 0.0) or 0.0))
    if method == "zeta" and not (dose and dose > 0):
        raise EDSError(f"{source}: the zeta-factor method needs the electron dose (beam current x live time)")
    correcting = bool(thickness_nm) if method == "cl" else absorption
    for _ in range(iterations if correcting else 1):
        corr = correction.reshape(shape)
        u = kk * intensity / corr
        var_u = (kk / corr) ** 2 * var_i + (intensity / corr) ** 2 * kerr**2
        wf, wf_err = _ratio_with_errors(u, var_u)
        mean_wf = np.nansum(u.reshape(len(lines), -1), axis=1)
        mean_wf = np.clip(mean_wf / mean_wf.sum(), 1e-6, 1.0)
        if method == "zeta":
            mass_thickness = u.sum(axis=0) / dose  # kg/m^2
            rho_t = float(np.nanmean(mass_thickness)) * 0.1  # g/cm^2
            if not correcting:
                break
        elif thickness_nm:
            from exspy.material import density_of_mixture

            rho = density_g_cm3 or float(density_of_mixture(list(100 * mean_wf), elements))
            rho_t = rho * thickness_nm * 1e-7
        else:
            break
        correction = absorption_factors(mean_wf, elements, lines, rho_t, toa)
    a = (weights / 1.0).reshape(shape)
    xf, xf_err = _ratio_with_errors(u / a, var_u / a**2)
    spatial = [d for d in ds["intensity"].dims if d != "element"]
    dims = ["element"] + spatial
    out = xr.Dataset(
        {
            "atomic_percent": (dims, 100 * xf, {"units": "%", "long_name": "atomic percent"}),
            "atomic_percent_stderr": (dims, 100 * xf_err, {"units": "%"}),
            "weight_percent": (dims, 100 * wf, {"units": "%", "long_name": "weight percent"}),
            "weight_percent_stderr": (dims, 100 * wf_err, {"units": "%"}),
            "intensity": ds["intensity"],
            "intensity_stderr": ds["intensity_stderr"],
            "factor": ("element", k, {"units": "1" if method == "cl" else "kg m-2", "long_name": table}),
            "absorption_factor": ("element", correction, {"units": "1"}),
        },
        coords={c: ds.coords[c] for c in ds.coords},
    )
    fitted = "atomic_percent weight_percent intensity"
    if mass_thickness is not None:
        out["mass_thickness"] = (spatial, mass_thickness, {"units": "kg m-2"})
        out["mass_thickness_stderr"] = (spatial, np.sqrt(var_u.sum(axis=0)) / dose, {"units": "kg m-2"})
        fitted += " mass_thickness"
    out.attrs.update(ds.attrs)
    qualitative = [str(l) for l, q in zip(ds["line"].values, ds["qualitative"].values) if q]
    out.attrs.update(
        technique="stem_eds", fitted=fitted, quantification=method, factors_source=factors.get("source", ""),
        factors_file=factors.get("path", ""), take_off_angle_deg=toa,
        thickness_nm=float(thickness_nm) if thickness_nm else 0.0,
        qualitative_lines=" ".join(qualitative),
        note=("light-element lines (" + ", ".join(qualitative) + ") are mapped but qualitative") if qualitative else "",
    )
    # the intensities' record (copied with their attrs) plus the quantification's own rules
    return add_quality(out, *quant_quality(out))


def sum_region(ds: xr.Dataset, mask=None) -> xr.Dataset:
    """Intensities summed over a region: ``mask`` is a boolean (y, x) array (None: everything)."""
    spatial = [d for d in ds["intensity"].dims if d != "element"]
    intensity, variance = ds["intensity"], ds["intensity_stderr"] ** 2
    if mask is not None:
        mask = xr.DataArray(np.asarray(mask, dtype=bool), dims=spatial)
        intensity, variance = intensity.where(mask, 0.0), variance.where(mask, 0.0)
    out = xr.Dataset(
        {"intensity": intensity.sum(spatial), "intensity_stderr": np.sqrt(variance.sum(spatial))},
        coords={c: ds.coords[c] for c in ("element", "line", "line_energy", "qualitative") if c in ds.coords},
    )
    out["intensity"].attrs["units"] = "count"
    out["intensity_stderr"].attrs["units"] = "count"
    out.attrs.update(ds.attrs)
    return out


def electron_dose(beam_current_na: float, live_time_s: float) -> float:
    """Electrons delivered while the detector was live: D = I t / e."""
    if not (np.isfinite(beam_current_na) and np.isfinite(live_time_s)) or beam_current_na <= 0 or live_time_s <= 0:
        raise EDSError(f"dose: beam current {beam_current_na} nA and live time {live_time_s} s must be positive")
    return beam_current_na * 1e-9 * live_time_s / ELEMENTARY_CHARGE
