"""The adapter protocol: a technique added as its own package plus one adapter file takes part in
everything (project schema, checks, depth axis, cache key, CLI, report) without touching ``report``.

The toy technique here is real code written to a temporary folder: a package ``toytech`` that reads
a two-column text file (sputter time in s, signal) and an adapter ``toy.py`` placed on the adapter
package's search path. Nothing is mocked; the project runs through :func:`report.runner.run_project`.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from doptrace.report import cache, cli, techniques
from doptrace.report.errors import ReportError
from doptrace.report.project import load_project
from doptrace.report.runner import run_project
from doptrace.report.techniques import adapters

TOYTECH = '''
"""A toy technique: a signal per sputter time from a two-column text file."""
import numpy as np
import xarray as xr


def read(path):
    t, signal = np.loadtxt(path, unpack=True)
    return xr.Dataset({"signal": ("scan", signal, {"units": "1"}),
                       "signal_stderr": ("scan", np.sqrt(np.abs(signal)) / 10, {"units": "1"})},
                      coords={"sputter_time": ("scan", t, {"units": "s"})},
                      attrs={"source": str(path), "technique": "toy",
                             # every result carries its quality record (report.conventions refuses one without)
                             "quality": "ok", "quality_reasons": []})
'''

TOY_ADAPTER = '''
"""Toy adapter: one threshold, one depth key, one check, one depth track."""
from pathlib import Path

NAME = "toy"
TITLE = "Toy technique"
LABEL = "Toy"
CODE = ("toytech",)
ENTRY_SCHEMA = {"file": ("file", True)}
THRESHOLDS = {"toy_max_signal": ("number", 5.0, "largest mean signal of a bulk-doped sample")}
DEPTH_KEYS = {"toy_rate": "rate"}


def register_cli(subparsers):
    parser = subparsers.add_parser(NAME, help="toy technique")
    parser.set_defaults(handler=lambda args: 0)


def analyse(settings):
    import toytech

    return {"profile": toytech.read(settings["file"])}


def checks(sample, results, th, depth):
    from doptrace.report.checks import CONTRADICTED, SUPPORTED, Check

    mean = float(results["profile"]["signal"].mean())
    verdict = SUPPORTED if mean <= th["toy_max_signal"] else CONTRADICTED
    return [Check(sample, LABEL, "toy signal low", "mean signal", mean, 0.0, "1",
                  f"<= {th['toy_max_signal']:g}", verdict, f"mean {mean:g}")]


def depth_track(results, th, depth):
    from doptrace.report.depth import Track, etch_depth

    if not results or depth.get("toy_rate") is None:
        return None
    profile = results[0]["profile"]
    z, dz = etch_depth(profile["sputter_time"].values, depth["toy_rate"])
    track = Track(sources=[profile.attrs["source"]])
    track.data.update(toy_depth=("toy_scan", z, {"units": "nm"}), toy_depth_stderr=("toy_scan", dz, {"units": "nm"}),
                      toy_signal=("toy_scan", profile["signal"].values,
                                  {"units": "1", **Track.plotted("toy_depth", "left", 1.0, "o-", "toy signal")}),
                      toy_signal_stderr=("toy_scan", profile["signal_stderr"].values, {"units": "1"}))
    return track


def section(analyses):
    from doptrace.report.html import Text

    return [Text(f"toy analyses: {len(analyses)}")]


def demo_entries(data_dir, sample, bulk_doped, seed):
    return []
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy package importable and the toy adapter discovered; both gone afterwards."""
    package = tmp_path / "lib" / "toytech"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TOYTECH, encoding="utf-8")
    adapter_dir = tmp_path / "adapters"
    adapter_dir.mkdir()
    (adapter_dir / "toy.py").write_text(TOY_ADAPTER, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setattr(techniques, "__path__", [*techniques.__path__, str(adapter_dir)])
    cache.code_fingerprint.cache_clear()
    yield package
    for name in ("toytech", "doptrace.report.techniques.toy"):
        sys.modules.pop(name, None)
    cache.code_fingerprint.cache_clear()


def _project(folder: Path, checks: str = "toy_max_signal = 10.0") -> Path:
    t = np.arange(6) * 20.0
    np.savetxt(folder / "a.txt", np.column_stack([t, [9.0, 8.0, 7.0, 7.0, 7.0, 7.0]]))
    (folder / "project.toml").write_text(textwrap.dedent(f'''
        title = "toy"
        [checks]
        {checks}
        [[sample]]
        name = "S"
        [sample.depth]
        toy_rate = "0.5 ± 0.05 nm/s"
        [[sample.toy]]
        file = "a.txt"
        '''), encoding="utf-8")
    return folder / "project.toml"


def test_toy_adapter_takes_part_in_schema_checks_depth_and_report(toy, tmp_path):
    assert list(adapters()) == ["xrd", "xps", "tofsims", "eds", "toy"]
    project = load_project(_project(tmp_path))
    assert project.checks["S"]["toy_max_signal"] == 10.0
    assert project.checks["S"]["surface_depth"] == 60.0  # the common thresholds are still there
    assert project.depth["S"]["toy_rate"].value == 0.5 and project.depth["S"]["toy_rate"].stderr == 0.05
    summary = run_project(tmp_path / "project.toml", tmp_path / "out", progress=False, workers=1)
    assert not summary.failed
    evidence = summary.evidence[0]
    assert evidence.techniques == {"Toy": "supported"}
    (row,) = evidence.checks
    assert row.value == pytest.approx(45.0 / 6)  # the file's mean signal
    assert evidence.series["toy_depth"].values.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert evidence.series["toy_depth_stderr"].values[-1] == pytest.approx(5.0)
    assert evidence.series.attrs["techniques"] == "Toy"
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Toy technique" in html and "toy analyses: 1" in html
    record = json.loads((tmp_path / "out" / "checks.json").read_text(encoding="utf-8"))
    assert record[0]["techniques"] == {"Toy": "supported"} and record[0]["checks"][0]["technique"] == "Toy"


def test_toy_threshold_decides_the_verdict_and_unknown_keys_name_it(toy, tmp_path):
    summary = run_project(_project(tmp_path, "toy_max_signal = 5.0"), tmp_path / "out", progress=False, workers=1)
    assert summary.evidence[0].techniques == {"Toy": "contradicted"}
    with pytest.raises(ReportError, match="toy_max_signal"):  # the list of known keys names the toy's
        load_project(_project(tmp_path, "toy_max = 5.0"))
    with pytest.raises(ReportError, match="toy_rate"):
        (tmp_path / "project.toml").write_text(
            (tmp_path / "project.toml").read_text().replace("toy_rate", "toy_speed"), encoding="utf-8")
        load_project(tmp_path / "project.toml")


def test_toy_cli_command_is_registered(toy):
    assert cli.main(["toy"]) == 0


def test_cache_key_follows_the_toy_package_code(toy):
    names = [name for name, _ in cache.code_files()]
    assert "toytech/__init__.py" in names and "doptrace.report.techniques.toy" in names
    before = cache.code_fingerprint()
    (toy / "extra.py").write_text("SCALE = 1.0\n", encoding="utf-8")  # a new module of the package
    cache.code_fingerprint.cache_clear()
    added = cache.code_fingerprint()
    assert added != before
    (toy / "extra.py").write_text("SCALE = 2.0\n", encoding="utf-8")  # a change inside it
    cache.code_fingerprint.cache_clear()
    assert cache.code_fingerprint() not in (before, added)


@pytest.mark.parametrize("name", ["xps", "xrd", "tofsims", "eds"])
def test_cache_key_covers_every_file_of_each_technique_package(name):
    adapter = adapters()[name]
    covered = {path.resolve() for _, path in cache.code_files()}
    assert Path(adapter.__file__).resolve() in covered
    for package in adapter.CODE:
        root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        files = [p.resolve() for p in root.rglob("*.py") if "__pycache__" not in p.parts]
        assert len(files) > 5
        assert set(files) <= covered, sorted(set(files) - covered)
