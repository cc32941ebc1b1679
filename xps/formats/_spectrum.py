"""Build the one DataArray shape every XPS reader returns.

All readers hand their parsed numbers to :func:`make_spectrum`, so the attrs contract
(see ``xps.read``) is enforced in one place: binding energy ascending, counts per second
when dwell and scans are known, finite values.

Contract details every XPS reader shares (issue 12; the cross-technique rule is written in
``/work/agents/NEGATIVE_COUNTS.md``):

* **Negative intensities are accepted, counted and noted.** Every XPS format is a transfer or
  export format that processing software writes (a CasaXPS 2.3 VAMAS file holds
  background-subtracted reference line shapes with points down to -38 counts/s under the label
  "counts"), so a negative value can be physical. ``attrs["negative_values"]`` holds how many
  points are negative and ``attrs["notes"]`` says so. Only raw acquisition formats (Bruker RAW,
  IONTOF ITA/ITM, raw EDS cubes) refuse negative counts.
* **NaN and inf are never data**, including values that only overflow after the per-second
  scaling (a VAMAS count of 1e308 divided by a dwell of 0.05 s): refused with the place named.
* **The abscissa is strictly monotonic in file order** (either direction) for every regular
  grid: a repeated or out-of-order energy in a table, an .xy or an Excel sheet is a corrupt or
  edited file and is refused with the point named. Only files that declare an irregular abscissa
  (VAMAS IRREGULAR scan mode, ``irregular=True``) may repeat or reorder energies: they are kept
  in file order among equal energies (stable sort) and noted; nothing is averaged away.
* **AES data** (VAMAS technique "AES ...", or technique "XPS" with a source energy of 0 on a
  kinetic-energy abscissa) stay on their measured axis: dims ``("kinetic_energy",)``,
  ``attrs["technique"] = "AES"`` and a note. XPS-only operations refuse such blocks through
  :func:`require_binding_energy`.
* ``attrs["notes"]`` is one string, sentences joined with "; " (empty when there is nothing to say).
"""

from __future__ import annotations

import math
import re

import numpy as np
import xarray as xr

from doptrace.core.units import time_s

from ..errors import XPSError

#: VAMAS and CasaXPS write 1E37 for "value not available".
UNKNOWN = 1e37
#: Highest photon energy accepted for the KE -> BE conversion (hard X-ray PES reaches ~15 keV).
MAX_PHOTON_ENERGY = 100_000.0

_ETCH_LABEL = re.compile(r"etch|time", re.IGNORECASE)


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


#: Labels that mean "not given": old CasaXPS 2.x writes the literal text None in every block.
_EMPTY_LABELS = {"", "none", "not specified", "unknown", "n/a", "-"}


def is_empty_label(text: str) -> bool:
    """True for a species/transition/identifier that says nothing ('', 'None', 'Not Specified')."""
    return " ".join(str(text).split()).lower() in _EMPTY_LABELS


def region_name(species: str, transition: str) -> str:
    """'B' + '1s' -> 'B 1s'; either part may be empty or the literal 'None' (then left out).

    Examples
    --------
    >>> region_name("B", "1s"), region_name("None", "None"), region_name("Survey", "")
    ('B 1s', '', 'Survey')
    """
    parts = (str(part).strip() for part in (species, transition))
    return canonical_region(" ".join(part for part in parts if not is_empty_label(part)))


def require_binding_energy(block, what: str) -> None:
    """Refuse a block that is not on a binding-energy axis (AES data) for an XPS-only operation.

    Raises
    ------
    XPSError
        "<file>: block <i> (<region>): <what> needs XPS data on a binding-energy axis; this block
        is AES ... on a kinetic-energy axis".
    """
    if "binding_energy" in block.dims:
        return
    attrs = block.attrs
    region = attrs.get("region", "")
    raise XPSError(
        f"{attrs.get('source', '<data>')}: block {attrs.get('block_index', '?')}"
        + (f" ({region})" if region else "")
        + f": {what} needs XPS data on a binding-energy axis; this block is "
        f"{attrs.get('technique', 'non-XPS')} data on a {' '.join(str(d) for d in block.dims).replace('_', ' ')} axis"
    )


def time_in_seconds(value: float, units: str) -> float:
    """Convert an etch-time value with free-text units ('s', 'min', 'd' = dimensionless -> s)."""
    factor = time_s(units, 1.0, any_case=True)
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
    technique: str = "XPS",
    notes: list[str] | None = None,
    irregular: bool = False,
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
    technique : {"XPS", "AES"}
        "AES" keeps the kinetic-energy abscissa: dims ``("kinetic_energy",)``, no conversion.
    notes : list of str
        Sentences for ``attrs["notes"]`` (the reader's observations); this function adds its own.
    irregular : bool
        The file declares an irregular abscissa (VAMAS IRREGULAR): repeated or unordered energies
        are kept (noted) instead of refused.

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
    notes = [str(n) for n in (notes or []) if str(n).strip()]
    kinetic = abscissa.lower().startswith("kinetic")
    aes = technique.upper().startswith("AES")
    if aes:
        if not kinetic:
            raise XPSError(f"{where}: AES data need a kinetic-energy abscissa")
        binding = energy  # stays kinetic energy; the dim is named for it below
    elif kinetic:
        hv = known(excitation_energy)
        if math.isnan(hv):
            raise XPSError(f"{where}: kinetic-energy abscissa but no excitation energy to convert it")
        if not 0 < hv <= MAX_PHOTON_ENERGY:
            raise XPSError(f"{where}: excitation energy {hv:g} eV is not a photon energy (0 .. {MAX_PHOTON_ENERGY:g} eV)")
        binding = hv - energy
    else:
        binding = energy
    steps = np.diff(binding)  # after the KE -> BE conversion, which must not merge points either
    if not irregular and energy.size > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
        rising = np.count_nonzero(steps > 0) >= np.count_nonzero(steps < 0)
        i = int(np.argmax(steps <= 0 if rising else steps >= 0))
        raise XPSError(f"{where}: energy not strictly monotonic at point {i + 2} ({energy[i]:g} then "
                       f"{energy[i + 1]:g} eV): repeated or out-of-order rows")
    # strictly monotonic grids (checked above unless irregular) hold no repeated values
    repeated = binding.size - np.unique(binding).size if irregular else 0
    if repeated:
        notes.append(f"{repeated} repeated abscissa value(s) kept in file order")
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
        with np.errstate(over="ignore"):
            values = values / cpu
        units = "counts/s"
        counts_per_unit = cpu
    else:
        units = "counts"
        counts_per_unit = 1.0
    with np.errstate(over="ignore"):
        finite = np.isfinite(values) & np.isfinite(values * counts_per_unit)
    if not np.all(finite):
        bad = int(np.argmax(~finite))
        raise XPSError(f"{where}: intensity at point {bad + 1} overflows to infinity when scaled "
                       f"between counts and counts per second (dwell x scans = {counts_per_unit:g})")
    negative = int(np.count_nonzero(values < 0))
    if negative:
        notes.append(f"{negative} negative intensities (min {float(values.min()):.4g} {units}): processed "
                     "(e.g. background-subtracted) data, not raw counts")
    if aes:
        notes.append("AES spectrum on its kinetic-energy axis; binding-energy fits and quantification refuse it")
    axis = "kinetic_energy" if aes else "binding_energy"
    attrs = _attrs(region, sample, source, block_index, excitation_energy, pass_energy, dwell, n_scans,
                   counts_per_unit, etch_time, experimental_variables, comment, aes, kinetic, negative, units,
                   extra_attrs, notes)
    # xr.Variable objects, not (dims, data, attrs) tuples: xarray deep-copies tuples (5x slower).
    coords = {axis: xr.Variable((axis,), binding, {"units": "eV", "long_name": axis.replace("_", " ")})}
    if transmission is not None:
        if transmission.shape != binding.shape or not np.all(np.isfinite(transmission)):
            raise XPSError(f"{where}: transmission values are missing or not finite")
        coords["transmission"] = xr.Variable((axis,), transmission, {"units": "1", "long_name": "transmission"})
    return xr.DataArray(values, dims=(axis,), coords=coords, attrs=attrs, name="intensity")


def _attrs(region, sample, source, block_index, excitation_energy, pass_energy, dwell, n_scans, counts_per_unit,
           etch_time, experimental_variables, comment, aes, kinetic, negative, units, extra_attrs, notes) -> dict:
    """The attrs of one spectrum (:func:`make_spectrum` and :func:`make_spectra` build them alike)."""
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
        "technique": "AES" if aes else "XPS",
        "abscissa": "kinetic energy" if kinetic else "binding energy",
        "negative_values": negative,
    }
    if extra_attrs:
        attrs.update(extra_attrs)
    attrs["notes"] = "; ".join(dict.fromkeys([*([attrs["notes"]] if attrs.get("notes") else []), *notes]))
    return attrs


def _batch_key(call: dict):
    """The group of a :func:`make_spectra` call whose checks can run for many blocks at once, or None."""
    if call.get("transmission") is not None or call.get("irregular") or \
            str(call.get("technique", "XPS")).upper().startswith("AES"):
        return None
    energy = call["energy"]
    if not isinstance(energy, np.ndarray) or energy.ndim != 1 or energy.size < 2:
        return None
    kinetic = str(call.get("abscissa", "binding energy")).lower().startswith("kinetic")
    hv = known(call.get("excitation_energy", math.nan)) if kinetic else 0.0
    if kinetic and not 0 < hv <= MAX_PHOTON_ENERGY:
        return None
    return kinetic, hv, energy.astype(float).tobytes()


def _make_batch(source: str, calls: list[dict]) -> list[xr.DataArray] | None:
    """:func:`make_spectrum` for blocks on one grid, checks vectorised; None when any block fails one
    (the caller then runs :func:`make_spectrum` block by block, which names the first failure)."""
    first = calls[0]
    energy = np.asarray(first["energy"], dtype=float)
    if any(np.shape(call["values"]) != energy.shape for call in calls):
        return None
    values = np.array([call["values"] for call in calls], dtype=float)
    if not (np.isfinite(values).all() and np.isfinite(energy).all()):
        return None
    kinetic = str(first.get("abscissa", "binding energy")).lower().startswith("kinetic")
    binding = known(first.get("excitation_energy", math.nan)) - energy if kinetic else energy
    steps = np.diff(binding)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return None
    order = np.argsort(binding, kind="stable")
    binding, values = binding[order], values[:, order]
    dwell = np.array([known(call.get("dwell_time", math.nan)) for call in calls])
    n_scans = np.array([known(call.get("scans", math.nan)) for call in calls])
    cpu = dwell * n_scans
    cpu[~((cpu > 0) & np.isfinite(cpu))] = np.nan
    per_second = np.array([bool(call.get("already_per_second", False)) for call in calls])
    known_cpu = ~np.isnan(cpu)
    scaled = ~per_second & known_cpu
    counts_per_unit = np.where(known_cpu, cpu, 1.0)
    with np.errstate(over="ignore"):
        values = values / np.where(scaled, cpu, 1.0)[:, None]  # x / 1.0 is x exactly: unscaled rows unchanged
        finite = np.isfinite(values) & np.isfinite(values * counts_per_unit[:, None])
    if not finite.all():
        return None
    negative = np.count_nonzero(values < 0, axis=1)
    lowest = values.min(axis=1)
    axis = "binding_energy"
    coordinate = xr.IndexVariable((axis,), binding, {"units": "eV", "long_name": axis.replace("_", " ")})
    index = xr.Coordinates({axis: coordinate}).xindexes[axis]
    out = []
    for i, call in enumerate(calls):
        region = canonical_region(call.get("region", ""))
        units = "counts/s" if per_second[i] or scaled[i] else "counts"
        notes = [str(n) for n in (call.get("notes") or []) if str(n).strip()]
        if negative[i]:
            notes.append(f"{int(negative[i])} negative intensities (min {float(lowest[i]):.4g} {units}): processed "
                         "(e.g. background-subtracted) data, not raw counts")
        attrs = _attrs(region, call.get("sample", ""), source, call.get("block_index", 0),
                       call.get("excitation_energy", math.nan), call.get("pass_energy", math.nan), float(dwell[i]),
                       float(n_scans[i]), counts_per_unit[i], call.get("etch_time", math.nan),
                       call.get("experimental_variables"), call.get("comment", ""), False, kinetic,
                       int(negative[i]), units, call.get("extra_attrs"), notes)
        out.append(_on_shared_axis(values[i], attrs, axis, coordinate, index))
    return out


def _on_shared_axis(values: np.ndarray, attrs: dict, axis: str, coordinate, index) -> xr.DataArray:
    """A spectrum on an energy axis many blocks share: one (immutable) pandas index for all, each
    block its own shallow copy of the coordinate (so its own coordinate attrs).

    xarray's ``fastpath`` constructor takes the ready variables: 10 us a block against 45 us for
    ``DataArray.copy(data=...)``, which rebuilds the index (0.07 s of reading a 2000-level series).
    Should a later xarray drop ``fastpath``, the public constructor gives the same array.
    """
    variable = xr.Variable((axis,), values, attrs)
    try:
        return xr.DataArray(variable, {axis: coordinate.copy(deep=False)}, name="intensity", indexes={axis: index},
                            fastpath=True)
    except TypeError:
        return xr.DataArray(values, dims=(axis,), coords={axis: coordinate.copy(deep=False)}, attrs=attrs,
                            name="intensity")


def make_spectra(source: str, calls: list[dict]) -> list[xr.DataArray]:
    """:func:`make_spectrum` for many blocks of one file: ``calls`` holds each block's keyword arguments
    (``energy`` and ``values`` among them).

    The results are those of ``[make_spectrum(source, **call) for call in calls]`` (same values,
    attrs and errors: a block failing a check is handed to :func:`make_spectrum`, in file order, so
    the first failing block is named), but blocks on one energy grid without transmission (a
    2000-level etch series) are checked and scaled as one array: 10x less time a block.
    """
    groups: dict = {}
    for i, call in enumerate(calls):
        key = _batch_key(call)
        if key is not None:
            groups.setdefault(key, []).append(i)
    out: list = [None] * len(calls)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        built = _make_batch(source, [calls[i] for i in rows])
        for i, da in zip(rows, built or []):
            out[i] = da
    for i, call in enumerate(calls):
        if out[i] is None:
            call = dict(call)
            out[i] = make_spectrum(source, call.pop("energy"), call.pop("values"), **call)
    return out
