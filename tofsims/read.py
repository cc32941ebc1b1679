"""``tofsims.read``: one entry point for every ToF-SIMS format (registry + content sniffing)."""

from __future__ import annotations

from .errors import ToFSIMSError
from .formats import READERS, detect


def read(path, **kw):
    """Read any supported ToF-SIMS file into an xarray Dataset.

    ``path`` may also be a list of image exports (one file per fragment). The format comes from
    the file's content (ITStr magic, imzML XML, ASCII layout) and its
    extension (``.events``/``.bin`` event lists). Keyword arguments go to the format's reader,
    e.g. ``fragments=["BO-", "MnO-"]`` for ITA/imzML, ``polarity="negative"`` for spectra,
    ``windows=..., shape=..., sf=..., k0=...`` for event lists.

    Examples
    --------
    >>> ds = read("depth.ita", fragments=["BO-", "MnO-"])                  # doctest: +SKIP
    >>> ds["counts"].dims                                                   # doctest: +SKIP
    ('fragment', 'scan', 'y', 'x')
    """
    if isinstance(path, (list, tuple)):  # several image exports, one per fragment
        kinds = {detect(p) for p in path}
        if kinds != {"image"}:
            raise ToFSIMSError(f"{path[0]}: only image exports can be read together (got {sorted(kinds)})")
        return READERS["image"](list(path), **kw)
    return READERS[detect(path)](path, **kw)
