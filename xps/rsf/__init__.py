"""Sensitivity-factor tables: bundled Scofield cross-sections and Kratos factors, or a user table.

A table maps core-level lines (``"Mn 2p"``, ``"Mn 2p3/2"``, ``"C 1s"``) to factors at one photon
energy and declares whether quantification must still divide by an IMFP kinetic-energy factor
(``ke_correction``): Scofield cross-sections need it (they are atomic, not instrumental), vendor
factors that already hold the analyser and IMFP energy dependence (Kratos) must not get it again.

Bundled (``xps/rsf/*.csv``, written by ``tools/make_rsf_tables.py``; each file's header names its
source): ``scofield`` (Scofield 1976, C 1s = 1, every subshell and spin-orbit pair, Al Ka and
Mg Ka) and ``kratos`` (Kratos Axis library, F 1s = 1, whole orbitals, Al Ka and Mg Ka). The photon
energy is chosen from the file (``excitation_energy``) or named: ``scofield-al``, ``kratos-mg``.

A user table is a TOML file::

    source = "our Thermo library, 2024"
    ke_correction = false        # required: true for cross-sections, false when the factors hold it
    excitation = "Al Ka"          # optional: refused for files measured with another source
    [rsf]
    "B 1s" = 0.486
    "Mn 2p" = 13.91
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from importlib import resources

from doptrace.core.tomlfile import Problems, read_toml

from ..errors import XPSError

#: photon energies (eV) of the two lab sources the bundled tables cover, and the column holding each
SOURCES = {"al": ("Al Ka", 1486.6, "al_ka"), "mg": ("Mg Ka", 1253.6, "mg_ka")}
#: how far a file's excitation energy may lie from a source's and still count as that source (eV)
SOURCE_TOLERANCE = 1.5
BUNDLED = ("scofield", "kratos")

_LINE = re.compile(r"^([A-Za-z]{1,2})\s*(\d)\s*([spdfSPDF])\s*(\d\s*/\s*2)?$")


def line_key(text: str) -> str:
    """The canonical key of a core-level line: ``"mn 2p3/2"`` from ``"Mn 2p 3/2"``, ``"Mn2p3/2"`` ...

    Text that is not a core-level line (``"Valence"``) is kept, lower-cased with single spaces.
    """
    text = " ".join(str(text).split())
    m = _LINE.match(text)
    if not m:
        return text.lower()
    el, n, l, j = m.groups()
    return f"{el.lower()} {n}{l.lower()}{(j or '').replace(' ', '')}"


def orbital_key(text: str) -> str:
    """The orbital a line belongs to: ``"mn 2p"`` for ``"Mn 2p3/2"`` (other text unchanged)."""
    key = line_key(text)
    return key[:-3] if re.search(r"\d[pdf]\d/2$", key) else key


@dataclass
class RSFTable:
    """Sensitivity factors at one photon energy.

    Attributes
    ----------
    name : str
        ``scofield``, ``kratos`` or the user file's path.
    source : str
        The literature or library the numbers come from (a file header's first lines).
    excitation : str
        ``"Al Ka"``, ``"Mg Ka"`` or ``""`` (a user table that names none).
    ke_correction : bool
        True: quantification divides by an IMFP kinetic-energy factor too (cross-sections);
        False: the factors already hold it (vendor tables).
    values : dict
        ``{line_key: factor}``.
    """

    name: str
    source: str
    excitation: str
    ke_correction: bool
    values: dict = field(default_factory=dict)
    energies: dict = field(default_factory=dict)  # {line_key: approximate binding energy, eV} (bundled tables)

    def factor(self, line: str, where: str = "") -> float:
        """The factor of ``line``; :class:`XPSError` naming the table and close lines when absent."""
        key = line_key(line)
        if key in self.values:
            return self.values[key]
        element = key.split()[0]
        near = sorted(k for k in self.values if k.split()[0] == element)
        hint = f" (it has for {element.capitalize()}: {', '.join(near)})" if near else ""
        raise XPSError(f"{where}: no RSF for {line!r} in table {self.name!r} ({self.excitation or 'user'}){hint}")


def excitation_of(energy: float, where: str = "") -> str:
    """``"al"`` or ``"mg"`` for a photon energy (eV) within :data:`SOURCE_TOLERANCE` of that source."""
    if not math.isfinite(energy):
        raise XPSError(f"{where}: the file states no excitation energy: name the table's source "
                       "(scofield-al, scofield-mg, kratos-al, kratos-mg)")
    for key, (_, hv, _) in SOURCES.items():
        if math.isfinite(energy) and abs(energy - hv) <= SOURCE_TOLERANCE:
            return key
    raise XPSError(f"{where}: excitation energy {energy:g} eV is neither Al Ka (1486.6) nor Mg Ka (1253.6): "
                   "the bundled tables do not cover it; give a user table (--rsf mine.toml)")


def _bundled(name: str, source_key: str) -> RSFTable:
    text = resources.files("doptrace.xps.rsf").joinpath(f"{name}.csv").read_text(encoding="utf-8")
    header = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    label, _, column = SOURCES[source_key]
    values, energies = {}, {}
    for row in csv.DictReader(io.StringIO(body)):
        if row[column]:
            values[line_key(row["line"])] = float(row[column])
            energies[line_key(row["line"])] = float(row["binding_energy_eV"])
    source = next((h for h in header if h.startswith("Source:")), header[0] if header else name)
    return RSFTable(name, f"{name} ({label}): {source[len('Source:'):].strip()}", label, name == "scofield", values, energies)


def load_table(table: str = "scofield", excitation_energy: float = math.nan, where: str = "") -> RSFTable:
    """A bundled table (``scofield``, ``kratos``, ``scofield-al``, ``kratos-mg`` ...) or a user TOML file.

    Parameters
    ----------
    table : str
        Bundled name, optionally with ``-al`` / ``-mg``, or a path to a TOML table.
    excitation_energy : float
        The file's photon energy (eV): picks the Al Ka or Mg Ka column of a bundled table, and is
        checked against a user table's ``excitation``.
    where : str
        File name for error messages.
    """
    name = str(table).strip()
    base, _, suffix = name.lower().partition("-")
    if base in BUNDLED and suffix in ("", "al", "mg"):
        key = suffix or excitation_of(excitation_energy, where)
        if suffix and math.isfinite(excitation_energy) and excitation_of(excitation_energy, where) != suffix:
            raise XPSError(f"{where}: table {name!r} is for {SOURCES[suffix][0]}, but the file was measured at "
                           f"{excitation_energy:g} eV")
        return _bundled(base, key)
    doc = read_toml(name, XPSError, "RSF table")
    raw, problems = doc.data, Problems(doc)
    rsf = raw.get("rsf")
    if not isinstance(rsf, dict) or not rsf:
        raise XPSError(f"{doc.path}: needs an [rsf] table of \"<line>\" = <factor>")
    ke = raw.get("ke_correction")
    if not isinstance(ke, bool):
        problems.add(("ke_correction",), "ke_correction = true (factors without the IMFP energy dependence, e.g. "
                                         "cross-sections) or false (factors that include it, e.g. vendor RSFs) "
                                         "must be stated")
    excitation = raw.get("excitation", "")
    if excitation not in ("", "Al Ka", "Mg Ka"):
        problems.add(("excitation",), f"excitation must be \"Al Ka\" or \"Mg Ka\", not {excitation!r}")
    values = {}
    for line, value in rsf.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
            problems.add(("rsf", line), f"RSF of {line!r} must be a positive number")
        else:
            values[line_key(line)] = float(value)
    problems.raise_if_any(XPSError)
    if excitation and math.isfinite(excitation_energy):
        label = SOURCES[excitation_of(excitation_energy, where)][0]
        if label != excitation:
            raise XPSError(f"{doc.path}: the table is for {excitation}, but {where} was measured with {label}")
    return RSFTable(name, str(raw.get("source", doc.path)), str(excitation), ke, values)
