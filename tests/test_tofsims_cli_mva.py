"""``doptrace tofsims mva|peaks`` and ``--mass``/``--export`` on simulated ITA/ITM files, against the truth."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.tofsims import simulate

tifffile = pytest.importorskip("tifffile")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tofsims_cli_mva")
    truth = simulate.poisson_counts(simulate.phantom((4, 48, 48), rim_px=0, seed=2), seed=2)
    simulate.write_ita(folder / "two.ita", truth, seed=2)
    simulate.write_itm(folder / "two.itm", truth, seed=2)
    return folder, truth


def run(capsys, *argv):
    code = main(["tofsims", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_mva_cli_separates_the_phases_and_draws_scores_and_loadings(files, capsys, tmp_path):
    folder, truth = files
    code, out, err = run(capsys, "mva", folder / "two.ita", "--method", "pca", "--components", "3", "--quiet",
                         "--out", tmp_path / "pca.nc", "--plot", tmp_path / "pca.png", "--tiff", tmp_path / "tif")
    assert code == 0, err
    result = read_netcdf(tmp_path / "pca.nc")
    r = np.corrcoef(result["scores"].sel(component=1).values.ravel(), truth["oxide"].values.ravel())[0, 1]
    assert abs(r) > 0.9
    assert "PCA 1:" in out and "% explained" in out
    assert (tmp_path / "pca.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "tif" / "two_mva_scores_1.tif"),
                                  result["scores"].sel(component=1).values)


def test_maps_with_ratio_and_ascii_export(files, capsys, tmp_path):
    folder, truth = files
    code, out, err = run(capsys, "maps", folder / "two.ita", "--fragments", "BO-,MnO-", "--ratio", "BO-:MnO-",
                         "--quiet", "--out", tmp_path / "m.nc", "--plot", tmp_path / "m.png", "--ascii", tmp_path / "a")
    assert code == 0, err
    back = np.loadtxt(tmp_path / "a" / "two_maps_counts_BO-.csv", delimiter=",")
    np.testing.assert_array_equal(back, truth["counts"].sel(fragment="BO-").sum("scan").values)
    ratio = np.genfromtxt(tmp_path / "a" / "two_maps_ratio.csv", delimiter=",")
    np.testing.assert_array_equal(ratio, read_netcdf(tmp_path / "m.nc")["ratio"].values)


def test_custom_mass_from_itm_and_refused_on_ita(files, capsys, tmp_path):
    folder, truth = files
    w = truth.sel(fragment="BO-")
    interval = f"B={float(w['mass_low']):.6f}:{float(w['mass_high']):.6f}"
    code, out, err = run(capsys, "maps", folder / "two.itm", "--mass", interval, "--mass", "Mn=70.9335+-0.05",
                         "--quiet", "--out", tmp_path / "d.nc")
    assert code == 0, err
    maps = read_netcdf(tmp_path / "d.nc")
    np.testing.assert_array_equal(maps["counts"].sel(fragment="B").values,
                                  truth["counts"].sel(fragment="BO-").sum("scan").values)
    # 70.8835-70.9835 u holds the whole simulated MnO- window (70.8854-70.9814 u)
    np.testing.assert_array_equal(maps["counts"].sel(fragment="Mn").values,
                                  truth["counts"].sel(fragment="MnO-").sum("scan").values)
    code, out, err = run(capsys, "maps", folder / "two.ita", "--mass", "27.0048±0.02", "--quiet",
                         "--out", tmp_path / "x.nc")
    assert code == 2 and "two.ita: this ITA file holds only the images of its peak list" in err


def test_peaks_cli_table(files, capsys, tmp_path):
    folder, _ = files
    code, out, err = run(capsys, "peaks", folder / "two.ita", "--top", "5", "--table", tmp_path / "p.csv")
    assert code == 0, err
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # the five strongest simulated ions (H- and OH- both 4e5 counts: their order is the Poisson draw)
    assert rows[0]["assignment"] == "O-" and {r["assignment"] for r in rows} == {"O-", "OH-", "H-", "Cl-", "C-"}
    assert all(abs(float(r["ppm_error"])) < 15 for r in rows)


def test_info_says_whether_custom_intervals_are_possible(files, capsys):
    folder, _ = files
    code, out, _ = run(capsys, "info", folder / "two.itm")
    assert code == 0 and "raw ion data: yes" in out
    code, out, _ = run(capsys, "info", folder / "two.ita")
    assert code == 0 and "raw ion data: no (only the peak list's images" in out
