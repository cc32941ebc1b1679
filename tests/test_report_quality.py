"""Verdicts use the quality record: a failed fit never reaches a verdict; the report is dopant-neutral."""

from __future__ import annotations

import re

import numpy as np
import pytest

from doptrace import xps
from doptrace.core.units import Quantity
from doptrace.report import checks as ck
from doptrace.report.crosscheck import evaluate_sample
from doptrace.report.project import Entry
from doptrace.report.runner import Analysis
from doptrace.xps.model import simple_model
from doptrace.xps.series import fit_region
from doptrace.xps.simulate import simulate_series

B1S = [{"name": "B-O-B", "center": [192.0, 191.7, 192.3], "fwhm": [1.4, 0.8, 2.4]},
       {"name": "TM-O-B", "center": [191.1, 190.8, 191.4], "fwhm": {"same_as": "B-O-B"}}]
B1S_FAR = [{"name": "B-O-B", "center": [196.0, 195.8, 196.2], "fwhm": [0.5, 0.45, 0.55]},
           {"name": "TM-O-B", "center": [187.5, 187.3, 187.7], "fwhm": {"same_as": "B-O-B"}}]
TH = {**ck.defaults(), "dopant": "B", "xps_component": "TM-O-B", "surface_depth": 60.0}


def _evidence(fit):
    analysis = Analysis(Entry("S", "xps", 0, {}), {"fit": fit})
    return evaluate_sample("S", [analysis], TH, {"xps_etch_rate": Quantity(0.4, 0.04, "nm/s")})


def test_a_failed_xps_fit_never_reaches_a_verdict(tmp_path):
    path = tmp_path / "b.vms"
    simulate_series(path, bulk_doped=True, seed=3)
    blocks = xps.read(path)
    active = {"shirley": "active", "average": 5}
    good = fit_region(blocks, simple_model("B 1s", B1S, window=(186.0, 197.0), background=active), source=str(path))
    bad = fit_region(blocks, simple_model("B 1s", B1S_FAR, window=(186.0, 197.0), background=active),
                     source=str(path))
    assert good.attrs["quality"] == "ok" and bad.attrs["quality"] == "failed"
    # the good fit: the bulk-doped truth (share 0.5 beyond 150 s of etching) is supported
    ok = _evidence(good)
    assert ok.techniques == {"XPS": "supported"} and ok.series is not None and "xps_share" in ok.series
    # the failed fit says TM-O-B is 100 % of B 1s at every level, which would read as "supported":
    np.testing.assert_allclose(bad["fraction"].sel(component="TM-O-B").values, 1.0)
    failed = _evidence(bad)
    assert failed.techniques == {"XPS": "not determined"}
    assert failed.verdict == "not determined"
    for row in failed.checks:
        assert row.verdict == "not determined" and row.quality == "failed"
        # the fit's own first reason, whichever levels hit the iteration limit
        assert row.reason.startswith("Not determined: fit failed (The fit did not converge at ")
        assert bad.attrs["quality_reasons"][0].rstrip(".") in row.reason
    # nor does its share reach the depth overlay
    assert failed.series is None or "xps_share" not in failed.series


def test_a_warning_stays_beside_the_number_and_in_the_quality_column(tmp_path):
    from doptrace.report.overview import check_rows

    path = tmp_path / "b.vms"
    simulate_series(path, bulk_doped=True, seed=3)
    pinned = [dict(B1S[0]), dict(B1S[1], center=[191.45, 191.3, 191.6])]  # TM-O-B held 0.2 eV off its truth
    fit = fit_region(xps.read(path), simple_model("B 1s", pinned, window=(186.0, 197.0),
                                                  background={"shirley": "active", "average": 5}))
    assert fit.attrs["quality"] == "warning"
    evidence = _evidence(fit)
    rows = check_rows(evidence.checks)
    for row, check in zip(rows, evidence.checks):
        assert row[2].endswith(" [warning]") and row[6].startswith("warning: ") and "TM-O-B.center sits at its lower bound 191.3" in row[6]
        assert check.verdict in ("supported", "contradicted", "not determined")


@pytest.fixture(scope="module")
def aluminium_report(tmp_path_factory):
    """A project about Al that declares nothing else: XPS In 3d/O 1s/C 1s series and an AlO- ToF-SIMS
    stack of two samples, no xps_component, sims_fragment or sims_host."""
    from simulated_inputs import tofsims_entry

    from doptrace.core.atomic import write_text
    from doptrace.report import cli
    from doptrace.report.demo import write_project_file
    from doptrace.report.examples_data import example_text

    folder = tmp_path_factory.mktemp("al")
    data = folder / "data"
    data.mkdir()
    entries = {}
    for k, (sample, rim) in enumerate((("Al-coated", True), ("Al-doped", False))):
        vms = data / f"{sample}_xps.vms"
        simulate_series(vms, bulk_doped=not rim, seed=11 + k, regions=("In 3d", "O 1s", "C 1s"), sample=sample)
        in3d = write_text(data / "in3d.toml", example_text("xps/in3d_oxide.toml"))
        entries[sample] = {
            "xps": [{"file": vms, "model": in3d, "c1s": True, "headline": "In-O",
                     "quantify": ["In 3d", "O 1s", "C 1s"]}],
            "tofsims": [tofsims_entry(data, sample, not rim, seed=11 + k)],
        }
    project = write_project_file(folder, entries, "Al in Li-rich oxides",
                                 {s: {"xps_etch_rate": "0.40 ± 0.04 nm/s"} for s in entries},
                                 {"dopant": "Al", "surface_depth": "60 nm"})
    code = cli.main(["run", str(project), "--out", str(folder / "out"), "--quiet", "--workers", "1"])
    return code, (folder / "out" / "report.html").read_text()


def test_a_project_without_boron_never_mentions_boron(aluminium_report):
    code, html = aluminium_report
    assert code == 0
    text = re.sub(r'<img [^>]*>', "", html)  # figures are PNGs: their bytes are not words
    assert "does Al sit in the bulk lattice" in text
    # (MnO- is one of the ToF-SIMS file's fragments here, analysed as such, never as a default pair's host)
    for word in BORON_WORDS:
        assert word not in text, word
    assert not re.search(r"\bB\b", text)
    # the checks that cannot be made say why instead of vanishing (or falling back to a boron pair)
    assert "Cannot be checked: " in text and "the project declares no xps_component" in text
    assert "the project declares no sims_fragment, sims_host" in text
    assert "colocalized with" not in text and "Colocalization" not in text


BORON_WORDS = ("boron", "Boron", "B 1s", "B K", "B_Ka", "BO-", "BO2-", "B-O", "TM-O-B", "Li2B4O7", "B3+", "MnO- pair")


@pytest.fixture(scope="module")
def aluminium_everywhere(tmp_path_factory):
    """Two Al samples seen by all four techniques (simulated inputs, tests/simulated_inputs.py): Al on
    the TM site (XRD), Al 2p TM-O-Al (XPS), AlO- in the MnO- grains (ToF-SIMS), Al K (EDS); the
    project declares Al and its components, the ToF-SIMS entries name no pair."""
    from simulated_inputs import eds_entry, run_project, tofsims_entry, xps_entry, xrd_entry

    folder = tmp_path_factory.mktemp("al4")
    data = folder / "data"
    data.mkdir()
    entries = {}
    for k, (sample, bulk) in enumerate((("Al-coated", False), ("Al-doped", True))):
        entries[sample] = {"xrd": [xrd_entry(data, sample, bulk, 21 + k)], "xps": [xps_entry(data, sample, bulk, 21 + k)],
                           "tofsims": [tofsims_entry(data, sample, bulk, 21 + k)],
                           "eds": [eds_entry(data, sample, bulk, 21 + k)]}
    checks = {"dopant": "Al", "xps_component": "TM-O-Al", "sims_fragment": "AlO-", "sims_host": "MnO-",
              "surface_depth": "60 nm", "xrd_sites": ["LiTMO2:TM"], "xrd_expected_fraction": 0.05}
    depth = {s: {"xps_etch_rate": "0.40 ± 0.04 nm/s", "sims_crater_depth": "500 ± 25 nm"} for s in entries}
    code, html, out = run_project(folder, entries, checks, depth)
    return code, html, out


def test_an_aluminium_project_across_four_techniques_never_mentions_boron(aluminium_everywhere):
    import json

    code, html, out = aluminium_everywhere
    assert code == 0
    text = re.sub(r'<img [^>]*>', "", html)
    for word in BORON_WORDS:
        assert word not in text, word
    assert not re.search(r"\bB\b", text)
    evidence = {e["sample"]: e for e in json.loads((out / "checks.json").read_text())}
    claims = {e: {(c["technique"], c["claim"]): c for c in evidence[e]["checks"]} for e in evidence}
    doped, coated = claims["Al-doped"], claims["Al-coated"]
    # every technique made its checks from the declared Al components, none "cannot be checked"
    assert not any(c["claim"].startswith("checks of ") for rows in claims.values() for c in rows.values())
    # XRD: Al on the TM site refines to the simulated 0.10 (bulk) within 3 esd, and is supported
    xrd = doped[("XRD", "Al on LiTMO2:TM")]
    assert abs(xrd["value"] - 0.10) < 3 * xrd["stderr"] and xrd["verdict"] == "supported"
    assert abs(coated[("XRD", "Al on LiTMO2:TM")]["value"]) < 3 * coated[("XRD", "Al on LiTMO2:TM")]["stderr"]
    # XPS: the TM-O-Al share beyond 60 nm is the simulated 50 % in the bulk-doped sample
    share = doped[("XPS", "TM-O-Al share beyond 60 nm")]
    assert abs(share["value"] - 50.0) < 3 * share["stderr"] and share["verdict"] == "supported"
    # ToF-SIMS: the pair came from the project (AlO-:MnO-): AlO- sits in the MnO- grains when bulk doped
    pair = doped[("ToF-SIMS", "AlO- colocalized with MnO-")]
    assert pair["value"] > 0.8 and pair["verdict"] == "supported"
    assert coated[("ToF-SIMS", "AlO- not piled up at the surface")]["verdict"] == "contradicted"
    # EDS: Al uniform in the bulk-doped particle, in a rim only in the coated one
    assert doped[("STEM-EDS", "Al homogeneous")]["verdict"] == "supported"
    assert coated[("STEM-EDS", "Al homogeneous")]["verdict"] == "contradicted"
    assert evidence["Al-coated"]["verdict"] == "contradicted"
    assert "does Al sit in the bulk lattice" in text
