"""Quantities with uncertainty and units as project files write them: ``"0.40 ± 0.04 nm/s"``.

Project files need only lengths, times and their ratios (etch rates, crater depths, surface
layers), so a small table of units is written here instead of depending on a units library; every
quantity is converted to nm, s or nm/s on reading and a quantity of the wrong kind is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LENGTH_NM = {"nm": 1.0, "Å": 0.1, "A": 0.1, "angstrom": 0.1, "pm": 1e-3, "um": 1e3, "µm": 1e3, "μm": 1e3,
             "mm": 1e6}
TIME_S = {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0}
KIND_UNITS = {"length": "nm", "time": "s", "rate": "nm/s"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*(?:(?:±|\+/-|\+-)\s*({_NUMBER}))?\s*(\S*)\s*$")


@dataclass(frozen=True)
class Quantity:
    """A value with its standard uncertainty in the canonical unit of its kind (nm, s or nm/s)."""

    value: float
    stderr: float
    units: str

    def __str__(self) -> str:
        return f"{self.value:g} ± {self.stderr:g} {self.units}"


def unit_factor(units: str) -> tuple[str, float]:
    """``(kind, factor to the canonical unit)`` of a unit string; ``ValueError`` if unknown.

    >>> unit_factor("nm/min")
    ('rate', 0.016666666666666666)
    """
    units = units.strip()
    if units in LENGTH_NM:
        return "length", LENGTH_NM[units]
    if units in TIME_S:
        return "time", TIME_S[units]
    if "/" in units:
        top, _, bottom = units.partition("/")
        if top.strip() in LENGTH_NM and bottom.strip() in TIME_S:
            return "rate", LENGTH_NM[top.strip()] / TIME_S[bottom.strip()]
    known = ", ".join(list(LENGTH_NM) + list(TIME_S))
    raise ValueError(f"unknown unit '{units}' (lengths and times: {known}; rates as length/time)")


def parse_quantity(value, kind: str) -> Quantity:
    """A project-file quantity of ``kind`` ("length", "time" or "rate") in canonical units.

    ``value`` is a string ``"VALUE [± STDERR] UNIT"`` (``+/-`` also accepted) or a table
    ``{value = 0.4, stderr = 0.04, units = "nm/s"}``. Raises ``ValueError`` with the problem.

    Examples
    --------
    >>> parse_quantity("0.40 ± 0.04 nm/s", "rate")
    Quantity(value=0.4, stderr=0.04, units='nm/s')
    >>> parse_quantity("5 Å", "length").value
    0.5
    """
    if isinstance(value, dict):
        extra = set(value) - {"value", "stderr", "units"}
        if extra or "value" not in value or "units" not in value:
            raise ValueError("a quantity table needs value and units (and optionally stderr), nothing else")
        number, error, units = value["value"], value.get("stderr", 0.0), value["units"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (number, error)) or \
                not isinstance(units, str):
            raise ValueError("value and stderr must be numbers and units a string")
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"'{value}' is not 'VALUE [± STDERR] UNIT'")
        number, error, units = float(match[1]), float(match[2] or 0.0), match[3]
        if not units:
            raise ValueError(f"'{value}' has no unit (expected {KIND_UNITS[kind]} or another {kind} unit)")
    else:
        raise ValueError(f"expected a string like '1.0 ± 0.1 {KIND_UNITS[kind]}' or a table, got {value!r}")
    found, factor = unit_factor(units)
    if found != kind:
        raise ValueError(f"'{units}' is a {found} unit, but a {kind} ({KIND_UNITS[kind]}) is needed")
    number, error = float(number) * factor, float(error) * factor
    if not (number == number and error == error) or error < 0 or abs(number) == float("inf"):
        raise ValueError(f"{value!r}: value must be finite and stderr >= 0")
    return Quantity(number, error, KIND_UNITS[kind])
