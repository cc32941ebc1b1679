"""GSAS instrument parameter files (``.prm``, ``.iparm``) for constant-wavelength X-ray banks.

Records are ``INS  nKEYWRD`` (12 columns) followed by values.  Used here:

- ``INS  n ICONS``: Fortran fixed columns of the value part: Lam1 [0:10], Lam2 [10:20],
  zero [20:30], polarisation fraction [40:50], I(Ka2)/I(Ka1) [55:65].
- ``INS  nPRCF1 ``: profile function type, number of terms, peak cutoff.
- ``INS  nPRCF11``: GU, GV, GW, GP;  ``INS  nPRCF12``: LX, LY, S/L, H/L (profile type 3).
- ``INS  nDETAZM``: detector azimuth.

``gsas2=True`` (default) reproduces how GSAS-II (the reference engine) reads the file, which the
reference refinements in this project depend on: U, V, W from PRCF11 (GP ignored), and the PRCF12
line ignored (its reader compares the profile-type string with the integer 3, which never
matches) so X = Y = Z = 0 and SH/L = 0.002.  ``gsas2=False`` reads PRCF12 as GSAS itself does:
X = LX, Y = LY, SH/L = S/L + H/L.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..instrument import Instrument
from ._pattern import fail, read_text

NAME = "gsas-prm"
EXTENSIONS = (".prm", ".iparm", ".ins")

#: GSAS-II's SH/L when it does not take one from the file.
GSAS2_DEFAULT_SHL = 0.002
#: GSAS-II's default goniometer radius (mm); a PRM file does not hold one.
GSAS2_DEFAULT_RADIUS_MM = 200.0


def sniff(head: bytes) -> bool:
    """True when the text has ``INS`` records with an ICONS or HTYPE keyword."""
    text = head.decode("latin-1")
    return "INS " in text and ("ICONS" in text or "HTYPE" in text)


def _records(path, text) -> dict[str, str]:
    records = {}
    for line in text.splitlines():
        line = line.rstrip("\r\n")
        if line.startswith("INS"):
            records[line[:12]] = line[12:]
    if not records:
        raise fail(path, "no 'INS' records: not a GSAS instrument parameter file")
    return records


def _number(path, key, text, what) -> float:
    text = text.strip()
    if not text:
        return 0.0  # Fortran reads a blank field as zero
    try:
        value = float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise fail(path, f"{key.strip()} {what}: cannot read {text!r} as a number") from None
    if not math.isfinite(value):
        raise fail(path, f"{key.strip()} {what}: {text!r} is not finite")
    return value


def read_instrument(path, bank: int = 1, gsas2: bool = True) -> Instrument:
    """Instrument of bank ``bank`` of a GSAS ``.prm`` file (see module docstring).

    Examples
    --------
    >>> inst = read_instrument("INST_XRY.PRM")              # doctest: +SKIP
    >>> inst.wavelengths, inst.polarization, inst.SH_L       # doctest: +SKIP
    ((1.5405, 1.5443), 0.7, 0.002)
    """
    path = Path(path)
    records = _records(path, read_text(path, limit=4 * 1024 * 1024))
    htype = records.get("INS   HTYPE ", "").split()
    if htype and not htype[0].upper().startswith("PX"):
        raise fail(path, f"HTYPE {htype[0]}: not a constant-wavelength X-ray instrument (PX..)")
    prefix = f"INS{bank:3d}"
    icons_key = f"{prefix} ICONS"
    if icons_key not in records:
        raise fail(path, f"no '{icons_key.strip()}' record (wavelengths) for bank {bank}")
    icons = records[icons_key].ljust(65)
    columns = {
        "Lam1": icons[0:10], "Lam2": icons[10:20], "zero": icons[20:30],
        "polarization": icons[40:50], "ratio": icons[55:65],
    }
    try:
        values = {k: float(v) if v.strip() else 0.0 for k, v in columns.items()}
    except ValueError:
        # not in Fortran columns (hand-edited, tab-separated): the same fields in blank-separated order
        parts = icons.split()
        if len(parts) < 7:
            raise fail(path, f"{icons_key.strip()}: expected Lam1 Lam2 zero - polarization - ratio, got {icons.strip()!r}") from None
        columns = {"Lam1": parts[0], "Lam2": parts[1], "zero": parts[2], "polarization": parts[4], "ratio": parts[6]}
    values = {k: _number(path, icons_key, v, k) for k, v in columns.items()}
    lam1, lam2 = values["Lam1"], values["Lam2"]
    if not lam1 > 0:
        raise fail(path, f"{icons_key.strip()}: wavelength {lam1} is not positive")
    if lam2 < 0:
        raise fail(path, f"{icons_key.strip()}: second wavelength {lam2} is negative (0 means a single wavelength)")
    prcf11 = records.get(f"{prefix}PRCF11")
    if prcf11 is None:
        raise fail(path, f"no '{prefix}PRCF11' record (U, V, W) for bank {bank}")
    gauss = prcf11.split()
    if len(gauss) < 3:
        raise fail(path, f"{prefix}PRCF11: needs GU GV GW, found {len(gauss)} values")
    U, V, W = (_number(path, f"{prefix}PRCF11", g, "U V W") for g in gauss[:3])
    X = Y = 0.0
    SH_L = GSAS2_DEFAULT_SHL
    extra = {"prcf12": records.get(f"{prefix}PRCF12", "").strip(), "reading": "gsas2" if gsas2 else "gsas"}
    if not gsas2:
        prcf12 = records.get(f"{prefix}PRCF12", "").split()
        if len(prcf12) >= 4:
            X, Y, s_l, h_l = (_number(path, f"{prefix}PRCF12", p, "LX LY S/L H/L") for p in prcf12[:4])
            SH_L = s_l + h_l
    single = lam2 <= 0
    return Instrument(
        wavelengths=(lam1, math.nan if single else lam2),
        ka2_ratio=0.0 if single else values["ratio"],
        polarization=values["polarization"],
        zero=values["zero"],
        U=U, V=V, W=W, X=X, Y=Y, Z=0.0, SH_L=SH_L,
        radius_mm=GSAS2_DEFAULT_RADIUS_MM,
        source=str(path),
        extra=extra,
    )
