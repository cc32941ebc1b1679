"""The one value ± esd formatter: a value printed to the precision of its standard uncertainty."""

from __future__ import annotations

import math


def format_value(value: float | None, stderr: float | None = None, units: str = "", *,
                 esd_digits: int = 1, missing: str | None = None) -> str:
    """``value ± esd units`` with the esd rounded to ``esd_digits`` significant digits.

    The value is printed to the same decimal place as the esd. Without a usable esd (None,
    non-finite or <= 0) the value is printed with 4 significant digits. A unit of ``""`` or
    ``"1"`` is not printed.

    Parameters
    ----------
    value, stderr : float or None
        The value and its standard uncertainty (esd).
    units : str
        Appended after a space.
    esd_digits : int
        Significant digits of the esd: 1 (crystallographic convention) or 2 (keeps the sign of a
        value near zero visible, as in the report's check tables).
    missing : str or None
        Text for a missing or non-finite value; None gives ``"n/a"`` followed by the units.

    Returns
    -------
    str

    Examples
    --------
    >>> format_value(0.4012, 0.0437, "nm/s")
    '0.40 ± 0.04 nm/s'
    >>> format_value(-0.0026, 0.0231, esd_digits=2)
    '-0.003 ± 0.023'
    >>> format_value(float("nan"), 0.1, "nm")
    'n/a nm'
    """
    suffix = f" {units}" if units and units != "1" else ""
    if value is None or not math.isfinite(value):
        return f"n/a{suffix}" if missing is None else missing
    if stderr is None or not math.isfinite(stderr) or stderr <= 0:
        return f"{value:.4g}{suffix}"
    digits = max(0, esd_digits - 1 - int(math.floor(math.log10(stderr))))
    return f"{value:.{digits}f} ± {stderr:.{digits}f}{suffix}"
