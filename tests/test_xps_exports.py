"""XPS exports and daily-use CLI (issue 14, items 4 and 5): CSV/XLSX tables equal the result's
numbers, several files per command (one output each), --out refuses a non-NetCDF name, the
residual panel and the gallery of every level, --vamas-out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from doptrace import xps
from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.xps.formats import casa
from doptrace.xps.simulate import simulate_series

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "xps"


@pytest.fixture(scope="module")
def two_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xps_batch")
    paths = []
    for k, times in enumerate([(0, 50, 150), (0, 100, 200, 300, 400)]):
        path = folder / f"sample{k + 1}.vms"
        simulate_series(path, etch_times=times, regions=("B 1s", "C 1s", "O 1s"), seed=30 + k)
        paths.append(path)
    return folder, paths


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def test_fit_table_csv_and_xlsx_hold_the_results_numbers(two_series, tmp_path):
    from openpyxl import load_workbook

    path = two_series[1][1]
    out, table, book = tmp_path / "r.nc", tmp_path / "r.csv", tmp_path / "r.xlsx"
    assert main(["xps", "fit", str(path), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
                 "--table", str(table)]) == 0
    assert main(["xps", "fit", str(path), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
                 "--table", str(book)]) == 0
    ds = read_netcdf(out)
    header, rows = _read_csv(table)
    sheet = load_workbook(book, read_only=True).active
    xrows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert xrows[0] == header
    assert len(rows) == len(xrows) - 1 == ds.sizes["etch_time"] * ds.sizes["component"]
    for name in ("center", "center_stderr", "fwhm", "fwhm_stderr", "area", "area_stderr", "fraction",
                 "fraction_stderr"):
        units = ds[name].attrs.get("units", "1")
        column = header.index(name if units == "1" else f"{name} ({units})")
        csv_values = np.array([float(r[column]) for r in rows]).reshape(ds[name].shape)
        xlsx_values = np.array([r[column] for r in xrows[1:]], float).reshape(ds[name].shape)
        np.testing.assert_array_equal(csv_values, ds[name].values)  # repr-exact
        # XLSX keeps 16 significant digits (openpyxl), Excel shows 15: equal to 1e-15
        np.testing.assert_allclose(xlsx_values, ds[name].values, rtol=1e-15, atol=0)
    level_col, comp_col = header.index("etch_time (s)"), header.index("component")
    n = ds.sizes["component"]
    assert [float(r[level_col]) for r in rows] == np.repeat(ds["etch_time"].values, n).tolist()
    assert [r[comp_col] for r in rows[:n]] == [str(c) for c in ds["component"].values]
    redchi = header.index("redchi")
    assert [float(rows[i * n][redchi]) for i in range(ds.sizes["etch_time"])] == ds["redchi"].values.tolist()
    assert header[-1] == "quality" and {r[-1] for r in rows} == {ds.attrs["quality"]}


def test_a_failed_fit_table_says_failed_on_every_row(two_series, tmp_path):
    """Lines 4 eV from the truth cannot fit: every row of the table carries 'failed', as the result does."""
    path = two_series[1][1]
    model = tmp_path / "far.toml"
    model.write_text('region = "B 1s"\nwindow = [186.0, 197.0]\nbackground = { shirley = "active", average = 5 }\n'
                     '[[component]]\nname = "B-O-B"\ncenter = [196.0, 195.8, 196.2]\nfwhm = [0.5, 0.45, 0.55]\n'
                     '[[component]]\nname = "TM-O-B"\ncenter = [187.5, 187.3, 187.7]\nfwhm = { same_as = "B-O-B" }\n')
    out, table = tmp_path / "far.nc", tmp_path / "far.csv"
    assert main(["xps", "fit", str(path), "--model", str(model), "--out", str(out), "--table", str(table)]) == 0
    assert read_netcdf(out).attrs["quality"] == "failed"
    header, rows = _read_csv(table)
    assert header[-1] == "quality" and rows and all(r[-1] == "failed" for r in rows)


def test_quant_table_holds_atomic_percent_per_level(two_series, tmp_path):
    path = two_series[1][0]
    out, table = tmp_path / "q.nc", tmp_path / "q.csv"
    assert main(["xps", "quantify", str(path), "--regions", "B 1s,O 1s", "--out", str(out),
                 "--table", str(table)]) == 0
    q = read_netcdf(out)
    header, rows = _read_csv(table)
    item = next(d for d in q["atomic_percent"].dims if d != "etch_time")
    units = q["atomic_percent"].attrs["units"]
    at, at_err = header.index(f"atomic_percent ({units})"), header.index(f"atomic_percent_stderr ({units})")
    got = np.array([float(r[at]) for r in rows]).reshape(q["atomic_percent"].shape)
    got_err = np.array([float(r[at_err]) for r in rows]).reshape(q["atomic_percent"].shape)
    np.testing.assert_array_equal(got, q["atomic_percent"].values)
    np.testing.assert_array_equal(got_err, q["atomic_percent_stderr"].values)
    np.testing.assert_allclose(got.sum(axis=1), 100.0)
    assert [r[header.index(item)] for r in rows[:2]] == [str(v) for v in q[item].values]


def test_several_files_and_a_glob_give_one_output_each(two_series, tmp_path):
    folder, paths = two_series
    out_dir = tmp_path / "results"
    # the pattern is expanded by doptrace itself (shells such as Windows's pass it through)
    assert main(["xps", "fit", str(folder / "sample*.vms"), "--model", str(EXAMPLES / "b1s.toml"),
                 "--out-dir", str(out_dir), "--table", "{stem}_components.csv", "--plot", "{stem}.png"]) == 0
    for path, levels in zip(paths, (3, 5)):
        ds = read_netcdf(out_dir / f"{path.stem}.nc")
        assert ds.sizes["etch_time"] == levels and Path(ds.attrs["source"]) == path
        assert len(_read_csv(out_dir / f"{path.stem}_components.csv")[1]) == levels * ds.sizes["component"]
        assert (out_dir / f"{path.stem}.png").stat().st_size > 5000
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{p.stem}{s}" for p in paths for s in (".nc", "_components.csv", ".png")])
    # quantify too, with an --out pattern and no --out-dir
    assert main(["xps", "quantify", *map(str, paths), "--regions", "B 1s,O 1s",
                 "--out", str(tmp_path / "{stem}_quant.nc")]) == 0
    for path in paths:
        assert read_netcdf(tmp_path / f"{path.stem}_quant.nc").attrs["source"] == str(path)


def test_several_files_need_distinct_output_names(two_series, tmp_path, capsys):
    _, paths = two_series
    out = tmp_path / "one.nc"
    assert main(["xps", "fit", *map(str, paths), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out)]) == 2
    assert "2 input files would all write this one file" in capsys.readouterr().err
    assert not out.exists()
    assert main(["xps", "fit", str(tmp_path / "nothing*.vms"), "--model", str(EXAMPLES / "b1s.toml"),
                 "--out-dir", str(tmp_path)]) == 2
    assert "no file matches this pattern" in capsys.readouterr().err


def test_one_bad_file_among_several_is_named_and_the_others_written(two_series, tmp_path, capsys):
    _, paths = two_series
    bad = tmp_path / "broken.vms"
    bad.write_text("not a VAMAS file\n")
    out_dir = tmp_path / "res"
    assert main(["xps", "fit", str(paths[0]), str(bad), "--model", str(EXAMPLES / "b1s.toml"),
                 "--out-dir", str(out_dir)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{paths[0].stem}.nc"]


@pytest.mark.parametrize("name", ["r.csv", "r.xlsx", "r"])
def test_out_refuses_a_non_netcdf_name(two_series, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["xps", "fit", str(two_series[1][0]), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out writes .nc" in err and "--table" in err
    assert not out.exists()
    assert main(["xps", "quantify", str(two_series[1][0]), "--regions", "B 1s", "--out", str(out)]) == 2
    assert not out.exists()


def test_table_refuses_an_unknown_suffix(two_series, tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert main(["xps", "fit", str(two_series[1][0]), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
                 "--table", str(tmp_path / "t.ods")]) == 2
    assert "--table writes .csv / .xlsx files" in capsys.readouterr().err
    assert not out.exists()


def test_fit_figure_has_a_residual_panel_and_the_gallery_one_panel_per_level(two_series):
    ds = xps.fit_region(xps.read(two_series[1][1]), xps.load_model(EXAMPLES / "b1s.toml"))
    fig = xps.plot_fit(ds, 2)
    fit_ax, residual_ax = fig.axes
    assert len(fig.axes) == 2 and residual_ax.get_ylabel() == "residual"
    x, r = residual_ax.lines[-1].get_data()
    one = ds.isel(etch_time=2)
    np.testing.assert_allclose(r, one["data"].values - one["envelope"].values)
    assert fit_ax.get_position().y0 > residual_ax.get_position().y0  # under the fit
    gallery = xps.plot_gallery(ds)
    assert ds.sizes["etch_time"] == 5 and gallery.doptrace_levels == [0, 1, 2, 3, 4]
    assert len(gallery.axes) == 2 * 5  # a fit and a residual per level
    fits, residuals = gallery.axes[0::2], gallery.axes[1::2]
    assert all(f.get_position().y0 > r.get_position().y1 - 1e-9 for f, r in zip(fits, residuals))  # residual under
    titles = [f.get_title() for f in fits]
    assert titles[0].startswith("etch 0 s") and titles[-1].startswith("etch 400 s")
    # a long series: evenly spaced levels, first and last, and the title says so
    long = xps.plot_gallery(ds, max_panels=3)
    assert long.doptrace_levels == [0, 2, 4] and "3 of 5 levels" in long.get_suptitle()


def test_vamas_out_from_the_cli_reads_back(two_series, tmp_path, capsys):
    path = two_series[1][0]
    vms, out = tmp_path / "casa.vms", tmp_path / "r.nc"
    assert main(["xps", "fit", str(path), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
                 "--vamas-out", str(vms)]) == 0
    ds = read_netcdf(out)
    blocks = xps.read(vms)
    comps = [casa.from_block(b) for b in blocks if b.attrs["region"] == "B 1s"]
    assert [[c.area.value for c in info.comps] for info in comps] == pytest.approx(ds["area"].values, rel=1e-14)
    refit = xps.fit_casa(blocks, "B 1s")
    assert np.max(np.abs(refit["area"].values - ds["area"].values) / ds["area_stderr"].values) < 0.01
