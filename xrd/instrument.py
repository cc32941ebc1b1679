"""Instrument parameters of a constant-wavelength laboratory powder diffractometer.

Units follow GSAS-II so values can be passed between the engines unchanged: wavelengths in
Angstrom, ``zero`` in degrees 2theta, Gaussian terms ``U, V, W`` in centidegree^2, Lorentzian terms
``X, Y, Z`` in centidegrees, ``SH_L`` dimensionless ((S+H)/L of Finger-Cox-Jephcoat), goniometer
radius in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import XRDError


@dataclass(frozen=True)
class Instrument:
    """One diffractometer set-up (the "instrument parameters" of a Rietveld refinement).

    Parameters
    ----------
    wavelengths : (float, float)
        (Ka1, Ka2) in Angstrom; a monochromatic source has ``(lambda, nan)`` and ``ka2_ratio = 0``.
    ka2_ratio : float
        I(Ka2)/I(Ka1).
    polarization : float or None
        GSAS-II ``Polariz.`` fraction p: P(2theta) = (1 - p) cos^2(2theta) + p; None when a
        ``monochromator_angle`` describes the polarisation instead.
    zero : float
        Zero shift of 2theta (deg).
    U, V, W : float
        Gaussian variance sigma^2 = U tan^2(theta) + V tan(theta) + W (centideg^2).
    X, Y, Z : float
        Lorentzian FWHM gamma = X / cos(theta) + Y tan(theta) + Z (centideg).
    SH_L : float
        Axial divergence (S + H) / L.
    radius_mm : float
        Goniometer radius (mm), used by the sample-displacement correction.
    source : str
        File the values came from ("" when built in code).
    monochromator_angle : float or None
        2theta of a monochromator (deg); with ``polarization=None`` the Lorentz-polarisation factor
        uses it.
    file : Path or None
        The instrument file a recipe named (recipes merge its values with their own table).

    This is the one instrument type: readers of ``.prm``/``.instprm`` files return it and a
    recipe's ``instrument`` is one (built from its file, then its ``[instrument]`` table).

    Examples
    --------
    >>> inst = Instrument(wavelengths=(1.5405, 1.5443), ka2_ratio=0.5, polarization=0.7)
    >>> inst.has_ka2
    True
    """

    wavelengths: tuple[float, float] = (1.5405, 1.5443)
    ka2_ratio: float = 0.5
    polarization: float = 0.7
    zero: float = 0.0
    U: float = 2.0
    V: float = -2.0
    W: float = 5.0
    X: float = 0.0
    Y: float = 0.0
    Z: float = 0.0
    SH_L: float = 0.002
    radius_mm: float = 200.0
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)
    monochromator_angle: float | None = None
    file: Path | None = None

    def __post_init__(self):
        waves = tuple(float(w) for w in self.wavelengths)
        if len(waves) == 1:
            waves = (waves[0], math.nan)
        if len(waves) != 2:
            raise XRDError(f"{self.source or 'instrument'}: wavelengths must be (Ka1, Ka2), got {waves}")
        object.__setattr__(self, "wavelengths", waves)
        if not (math.isfinite(waves[0]) and 0.05 < waves[0] < 20.0):
            raise XRDError(f"{self.source or 'instrument'}: wavelength {waves[0]} A is not a usable X-ray wavelength")
        for f in fields(self):
            if f.name in ("wavelengths", "source", "extra", "file") or (
                    f.name in ("polarization", "monochromator_angle") and getattr(self, f.name) is None):
                continue
            value = float(getattr(self, f.name))
            if not math.isfinite(value):
                raise XRDError(f"{self.source or 'instrument'}: {f.name} is not a finite number")
            object.__setattr__(self, f.name, value)
        if self.polarization is not None and not 0.0 <= self.polarization <= 1.0:
            raise XRDError(f"{self.source or 'instrument'}: polarization {self.polarization} is outside 0..1")
        if self.ka2_ratio < 0 or self.ka2_ratio > 1.0:
            raise XRDError(f"{self.source or 'instrument'}: ka2_ratio {self.ka2_ratio} is outside 0..1")
        if self.radius_mm <= 0:
            raise XRDError(f"{self.source or 'instrument'}: radius_mm must be positive")

    @property
    def has_ka2(self) -> bool:
        """True when a second wavelength with non-zero intensity is present."""
        return math.isfinite(self.wavelengths[1]) and self.wavelengths[1] > 0 and self.ka2_ratio > 0

    @property
    def single_wavelength(self) -> bool:
        """True when only the first wavelength is used (no finite second one, or zero Ka2 ratio)."""
        return not (math.isfinite(self.wavelengths[1]) and self.ka2_ratio > 0)

    @property
    def wavelength(self) -> float:
        """The Ka1 (or only) wavelength in Angstrom."""
        return self.wavelengths[0]

    def with_values(self, **changes) -> Instrument:
        """A copy with some fields changed (``inst.with_values(U=1.0)``)."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Plain dict of the numeric fields (GSAS-II names where they differ in the key below).

        Keys: ``Lam1, Lam2, I(L2)/I(L1), Polariz., Zero, U, V, W, X, Y, Z, SH/L, radius_mm``.
        """
        return {
            "Lam1": self.wavelengths[0],
            "Lam2": self.wavelengths[1],
            "I(L2)/I(L1)": self.ka2_ratio,
            "Polariz.": self.polarization,
            "Zero": self.zero,
            "U": self.U,
            "V": self.V,
            "W": self.W,
            "X": self.X,
            "Y": self.Y,
            "Z": self.Z,
            "SH/L": self.SH_L,
            "radius_mm": self.radius_mm,
        }
