"""``doptrace xrd ...``: info, simulate -> refine round trip, sequence, CIF/plot output, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "xrd" / "li-rich-two-phase.toml"


def cli(capsys, *argv):
    code = main(["xrd", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xrd_cli")
    code = main(["xrd", "simulate", str(RECIPE), "--out", str(folder / "p.xye"), "--counts", "1e6", "--seed", "4",
                 "--dopant", "LiTMO2:Li=0.06", "--dopant", "Li2MnO3:Li2c=0.08", "--dopant", "Li2MnO3:Li4h=0.08"])
    assert code == 0
    return folder


def test_info_on_real_raw_file(shared, capsys):
    code, out, _ = cli(capsys, "info", shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw"))
    assert code == 0 and "3040 points" in out


def test_simulate_writes_truth_header_and_counts(simulated):
    text = (simulated / "p.xye").read_text()
    assert "# truth B@LiTMO2:Li = 0.06" in text
    data = np.loadtxt(simulated / "p.xye")
    assert data.shape == (4501, 3)
    assert data[:, 0].min() == 10.0 and data[:, 0].max() == 100.0
    assert data[:, 1].max() == pytest.approx(1.0e6 + 3.0e4, rel=0.05)  # 1e6 peak above ~3e4 background


def test_refine_round_trip_writes_result_plot_and_cifs(simulated, capsys):
    out = simulated / "r.nc"
    code, text, _ = cli(capsys, "refine", RECIPE, "--data", simulated / "p.xye", "--out", out,
                        "--plot", simulated / "r.png", "--cif-out", simulated / "cifs", "--quiet")
    assert code == 0
    assert "B on LiTMO2:Li" in text and "Rwp" in text
    ds = read_netcdf(out)
    assert ds.attrs["engine"] == "builtin" and ds.attrs["technique"] == "XRD"
    li = ds.sel(site="LiTMO2:Li")
    assert abs(float(li.dopant_fraction) - 0.06) < 2 * float(li.dopant_fraction_stderr)
    assert (simulated / "r.png").stat().st_size > 10_000
    cif = (simulated / "cifs" / "LiTMO2.cif").read_text()
    a = re.search(r"_cell_length_a (\d+\.\d+)\((\d+)\)", cif)
    assert a and abs(float(a.group(1)) - 2.85) < 0.0002
    boron = re.search(r"^Li_B\d B 0\.000000 0\.000000 0\.500000 (\S+)", cif, re.M)
    assert boron and float(boron.group(1)) == pytest.approx(float(li.dopant_fraction), abs=1e-4)


def test_sequence_tracks_lattice_and_peak_shift(tmp_path, capsys):
    from doptrace.xrd.recipe import load_recipe
    from doptrace.xrd.simulate import simulate, write_xye

    recipe = load_recipe(RECIPE)
    files = []
    for i, c in enumerate((14.230, 14.260)):  # c expands: (003) moves to lower angle
        pattern = simulate(recipe, counts=2e5, seed=20 + i, values={"LiTMO2:c": c})
        files.append(write_xye(pattern, tmp_path / f"scan{i}.xye"))
    code, text, _ = cli(capsys, "sequence", RECIPE, *files, "--out", tmp_path / "s.nc", "--quiet")
    assert code == 0 and "scan 1" in text
    ds = read_netcdf(tmp_path / "s.nc")
    c = ds.c.sel(phase="LiTMO2").values
    assert np.all(np.abs(c - [14.230, 14.260]) < 3 * ds.c_stderr.sel(phase="LiTMO2").values)
    # (003) at 2 asin(3 lambda / 2c): shift from c = 14.230 to 14.260
    expected = 2 * np.degrees(np.arcsin(3 * 1.5405 / (2 * 14.260))) - 2 * np.degrees(np.arcsin(3 * 1.5405 / (2 * 14.230)))
    assert float(ds.peak_003_shift[1]) == pytest.approx(expected, abs=3 * float(ds.peak_003_stderr[1]) + 1e-4)
    assert float(ds.peak_101_shift[1]) == pytest.approx(0.0, abs=0.003)


def _bad_recipe(tmp_path, text_from, text_to):
    path = tmp_path / "bad.toml"
    path.write_text(RECIPE.read_text().replace(text_from, text_to))
    return path


@pytest.mark.parametrize("change, message", [
    (('"LiTMO2:TM", "Li2MnO3:Li2c"', '"LiTMO2:Nope", "Li2MnO3:Li2c"'), "LiTMO2:Nope"),
    (('space_group = "R -3 m:H"', 'space_group = "P 7"'), "not a space group"),
])
def test_bad_recipe_is_one_line_error_without_output(simulated, tmp_path, capsys, change, message):
    recipe = _bad_recipe(tmp_path, *change)
    out = tmp_path / "r.nc"
    code, _, err = cli(capsys, "refine", recipe, "--data", simulated / "p.xye", "--out", out, "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("doptrace: error: ") and str(recipe) in err and message in err
    assert not out.exists()


def test_nan_counts_are_one_line_error_without_output(tmp_path, capsys):
    data = tmp_path / "nan.xye"
    x = np.arange(10.0, 100.0, 0.02)
    y = np.full(x.size, 100.0)
    y[100] = np.nan
    np.savetxt(data, np.column_stack([x, y, np.sqrt(np.abs(y))]))
    out = tmp_path / "r.nc"
    code, _, err = cli(capsys, "refine", RECIPE, "--data", data, "--out", out, "--plot", tmp_path / "p.png")
    assert code == 2 and err.count("\n") == 1 and str(data) in err and "nan" in err.lower()
    assert not out.exists() and not (tmp_path / "p.png").exists()


def test_gsas2_engine_runs_or_is_a_clear_error(simulated, tmp_path, capsys):
    from doptrace.xrd import gsas2

    out = tmp_path / "g.nc"
    code, text, err = cli(capsys, "refine", RECIPE, "--data", simulated / "p.xye", "--engine", "gsas2",
                          "--out", out, "--quiet")
    if not gsas2.available():
        assert code == 2 and "GSAS-II is not installed" in err and not out.exists()
        return
    assert code == 0 and "(gsas2)" in text
    g2 = read_netcdf(out)
    if not (simulated / "r.nc").exists():  # normally written by the round-trip test above
        assert cli(capsys, "refine", RECIPE, "--data", simulated / "p.xye", "--out", simulated / "r.nc")[0] == 0
    builtin = read_netcdf(simulated / "r.nc")
    assert g2.attrs["engine"] == "gsas2"
    assert float(g2.rwp) == pytest.approx(float(builtin.rwp), abs=0.3)
    for var in ("a", "c"):
        assert np.all(np.abs(g2[var].values - builtin[var].values) < 2 * builtin[var + "_stderr"].values + 1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--step", "0"], "step 0.0 deg must be positive"),
    (["--step", "nan"], "must be positive"),
    (["--dopant", "LiTMO2:Li=2"], "outside 0..1"),
    (["--dopant", "LiTMO2:Li=-0.1"], "outside 0..1"),
])
def test_bad_simulate_arguments_are_one_line_errors_without_output(tmp_path, capsys, extra, message):
    out = tmp_path / "p.xye"
    code, _, err = cli(capsys, "simulate", RECIPE, "--out", out, *extra)
    assert code == 2 and err.count("\n") == 1 and err.startswith("doptrace: error: ") and message in err
    assert str(RECIPE) in err and not out.exists()


def test_info_on_instrument_file_shows_gsas2s_reading(shared, capsys):
    """REFERENCE.md: GSAS-II reads INST_XRY.PRM as Lam 1.5405/1.5443, ratio 0.5, Polariz. 0.7, U,V,W 2,-2,5, SH/L 0.002."""
    code, out, _ = cli(capsys, "info", shared("xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"))
    assert code == 0 and "instrument parameters (gsas-prm)" in out
    for text in ("Lam1 1.5405", "Lam2 1.5443", "I(L2)/I(L1) 0.5", "Polariz. 0.7", "U 2 ", "V -2 ", "W 5 ",
                 "SH/L 0.002"):
        assert text in out, text


def test_result_without_dopant_reads_back_following_the_conventions(simulated, tmp_path, capsys):
    """A recipe with no [dopant] (e.g. fluorapatite) has an empty ``site`` dim; its .nc must still read
    back as strings with units where numeric (empty object arrays came back as unit-less floats)."""
    from doptrace.report.conventions import check_result

    text = RECIPE.read_text()
    text = re.sub(r"\[dopant\].*?(?=\[\[stage\]\])", "", text, flags=re.S).replace('"occupancy"', '"uiso"')
    recipe = tmp_path / "nodopant.toml"
    recipe.write_text(text)
    out = tmp_path / "r.nc"
    code, summary, _ = cli(capsys, "refine", recipe, "--data", simulated / "p.xye", "--out", out, "--quiet")
    assert code == 0 and "B on" not in summary
    ds = read_netcdf(out)
    check_result(ds, str(out))
    assert ds.sizes["site"] == 0 and ds.site.dtype.kind == "U" and ds.dopant_verdict.dtype.kind == "U"
    assert abs(float(ds.a.sel(phase="LiTMO2")) - 2.85) < 3 * float(ds.a_stderr.sel(phase="LiTMO2"))


def test_cif_out_with_gsas2_engine_is_refused_before_refining(simulated, tmp_path, capsys):
    out = tmp_path / "g.nc"
    code, _, err = cli(capsys, "refine", RECIPE, "--data", simulated / "p.xye", "--engine", "gsas2",
                       "--cif-out", tmp_path / "cifs", "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "--cif-out needs the built-in engine" in err
    assert not out.exists() and not (tmp_path / "cifs").exists()


def test_quality_reasons_printed_and_strict_exits_4_on_a_failed_fit(tmp_path, capsys):
    # a LaB6 pattern refined with the Li-rich recipe: GOF far beyond counting noise -> quality failed
    lab = tmp_path / "lab6.toml"
    lab.write_text('[instrument]\nwavelengths = [1.5405, 1.5443]\nX = 3.0\nY = 2.0\n[range]\ntwo_theta = [10.0, 100.0]\n'
                   '[background]\nterms = 4\ncoefficients = [300.0, -100.0, 40.0, 0.0]\n'
                   '[[phase]]\nname = "LaB6"\nspace_group = "P m -3 m"\ncell = [4.1568, 4.1568, 4.1568, 90, 90, 90]\n'
                   '[[phase.site]]\nlabel = "La"\nxyz = [0, 0, 0]\nuiso = 0.005\noccupancy = { La = 1.0 }\n'
                   '[[phase.site]]\nlabel = "B"\nxyz = [0.1996, 0.5, 0.5]\nuiso = 0.005\noccupancy = { B = 1.0 }\n')
    assert main(["xrd", "simulate", str(lab), "--out", str(tmp_path / "lab6.xye"), "--counts", "30000",
                 "--seed", "4"]) == 0
    capsys.readouterr()
    args = ["refine", RECIPE, "--data", tmp_path / "lab6.xye", "--out", tmp_path / "r.nc", "--quiet"]
    code, text, _ = cli(capsys, *args)
    assert code == 0
    lines = text.splitlines()
    q = lines.index("quality: failed")
    assert q > lines.index(next(l for l in lines if l.startswith("Rwp")))  # after the summary
    assert lines[q + 1].startswith("  - GOF")
    assert "not determined: fit failed (GOF" in text
    code, _, _ = cli(capsys, *args, "--strict")
    assert code == 4
    assert read_netcdf(tmp_path / "r.nc").attrs["quality"] == "failed"
