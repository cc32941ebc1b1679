"""TIFF/CSV exports of ToF-SIMS and EDS maps and profiles read back to the result arrays exactly."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from doptrace.core.export import ExportError, export  # noqa: E402
from doptrace.tofsims import simulate  # noqa: E402
from doptrace.tofsims.maps import fragment_maps, ratio_map  # noqa: E402
from doptrace.tofsims.profiles import depth_profile  # noqa: E402


@pytest.fixture(scope="module")
def cube():
    truth = simulate.poisson_counts(simulate.phantom((6, 16, 20)), seed=7)
    truth.attrs["source"] = "cube.ita"
    return truth


def test_map_tiffs_equal_the_result_and_the_sidecar_has_the_axes(cube, tmp_path):
    maps = fragment_maps(cube, ["BO-", "MnO-"], normalize="total")
    maps["ratio"] = ratio_map(cube, "BO-", "MnO-")["ratio"]
    files = export(maps, tmp_path, "tiff", stem="cube_maps")
    side = json.loads((tmp_path / "cube_maps_axes.json").read_text())
    assert files[-1].name == "cube_maps_axes.json"
    for entry in side["files"]:
        image = tifffile.imread(tmp_path / entry["file"])
        var = maps[entry["variable"]]
        expected = var.sel({entry["label_dim"]: entry["label"]}) if entry["label_dim"] else var
        assert image.dtype == expected.dtype
        np.testing.assert_array_equal(image, expected.values)
    names = {e["file"] for e in side["files"]}
    assert {"cube_maps_counts_BO-.tif", "cube_maps_intensity_MnO-.tif", "cube_maps_ratio.tif"} <= names
    assert side["axes"]["x"]["units"] == "um" and side["axes"]["x"]["pixel_size"] == pytest.approx(100 / 20)
    assert side["labels"]["fragment"]["fragment_mass"]["values"][0] == pytest.approx(27.0048, abs=1e-4)
    assert side["labels"]["fragment"]["mass_low"]["units"] == "u"


def test_map_csv_equals_the_result(cube, tmp_path):
    maps = fragment_maps(cube, ["InO-"], normalize="total")
    export(maps, tmp_path, "csv", stem="m")
    back = np.loadtxt(tmp_path / "m_intensity_InO-.csv", delimiter=",")
    np.testing.assert_array_equal(back, maps["intensity"].sel(fragment="InO-").values)
    counts = np.loadtxt(tmp_path / "m_counts_InO-.csv", delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(counts, maps["counts"].sel(fragment="InO-").values)


def test_profile_csv_and_tiff_equal_the_result(cube, tmp_path):
    from doptrace.tofsims.processing import sputter_to_depth

    profile = depth_profile(sputter_to_depth(cube, crater_depth_nm=500.0), ["BO-", "MnO-"], normalize="total")
    export(profile, tmp_path, "csv", stem="p")
    with open(tmp_path / "p_profile.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], np.array(rows[1:], float)
    assert "depth (nm)" in header and "intensity[BO-] (1)" in header
    np.testing.assert_array_equal(body[:, header.index("intensity[BO-] (1)")], profile["intensity"].sel(fragment="BO-").values)
    np.testing.assert_array_equal(body[:, header.index("depth (nm)")], profile["depth"].values)
    export(profile, tmp_path, "tiff", stem="p")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p_counts.tif"),
                                  profile["counts"].transpose("fragment", "scan").values)


def test_eds_maps_export(tmp_path):
    from doptrace.stem_eds import read
    from doptrace.stem_eds.pipeline import intensities
    from doptrace.stem_eds.simulate import simulate_spectrum_image

    path = tmp_path / "si.hspy"
    simulate_spectrum_image(path, shape=(8, 10), kind="uniform", seed=1)
    ints = intensities(read(path), "O,Mn", method="windows")
    export(ints, tmp_path / "out", "tiff", stem="si")
    side = json.loads((tmp_path / "out" / "si_axes.json").read_text())
    for entry in side["files"]:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / entry["file"]),
                                      ints[entry["variable"]].sel(element=entry["label"]).values)
    assert side["labels"]["element"]["line_energy"]["units"] == "keV"


def test_nothing_to_export_names_the_source(tmp_path):
    import xarray as xr

    with pytest.raises(ExportError, match="q.nc: nothing to export"):
        export(xr.Dataset({"a": ("element", [1.0])}, attrs={"source": "q.nc"}), tmp_path)
    with pytest.raises(ExportError, match="format"):
        export(xr.Dataset(), tmp_path, "png")
