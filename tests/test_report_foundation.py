"""The report's common layer: result conventions, NetCDF storage, HTML escaping, project checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from doptrace.report import cli
from doptrace.report.conventions import check_result, read_netcdf, write_netcdf
from doptrace.report.errors import ReportError
from doptrace.report.figures import new_figure
from doptrace.report.html import Figure, Section, Table, Text, render
from doptrace.report.project import load_project
from doptrace.report.provenance import file_record, sha256_file


def _result():
    ds = xr.Dataset(
        {
            "area": (("etch_time", "component"), np.array([[1.0, 2.0], [3.0, 4.0]]), {"units": "counts/s eV"}),
            "area_stderr": (("etch_time", "component"), np.full((2, 2), 0.1), {"units": "counts/s eV"}),
        },
        coords={
            "etch_time": ("etch_time", [0.0, 20.0], {"units": "s"}),
            "component": ["B-O-B", "TM-O-B"],
        },
        attrs={"fitted": "area", "technique": "XPS", "parameters": {"window": [188.0, 196.0]}, "flag": True,
               "quality": "warning", "quality_reasons": ["TM-O-B.center sits at its upper bound."]},
    )
    return ds


def test_check_result_accepts_conventions_and_lists_every_problem():
    check_result(_result())
    bad = _result().drop_vars("area_stderr")
    bad["redchi"] = ("etch_time", [1.0, 1.1])  # no units
    with pytest.raises(ReportError) as info:
        check_result(bad, "b1s")
    message = str(info.value)
    assert "b1s" in message and "area has no area_stderr" in message and "redchi has no units" in message


def test_check_result_refuses_a_result_without_a_sound_quality_record():
    for attrs, expected in (({"quality": None}, "has no quality record"),
                            ({"quality": "fine"}, "quality 'fine' is not one of ok, warning, failed"),
                            ({"quality": "failed", "quality_reasons": []}, "quality 'failed' without a reason")):
        bad = _result()
        bad.attrs.update(attrs)
        if attrs["quality"] is None:  # refused, not defaulted to ok: nobody judged it
            del bad.attrs["quality"]
        with pytest.raises(ReportError, match=expected):
            check_result(bad, "b1s")


def test_netcdf_round_trip_keeps_values_labels_and_encoded_attrs(tmp_path):
    path = write_netcdf(_result(), tmp_path / "r.nc")
    back = read_netcdf(path)
    np.testing.assert_array_equal(back["area"].values, [[1.0, 2.0], [3.0, 4.0]])
    assert list(back["component"].values) == ["B-O-B", "TM-O-B"]
    assert back.attrs["parameters"] == {"window": [188.0, 196.0]}
    assert back.attrs["flag"] == 1
    assert back.attrs["quality_reasons"] == ["TM-O-B.center sits at its upper bound."]
    ok = _result()
    ok.attrs.update(quality="ok", quality_reasons=[])
    assert read_netcdf(write_netcdf(ok, tmp_path / "ok.nc")).attrs["quality_reasons"] == []
    assert back["area"].attrs["units"] == "counts/s eV"


def test_read_netcdf_names_the_file_on_garbage(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file at all")
    with pytest.raises(ReportError, match="bad.nc"):
        read_netcdf(bad)


def test_html_escapes_strings_from_files_and_embeds_figures():
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    html = render(
        "t",
        [Section("S", [Text("<script>alert(1)</script>"), Table(["h"], [["<b>x</b>"]]), Figure(fig, "c")])],
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("data:image/png;base64,") == 1


def test_sha256_matches_the_published_test_vector(tmp_path):
    # FIPS 180-2 test vector for "abc"
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_record(path)["bytes"] == 3


def test_project_lists_every_problem_at_once(tmp_path):
    project = tmp_path / "p.toml"
    project.write_text(
        'colour = "blue"\n[[sample]]\nname = "A"\nmystery = 1\n[[sample]]\ndescription = "no name"\n'
    )
    with pytest.raises(ReportError) as info:
        load_project(project)
    message = str(info.value)
    assert str(project) in message
    assert "unknown top-level key 'colour'" in message
    assert "unknown key 'mystery'" in message
    assert "sample 2 has no name" in message


def test_cli_reports_a_missing_project_in_one_line(tmp_path, capsys):
    code = cli.main(["run", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_BAD_INPUT
    assert len(err) == 1 and "absent.toml" in err[0] and "not found" in err[0]
    assert not (tmp_path / "out").exists()


def test_plots_drawn_on_worker_processes_equal_those_drawn_here():
    from doptrace.report.checks import defaults
    from doptrace.report.depth import depth_series, overlay_figure
    from doptrace.report.html import Plot, Section, draw_plots
    from doptrace.core.units import Quantity
    from doptrace.report.techniques import adapters

    fit = xr.Dataset({"fraction": (("etch_time", "component"), [[0.9, 0.1], [0.5, 0.5]]),
                      "fraction_stderr": (("etch_time", "component"), [[0.01, 0.01], [0.02, 0.02]])},
                     coords={"etch_time": [0.0, 100.0], "component": ["B-O-B", "TM-O-B"]})
    track = adapters()["xps"].depth_track([{"fit": fit}], {**defaults(), "xps_component": "TM-O-B"},
                                         {"xps_etch_rate": Quantity(0.4, 0.04, "nm/s")})
    series = depth_series("S", {"XPS": track})
    assert series["xps_depth"].values.tolist() == [0.0, 40.0]
    here = [Plot(overlay_figure, (series, 20.0, f"S{i}")) for i in range(3)]
    pooled = [Plot(overlay_figure, (series, 20.0, f"S{i % 3}")) for i in range(42)]  # >= 40: a process pool
    draw_plots([Section("a", here)], workers=1)
    draw_plots([Section("b", pooled)], workers=2)
    assert all(p.uri.startswith("data:image/png;base64,") for p in pooled)
    assert [p.uri for p in pooled[:3]] == [p.uri for p in here]
    assert pooled[0].uri != pooled[1].uri  # different titles, different pictures
