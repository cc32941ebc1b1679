"""One module per file format; each exposes ``NAME``, ``EXTENSIONS``, ``sniff(head)`` and
``read_all(path, **kw)`` (patterns) or ``read_instrument(path, ...)`` (instrument files).

``REGISTRY`` maps a lower-case extension to the candidate pattern-format modules in the order they
are tried; ``INSTRUMENT_REGISTRY`` does the same for instrument parameter files.  When the
extension is unknown or ambiguous (``.raw`` is both Bruker binary and GSAS text) the first bytes
decide (:func:`find_format`); when no format recognises the content, the extension's own reader
runs so that its error names the actual problem.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ._pattern import fail

#: Pattern formats, in the order content sniffing tries them (most specific first).
PATTERN_MODULES = ("bruker_raw", "brml", "xrdml", "gsas", "xy")
#: Instrument parameter formats.
INSTRUMENT_MODULES = ("instprm", "prm")

_SNIFF_BYTES = 8192


def _load(names) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return modules


def _registry(modules) -> dict[str, list[ModuleType]]:
    table: dict[str, list[ModuleType]] = {}
    for module in modules:
        for ext in module.EXTENSIONS:
            table.setdefault(ext.lower(), []).append(module)
    return table


FORMATS: list[ModuleType] = _load(PATTERN_MODULES)
INSTRUMENT_FORMATS: list[ModuleType] = _load(INSTRUMENT_MODULES)
#: ``{".ext": [module, ...]}`` for powder patterns.
REGISTRY: dict[str, list[ModuleType]] = _registry(FORMATS)
#: ``{".ext": [module, ...]}`` for instrument parameter files.
INSTRUMENT_REGISTRY: dict[str, list[ModuleType]] = _registry(INSTRUMENT_FORMATS)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise fail(path, "no such file") from None
    except IsADirectoryError:
        raise fail(path, "is a directory, not a file") from None
    except OSError as exc:
        raise fail(path, f"cannot open: {exc.strerror or exc}") from None


def _choose(path, fmt, modules, registry, what) -> ModuleType:
    path = Path(path)
    if fmt is not None:
        for module in modules:
            if module.NAME == fmt or module.__name__.rsplit(".", 1)[-1] == fmt:
                return module
        names = ", ".join(m.NAME for m in modules)
        raise fail(path, f"unknown {what} format {fmt!r} (known: {names})")
    head = _head(path)
    if not head:
        raise fail(path, "file is empty")
    candidates = registry.get(path.suffix.lower(), [])
    for module in candidates:
        if module.sniff(head):
            return module
    for module in modules:
        if module not in candidates and module.sniff(head):
            return module
    if candidates:
        # nothing recognised the content: let the extension's reader say precisely what is wrong
        return candidates[0]
    known = ", ".join(sorted(registry))
    raise fail(path, f"not a recognised {what} file (by extension {path.suffix or '(none)'} or content); known: {known}")


def find_format(path, fmt: str | None = None) -> ModuleType:
    """The pattern-format module for ``path`` (by ``fmt`` name, else extension + content)."""
    return _choose(path, fmt, FORMATS, REGISTRY, "powder pattern")


def find_instrument_format(path, fmt: str | None = None) -> ModuleType:
    """The instrument-format module for ``path`` (``.prm``/``.instprm`` by extension + content)."""
    return _choose(path, fmt, INSTRUMENT_FORMATS, INSTRUMENT_REGISTRY, "instrument parameter")
