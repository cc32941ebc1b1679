"""The technique adapters: the only place where ``report`` meets ``xps``, ``xrd``, ``tofsims``, ``stem_eds``.

Each module here is one technique's adapter and defines:

``NAME``
    CLI subcommand and project-file key (``xps``, ``xrd``, ``tofsims``, ``eds``).
``TITLE``
    Section title in the report.
``ENTRY_SCHEMA``
    ``{key: (kind, required)}`` for one ``[[sample.NAME]]`` table of a project file; kind is one of
    ``"file"`` (a path relative to the project file, must exist), ``"text"``, ``"number"``,
    ``"list"``, ``"table"``, ``"bool"``.
``register_cli(subparsers)``
    Adds ``doptrace NAME ...`` commands; each handler returns an exit code.
``analyse(settings) -> dict[str, xarray.Dataset]``
    Runs one project entry (its ``file`` keys already resolved to absolute ``Path``) to named
    results that follow :mod:`report.conventions`.
``section(analyses) -> list``
    Report blocks (:mod:`report.html` ``Text``/``Table``/``Figure``) for a list of
    :class:`report.runner.Analysis` of this technique.
``demo_entries(data_dir, sample, bulk_doped, seed) -> list[dict]``
    Simulates this technique's files for the demo sample and returns its project entries.

Adapters are discovered, so adding a technique touches no other file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

REQUIRED = ("NAME", "TITLE", "ENTRY_SCHEMA", "register_cli", "analyse", "section", "demo_entries")


def adapters() -> dict[str, ModuleType]:
    """``{NAME: module}`` for every complete adapter in this package, in a stable order."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in REQUIRED):
            found[module.NAME] = module
    order = ["xrd", "xps", "tofsims", "eds"]
    return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
