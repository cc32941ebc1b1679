"""The quality record every result carries: ``attrs["quality"]`` and ``attrs["quality_reasons"]``.

``quality`` is one of

``"ok"``
    no rule fired; the numbers may be used as they are.
``"warning"``
    the numbers may be used, but a reader must see the reasons beside them (a parameter at a
    bound, a goodness of fit beyond counting noise, a value below the noise ...).
``"failed"``
    the numbers must not be used for any verdict (the fit did not converge, a value or esd is not
    finite, a physically impossible value beyond 3 esd ...).

``quality_reasons`` is a list of short sentences, the ``failed`` ones first. The rules that decide
them live in one place per technique (``xps.quality``, ``stem_eds.quality``, ``tofsims.quality``,
``xrd.quality``); this module holds only the record itself, so every package can write it.

Examples
--------
>>> import xarray as xr
>>> ds = set_quality(xr.Dataset(), warnings=["the B-O-B FWHM sits at its upper bound 2.5 eV."])
>>> ds.attrs["quality"], ds.attrs["quality_reasons"]
('warning', ['the B-O-B FWHM sits at its upper bound 2.5 eV.'])
>>> worst("ok", "warning", "failed")
'failed'
"""

from __future__ import annotations

OK, WARNING, FAILED = "ok", "warning", "failed"
LEVELS = (OK, WARNING, FAILED)


def worst(*qualities: str) -> str:
    """The worst of several quality words (``ok`` < ``warning`` < ``failed``); ``ok`` for none."""
    rank = [LEVELS.index(q) for q in qualities if q in LEVELS]
    return LEVELS[max(rank)] if rank else OK


def record(failed=(), warnings=()) -> tuple[str, list[str]]:
    """``(quality, reasons)`` from the failed and warning sentences (duplicates dropped, order kept)."""
    failed = list(dict.fromkeys(str(s) for s in failed))
    warnings = [s for s in dict.fromkeys(str(s) for s in warnings) if s not in failed]
    quality = FAILED if failed else WARNING if warnings else OK
    return quality, failed + warnings


def set_quality(ds, failed=(), warnings=()):
    """Set ``ds.attrs["quality"]`` and ``["quality_reasons"]`` from the sentences; returns ``ds``."""
    ds.attrs["quality"], ds.attrs["quality_reasons"] = record(failed, warnings)
    return ds


def add_quality(ds, failed=(), warnings=()):
    """Merge more sentences into the record ``ds`` already holds (a missing record counts as ``ok``)."""
    old = get_quality(ds)
    old_failed = old[1] if old[0] == FAILED else []
    # an existing failed record lists its failures first; which of its reasons were warnings is
    # not recorded, so they all stay on the failed side (the record stays failed anyway)
    old_warn = old[1] if old[0] == WARNING else []
    return set_quality(ds, old_failed + list(failed), old_warn + list(warnings))


def get_quality(ds) -> tuple[str, list[str]]:
    """``(quality, reasons)`` of a result (or of an attrs mapping); ``("ok", [])`` when it has none."""
    attrs = ds if isinstance(ds, dict) else ds.attrs
    quality = str(attrs.get("quality", OK))
    reasons = attrs.get("quality_reasons", [])
    if isinstance(reasons, str):  # a single reason written as a plain string (NetCDF attribute)
        reasons = [reasons] if reasons else []
    return quality, [str(r) for r in reasons]


def problems(attrs) -> list[str]:
    """Every way ``attrs`` breaks the quality-record convention (empty when it is sound)."""
    out = []
    if "quality" not in attrs:
        return ["has no quality record (attrs['quality'] in ok/warning/failed)"]
    quality = attrs["quality"]
    if quality not in LEVELS:
        out.append(f"quality {quality!r} is not one of {', '.join(LEVELS)}")
    reasons = attrs.get("quality_reasons", [])
    if isinstance(reasons, str):
        reasons = [reasons] if reasons else []
    if not isinstance(reasons, (list, tuple)) or not all(isinstance(r, str) and r for r in reasons):
        out.append("quality_reasons must be a list of sentences")
    elif quality in (WARNING, FAILED) and not reasons:
        out.append(f"quality {quality!r} without a reason")
    return out
