"""Build the one DataArray shape every XPS reader returns.

All readers hand their parsed numbers to :func:`make_spectrum`, so the attrs contract
(see ``xps.read``) is enforced in one place: binding energy ascending, counts per second
when dwell and scans are known, NaN-free values.
"""

from __future__ import annotations

import math
import re

import numpy as np
import xarray as xr

from ..errors import XPSError

#: VAMAS and CasaXPS write 1E37 for "value not available".
UNKNOWN = 1e37

_ETCH_LABEL = re.compile(r"etch|time", re.IGNORECASE)
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3,
               "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0}


def known(value) -> float:
    """``value`` as float, NaN when missing or the VAMAS 'not available' marker (>= 1E37)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(out) or abs(out) >= 0.99 * UNKNOWN:
        return math.nan
    return out


_ORBITAL = re.compile(r"^([A-Z][a-z]?)\s*(\d[spdf](?:\s*\d/2)?)$")


def canonical_region(name: str) -> str:
    """'Ni2p' -> 'Ni 2p', 'I3d' -> 'I 3d'; anything else ('wide', 'Survey') unchanged but trimmed."""
    name = " ".join(str(name).split())
    match = _ORBITAL.match(name)
    return f"{match.group(1)} {match.group(2).replace(' ', '')}" if match else name


def region_name(species: str, transition: str) -> str:
    """'B' + '1s' -> 'B 1s'; either part may be empty."""
    return canonical_region(" ".join(part for part in (species.strip(), transition.strip()) if part))


def time_in_seconds(value: float, units: str) -> float:
    """Convert an etch-time value with free-text units ('s', 'min', 'd' = dimensionless -> s)."""
    factor = _TIME_UNITS.get(units.strip().lower(), 1.0)
    return float(value) * factor


def etch_time_from_variables(variables: dict, units: dict) -> float:
    """Etch time (s) from the first experimental variable whose label mentions 'etch' or 'time'."""
    labels = sorted(variables, key=lambda label: "etch" not in label.lower())
    for label in labels:
        if _ETCH_LABEL.search(label):
            value = known(variables[label])
            if not math.isnan(value):
                return time_in_seconds(value, units.get(label, "s"))
    return math.nan


def make_spectrum(
    source: str,
    energy: np.ndarray,
    values: np.ndarray,
    *,
    abscissa: str = "binding energy",
    excitation_energy: float = math.nan,
    region: str = "",
    sample: str = "",
    block_index: int = 0,
    pass_energy: float = math.nan,
    dwell_time: float = math.nan,
    scans: int | float = math.nan,
    already_per_second: bool = False,
    etch_time: float = math.nan,
    experimental_variables: dict | None = None,
    comment: str = "",
    transmission: np.ndarray | None = None,
    extra_attrs: dict | None = None,
) -> xr.DataArray:
    """One spectrum as ``DataArray(dims=("binding_energy",))`` following the ``xps.read`` contract.

    Parameters
    ----------
    source : str
        File path, used in attrs and in error messages.
    energy, values : ndarray
        Abscissa (eV, binding or kinetic as ``abscissa`` says) and intensities (counts, or
        counts per second when ``already_per_second``).
    excitation_energy : float
        Photon energy hv (eV); needed to convert kinetic to binding energy: BE = hv - KE.

    Examples
    --------
    >>> da = make_spectrum("f.vms", np.array([3.0, 2.0]), np.array([10.0, 20.0]),
    ...                    dwell_time=0.1, scans=2, region="B 1s")
    >>> da.binding_energy.values.tolist(), da.values.tolist(), da.attrs["counts_per_unit"]
    ([2.0, 3.0], [100.0, 50.0], 0.2)
    """
    region = canonical_region(region)
    where = f"{source}: block {block_index}" + (f" ({region})" if region else "")
    energy = np.asarray(energy, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise XPSError(f"{where}: empty block (0 data points)")
    if energy.shape != values.shape:
        raise XPSError(f"{where}: {energy.size} energies but {values.size} intensities")
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise XPSError(f"{where}: {bad} NaN or infinite intensity value(s)")
    if not np.all(np.isfinite(energy)):
        raise XPSError(f"{where}: NaN or infinite energy value(s)")
    kinetic = abscissa.lower().startswith("kinetic")
    if kinetic:
        hv = known(excitation_energy)
        if math.isnan(hv):
            raise XPSError(f"{where}: kinetic-energy abscissa but no excitation energy to convert it")
        binding = hv - energy
    else:
        binding = energy
    if np.unique(binding).size != binding.size:
        raise XPSError(f"{where}: repeated energy values on the abscissa")
    dwell = known(dwell_time)
    n_scans = known(scans)
    transmission = None if transmission is None else np.asarray(transmission, dtype=float)
    order = np.argsort(binding, kind="stable")
    binding, values = binding[order], values[order]
    if transmission is not None:
        transmission = transmission[order]
    cpu = dwell * n_scans
    if not (cpu > 0 and math.isfinite(cpu)):
        cpu = math.nan
    if already_per_second:
        units = "counts/s"
        counts_per_unit = cpu if not math.isnan(cpu) else 1.0
    elif not math.isnan(cpu):
        values = values / cpu
        units = "counts/s"
        counts_per_unit = cpu
    else:
        units = "counts"
        counts_per_unit = 1.0
    attrs = {
        "units": units,
        "intensity_units": units,
        "long_name": f"{region} intensity" if region else "intensity",
        "region": region,
        "sample": sample,
        "source": str(source),
        "block_index": int(block_index),
        "excitation_energy": known(excitation_energy),
        "pass_energy": known(pass_energy),
        "dwell_time": dwell,
        "scans": int(n_scans) if not math.isnan(n_scans) else 0,
        "counts_per_unit": float(counts_per_unit),
        "etch_time": float(etch_time),
        "experimental_variables": dict(experimental_variables or {}),
        "comment": comment,
        "technique": "XPS",
        "abscissa": "kinetic energy" if kinetic else "binding energy",
    }
    if extra_attrs:
        attrs.update(extra_attrs)
    # xr.Variable objects, not (dims, data, attrs) tuples: xarray deep-copies tuples (5x slower).
    coords = {"binding_energy": xr.Variable(("binding_energy",), binding, {"units": "eV", "long_name": "binding energy"})}
    if transmission is not None:
        if transmission.shape != binding.shape or not np.all(np.isfinite(transmission)):
            raise XPSError(f"{where}: transmission values are missing or not finite")
        coords["transmission"] = xr.Variable(("binding_energy",), transmission, {"units": "1", "long_name": "transmission"})
    return xr.DataArray(values, dims=("binding_energy",), coords=coords, attrs=attrs, name="intensity")
