"""``tofsims.read``: one entry point for every ToF-SIMS format (registry + content sniffing)."""

from __future__ import annotations

from .formats import READERS, detect


def read(path, **kw):
    """Read any supported ToF-SIMS file into an xarray Dataset.

    The format comes from the file's content (ITStr magic, imzML XML, ASCII layout) and its
    extension (``.events``/``.bin`` event lists). Keyword arguments go to the format's reader,
    e.g. ``fragments=["BO-", "MnO-"]`` for ITA/imzML, ``polarity="negative"`` for spectra,
    ``windows=..., shape=..., sf=..., k0=...`` for event lists.

    Examples
    --------
    >>> ds = read("depth.ita", fragments=["BO-", "MnO-"])                  # doctest: +SKIP
    >>> ds["counts"].dims                                                   # doctest: +SKIP
    ('fragment', 'scan', 'y', 'x')
    """
    return READERS[detect(path)](path, **kw)
