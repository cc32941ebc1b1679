"""``doptrace run`` at project level: refusals before work, one bad file among good ones, the cache,
a dask cluster on loopback equal to one process, and instrument metadata escaped in the report.

The project is the demo's XPS and ToF-SIMS files for both samples (simulated, known truth), small
enough to run several times.
"""

from __future__ import annotations

import json
import shutil

import pytest
import xarray as xr

from doptrace.report import cli
from doptrace.report.conventions import read_netcdf
from doptrace.report.demo import demo_depth, simulate_entries, write_project_file
from doptrace.report.errors import ReportError
from doptrace.report.project import load_project
from doptrace.report.provenance import sha256_file
from doptrace.report.runner import run_project

# the project declares its dopant and the names that carry it (no code defaults)
CHECKS = {"surface_depth": "60 nm", "dopant": "B", "xps_component": "TM-O-B", "sims_fragment": "BO-",
          "sims_host": "MnO-"}


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """Demo XPS + ToF-SIMS files of BM-LRMO and LBO-LRMO and their project file (never modified)."""
    directory = tmp_path_factory.mktemp("small")
    entries = simulate_entries(directory, techniques=["xps", "tofsims"])
    return write_project_file(directory, entries, "small", demo_depth(entries), CHECKS)


def _copy(project, tmp_path):
    """A private copy of the project folder, for tests that change or break an input."""
    target = tmp_path / "project"
    shutil.copytree(project.parent, target)
    return target / project.name


def _hashes(out):
    return {p.name: sha256_file(p) for p in sorted((out / "results").glob("*.nc"))}


def test_one_corrupt_file_fails_alone(small_project, tmp_path, capsys):
    project = _copy(small_project, tmp_path)
    broken = project.parent / "data" / "LBO-LRMO_tofsims.ita"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])
    out = tmp_path / "out"

    code = cli.main(["run", str(project), "--out", str(out), "--quiet", "--workers", "2"])

    assert code == cli.EXIT_FAILED_ANALYSES
    assert "LBO-LRMO__tofsims0" in capsys.readouterr().err
    provenance = json.loads((out / "provenance.json").read_text())
    failed = [(a["sample"], a["technique"]) for a in provenance["analyses"] if a["error"]]
    assert failed == [("LBO-LRMO", "tofsims")]
    # every other analysis wrote its results: 2 samples x 2 XPS entries + BM's ToF-SIMS set
    assert {p.name.split("__")[1] for p in (out / "results").glob("*__*__*.nc")} == {"xps0", "xps1", "tofsims0"}
    assert not list((out / "results").glob("LBO-LRMO__tofsims0__*.nc"))
    html = (out / "report.html").read_text()
    assert "FAILED" in html and "LBO-LRMO_tofsims.ita" in html
    evidence = {e["sample"]: e for e in json.loads((out / "checks.json").read_text())}
    sims = [c for c in evidence["LBO-LRMO"]["checks"] if c["technique"] == "ToF-SIMS"]
    assert len(sims) == 1 and sims[0]["verdict"] == "not determined" and "failed" in sims[0]["reason"]
    # the sample's other evidence still stands: XPS finds the flat bulk share
    assert evidence["LBO-LRMO"]["techniques"] == {"XPS": "supported", "ToF-SIMS": "not determined"}
    assert evidence["BM-LRMO"]["verdict"] == "contradicted"


def test_rerun_redoes_only_what_changed(small_project, tmp_path):
    project = _copy(small_project, tmp_path)
    out = tmp_path / "out"
    first = run_project(project, out, progress=False, workers=1)
    assert len(first.redone) == len(first.analyses) == 6
    before = _hashes(out)

    again = run_project(project, out, progress=False, workers=1)
    assert again.redone == [] and again.report_reused and _hashes(out) == before

    # a stricter threshold re-weighs the evidence without redoing any analysis
    project.write_text(project.read_text().replace('surface_depth = "60 nm"',
                                                   'surface_depth = "60 nm"\nsims_min_r = 0.9999', 1))
    stricter = run_project(project, out, progress=False, workers=1)
    assert stricter.redone == [] and not stricter.report_reused
    coloc = [c for e in stricter.evidence if e.sample == "LBO-LRMO" for c in e.checks if "colocalized" in c.claim]
    assert coloc[0].verdict == "contradicted" and coloc[0].value < 0.9999
    assert _hashes(out) == before

    # a changed parameter redoes that analysis only
    text = project.read_text().replace("seed = 107", "seed = 108", 1)
    assert text != project.read_text()
    project.write_text(text)
    third = run_project(project, out, progress=False, workers=1)
    assert [a.entry.key for a in third.redone] == ["LBO-LRMO__tofsims0"]
    after = _hashes(out)
    changed = {name for name in before if before[name] != after[name]}
    assert changed and all(name.startswith("LBO-LRMO__tofsims0__") for name in changed)

    # a file that breaks after a good run leaves no stale results behind
    xps = project.parent / "data" / "BM-LRMO_xps.vms"
    xps.write_text("not a VAMAS file\n")
    fourth = run_project(project, out, progress=False, workers=1)
    assert {a.entry.key for a in fourth.failed} == {"BM-LRMO__xps0", "BM-LRMO__xps1"}
    assert not list((out / "results").glob("BM-LRMO__xps*"))


def test_dask_cluster_on_loopback_equals_one_process(small_project, tmp_path):
    distributed = pytest.importorskip("distributed")
    single = run_project(small_project, tmp_path / "single", progress=False, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        code = cli.main(["run", str(small_project), "--out", str(tmp_path / "dask"), "--quiet",
                         "--scheduler", cluster.scheduler_address])
    assert code == 0 and not single.failed
    names = sorted(p.name for p in (tmp_path / "single" / "results").glob("*.nc"))
    assert names == sorted(p.name for p in (tmp_path / "dask" / "results").glob("*.nc")) and len(names) >= 15
    for name in names:
        xr.testing.assert_identical(read_netcdf(tmp_path / "single" / "results" / name),
                                    read_netcdf(tmp_path / "dask" / "results" / name))
    assert json.loads((tmp_path / "single" / "checks.json").read_text()) == \
        json.loads((tmp_path / "dask" / "checks.json").read_text())


def test_unreachable_scheduler_is_one_clear_error(small_project, tmp_path, capsys):
    code = cli.main(["run", str(small_project), "--out", str(tmp_path / "o"), "--quiet",
                     "--scheduler", "tcp://127.0.0.1:9"])
    assert code == cli.EXIT_BAD_INPUT
    assert "tcp://127.0.0.1:9" in capsys.readouterr().err


def test_depth_and_check_problems_are_refused_together(small_project, tmp_path):
    project = _copy(small_project, tmp_path)
    text = project.read_text()
    text = text.replace('surface_depth = "60 nm"', 'surface_depth = "60 s"\nslope_sigmas = 3', 1)
    text = text.replace('xps_etch_rate = "0.40 ± 0.04 nm/s"', 'xps_etch_rate = "0.40 nm"', 1)
    text = text.replace('sims_crater_depth = "500 ± 25 nm"', 'sims_crater_depth = "500 ± 25 nm"\ncrater = 3', 1)
    text = text.replace("seed = 7\n", "seed = 7\ncrater_depth_nm = 450.0\n", 1)
    text = text.replace("data/LBO-LRMO_xps.vms", "data/missing.vms", 1)
    project.write_text(text)
    with pytest.raises(ReportError) as info:
        load_project(project)
    message = str(info.value)
    for words in ["surface_depth: 's' is a time unit", "unknown key 'slope_sigmas'",
                  "xps_etch_rate: 'nm' is a length unit, but a rate", "unknown key 'crater'",
                  "crater_depth_nm = 450 nm disagrees", "file 'data/missing.vms' not found"]:
        assert words in message, words
    out = tmp_path / "never"
    assert cli.main(["run", str(project), "--out", str(out), "--quiet"]) == cli.EXIT_BAD_INPUT
    assert not out.exists()


INJECTION = "<script>alert(1)</script>"


def test_sample_name_from_an_instrument_file_shows_as_text(tmp_path):
    from doptrace.tofsims import simulate

    data = tmp_path / "data"
    data.mkdir()
    truth = simulate.demo_volume(INJECTION, True, seed=3, shape=(12, 32, 32))
    simulate.write_ita(data / "tricky.ita", truth, seed=3)
    entries = {"tricky": {"tofsims": [{"file": data / "tricky.ita", "pair": "BO-:MnO-", "seed": 3}]}}
    project = write_project_file(tmp_path, entries, "injection",
                                 {"tricky": {"sims_crater_depth": "200 ± 10 nm"}}, CHECKS)
    summary = run_project(project, tmp_path / "out", progress=False, workers=1)
    assert not summary.failed
    html = (tmp_path / "out" / "report.html").read_text()
    assert INJECTION not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    from browser import find_chromium, render

    if find_chromium() is None:
        pytest.skip("chromium not installed: .ci/run installs it; the escaped HTML was checked above")
    page = render(tmp_path / "out" / "report.html")
    assert page.dialogs == [] and page.exceptions == [] and page.console_errors == []
    assert INJECTION in page.text


def test_a_killed_pool_worker_loses_no_analysis(small_project, tmp_path):
    """The OS killing one worker (as an out-of-memory kill would) breaks the process pool; the
    analyses it took down are run again, so every analysis still completes."""
    import os
    import signal
    import threading
    import time

    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    killed = []

    def kill_one_worker_mid_run():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            started = list((out / "results").glob("*.nc")) if (out / "results").is_dir() else []
            workers = [p for p in psutil.Process().children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            if started and workers:  # the pool is mid-run: some results written, more to come
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(len(started))
            time.sleep(0.05)

    thread = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
    thread.start()
    summary = run_project(small_project, out, progress=False, workers=2)
    thread.join(timeout=5)
    assert killed, "no worker was killed while the run was going"
    assert not summary.failed, [a.error for a in summary.failed]
    assert len(list((out / "results").glob("*__*__*.nc"))) == 2 * (3 + 6)  # per sample: XPS fit+quant, fit; ToF-SIMS 6
