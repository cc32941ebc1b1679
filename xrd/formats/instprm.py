"""GSAS-II instrument parameter files (``.instprm``).

Text of ``name:value`` pairs, one per line or several per line separated by ``;``; lines starting
with ``#`` are comments.  Names used: ``Type`` (must be ``PXC``), ``Lam`` or ``Lam1``/``Lam2``,
``I(L2)/I(L1)``, ``Polariz.``, ``Zero``, ``U V W X Y Z``, ``SH/L``, and optionally ``Gonio. radius``.
A multi-bank file marks banks with ``#Bank N`` comment lines; ``bank`` picks one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..instrument import Instrument
from ._pattern import fail, read_text

NAME = "gsas2-instprm"
EXTENSIONS = (".instprm",)

_BANK = re.compile(r"#\s*bank\s*:?\s*(\d+)", re.IGNORECASE)


def sniff(head: bytes) -> bool:
    """True for text holding ``Type:PX..`` and a ``Lam`` entry."""
    text = head.decode("latin-1")
    return "Type:" in text and "Lam" in text


def _pairs(path, text: str, bank: int) -> dict[str, str]:
    """``{name: value}`` of the requested bank (the whole file when it has no bank markers)."""
    pairs: dict[str, str] = {}
    current = 1
    marked = bool(_BANK.search(text))
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        m = _BANK.match(line)
        if m:
            current = int(m.group(1))
            continue
        if not line or line.startswith("#"):
            continue
        if marked and current != bank:
            continue
        for item in line.split(";"):
            item = item.strip()
            if not item:
                continue
            if ":" not in item:
                raise fail(path, f"line {lineno}: {item[:40]!r} is not 'name:value'")
            name, value = item.split(":", 1)
            pairs[name.strip()] = value.strip()
    return pairs


def read_instrument(path, bank: int = 1) -> Instrument:
    """Instrument of a GSAS-II ``.instprm`` file (see module docstring)."""
    path = Path(path)
    pairs = _pairs(path, read_text(path, limit=4 * 1024 * 1024), bank)
    if not pairs:
        raise fail(path, f"no 'name:value' entries for bank {bank}")
    kind = pairs.get("Type", "")
    if not kind.upper().startswith("PXC"):
        raise fail(path, f"Type {kind!r}: only constant-wavelength X-ray ('PXC') is supported")

    def number(name, default=None):
        if name not in pairs:
            if default is None:
                raise fail(path, f"missing '{name}'")
            return default
        text = pairs[name].strip("[]").split(",")[0]
        try:
            value = float(text)
        except ValueError:
            raise fail(path, f"{name}: cannot read {pairs[name]!r} as a number") from None
        if not math.isfinite(value):
            raise fail(path, f"{name}: {pairs[name]!r} is not finite")
        return value

    if "Lam1" in pairs:
        waves = (number("Lam1"), number("Lam2"))
        ratio = number("I(L2)/I(L1)")
    else:
        waves = (number("Lam"), math.nan)
        ratio = 0.0
    if not waves[0] > 0:
        raise fail(path, f"wavelength {waves[0]} is not positive")
    return Instrument(
        wavelengths=waves,
        ka2_ratio=ratio,
        polarization=number("Polariz."),
        zero=number("Zero", 0.0),
        U=number("U"), V=number("V"), W=number("W"),
        X=number("X", 0.0), Y=number("Y", 0.0), Z=number("Z", 0.0),
        SH_L=number("SH/L", 0.002),
        radius_mm=number("Gonio. radius", 200.0),
        source=str(path),
        extra={"azimuth": number("Azimuth", 0.0)},
    )
