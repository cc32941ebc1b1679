"""Reading powder patterns and instrument parameter files, whatever their format.

>>> import xrd
>>> pattern = xrd.read("FAP.XRA")                 # doctest: +SKIP
>>> pattern.sizes["two_theta"], pattern.attrs["step"]   # doctest: +SKIP
(5752, 0.02)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import XRDError
from .formats import find_format, find_instrument_format
from .formats._pattern import fail
from .instrument import Instrument

__all__ = ["read", "read_all", "read_instrument", "describe", "weights"]


def read_all(path, fmt: str | None = None, **kw) -> list[xr.DataArray]:
    """Every range (scan, bank) of a powder pattern file.

    Parameters
    ----------
    path : str or Path
        The file; opened read-only.
    fmt : str, optional
        Force a format by name (``"bruker-raw"``, ``"brml"``, ``"xrdml"``, ``"gsas"``, ``"xy"``);
        by default the extension and then the file's first bytes decide.

    Returns
    -------
    list of xarray.DataArray
        One pattern per range, each over ``two_theta`` (deg) with an ``esd`` coordinate.

    Raises
    ------
    XRDError
        ``"<path>: <problem>"`` for a missing, empty, truncated, malformed or unsafe file.
    """
    path = Path(path)
    module = find_format(path, fmt)
    try:
        patterns = module.read_all(path, **kw)
    except XRDError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeError) as exc:
        # a reader bug or a malformation no check anticipated still names the file
        raise fail(path, f"cannot read as {module.NAME}: {exc}") from exc
    if not patterns:
        raise fail(path, "contains no data ranges")
    return patterns


def read(path, range: int = 0, fmt: str | None = None, **kw) -> xr.DataArray:  # noqa: A002 - contract name
    """One range (default the first) of a powder pattern file; see :func:`read_all`.

    Parameters
    ----------
    path : path-like
        Pattern file: ``.xye``/``.xy``, GSAS ``.gsa``/``.fxye``, Bruker ``.raw``/``.brml``,
        PANalytical ``.xrdml`` (format from the content, then the extension; opened read-only).
    range : int
        Which range (scan) of a multi-range file.
    fmt : str, optional
        Format name to skip detection (``"xye"``, ``"gsas"``, ...).
    **kw
        Passed to the format's reader.

    Returns
    -------
    xarray.DataArray
        Counts over ``two_theta`` (deg) with an ``esd`` coord (counts; sqrt(counts) when the file
        has none) and attrs ``technique``, ``source``, ``wavelength`` when the file states it.

    Examples
    --------
    >>> from pathlib import Path
    >>> from doptrace import xrd
    >>> _ = Path("pattern.xye").write_text("20.00 100 10\\n20.02 121 11\\n20.04 144 12\\n")
    >>> p = xrd.read("pattern.xye")
    >>> p.two_theta.attrs["units"], p.attrs["technique"], p.values.tolist(), p["esd"].values.tolist()
    ('deg', 'XRD', [100.0, 121.0, 144.0], [10.0, 11.0, 12.0])
    """
    patterns = read_all(path, fmt=fmt, **kw)
    n = len(patterns)
    if not isinstance(range, (int, np.integer)) or isinstance(range, bool):
        raise fail(path, f"range must be an integer, got {range!r}")
    if not -n <= range < n:
        raise fail(path, f"range {range} asked but the file has {n} range{'s' if n != 1 else ''} (0..{n - 1})")
    return patterns[range]


def read_instrument(path, bank: int = 1, fmt: str | None = None, **kw) -> Instrument:
    """Instrument parameters from a GSAS ``.prm`` or GSAS-II ``.instprm`` file.

    ``.prm`` files are read the way GSAS-II reads them (``gsas2=True``, see
    :mod:`xrd.formats.prm`); pass ``gsas2=False`` for the GSAS-I reading of the profile line.
    """
    path = Path(path)
    module = find_instrument_format(path, fmt)
    return module.read_instrument(path, bank=bank, **kw)


def weights(pattern: xr.DataArray) -> np.ndarray:
    """Least-squares weights 1/esd^2 of a pattern, 0 where the esd is 0 (GSAS-II's rule).

    Points with zero counts in a counts-only file (or a zero esd in the file) have esd 0; GSAS-II
    gives them weight 0 rather than an arbitrary one, and so does this.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> p = xr.DataArray([4.0, 0.0], dims="two_theta", coords={"esd": ("two_theta", [2.0, 0.0])})
    >>> weights(p).tolist()
    [0.25, 0.0]
    """
    esd = np.asarray(pattern["esd"].values, dtype=float)
    out = np.zeros_like(esd)
    good = np.isfinite(esd) & (esd > 0)
    out[good] = 1.0 / esd[good] ** 2
    return out


def describe(path) -> str:
    """Human summary of a pattern file (format, ranges, points, 2theta range, step, wavelength) or of
    an instrument parameter file (``.prm``/``.instprm``: wavelengths, polarisation, profile terms)."""
    try:
        find_format(Path(path))
    except XRDError as not_pattern:
        try:
            module = find_instrument_format(Path(path))
        except XRDError:
            raise not_pattern from None
        inst = module.read_instrument(Path(path))
        values = "  ".join(f"{k} {v:g}" for k, v in inst.as_dict().items())
        return f"{path}: instrument parameters ({module.NAME})\n  {values}"
    patterns = read_all(path)
    first = patterns[0].attrs
    lines = [f"{path}: {first['format']}, {len(patterns)} range{'s' if len(patterns) != 1 else ''}"]
    if first.get("sample"):
        lines.append(f"  sample: {first['sample']}")
    for p in patterns:
        a = p.attrs
        x = p["two_theta"].values
        wave = a.get("wavelength", math.nan)
        wave_text = "wavelength not in file" if not math.isfinite(wave) else f"lambda1 {wave:.5f} A"
        wave2 = a.get("wavelength2", math.nan)
        if math.isfinite(wave2):
            wave_text += f", lambda2 {wave2:.5f} A (ratio {a.get('ka2_ratio', math.nan):g})"
        count_time = a.get("count_time", math.nan)
        time_text = f", {count_time:g} s/step" if math.isfinite(count_time) else ""
        lines.append(
            f"  range {a['range_index'] + 1}: {x.size} points, 2theta {x[0]:.4f}-{x[-1]:.4f} deg, "
            f"step {a['step']:.5f} deg{time_text}, {wave_text}, counts {float(p.min()):g}-{float(p.max()):g}"
        )
    return "\n".join(lines)
