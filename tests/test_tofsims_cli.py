"""``doptrace tofsims ...`` on simulated ITA files: outputs equal the truth, bad input is one line + exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.tofsims.pipeline import parse_length_nm
from doptrace.tofsims.errors import ToFSIMSError

simulate = pytest.importorskip("doptrace.tofsims.simulate")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tofsims_cli")
    bulk = simulate.write_ita(folder / "bulk.ita", simulate.demo_volume("LBO-LRMO", True, seed=5, shape=(12, 32, 32)),
                              seed=5)
    surface = simulate.write_ita(folder / "surface.ita",
                                 simulate.demo_volume("BM-LRMO", False, seed=6, shape=(12, 32, 32)), seed=6)
    return folder, bulk, surface


def run(capsys, *argv):
    code = main(["tofsims", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_lists_fragments_with_their_counts(files, capsys):
    folder, bulk, _ = files
    code, out, _ = run(capsys, "info", folder / "bulk.ita")
    assert code == 0
    assert "polarity: negative" in out and "dims: fragment=7, scan=12, y=32, x=32" in out
    assert "BO-  27.0048 u" in out
    assert f"{int(bulk['counts'].sel(fragment='MnO-').sum())} counts" in out


def test_maps_writes_exact_normalised_maps_and_a_plot(files, capsys, tmp_path):
    folder, bulk, _ = files
    code, out, _ = run(capsys, "maps", folder / "bulk.ita", "--fragments", "BO-,MnO-,InO-,ClO-", "--normalize",
                       "total", "--ratio", "BO-:MnO-", "--scans", "2:7", "--out", tmp_path / "m.nc", "--plot",
                       tmp_path / "m.png")
    assert code == 0, out
    result = read_netcdf(tmp_path / "m.nc")
    expected = bulk["counts"].isel(scan=slice(2, 8)).sum("scan")
    np.testing.assert_array_equal(result["counts"].values, expected.sel(fragment=["BO-", "MnO-", "InO-", "ClO-"]).values)
    total = bulk["total"].isel(scan=slice(2, 8)).sum("scan").values
    np.testing.assert_allclose(result["intensity"].sel(fragment="InO-").values,
                               expected.sel(fragment="InO-").values / total)
    assert result.attrs["ratio"] == "BO-/MnO-"
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_depth_converts_time_to_depth_and_calls_bulk_boron_uniform(files, capsys, tmp_path):
    folder, bulk, _ = files
    code, out, _ = run(capsys, "depth", folder / "bulk.ita", "--fragments", "BO-,MnO-", "--crater-depth", "0.5um",
                       "--out", tmp_path / "d.nc", "--plot", tmp_path / "d.png")
    assert code == 0
    result = read_netcdf(tmp_path / "d.nc")
    np.testing.assert_allclose(result["depth"].values, bulk["true_depth"].values)
    assert "crater depth 500 nm" in result["depth"].attrs["method"]
    np.testing.assert_array_equal(result["counts"].sel(fragment="BO-").values,
                                  bulk["counts"].sel(fragment="BO-").sum(("y", "x")).values)
    assert int(result["uniformity_uniform"].sel(fragment="BO-")) == 1
    assert "BO-: relative change" in out and "-> uniform" in out
    # the esds carry their own label, not the reader's "secondary/total ion counts"
    assert result["intensity_stderr"].attrs["long_name"] == "standard error (Poisson)"
    np.testing.assert_allclose(result["counts_stderr"].values, np.sqrt(result["counts"].values))


def test_depth_with_per_layer_sputter_rates(files, capsys, tmp_path):
    folder, bulk, _ = files
    code, _, _ = run(capsys, "depth", folder / "bulk.ita", "--fragments", "MnO-", "--rates", "2.0:240,0.25",
                     "--out", tmp_path / "r.nc")
    assert code == 0
    depth = read_netcdf(tmp_path / "r.nc")["depth"]
    t = bulk["sputter_time"].values  # 0, 100, ..., 1100 s
    np.testing.assert_allclose(depth.values, np.where(t <= 240, 2.0 * t, 480 + 0.25 * (t - 240)))
    assert depth.attrs["method"] == "per-layer sputter rates"


def test_depth_reads_an_ascii_depth_profile_export(files, capsys, tmp_path):
    _, bulk, _ = files
    exports = simulate.write_ascii_exports(tmp_path, bulk, stem="bulk")
    code, out, _ = run(capsys, "depth", exports["profile"], "--fragments", "BO-,MnO-", "--crater-depth", "500nm",
                       "--out", tmp_path / "p.nc")
    assert code == 0
    result = read_netcdf(tmp_path / "p.nc")
    np.testing.assert_array_equal(result["counts"].values,
                                  bulk["counts"].sel(fragment=["BO-", "MnO-"]).sum(("y", "x")).values)
    np.testing.assert_allclose(result["depth"].values, bulk["true_depth"].values)
    assert result.attrs["normalization"] == "none"  # no total-ion column in this export
    assert int(result["uniformity_uniform"].sel(fragment="BO-")) == 1
    code, _, err = run(capsys, "depth", exports["profile"], "--normalize", "Total", "--out", tmp_path / "q.nc")
    assert code == 2 and "normalisation reference 'Total' is not a column" in err
    assert not (tmp_path / "q.nc").exists()


def test_depth_inside_the_grains_of_a_fragment(files, capsys, tmp_path):
    folder, bulk, _ = files
    code, _, _ = run(capsys, "depth", folder / "bulk.ita", "--fragments", "BO-,InO-", "--roi-from", "MnO-",
                     "--out", tmp_path / "g.nc")
    assert code == 0
    result = read_netcdf(tmp_path / "g.nc")
    oxide = bulk["oxide"].values  # the simulated grains: the Otsu ROI of the MnO- map must find them
    assert result.attrs["roi_pixels"] == int(oxide.sum())
    expected = (bulk["counts"].sel(fragment=["BO-", "InO-"]) * oxide).sum(("y", "x")).values
    np.testing.assert_array_equal(result["counts"].values, expected)
    code, _, _ = run(capsys, "depth", folder / "bulk.ita", "--fragments", "BO-", "--roi", "0,50,0,25",
                     "--out", tmp_path / "b.nc")
    assert code == 0
    box = read_netcdf(tmp_path / "b.nc")
    inside = (bulk["x"] <= 50) & (bulk["y"] <= 25)
    assert box.attrs["roi_pixels"] == int(inside.sum())
    np.testing.assert_array_equal(box["counts"].values[0],
                                  bulk["counts"].sel(fragment="BO-").where(inside, 0).sum(("y", "x")).values)


def test_depth_shows_surface_boron_as_surface_enriched(files, capsys, tmp_path):
    folder, _, surface = files
    code, out, _ = run(capsys, "depth", folder / "surface.ita", "--fragments", "BO-", "--crater-depth", "500nm",
                       "--surface-depth", "100", "--out", tmp_path / "s.nc")
    assert code == 0
    result = read_netcdf(tmp_path / "s.nc")
    # Simulated surface layer: scans 0-2 (0-83 nm) at 15.05 BO- counts per voxel, 0.05 below.
    bo = surface["counts"].sel(fragment="BO-").sum(("y", "x")).values.astype(float)
    total = surface["total"].sum(("y", "x")).values.astype(float)
    truth = (bo[:3].sum() / total[:3].sum()) / (bo[3:].sum() / total[3:].sum())
    assert truth > 50
    assert float(result["uniformity_surface_to_bulk"].sel(fragment="BO-")) == pytest.approx(truth)
    assert int(result["uniformity_uniform"].sel(fragment="BO-")) == 1  # background only below the surface


def test_coloc_separates_bulk_doping_from_surface_coating(files, capsys, tmp_path):
    folder, _, _ = files
    code, out, _ = run(capsys, "coloc", folder / "bulk.ita", "--pair", "BO-:MnO-", "--bin", "2",
                       "--out", tmp_path / "c.nc", "--plot", tmp_path / "c.png")
    assert code == 0
    result = read_netcdf(tmp_path / "c.nc")
    assert float(result["pearson_r"]) > 0.8 and float(result["p_value"]) < 0.01
    code, out, _ = run(capsys, "coloc", folder / "surface.ita", "--pair", "BO-:MnO-", "--scans", "4:11",
                       "--out", tmp_path / "c2.nc")
    assert code == 0
    assert float(read_netcdf(tmp_path / "c2.nc")["p_value"]) > 0.05


def test_compare_gives_the_exact_normalised_ratio(files, capsys, tmp_path):
    folder, bulk, surface = files
    code, out, _ = run(capsys, "compare", folder / "bulk.ita", folder / "surface.ita", "--fragments", "InO-,ClO-",
                       "--boot", "300", "--out", tmp_path / "x.nc", "--plot", tmp_path / "x.png")
    assert code == 0
    result = read_netcdf(tmp_path / "x.nc")

    def norm(truth, name):
        return float(truth["counts"].sel(fragment=name).sum()) / float(truth["total"].sum())

    for name in ("InO-", "ClO-"):
        r = result.sel(fragment=name)
        assert float(r["ratio"]) == pytest.approx(norm(surface, name) / norm(bulk, name))
        assert float(r["ratio_boot_low"]) < float(r["ratio"]) < float(r["ratio_boot_high"])
    assert list(result["sample"].values) == ["LBO-LRMO", "BM-LRMO"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["maps", "{missing}", "--out", "{out}"], "no such file"),
        (["maps", "{junk}", "--out", "{out}"], "magic"),
        (["maps", "{bulk}", "--fragments", "XX-", "--out", "{out}"], "XX- not in the peak list"),
        (["depth", "{bulk}", "--crater-depth", "deep", "--out", "{out}"], "expected a length"),
        (["depth", "{bulk}", "--crater-depth=-5nm", "--out", "{out}"], "positive length"),
        (["depth", "{bulk}", "--rates", "fast", "--out", "{out}"], "expected rate:until_s"),
        (["depth", "{bulk}", "--roi", "1,2", "--out", "{out}"], "expected x0,x1,y0,y1"),
        (["depth", "{bulk}", "--roi", "200,300,0,10", "--out", "{out}"], "contains no pixel"),
        (["depth", "{bulk}", "--rates", "1:50,2:20,1", "--out", "{out}"], "layer end times must increase"),
        (["maps", "{bulk}", "--scans", "3:99", "--out", "{out}"], "outside the 12 scans"),
        (["coloc", "{bulk}", "--pair", "BO-", "--out", "{out}"], "a pair is two fragments"),
        (["compare", "{bulk}", "{junk}", "--fragments", "InO-", "--out", "{out}"], "magic"),
        (["depth", "{bulk}", "--normalize", "CN-", "--out", "{out}"], "normalisation reference 'CN-'"),
        (["maps", "{bulk}", "--bin", "0", "--out", "{out}"], "must be a positive integer"),
        (["maps", "{bulk}", "--out", "{out}", "--plot", "{out}.xyz"], ".xyz: unsupported figure format"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(files, capsys, tmp_path, argv, message):
    folder, _, _ = files
    junk = tmp_path / "junk.ita"
    junk.write_bytes(b"NOTITSTR" + bytes(200))
    names = {"missing": tmp_path / "absent.ita", "junk": junk, "bulk": folder / "bulk.ita", "out": tmp_path / "o.nc"}
    code, out, err = run(capsys, *[a.format(**names) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doptrace: error: ")
    assert message in lines[0]
    assert not (tmp_path / "o.nc").exists()


def test_length_parsing():
    assert parse_length_nm("500nm") == 500.0
    assert parse_length_nm("0.5 um") == pytest.approx(500.0)
    assert parse_length_nm("5000A") == pytest.approx(500.0)
    assert parse_length_nm(250) == 250.0
    with pytest.raises(ToFSIMSError):
        parse_length_nm("500 parsec")


def test_calibrate_real_spectrum_writes_the_library_fit(shared, capsys, tmp_path):
    # The accuracy against the file's m/z column is tested with tofsims.calibration itself;
    # here: the command writes exactly that fit, and the m/z column is never used for it.
    from doptrace import tofsims
    from doptrace.tofsims import calibration

    path = shared("tofsims/iontof_spectrum_txt/N_HEA19_Bi1_1.txt")
    code, out, _ = run(capsys, "calibrate", path, "--out", tmp_path / "cal.nc")
    assert code == 0
    cal = read_netcdf(tmp_path / "cal.nc")
    spectrum = tofsims.read(path)
    direct = calibration.calibrate(spectrum.drop_vars("mz_file"))
    assert float(cal["sf"]) == pytest.approx(float(direct["sf"]))
    assert float(cal["k0"]) == pytest.approx(float(direct["k0"]))
    assert float(cal["sf"]) == pytest.approx(32985, rel=1e-3)  # PROVENANCE.md: sf about 32985
    assert list(cal["calibrant"].values) == list(direct["calibrant"].values)
    assert "sf = " in out and "H- " in out and "residual" in out


def test_calibrate_simulated_ita_spectrum_finds_the_true_scale(files, capsys, tmp_path):
    folder, bulk, _ = files
    code, out, _ = run(capsys, "calibrate", folder / "bulk.ita", "--peaks", "H-,C-,O-,OH-,C2-,Cl-",
                       "--out", tmp_path / "cal.nc")
    assert code == 0
    cal = read_netcdf(tmp_path / "cal.nc")
    assert float(cal["sf"]) == pytest.approx(bulk.attrs["sf"], rel=2e-5)
    assert float(cal["k0"]) == pytest.approx(bulk.attrs["k0"], abs=2.0)


def test_maps_refuses_an_roi_rather_than_ignoring_it(files, capsys, tmp_path):
    # maps and coloc sum whole images; an ROI option there used to be accepted and silently ignored
    folder, _, _ = files
    with pytest.raises(SystemExit) as exit_:
        main(["tofsims", "maps", str(folder / "bulk.ita"), "--roi", "0,50,0,50", "--out", str(tmp_path / "o.nc")])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --roi" in capsys.readouterr().err
    assert not (tmp_path / "o.nc").exists()


def test_dead_time_correction_recovers_the_true_rate_of_a_saturating_detector(capsys, tmp_path):
    # Simulated detector: at most one ion per mass window and shot, 200 shots per pixel, so a true
    # mean of 60 O- per voxel records only 200 (1 - exp(-0.3)) = 51.8 on average.
    truth = simulate.poisson_counts(simulate.phantom((6, 24, 24), shots_per_pixel=200, seed=3), seed=3,
                                    dead_time=True)
    simulate.write_ita(tmp_path / "sat.ita", truth, with_spectrum=False)
    out = tmp_path / "m.nc"
    code, _, err = run(capsys, "maps", tmp_path / "sat.ita", "--fragments", "O-,MnO-", "--dead-time", "--out", out)
    assert code == 0, err
    result = read_netcdf(out)
    raw = truth["counts"].sel(fragment=["O-", "MnO-"]).astype(float)
    exact = (-200 * np.log1p(-raw / 200)).sum("scan")
    np.testing.assert_allclose(result["counts"].values, exact.values, rtol=1e-12)
    grain = truth["oxide"].values
    expected = truth["expected"].sel(fragment="O-").sum("scan").values[grain].sum()
    corrected = float(result["counts"].sel(fragment="O-").values[grain].sum())
    recorded = float(raw.sel(fragment="O-").sum("scan").values[grain].sum())
    assert corrected == pytest.approx(expected, rel=4 * np.sqrt(expected) / expected)
    assert recorded < 0.9 * expected  # the uncorrected counts are visibly saturated
    assert result.attrs["dead_time_corrected"] == 1


def test_dead_time_is_applied_by_default_when_the_file_says_it_was_not(capsys, tmp_path):
    truth = simulate.poisson_counts(simulate.phantom((8, 16, 16), shots_per_pixel=200, seed=5), seed=5,
                                    dead_time=True)
    simulate.write_ita(tmp_path / "sat.ita", truth, with_spectrum=False)
    raw = truth["counts"].sel(fragment=["O-"]).astype(float)
    for flag, expected in ((None, (-200 * np.log1p(-raw / 200)).sum("scan")), ("--no-dead-time", raw.sum("scan"))):
        out = tmp_path / f"{flag}.nc"
        code, _, err = run(capsys, "maps", tmp_path / "sat.ita", "--fragments", "O-", *([flag] if flag else []),
                           "--out", out)
        assert code == 0, err
        np.testing.assert_allclose(read_netcdf(out)["counts"].values, expected.values, rtol=1e-12)
    # shots per pixel too few for the counts: left uncorrected by default, and the result says why
    one_shot = truth.copy()
    one_shot.attrs["shots_per_pixel"] = 1
    simulate.write_ita(tmp_path / "one.ita", one_shot, with_spectrum=False)
    code, _, err = run(capsys, "depth", tmp_path / "one.ita", "--fragments", "O-", "--out", tmp_path / "d.nc")
    assert code == 0, err
    result = read_netcdf(tmp_path / "d.nc")
    np.testing.assert_array_equal(result["counts"].values, raw.sum(("y", "x")).values)
    assert "not applied" in result.attrs["dead_time_note"] and result.attrs["dead_time_corrected"] == 0
    code, _, err = run(capsys, "depth", tmp_path / "one.ita", "--fragments", "O-", "--dead-time",
                       "--out", tmp_path / "e.nc")
    assert code == 2 and "saturated" in err and not (tmp_path / "e.nc").exists()


def test_dead_time_is_not_applied_twice(capsys, tmp_path):
    truth = simulate.phantom((3, 16, 16), shots_per_pixel=200, seed=4)
    truth.attrs["dead_time_corrected"] = 1
    truth = simulate.write_ita(tmp_path / "done.ita", truth, seed=4, with_spectrum=False)
    code, _, err = run(capsys, "maps", tmp_path / "done.ita", "--fragments", "O-", "--dead-time",
                       "--out", tmp_path / "m.nc")
    assert code == 0, err
    result = read_netcdf(tmp_path / "m.nc")
    np.testing.assert_array_equal(result["counts"].values, truth["counts"].sel(fragment=["O-"]).sum("scan").values)


def test_simulated_files_get_the_umask_mode_not_a_private_one(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        simulate.write_ita(tmp_path / "m.ita", simulate.phantom((2, 8, 8), seed=1), with_spectrum=False)
    finally:
        os.umask(umask)
    assert (tmp_path / "m.ita").stat().st_mode & 0o777 == 0o644
