"""``doptrace --help`` and ``doptrace <technique> --help`` import no numerics, plotting or technique code.

Each command runs in a fresh interpreter under ``-X importtime``, whose stderr lists every module
imported; the test fails when any heavy module appears (no timing asserts: speed is measured, not
tested, see the report of issue 10, item 8).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from doptrace.report.techniques import adapters

#: top-level modules that must not be imported to print help
HEAVY = ("numpy", "scipy", "xarray", "pandas", "matplotlib", "dask", "distributed", "jinja2", "lmfit", "hyperspy",
         "exspy", "rsciio", "gemmi", "netCDF4", "h5netcdf", "tqdm", "psutil")
#: doptrace's own heavy parts: the technique packages and the report's processing modules
HEAVY_DOPTRACE = ("doptrace.xps", "doptrace.xrd", "doptrace.tofsims", "doptrace.stem_eds", "doptrace.report.runner",
                  "doptrace.report.execute", "doptrace.report.conventions", "doptrace.report.figures",
                  "doptrace.report.html", "doptrace.report.checks", "doptrace.report.depth")


def _imported(*args: str) -> tuple[set[str], str]:
    """Modules imported by ``python -X importtime -m doptrace ARGS`` and its stdout."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "doptrace", *args], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "doptrace.report.cli" in modules  # the listing is real: the CLI module itself is in it
    return modules, run.stdout


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if m.split(".")[0] in HEAVY or any(m == d or m.startswith(d + ".") for d in HEAVY_DOPTRACE))


def test_top_level_help_imports_nothing_heavy():
    modules, out = _imported("--help")
    assert _heavy(modules) == []
    for name in ["run", "demo", *adapters()]:  # every command is listed
        assert name in out


@pytest.mark.parametrize("technique", ["xps", "xrd", "tofsims", "eds"])
def test_technique_help_imports_nothing_heavy(technique):
    modules, out = _imported(technique, "--help")
    assert _heavy(modules) == []
    assert f"doptrace {technique}" in out


def test_the_check_sees_heavy_imports():
    """The same listing does show numpy and the technique package once a command really runs."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", "import doptrace.xps"], capture_output=True,
                         text=True, timeout=120)
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert {"numpy", "xarray", "doptrace.xps"} <= set(_heavy(modules))
