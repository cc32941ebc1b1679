"""``doptrace demo`` end to end: simulated files in real formats -> project run -> report, results, provenance."""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest

from doptrace.report import cli
from doptrace.report.conventions import check_result, read_netcdf
from doptrace.report.provenance import sha256_file
from doptrace.xps.simulate import b1s_share


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = cli.main(["demo", "--out", str(out), "--quiet"])
    return out, code


def test_demo_writes_report_results_and_provenance(demo):
    out, code = demo
    assert code == 0
    project = tomllib.loads((out / "project.toml").read_text())
    assert [s["name"] for s in project["sample"]] == ["BM-LRMO", "LBO-LRMO"]
    for sample in project["sample"]:
        assert {"xrd", "xps", "tofsims", "eds"} <= set(sample)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8 and "FAILED" not in html
    results = sorted((out / "results").glob("*.nc"))
    assert len(results) >= 20
    for path in results:
        check_result(read_netcdf(path), path.name)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["packages"]["numpy"] == np.__version__
    assert not any(a["error"] for a in provenance["analyses"])
    for record in provenance["inputs"]:
        assert record["sha256"] == sha256_file(record["path"])


def test_demo_xps_headline_follows_the_simulated_truth(demo):
    out, _ = demo
    for sample, bulk in (("BM-LRMO", False), ("LBO-LRMO", True)):
        ds = read_netcdf(out / "results" / f"{sample}__xps0__fit.nc").sel(component="TM-O-B")
        truth = b1s_share(ds["etch_time"].values, bulk)
        z = (ds["fraction"].values - truth) / ds["fraction_stderr"].values
        # 8 levels: allow one level beyond 2 sigma (each is 95%), none beyond 4
        assert np.sum(np.abs(z) > 2) <= 1 and np.all(np.abs(z) < 4), z


# The simulated truth: B doped into the bulk of LBO-LRMO, only at the surface of BM-LRMO. What each
# technique can tell from the demo's files is part of the truth too: B K in STEM-EDS has too few
# counts to judge a bulk-uniform 1 at% (it can flag BM-LRMO's surface-rich B), and XRD at lab-D8
# counting statistics (3e4 counts at the strongest peak, Rwp 3.0 %) sees B on the Li sites with an
# esd of ~0.066 (LiTMO2) and ~0.13 (Li2MnO3): a 0.06 fraction is a 1-esd effect, not determined.
EXPECTED = {
    "BM-LRMO": ("contradicted", {"XRD": "not determined", "XPS": "contradicted", "ToF-SIMS": "contradicted",
                                 "STEM-EDS": "contradicted"}),
    "LBO-LRMO": ("supported", {"XRD": "not determined", "XPS": "supported", "ToF-SIMS": "supported",
                               "STEM-EDS": "not determined"}),
}


def test_demo_verdicts_follow_the_simulated_truth(demo):
    out, _ = demo
    evidence = {e["sample"]: e for e in json.loads((out / "checks.json").read_text())}
    for sample, (verdict, techniques) in EXPECTED.items():
        assert evidence[sample]["verdict"] == verdict, evidence[sample]["reason"]
        assert evidence[sample]["techniques"] == techniques
        for check in evidence[sample]["checks"]:
            assert check["reason"].endswith(".") and check["verdict"] in ("supported", "contradicted",
                                                                          "not determined")
    lbo = {c["claim"]: c for c in evidence["LBO-LRMO"]["checks"]}
    # refined B on LiTMO2:Li within 2 esd of the simulated 0.06
    site = lbo["B on LiTMO2:Li"]
    assert abs(site["value"] - 0.06) < 2 * site["stderr"] and 0.04 < site["stderr"] < 0.1  # ~1-esd effect
    for sample in EXPECTED:  # lab counting statistics: the model study's Rwp 3.1-3.3 %
        ref = read_netcdf(out / "results" / f"{sample}__xrd0__refinement.nc")
        assert 2.5 < float(ref["rwp"]) < 3.5 and ref.attrs["quality"] == "ok"
    # XPS mean TM-O-B share beyond the surface within 2 esd of the simulated 50 %
    share = lbo["TM-O-B share beyond 60 nm"]
    assert share["units"] == "%" and abs(share["value"] - 50.0) < 2 * share["stderr"]


def test_demo_depth_axis_carries_the_conversions(demo):
    out, _ = demo
    series = read_netcdf(out / "results" / "LBO-LRMO__depth.nc")
    t = series["xps_etch_time"].values
    np.testing.assert_allclose(series["xps_depth"].values, 0.40 * t)
    np.testing.assert_allclose(series["xps_depth_stderr"].values, 0.04 * t)
    # ToF-SIMS scans of the simulator sit at 500 nm * i / 24; the crater's esd is 5 %
    np.testing.assert_allclose(series["sims_depth"].values, 500.0 * np.arange(24) / 24)
    np.testing.assert_allclose(series["sims_depth_stderr"].values, 25.0 * np.arange(24) / 24)
    for name in ("xps_share", "sims_fraction", "sims_ratio"):
        assert np.all(series[f"{name}_stderr"].values > 0)


def test_demo_rerun_redoes_nothing_and_keeps_every_result_byte_identical(demo, capsys):
    out, _ = demo
    before = {p.name: sha256_file(p) for p in (out / "results").glob("*.nc")}
    times = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*__*__*.nc")}
    report = {name: sha256_file(out / name) for name in ("report.html", "checks.json")}
    code = cli.main(["run", str(out / "project.toml"), "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "10 of 10 analyses reused from the cache; nothing changed, so the report was kept" in printed
    assert "LBO-LRMO: supported." in printed and "BM-LRMO: contradicted." in printed
    assert {name: sha256_file(out / name) for name in ("report.html", "checks.json")} == report
    provenance = json.loads((out / "provenance.json").read_text())
    assert all(a["cached"] for a in provenance["analyses"])
    assert {p.name: sha256_file(p) for p in (out / "results").glob("*.nc")} == before
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*__*__*.nc")} == times


def test_demo_report_renders_in_a_real_browser(demo):
    from browser import find_chromium, render

    if find_chromium() is None:
        pytest.skip("chromium not installed: .ci/run installs it (apt-get install chromium)")
    out, _ = demo
    page = render(out / "report.html", timeout=120)
    assert page.console_errors == [] and page.exceptions == [] and page.dialogs == []
    assert page.failed_requests == []
    html = (out / "report.html").read_text()
    assert page.images_total == html.count("<img ") >= 20
    assert page.images_loaded == page.images_total
    assert not page.blank and page.nonwhite_fraction > 0.01
    # the overview comes first (after the navigation line): the verdict table before any technique section
    body = page.text[page.text.index("\nOverview\n"):]
    assert body.index("Verdicts") < body.index("X-ray diffraction")
    assert "LBO-LRMO\tsupported" in page.text and "BM-LRMO\tcontradicted" in page.text
    # what a reader needs to weigh the numbers, as rendered: version and date, the simulated-data
    # banner, the depth conversions with their esds, the thresholds and a quality column
    from doptrace import __version__

    assert re.search(rf"doptrace {re.escape(__version__)}, report written \d{{4}}-\d\d-\d\d \d\d:\d\d UTC", page.text)
    assert "SIMULATED DATA:" in page.text and "BM-LRMO_xps.vms" in page.text
    assert body.index("SIMULATED DATA:") < body.index("Verdicts")
    assert "xps_etch_rate\t0.4 ± 0.04 nm/s" in page.text and "sims_crater_depth\t500 ± 25 nm" in page.text
    assert "Thresholds of the checks" in page.text and "xrd_expected_fraction" in page.text
    assert "time\tquality" in page.text  # the analyses table's header
    assert "TM-O-B.center sits at its upper bound" in page.text  # BM-LRMO's XPS warning, shown

