"""The technique adapters: the only place where ``report`` meets ``xps``, ``xrd``, ``tofsims``, ``stem_eds``.

Each public module here is one technique's adapter; it carries everything the report knows about
that technique, so adding a technique touches its own package and one adapter file only. The rest
of :mod:`report` (project schema, checks, depth axis, cache key, CLI, report) loops over
:func:`adapters`.

Required:

``NAME``
    CLI subcommand and project-file key (``xps``, ``xrd``, ``tofsims``, ``eds``).
``TITLE``
    Section title in the report.
``LABEL``
    The technique's name in checks and verdicts (``"XPS"``, ``"ToF-SIMS"``).
``CODE``
    Names of the packages whose source decides this adapter's results (``("doptrace.xps",)``);
    the cache key covers every file in them and the adapter module itself (:mod:`report.cache`).
``ENTRY_SCHEMA``
    ``{key: (kind, required)}`` for one ``[[sample.NAME]]`` table of a project file; kind is one of
    ``"file"`` (a path relative to the project file, must exist), ``"text"``, ``"number"``,
    ``"list"``, ``"table"``, ``"bool"``.
``register_cli(subparsers)``
    Adds ``doptrace NAME ...`` commands; each handler returns an exit code.
``analyse(settings) -> dict[str, xarray.Dataset]``
    Runs one project entry (its ``file`` keys already resolved to absolute ``Path``) to named
    results that follow :mod:`report.conventions`. A result resting on a file written by
    doptrace's simulators carries that file's marker in ``attrs["simulated"]`` (the technique's
    reader finds it, its pipeline carries it: :mod:`doptrace.core.simulated`); the runner gives it
    to every result of the entry, and the report's SIMULATED DATA banner is made from it alone.
``checks(sample, results, thresholds, depth) -> list[report.checks.Check]``
    The doping-distribution evidence of one analysis' results (empty when they hold none);
    ``depth`` is the sample's depth table (:class:`doptrace.core.units.Quantity` per key).
``section(analyses) -> list``
    Report blocks (:mod:`report.html` ``Text``/``Table``/``Plot``) for a list of
    :class:`report.runner.Analysis` of this technique.
``demo_entries(data_dir, sample, bulk_doped, seed) -> list[dict]``
    Simulates this technique's files for the demo sample and returns its project entries.

Optional:

``THRESHOLDS``
    ``{key: (kind, default, meaning)}`` of its checks, settable in a project's ``[checks]``
    (beside :data:`report.checks.COMMON_THRESHOLDS`).
``VERDICT_RULE``
    ``"all"`` (default: every decisive row must support) or ``"any"`` (one supporting row suffices).
``DEPTH_KEYS``
    ``{key: quantity kind}`` it reads from a project's ``[depth]`` tables.
``depth_track(results_list, thresholds, depth) -> report.depth.Track | None``
    Its series on the sample's common depth axis, from the results of its successful analyses.
``prepare_entry(settings, depth, surface_nm, where, checks) -> list[str]``
    Completes one entry's settings from the sample's depth table, surface depth and ``[checks]``
    values (e.g. the declared dopant's fragments or component, so no dopant is a default in
    code); returns problems.
``demo_depth(entries) -> dict``
    The demo sample's ``[sample.depth]`` keys for its entries (may move keys out of the entries).

Module top levels import only the standard library and light :mod:`report` modules: the CLI
imports every adapter to build its parser, and ``doptrace --help`` must not pay for numpy,
xarray, matplotlib or the technique packages (tests/test_cli_startup.py). Heavy imports go
inside the functions. Modules whose name starts with ``_`` are helpers, not adapters.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

REQUIRED = ("NAME", "TITLE", "LABEL", "CODE", "ENTRY_SCHEMA", "register_cli", "analyse", "checks", "section",
            "demo_entries")
#: report order of the bundled techniques; others follow by name
ORDER = ("xrd", "xps", "tofsims", "eds")


def adapters() -> dict[str, ModuleType]:
    """``{NAME: module}`` for every complete adapter in this package, in a stable order."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in REQUIRED):
            found[module.NAME] = module
    return dict(sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0])))
