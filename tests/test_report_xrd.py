"""XRD report adapter: demo entries -> analyse -> result conventions -> report section, via a project run."""

from __future__ import annotations

import pytest

from doptrace.report.conventions import check_result, read_netcdf
from doptrace.report.demo import simulate_entries, write_project_file
from doptrace.report.html import Figure, Plot, Table, Text
from doptrace.report.runner import run_project
from doptrace.report.techniques import adapters


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xrd_report")
    write_project_file(folder, simulate_entries(folder, ["xrd"], seed=31), "xrd adapter test")
    return folder, run_project(folder / "project.toml", folder / "out", progress=False)


def test_demo_samples_refine_to_the_simulated_boron(project):
    folder, summary = project
    assert not summary.failed, [a.error for a in summary.failed]
    by_sample = {a.sample: a.results["refinement"] for a in summary.analyses}
    for ds in by_sample.values():
        check_result(ds)
        assert float(ds.gof) == pytest.approx(1.0, abs=0.1)
    # lab-D8 counting statistics (the demo's 3e4 counts): B 0.06 on LiTMO2:Li is a ~1-esd effect
    bulk = by_sample["LBO-LRMO"].sel(site="LiTMO2:Li")
    assert bulk.dopant_verdict.item() == "not determined by these data"
    assert abs(float(bulk.dopant_fraction) - 0.06) < 2 * float(bulk.dopant_fraction_stderr)
    assert 0.04 < float(bulk.dopant_fraction_stderr) < 0.1
    surface = by_sample["BM-LRMO"]
    assert surface.sel(site="LiTMO2:TM").dopant_verdict.item() == "consistent with zero"
    stored = read_netcdf(summary.analyses[0].outputs[0])
    assert stored.attrs["stages"][-1]["stage"] == "+B site fractions"


def test_section_has_plot_parameter_and_verdict_tables(project):
    folder, summary = project
    blocks = adapters()["xrd"].section(summary.analyses)
    assert sum(isinstance(b, (Figure, Plot)) for b in blocks) == 2
    tables = [b for b in blocks if isinstance(b, Table)]
    verdicts = next(t for t in tables if t.caption == "Dopant site fractions")
    assert len(verdicts.rows) == 10 and {r[3] for r in verdicts.rows} >= {"not determined by these data",
                                                                  "consistent with zero"}
    params = next(t for t in tables if t.caption.startswith("Refined parameters"))
    assert any(r[1] == "Li2MnO3" and r[2] == "beta" and "±" in r[3] for r in params.rows)
    assert any(isinstance(b, Text) and "Verdict rule" in b.text for b in blocks)
    html = (folder / "out" / "report.html").read_text()
    assert "X-ray diffraction (Rietveld)" in html and "Dopant site fractions" in html
