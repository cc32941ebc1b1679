"""IONTOF SurfaceLab 7.3 ASCII depth profiles (real exports in ../shared/data/tofsims/surfacelab7)
and the layout variations a reader meets in the field: numbers checked against the files as
written (counted with awk/grep when the tests were written), every shared ToF-SIMS file read."""

from __future__ import annotations

import re

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import profiles
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.masses import fragment_mass

POS = "tofsims/surfacelab7/xlab_I240416f_B_MAPI_1f_pos-B1_NF_with-lat-ROI.txt"
NEG = "tofsims/surfacelab7/xlab_I241209p_A_MAPI_1f-1nA_neg-B4_NF.txt"


@pytest.mark.parametrize(
    "relative, polarity, rows, t_last, n_peaks, n_ratios, n_inf, first, first_mass, total0, dose0",
    [
        (POS, "positive", 42, 60.1306, 101, 5, 35, "Ag_3+", 320.7077, 315330.0, 2.11404e06),
        (NEG, "negative", 165, 240.522, 123, 9, 132, "^118SnI_3-SnI_3-", np.nan, 677428.0, 2.81193e06),
    ],
)
def test_real_surfacelab7_profiles(shared, relative, polarity, rows, t_last, n_peaks, n_ratios, n_inf, first,
                                   first_mass, total0, dose0):
    ds = tofsims.read(shared(relative))
    assert ds.attrs["format"] == "IONTOF ASCII depth profile"
    assert ds.attrs["polarity"] == polarity
    assert ds.sizes == {"sputter_time": rows, "fragment": n_peaks, "ratio_name": n_ratios}
    assert ds.attrs["n_points"] == rows
    t = ds["sputter_time"].values
    assert t[0] == 0.0 and t[1] == pytest.approx(1.4666) and t[-1] == pytest.approx(t_last)
    assert float(ds["dose"][0]) == pytest.approx(dose0) and ds["fluence"].attrs["units"] == "ions/cm^2"
    names = [str(n) for n in ds["fragment"].values]
    # axes are coordinates, not fragments; no peak is called "Intensity"; ratios kept apart
    assert names[:2] == ["total", first]
    assert not {"Intensity", "Sputter Time (s)", "Dose (ions)", "Fluence (ions/cm^2)"} & set(names)
    assert not any(" / ( " in n for n in names)
    assert all(" / ( " in str(n) for n in ds["ratio_name"].values)
    assert float(ds["intensity"].sel(fragment="total")[0]) == total0
    assert np.isnan(float(ds["fragment_mass"].sel(fragment="total")))
    np.testing.assert_equal(float(ds["fragment_mass"].sel(fragment=first)), first_mass)
    assert np.all(np.isfinite(ds["intensity"].values))
    assert int(np.count_nonzero(np.isinf(ds["ratio"].values))) == n_inf
    assert f"{n_inf} non-finite" in ds.attrs["ratio_note"]
    assert ds.attrs["integer_counts"] == 0 and ds.attrs["negative_values"] == 0
    skipped = tofsims.read(shared(relative), ratios="skip")
    assert "ratio" not in skipped and skipped.sizes["fragment"] == n_peaks
    assert "skipped" in skipped.attrs["ratio_note"]


def test_surfacelab7_peak_masses_match_their_names(shared):
    """Every single-formula peak's header mass (SurfaceLab's measured peak centre) lies within
    200 ppm of the exact ion mass of its name (^13C, C_6 notation), the median within 30 ppm:
    the names and masses come from the right, aligned header lines (a shift by one column is
    thousands of ppm). Measured on the 212 such peaks: median 19 ppm, largest 188 ppm (CN- at
    26.0085 u, a centre pulled by C2H2-). Duplicate names get a suffix."""
    ppm = []
    for relative in (POS, NEG):
        ds = tofsims.read(shared(relative))
        for name, mass in zip(ds["fragment"].values, ds["fragment_mass"].values):
            name = str(name).split(" (")[0]
            if np.isnan(mass) or "," in name or name.count("-") + name.count("+") != 1:
                continue
            try:
                exact = fragment_mass(name)
            except ToFSIMSError:  # an isotope the table lacks
                continue
            ppm.append(1e6 * (mass - exact) / mass)
    ppm = np.abs(ppm)
    assert ppm.size >= 100
    assert ppm.max() < 200 and np.median(ppm) < 30
    pos = tofsims.read(shared(POS))
    assert {"SnO+", "SnO+ (2)", "I+"} <= set(str(n) for n in pos["fragment"].values)


@pytest.mark.parametrize("relative", [POS, NEG])
def test_surfacelab7_profile_to_uniformity(shared, relative):
    """The whole depth route: the trailing empty point (every column 0) is left out, the total
    normalises, peaks never counted beyond the surface are listed as untested."""
    ds = tofsims.read(shared(relative))
    assert float(ds["intensity"].isel(sputter_time=-1).sum()) == 0.0
    profile = profiles.profile_from_export(ds, normalize="total")
    assert profile.sizes["scan"] == ds.sizes["sputter_time"] - 1
    assert "1 trailing empty" in profile.attrs["note"]
    test = profiles.uniformity_test(profile)
    untested = [s for s in test.attrs.get("untested", "").split(", ") if s]
    counted = profile["counts"].isel(scan=slice(int(profile.sizes["scan"] * 0.1) + 1, None)).sum("scan")
    assert set(untested) == {str(n) for n in counted["fragment"].values if float(counted.sel(fragment=n)) == 0}
    assert test.sizes["fragment"] + len(untested) == profile.sizes["fragment"]
    assert np.all(np.isfinite(test["p_value"].values))


def _profile(tmp_path, rows, names="\tBO-\tMnO-\tBO- / ( MnO- )", masses="\t27.0048\t70.9335\tN/A"):
    head = ("# Profile Smoothing is Disabled\t\r\n#\t\t\t" + names + "\t\r\n#\t\t\t" + masses + "\t\r\n"
            "#Data Point #\tSputter Time (s)\tDose (ions)\tFluence (ions/cm^2)\tIntensity\tIntensity\tIntensity\t\r\n")
    path = tmp_path / "p.txt"
    path.write_bytes((head + "".join(r + "\t\r\n" for r in rows)).encode())
    return path


def test_surfacelab7_layout_variations(tmp_path):
    good = ["1\t0\t1e6\t1e10\t5\t7\t0.714", "2\t1.5\t2e6\t2e10\t4\t0\tinf", "3\t3\t3e6\t3e10\t-2\t1\t-2"]
    ds = tofsims.read(_profile(tmp_path, good))
    assert list(ds["fragment"].values) == ["BO-", "MnO-"] and ds.attrs["polarity"] == "negative"
    np.testing.assert_array_equal(ds["intensity"].sel(fragment="BO-").values, [5, 4, -2])
    np.testing.assert_array_equal(ds["fragment_mass"].values, [27.0048, 70.9335])
    assert np.isinf(float(ds["ratio"][1, 0]))
    # negative intensities: kept, counted, noted (the project's policy for export formats)
    assert ds.attrs["negative_values"] == 1 and "1 negative intensities (min -2)" in ds.attrs["notes"]
    for rows, message in (
        (["1\t0\t1e6\t1e10\t5\tinf\t1"], "non-finite intensity value (NaN/inf) at line 5, column 6"),
        (["1\t0\t1e6\t1e10\tnan\t7\t1"], "non-finite intensity value"),
        (["1\tnan\t1e6\t1e10\t5\t7\t1"], "non-finite axis value"),
        ([good[0], "7\t1.5\t2e6\t2e10\t4\t0\t1"], "data point numbers are not consecutive: row 2 says 7"),
        ([good[0], "2\t-1.5\t2e6\t2e10\t4\t0\t1"], "sputter times decrease"),
        ([good[0], "2\t1.5\t2e6\t2e10\t4\t0"], "ragged rows: line 6"),
        ([good[0], "2\t1.5\t-2e6\t2e10\t4\t0\t1"], "negative dose"),
        (["1\tx0\t1e6\t1e10\t5\t7\t1", good[1]], "line 5: not a number: 'x0' in a data row"),
    ):
        with pytest.raises(ToFSIMSError, match=re.escape(message)) as info:
            tofsims.read(_profile(tmp_path, rows))
        assert str(info.value).startswith(str(tmp_path / "p.txt"))
    # positive names; a header without the masses line still reads (masses NaN)
    path = tmp_path / "q.txt"
    path.write_text("#\t\t\t\tNa+\tK+\t\n#Data Point #\tSputter Time (s)\tDose (ions)\tFluence (ions/cm^2)\t"
                    "Intensity\tIntensity\t\n1\t0\t1\t1\t3\t4\t\n2\t1\t2\t2\t3\t4\t\n")
    ds = tofsims.read(path)
    assert ds.attrs["polarity"] == "positive" and np.isnan(ds["fragment_mass"].values).all()


def test_image_export_corrected_and_negative_values(tmp_path):
    path = tmp_path / "img - Cl-.txt"
    path.write_text("# Size: 2 x 1 x 1\n0 0 0 2.5\n1 0 0 -1\n")
    ds = tofsims.read(path)
    assert ds["counts"].dtype == np.float64 and ds.attrs["integer_counts"] == 0
    np.testing.assert_array_equal(ds["counts"].values.ravel(), [2.5, -1.0])
    assert ds.attrs["polarity"] == "negative" and ds.attrs["negative_values"] == 1
    for text, message in (("# Size: 0 x 1 x 1\n0 0 0 1\n", "absurd cube size"),
                          ("# Field of view: um\n0 0 0 1\n", "not a positive number"),
                          ("# Size: 99999 x 99999 x 99999\n0 0 0 1\n", "absurd cube size"),
                          ("0 0 0 1e999\n", "non-finite"),
                          ("0 0 9e99 1\n", "non-negative integers")):
        path.write_text(text)
        with pytest.raises(ToFSIMSError, match=re.escape(message)):
            tofsims.read(path)


def test_every_shared_tofsims_file_reads(shared):
    """Every instrument file under ../shared/data/tofsims reads (licences and provenance aside)."""
    root = shared("tofsims")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(("LICENSE", "PROVENANCE")))
    assert len(files) >= 4
    for path in files:
        ds = tofsims.read(path)
        assert ds.attrs["technique"] == "ToF-SIMS" and ds.attrs["source"] == str(path)
        key = "intensity" if "intensity" in ds else "counts"
        assert ds[key].size > 0 and np.all(np.isfinite(ds[key].values)), path


@pytest.mark.parametrize("relative, polarity, n_points", [(POS, "positive", 42), (NEG, "negative", 165)])
def test_surfacelab7_cli_info_and_depth(shared, capsys, tmp_path, relative, polarity, n_points):
    """``tofsims info`` and ``tofsims depth`` on the real exports: polarity from the names, no
    axis counted as a fragment, a result file with one uniformity verdict per tested fragment."""
    import xarray as xr

    from doptrace.report.cli import main

    path = shared(relative)
    assert main(["tofsims", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"polarity: {polarity}" in out and f"sputter_time={n_points}" in out
    assert "Intensity" not in out and "Sputter Time" not in out and "ratio note:" in out
    result = tmp_path / "depth.nc"
    assert main(["tofsims", "depth", str(path), "--out", str(result)]) == 0
    out = capsys.readouterr().out
    with xr.open_dataset(result) as ds:
        tested = [str(n) for n in ds["fragment"].values if np.isfinite(float(ds["uniformity_p_value"].sel(fragment=n)))]
        assert ds.sizes["scan"] == n_points - 1
    assert len(tested) >= 50 and sum(line.count("-> ") for line in out.splitlines()) == len(tested)
