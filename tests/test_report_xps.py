"""The XPS adapter: demo files, project analyses, report section, and a project run end to end."""

from __future__ import annotations

import numpy as np

from doptrace.report.conventions import check_result
from doptrace.report.html import Figure, Plot, Section, Table, draw_plots
from doptrace.report.runner import Analysis, run_project
from doptrace.report.techniques import adapters
from doptrace.report.project import Entry


def _analyse(tmp_path, sample, bulk_doped, seed):
    adapter = adapters()["xps"]
    entries = adapter.demo_entries(tmp_path, sample, bulk_doped, seed)
    assert all(e["file"].is_file() and e["model"].is_file() for e in entries)
    results = [adapter.analyse(dict(e)) for e in entries]
    for result in results:
        for name, ds in result.items():
            check_result(ds, name)
    return entries, results


def test_demo_samples_tell_bulk_from_surface_boron(tmp_path):
    _, bulk = _analyse(tmp_path / "lbo", "LBO-LRMO", True, 7)
    _, surface = _analyse(tmp_path / "bm", "BM-LRMO", False, 107)
    b = bulk[0]["fit"]["fraction"].sel(component="TM-O-B").values
    s = surface[0]["fit"]["fraction"].sel(component="TM-O-B").values
    assert abs(b[0] - 0.1) < 0.05 and np.all(np.abs(b[4:] - 0.5) < 0.05)
    s_err = surface[0]["fit"]["fraction_stderr"].sel(component="TM-O-B").values
    assert s[0] > 0.4
    assert np.all(s[-2:] - 2.5 * s_err[-2:] < 0.02)  # consistent with no lattice boron at depth
    assert b[-1] - s[-1] > 0.3
    quant = bulk[0]["quant"]
    assert np.allclose(quant["atomic_percent"].sum("element"), 100)
    in3d = bulk[1]["fit"]
    oxide = in3d["group_fraction"].sel(group="In-O").values
    oxide_err = in3d["group_fraction_stderr"].sel(group="In-O").values
    truth = 0.1 + 0.2 * np.minimum(in3d["etch_time"].values / 200.0, 1.0)
    assert np.all(np.abs(oxide - truth) < 3 * oxide_err), (oxide, truth, oxide_err)
    assert np.allclose(oxide, in3d["fraction"].sel(component=["In3d5/2 oxide", "In3d3/2 oxide"]).sum("component"))


def test_section_blocks(tmp_path):
    adapter = adapters()["xps"]
    entries, results = _analyse(tmp_path, "LBO-LRMO", True, 3)
    analyses = [Analysis(Entry("LBO-LRMO", "xps", i, e), r) for i, (e, r) in enumerate(zip(entries, results))]
    blocks = adapter.section(analyses)
    draw_plots([Section("xps", blocks)])
    figures = [b for b in blocks if isinstance(b, (Figure, Plot))]
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(figures) == 4  # two headline plots (B 1s, In 3d) and one fit plot per analysis
    assert all(f.uri.startswith("data:image/png;base64,") for f in figures)
    assert any("fraction" in t.header for t in tables) and any("at%" in " ".join(t.header) for t in tables)


def test_project_run(tmp_path):
    adapter = adapters()["xps"]
    entries = adapter.demo_entries(tmp_path / "data", "LBO-LRMO", True, 5)
    project = tmp_path / "project.toml"
    lines = ['title = "xps only"', "[[sample]]", 'name = "LBO-LRMO"', "[[sample.xps]]",
             f'file = "{entries[0]["file"].relative_to(tmp_path).as_posix()}"',
             f'model = "{entries[0]["model"].relative_to(tmp_path).as_posix()}"', "c1s = true",
             'quantify = ["B 1s", "O 1s"]']
    project.write_text("\n".join(lines) + "\n")
    summary = run_project(project, tmp_path / "out", progress=False)
    assert not summary.failed, [a.error for a in summary.failed]
    assert (tmp_path / "out" / "results" / "LBO-LRMO__xps0__fit.nc").is_file()
    assert "TM-O-B" in (tmp_path / "out" / "report.html").read_text()
