"""Which data were written by doptrace's own simulators: one marker rule for every technique.

Each simulator writes a marker into its file where the instrument format keeps free text, the way
instruments keep comments: a line or value that starts with ``doptrace`` and holds ``simulat``
(the ``.xye`` header ``# doptrace XRD simulation: ...``, the VAMAS instrument ``doptrace simulator
(...)``, the HyperSpy title ``doptrace simulated ...``, the ITA comment property ``doptrace ToF-SIMS
simulation ...``). Each reader that finds one puts the marker's text into
``attrs["simulated"]`` (:func:`marker_in`); each pipeline carries it into the results it derives
(:func:`carry`), so a result says it rests on simulated data, and the report can say so in a
banner. Measured files never carry the attribute.

Examples
--------
>>> marker_in(["# wavelength = 1.5406", "# doptrace XRD simulation: simulation of li-rich.toml"])
'doptrace XRD simulation: simulation of li-rich.toml'
>>> marker_in(["Kratos Axis Supra", "comment: compared with a doptrace simulation"])
''
"""

from __future__ import annotations

import re

#: the attribute a simulated file's data and every result derived from it carry
ATTR = "simulated"

# "doptrace", then on the same line a word starting "simulat": the prefix keeps a real file whose
# comment happens to mention a simulation from being taken for doptrace's own
_MARKER = re.compile(r"^[\s#!;%'/*]*(doptrace\b[^\n]*\bsimulat[^\n]*)", re.IGNORECASE)


def marker_in(texts) -> str:
    """The first of ``texts`` (strings; a single string is one text) that is a simulator's marker,
    stripped of comment characters; ``""`` when none is."""
    for text in [texts] if isinstance(texts, str) else texts:
        match = _MARKER.match(str(text or ""))
        if match:
            return match.group(1).strip()
    return ""


def simulated(obj) -> str:
    """The marker an xarray object (or anything with ``attrs``) carries; ``""`` for measured data."""
    return str(getattr(obj, "attrs", {}).get(ATTR, "") or "")


def mark(obj, text: str):
    """Set ``obj.attrs["simulated"]`` to ``text`` when it is not empty; returns ``obj``."""
    if text:
        obj.attrs[ATTR] = str(text)
    return obj


def carry(source, results):
    """Copy ``source``'s marker into every result (a Dataset, or a dict or list of them) that has
    none; returns ``results``. ``source`` may be a marker string or an object with ``attrs``."""
    text = source if isinstance(source, str) else simulated(source)
    if text:
        for result in results.values() if isinstance(results, dict) else (
                results if isinstance(results, (list, tuple)) else [results]):
            if result is not None and not simulated(result):
                mark(result, text)
    return results


def spread(results: dict) -> dict:
    """Give every result of one analysis the marker any of them carries (they rest on the same inputs)."""
    text = next((simulated(r) for r in results.values() if simulated(r)), "")
    return carry(text, results)
