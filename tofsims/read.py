"""``tofsims.read``: one entry point for every ToF-SIMS format (registry + content sniffing)."""

from __future__ import annotations

from .errors import ToFSIMSError
from .formats import READERS, detect


def read(path, **kw):
    """Read any supported ToF-SIMS file into an xarray Dataset.

    The format comes from the file's content (ITStr magic, imzML XML, ASCII layout) and its
    extension (``.events``/``.bin`` event lists).

    Parameters
    ----------
    path : path-like or list of path-like
        IONTOF ``.ita``/``.itm``, IONTOF/SurfaceLab ASCII export (spectrum, depth profile,
        image), ``.imzML`` or an event list; a list of image exports (one file per fragment) is
        read into one cube.
    **kw
        Passed to the format's reader, e.g. ``fragments=["BO-", "MnO-"]`` (ITA, ITM, imzML),
        ``scans=``, ``lazy=True`` (ITA), ``polarity="negative"`` (spectra), ``windows=...,
        shape=..., sf=..., k0=...`` (event lists).

    Returns
    -------
    xarray.Dataset
        Images: ``counts`` (fragment, scan, y, x) and ``total`` (scan, y, x) as the ToF-SIMS data
        contract (:func:`doptrace.tofsims.formats._cube.make_cube`) says; spectra: ``intensity``
        over ``channel`` or ``mass``; depth-profile exports: ``counts`` (fragment, scan).

    Examples
    --------
    An ITA depth profile written by the simulator (12 scans of 32 x 32 pixels) reads back with
    exactly the simulated counts:

    >>> from doptrace import tofsims
    >>> from doptrace.tofsims.simulate import write_ita
    >>> truth = write_ita("depth.ita", shape=(12, 32, 32), bulk_doped=True, seed=1)
    >>> ds = tofsims.read("depth.ita", fragments=["BO-", "MnO-"])
    >>> ds["counts"].dims, ds.attrs["polarity"], ds["x"].attrs["units"]
    (('fragment', 'scan', 'y', 'x'), 'negative', 'um')
    >>> bool((ds["counts"] == truth["counts"].sel(fragment=["BO-", "MnO-"])).all())
    True
    """
    if isinstance(path, (list, tuple)):  # several image exports, one per fragment
        kinds = {detect(p) for p in path}
        if kinds != {"image"}:
            raise ToFSIMSError(f"{path[0]}: only image exports can be read together (got {sorted(kinds)})")
        return READERS["image"](list(path), **kw)
    return READERS[detect(path)](path, **kw)
