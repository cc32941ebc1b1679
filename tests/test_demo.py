"""``doptrace demo`` end to end: simulated files in real formats -> project run -> report, results, provenance."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from report import cli
from report.conventions import check_result, read_netcdf
from report.provenance import sha256_file
from xps.simulate import b1s_share


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
