"""Inelastic mean free path factors for quantification: ``KE^n`` or the TPP-2M formula.

Quantification divides each area by the IMFP at the photoelectron's kinetic energy (relative
values only matter: every factor cancels in the atomic fractions except its energy dependence).

- ``KE^n`` (Seah and Dench 1979: ``n`` 0.5-0.8; 0.6 is a common default);
- TPP-2M (S. Tanuma, C. J. Powell and D. R. Penn, Surf. Interface Anal. 21 (1994) 165-176)::

      lambda = E / (Ep^2 [beta ln(gamma E) - C/E + D/E^2])     (Angstrom, E in eV)
      Ep = 28.8 sqrt(Nv rho / M),  U = Nv rho / M = (Ep / 28.8)^2
      beta = -0.10 + 0.944 / sqrt(Ep^2 + Eg^2) + 0.069 rho^0.1,  gamma = 0.191 / sqrt(rho)
      C = 1.97 - 0.91 U,  D = 53.4 - 20.8 U

  with the material's density ``rho`` (g/cm^3), valence electrons per formula unit ``Nv``,
  molar mass ``M`` (g/mol) and band gap ``Eg`` (eV). Defaults (:data:`TPP2M_DEFAULT`): SiO2
  (rho 2.19, Nv 16, M 60.08, Eg 8.9), a typical oxide; between 300 and 1500 eV the TPP-2M
  energy dependence of most materials lies close to ``E^0.75-0.8``, so the material changes the
  relative factors by a few percent only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import XPSError


@dataclass(frozen=True)
class TPP2M:
    """Material parameters of the TPP-2M IMFP formula (see the module docstring)."""

    density: float = 2.19        # g/cm^3
    valence_electrons: float = 16.0
    molar_mass: float = 60.08    # g/mol
    band_gap: float = 8.9        # eV
    material: str = "SiO2 (default)"

    def check(self, where: str = "") -> "TPP2M":
        for name in ("density", "valence_electrons", "molar_mass"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
                raise XPSError(f"{where}: TPP-2M {name} must be a positive number, not {value!r}")
        if isinstance(self.band_gap, bool) or not (isinstance(self.band_gap, (int, float)) and 0 <= self.band_gap < 50):
            raise XPSError(f"{where}: TPP-2M band_gap must be a number of eV in [0, 50), not {self.band_gap!r}")
        return self

    def imfp(self, energy) -> np.ndarray:
        """IMFP (nm) at kinetic energies ``energy`` (eV; the formula holds from ~50 eV to 200 keV)."""
        e = np.asarray(energy, dtype=float)
        u = self.valence_electrons * self.density / self.molar_mass
        ep2 = 28.8**2 * u
        beta = -0.10 + 0.944 / math.sqrt(ep2 + self.band_gap**2) + 0.069 * self.density**0.1
        gamma = 0.191 / math.sqrt(self.density)
        c = 1.97 - 0.91 * u
        d = 53.4 - 20.8 * u
        return 0.1 * e / (ep2 * (beta * np.log(gamma * e) - c / e + d / e**2))

    def describe(self) -> str:
        return (f"TPP-2M IMFP ({self.material}: rho {self.density:g} g/cm3, Nv {self.valence_electrons:g}, "
                f"M {self.molar_mass:g} g/mol, Eg {self.band_gap:g} eV)")


TPP2M_DEFAULT = TPP2M()


@dataclass(frozen=True)
class KEPower:
    """IMFP proportional to ``KE^exponent``."""

    exponent: float = 0.6

    def check(self, where: str = "") -> "KEPower":
        # IMFP ~ KE^g: published g lie near 0.5-0.8; outside [0, 2] it is a typing error, not physics.
        g = self.exponent
        if isinstance(g, bool) or not (isinstance(g, (int, float)) and 0 <= g <= 2):
            raise XPSError(f"{where}: KE exponent must be a number in [0, 2] (IMFP ~ KE^g), not {g}")
        return self

    def imfp(self, energy) -> np.ndarray:
        return np.asarray(energy, dtype=float) ** self.exponent

    def describe(self) -> str:
        return f"KE^{self.exponent:g}" if self.exponent else "none"


def parse_imfp(text: str, where: str = ""):
    """``"ke:0.6"`` / ``"0.6"`` -> :class:`KEPower`; ``"tpp2m"`` or ``"tpp2m:density=5.2,nv=40,m=231.5,eg=3.1"``
    (optionally ``material=NAME``) -> :class:`TPP2M`; ``"none"`` -> ``KEPower(0)``."""
    text = str(text).strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "none":
        return KEPower(0.0)
    if kind in ("ke", "power"):
        kind, rest = rest, ""
    try:
        exponent = float(kind)
    except ValueError:
        exponent = None
    if exponent is not None and not rest.strip():
        return KEPower(exponent).check(where)
    if kind != "tpp2m":
        raise XPSError(f"{where}: IMFP model {text!r}: use a KE exponent (0.6), 'none' or "
                       "'tpp2m[:density=..,nv=..,m=..,eg=..]'")
    names = {"density": "density", "rho": "density", "nv": "valence_electrons", "m": "molar_mass",
             "molar_mass": "molar_mass", "eg": "band_gap", "band_gap": "band_gap", "material": "material"}
    params = {"material": "user material"} if rest.strip() else {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in names:
            raise XPSError(f"{where}: TPP-2M parameter {item!r}: use density=, nv=, m=, eg= (material=NAME)")
        if names[key] == "material":
            params["material"] = value.strip()
            continue
        try:
            params[names[key]] = float(value)
        except ValueError:
            raise XPSError(f"{where}: TPP-2M {key} must be a number, not {value.strip()!r}") from None
    return TPP2M(**params).check(where)
