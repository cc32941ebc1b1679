"""The ToF-SIMS adapter in a project run: demo files, results on disk, report section."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.report.conventions import read_netcdf
from doptrace.report.demo import simulate_entries, write_project_file
from doptrace.report.runner import run_project
from doptrace.report.techniques import adapters

pytest.importorskip("doptrace.tofsims.simulate")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tofsims_project")
    found = simulate_entries(folder, ['tofsims'], seed=7)
    entries = {sample: techniques['tofsims'] for sample, techniques in found.items()}
    write_project_file(folder, found, "tofsims demo")
    summary = run_project(folder / "project.toml", folder / "out", progress=False)
    return folder, entries, summary


def test_demo_entries_follow_the_schema_and_write_real_ita_files(project):
    _, entries, _ = project
    schema = adapters()["tofsims"].ENTRY_SCHEMA
    for found in entries.values():
        assert len(found) == 1
        entry = found[0]
        assert set(entry) <= set(schema)
        assert entry["file"].read_bytes()[:8] == b"ITStrF01"
        assert entry["crater_depth_nm"] == 500.0


def test_project_run_writes_results_that_tell_the_two_samples_apart(project):
    folder, _, summary = project
    assert not summary.failed, [a.error for a in summary.failed]
    results = folder / "out" / "results"
    names = {p.name for p in results.glob("*.nc")}
    for sample in ("BM-LRMO", "LBO-LRMO"):
        for kind in ("maps", "profile", "uniformity", "coloc", "projections", "integrated"):
            assert f"{sample}__tofsims0__{kind}.nc" in names
    bulk_u = read_netcdf(results / "LBO-LRMO__tofsims0__uniformity.nc").sel(fragment="BO-")
    surf_u = read_netcdf(results / "BM-LRMO__tofsims0__uniformity.nc").sel(fragment="BO-")
    assert int(bulk_u["uniform"]) == 1 and float(bulk_u["p_value"]) > 0.05
    assert float(bulk_u["surface_to_bulk"]) == pytest.approx(1.0, abs=0.1)
    assert float(surf_u["surface_to_bulk"]) > 20  # boron only at the surface
    bulk_c = read_netcdf(results / "LBO-LRMO__tofsims0__coloc.nc")
    surf_c = read_netcdf(results / "BM-LRMO__tofsims0__coloc.nc")
    assert float(bulk_c["pearson_r"]) > 0.8 and float(bulk_c["p_value"]) < 0.01
    assert float(surf_c["p_value"]) > 0.05
    profile = read_netcdf(results / "LBO-LRMO__tofsims0__profile.nc")
    assert profile["depth"].attrs["method"].startswith("crater depth 500 nm")
    assert np.nanmax(profile["depth"].values) == pytest.approx(500.0 * 23 / 24)


def test_report_section_has_maps_profiles_coloc_and_comparison(project):
    folder, _, summary = project
    html = (folder / "out" / "report.html").read_text(encoding="utf-8")
    assert 'id="tofsims"' in html
    start = html.index('id="tofsims"')
    section = html[start:]
    assert section.count("<img") >= 7  # 2 x (maps, profile, coloc) + comparison bars
    for caption in ("fragment maps summed over scans", "depth profiles with Poisson error bars",
                    "colocalization of BO- and MnO-", "Comparison LBO-LRMO vs BM-LRMO", "Uniformity with depth",
                    "side projections of the BO- volume",
                    "Colocalization (Costes thresholds)", "Sample comparison"):
        assert caption in section
    assert "NOT uniform" not in section.split("Uniformity with depth")[1].split("</table>")[0].split("LBO-LRMO")[1]


def test_section_comparison_uses_the_integrated_results(project):
    _, _, summary = project
    adapter = adapters()["tofsims"]
    done = [a for a in summary.analyses if a.entry.technique == "tofsims"]
    blocks = adapter.section(done)
    table = [b for b in blocks if getattr(b, "caption", "") == "Sample comparison"][0]
    a = done[0].results["integrated"]
    b = done[1].results["integrated"]
    for row in table.rows:
        name = row[0]
        expected = float(b["intensity"].sel(fragment=name) / a["intensity"].sel(fragment=name))
        assert float(row[1]) == pytest.approx(expected, abs=5e-4)


def test_analyse_a_depth_profile_export(tmp_path):
    from doptrace.tofsims import simulate

    truth = simulate.poisson_counts(simulate.phantom((10, 16, 16), bulk_doped=True, seed=2), seed=2)
    exports = simulate.write_ascii_exports(tmp_path, truth, stem="p")
    results = adapters()["tofsims"].analyse({"file": exports["profile"], "crater_depth_nm": 500.0})
    assert set(results) == {"profile", "uniformity"}
    np.testing.assert_array_equal(results["profile"]["counts"].sel(fragment="InO-").values,
                                  truth["counts"].sel(fragment="InO-").sum(("y", "x")).values)
    assert int(results["uniformity"]["uniform"].sel(fragment="BO-")) == 1


def test_a_broken_file_fails_its_analysis_with_one_line_naming_it(tmp_path):
    (tmp_path / "broken.ita").write_bytes(b"ITStrF01" + bytes(40))
    (tmp_path / "project.toml").write_text(
        'title = "broken"\n[[sample]]\nname = "S"\n[[sample.tofsims]]\nfile = "broken.ita"\n', encoding="utf-8")
    summary = run_project(tmp_path / "project.toml", tmp_path / "out", progress=False)
    assert len(summary.failed) == 1
    error = summary.failed[0].error
    assert "broken.ita" in error and "\n" not in error
    assert not list((tmp_path / "out" / "results").glob("*.nc"))
