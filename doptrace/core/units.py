"""The one units table: lengths (to nm), times (to s), their ratios, and quantities ``"0.40 ± 0.04 nm/s"``.

Instrument files and project files need only lengths, times and their ratios (pixel sizes, etch
times, etch rates, crater depths, surface layers), so a small table is written here instead of
depending on a units library. Every quantity is converted to nm, s or nm/s on reading, and a
quantity of the wrong kind (a rate given in nm) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import DoptraceError

#: factor from each length unit to nm (µ as the micro sign U+00B5 and the Greek mu U+03BC)
LENGTH_NM = {"nm": 1.0, "Å": 0.1, "A": 0.1, "angstrom": 0.1, "pm": 1e-3, "um": 1e3, "µm": 1e3, "μm": 1e3,
             "mm": 1e6, "m": 1e9}
#: factor from each time unit to s
TIME_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0, "mins": 60.0,
          "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0}
#: the canonical unit of each kind of quantity
KIND_UNITS = {"length": "nm", "time": "s", "rate": "nm/s"}

_FOLDED = {id(table): {k.casefold(): v for k, v in table.items()} for table in (LENGTH_NM, TIME_S)}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*(?:(?:±|\+/-|\+-)\s*({_NUMBER}))?\s*(\S*)\s*$")


def _lookup(table: dict, units: str, any_case: bool, default):
    units = str(units).strip()
    if units in table:
        return table[units]
    if any_case:
        return _FOLDED[id(table)].get(units.casefold(), default)
    return default


def length_nm(units: str, default: float | None = None, *, any_case: bool = False) -> float | None:
    """Factor from the length unit ``units`` to nm; ``default`` when it is not a length unit.

    ``any_case=True`` also matches other capitalisations (``"UM"``, ``"å"``), as free-text
    instrument files write them.

    >>> length_nm("µm"), length_nm("Å"), length_nm("furlong")
    (1000.0, 0.1, None)
    """
    return _lookup(LENGTH_NM, units, any_case, default)


def time_s(units: str, default: float | None = None, *, any_case: bool = False) -> float | None:
    """Factor from the time unit ``units`` to s; ``default`` when it is not a time unit.

    >>> time_s("min"), time_s("Minutes", any_case=True)
    (60.0, 60.0)
    """
    return _lookup(TIME_S, units, any_case, default)


def unit_factor(units: str) -> tuple[str, float]:
    """``(kind, factor to the canonical unit)`` of a unit string; :class:`DoptraceError` if unknown.

    >>> unit_factor("nm/min")
    ('rate', 0.016666666666666666)
    """
    units = units.strip()
    if (factor := length_nm(units)) is not None:
        return "length", factor
    if (factor := time_s(units)) is not None:
        return "time", factor
    if "/" in units:
        top, _, bottom = units.partition("/")
        length, time = length_nm(top), time_s(bottom)
        if length is not None and time is not None:
            return "rate", length / time
    known = ", ".join(list(LENGTH_NM) + list(TIME_S))
    raise DoptraceError(f"unknown unit '{units}' (lengths and times: {known}; rates as length/time)")


@dataclass(frozen=True)
class Quantity:
    """A value with its standard uncertainty in the canonical unit of its kind (nm, s or nm/s)."""

    value: float
    stderr: float
    units: str

    def __str__(self) -> str:
        return f"{self.value:g} ± {self.stderr:g} {self.units}"


def parse_quantity(value, kind: str) -> Quantity:
    """A quantity of ``kind`` ("length", "time" or "rate") in canonical units.

    Parameters
    ----------
    value : str or dict
        A string ``"VALUE [± STDERR] UNIT"`` (``+/-`` also accepted) or a table
        ``{value = 0.4, stderr = 0.04, units = "nm/s"}``.
    kind : str
        The kind of quantity wanted.

    Returns
    -------
    Quantity

    Raises
    ------
    DoptraceError
        Naming the problem (no unit, unknown unit, wrong kind, negative stderr ...).

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
            raise DoptraceError("a quantity table needs value and units (and optionally stderr), nothing else")
        number, error, units = value["value"], value.get("stderr", 0.0), value["units"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (number, error)) or \
                not isinstance(units, str):
            raise DoptraceError("value and stderr must be numbers and units a string")
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise DoptraceError(f"'{value}' is not 'VALUE [± STDERR] UNIT'")
        number, error, units = float(match[1]), float(match[2] or 0.0), match[3]
        if not units:
            raise DoptraceError(f"'{value}' has no unit (expected {KIND_UNITS[kind]} or another {kind} unit)")
    else:
        raise DoptraceError(f"expected a string like '1.0 ± 0.1 {KIND_UNITS[kind]}' or a table, got {value!r}")
    found, factor = unit_factor(units)
    if found != kind:
        raise DoptraceError(f"'{units}' is a {found} unit, but a {kind} ({KIND_UNITS[kind]}) is needed")
    number, error = float(number) * factor, float(error) * factor
    if not (number == number and error == error) or error < 0 or abs(number) == float("inf"):
        raise DoptraceError(f"{value!r}: value must be finite and stderr >= 0")
    return Quantity(number, error, KIND_UNITS[kind])
