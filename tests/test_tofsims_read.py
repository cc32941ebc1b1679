"""Readers: simulated ITA / ASCII exports return exactly the simulator's ground truth; the two real
SurfaceLab spectra read with their documented layout."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.formats import detect, ita
from doptrace.tofsims.masses import fragment_mass

SHAPE = (8, 24, 32)  # scans, y, x (non-square: catches transposed images)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tof")
    truth = simulate.write_ita(folder / "bulk.ita", shape=SHAPE, bulk_doped=True, b_gradient=0.2, seed=7,
                               sample="LBO-LRMO")
    return folder, truth


def test_ita_counts_total_and_coords_equal_truth(simulated):
    folder, truth = simulated
    ds = tofsims.read(folder / "bulk.ita")
    assert ds["counts"].dims == ("fragment", "scan", "y", "x")
    assert ds["counts"].dtype == np.uint32
    np.testing.assert_array_equal(ds["counts"].values, truth["counts"].values)
    np.testing.assert_array_equal(ds["total"].values, truth["total"].values)
    assert list(ds["fragment"].values) == list(simulate.DEFAULT_FRAGMENTS)
    for coord in ("fragment_mass", "mass_low", "mass_high", "sputter_time", "x", "y"):
        np.testing.assert_allclose(ds[coord].values, truth[coord].values, rtol=1e-12, err_msg=coord)
        assert ds[coord].attrs["units"] == truth[coord].attrs["units"]
    assert np.isnan(ds["depth"].values).all() and ds["depth"].attrs["method"] == "none"
    # 100 um over 32 pixels: centres at 1.5625, 4.6875, ...
    assert ds["x"].values[0] == pytest.approx(100 / 32 / 2)
    assert ds["sputter_time"].values[1] == pytest.approx(1200.0 / SHAPE[0])
    attrs = ds.attrs
    assert attrs["technique"] == "ToF-SIMS" and attrs["polarity"] == "negative"
    assert attrs["field_of_view_um"] == 100.0
    assert (attrs["sf"], attrs["k0"]) == (simulate.SF, simulate.K0)
    assert attrs["channel_width_ns"] == pytest.approx(simulate.CHANNEL_WIDTH_NS)
    assert (attrs["shots_per_pixel"], attrs["dead_time_corrected"], attrs["sample"]) == (1000, 1, "LBO-LRMO")
    assert attrs["sputter_time_total"] == 1200.0 and attrs["primary_ion"] == "Bi3+"


def test_ita_subsets_lazy_and_stack(simulated):
    folder, truth = simulated
    path = folder / "bulk.ita"
    part = tofsims.read(path, fragments=["MnO-", "BO-"], scans=[1, 5])
    np.testing.assert_array_equal(
        part["counts"].values, truth["counts"].sel(fragment=["MnO-", "BO-"]).isel(scan=[1, 5]).values
    )
    np.testing.assert_array_equal(part["scan"].values, [1, 5])
    lazy = tofsims.read(path, lazy=True)
    assert hasattr(lazy["counts"].data, "dask")
    np.testing.assert_array_equal(lazy["counts"].sel(fragment="InO-").sum("scan").values,
                                  truth["counts"].sel(fragment="InO-").sum("scan").values)
    stack = ita.read_stack(path, "ClO-")
    assert stack.shape == SHAPE and stack.dtype == np.uint32
    np.testing.assert_array_equal(stack, truth["counts"].sel(fragment="ClO-").values)
    np.testing.assert_array_equal(ita.read_stack(path, "total"), truth["total"].values)
    with pytest.raises(tofsims.ToFSIMSError, match="no fragment 'XyO-'"):
        ita.read_stack(path, "XyO-")
    with pytest.raises(tofsims.ToFSIMSError, match=r"not in the peak list"):
        tofsims.read(path, fragments=["BO-", "Nope-"])


def test_ita_info_and_spectrum(simulated):
    folder, truth = simulated
    info = ita.info(folder / "bulk.ita")
    assert (info["nx"], info["ny"], info["n_scans"]) == (SHAPE[2], SHAPE[1], SHAPE[0])
    names = [p["name"] for p in info["peaks"]]
    assert names[:2] == ["total", "sum of rest"] and names[2:] == list(simulate.DEFAULT_FRAGMENTS)
    bo = info["peaks"][2]
    assert bo["cmass"] == pytest.approx(27.0047686, abs=1e-6)
    spectrum = ita.read_spectrum(folder / "bulk.ita")
    expected = simulate.spectrum(truth, seed=7, binning=2)
    np.testing.assert_array_equal(spectrum["intensity"].values, expected["intensity"].values)
    np.testing.assert_array_equal(spectrum["channel"].values, expected["channel"].values)


def test_ascii_exports_round_trip(simulated, tmp_path):
    _, truth = simulated
    files = simulate.write_ascii_exports(tmp_path, truth, stem="bulk")
    assert detect(files["spectrum"]) == "spectrum"
    assert detect(files["profile"]) == "profile"
    assert detect(files["images"]["BO-"]) == "image"
    profile = tofsims.read(files["profile"])
    assert list(profile["fragment"].values) == list(truth["fragment"].values)
    np.testing.assert_array_equal(
        profile["intensity"].values, truth["counts"].sum(("y", "x")).transpose("scan", "fragment").values
    )
    np.testing.assert_allclose(profile["sputter_time"].values, truth["sputter_time"].values, atol=1e-4)
    images = tofsims.read(list(files["images"].values()))
    assert list(images["fragment"].values) == list(truth["fragment"].values)
    np.testing.assert_array_equal(images["counts"].values, truth["counts"].values)
    assert images.attrs["field_of_view_um"] == pytest.approx(100.0)
    single = tofsims.read(files["images"]["InO-"])
    np.testing.assert_array_equal(single["counts"].values[0], truth["counts"].sel(fragment="InO-").values)
    spectrum = tofsims.read(files["spectrum"], polarity="negative")
    assert spectrum.attrs["binning"] == 200 and spectrum.attrs["dead_time_corrected"] == 0
    # CRLF lines: the simulator's comment, binning, dead time, column header, one per channel
    assert files["spectrum"].read_bytes().count(b"\r\n") == spectrum.sizes["channel"] + 4


def test_duplicate_assignments_get_distinct_names(tmp_path):
    truth = simulate.poisson_counts(simulate.phantom((2, 4, 4), fragments=("BO-", "MnO-"), seed=2), seed=2)
    truth = truth.assign_coords(fragment=["BO-", "BO-"])  # two intervals both assigned BO-
    ita.write(tmp_path / "dup.ita", truth)
    ds = tofsims.read(tmp_path / "dup.ita")
    assert list(ds["fragment"].values) == ["BO-", f"BO- ({fragment_mass('MnO-'):.3f}u)"]
    np.testing.assert_array_equal(ds["counts"].values, truth["counts"].values)


@pytest.mark.parametrize(
    "name, rows, first, last_channel, total",
    [
        ("N_HEA19_Bi1_1.txt", 4950, (100.0, 0.000202, 2.0), 989_876.0, 21_868_157.0),
        ("P_HEA19_Bi1_1.txt", 4908, None, None, None),
    ],
)
def test_real_surfacelab_spectra(shared, name, rows, first, last_channel, total):
    path = shared(f"tofsims/iontof_spectrum_txt/{name}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ds = tofsims.read(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # opened read-only, untouched
    assert ds.sizes["channel"] == rows  # lines minus 2 comment lines and the column header
    assert ds.attrs["binning"] == 200 and ds.attrs["dead_time_corrected"] == 1
    assert np.all(np.diff(ds["channel"].values)[:-1] == 200.0)  # the last bin is a partial one
    assert ds["intensity"].attrs["units"] == "counts" and ds["mz_file"].attrs["units"] == "u"
    if first is not None:
        assert (float(ds["channel"][0]), float(ds["mz_file"][0]), float(ds["intensity"][0])) == first
        assert float(ds["channel"][-1]) == last_channel
        assert float(ds["intensity"].sum()) == total


def test_file_with_summed_images_only(tmp_path):
    """Some ITA files keep only the images summed over scans: read as one scan, flagged."""
    from doptrace.tofsims.formats import itstr

    truth = simulate.poisson_counts(simulate.phantom((3, 6, 5), fragments=("BO-", "MnO-"), seed=4), seed=4)
    ita.write(tmp_path / "full.ita", truth)
    root = itstr.new_root()
    with itstr.ITStrFile(tmp_path / "full.ita") as f:  # copy everything but the per-scan stacks
        for path, block in f.walk():
            if "ImageStackScans[0]" in path.split("/") or block.is_directory:
                continue
            parent = root.path("/".join(path.split("/")[:-1]))
            name, bid = path.split("/")[-1][:-1].split("[")
            parent.leaf(name, bytes(f.raw(block)), int(bid), compressed=block.type == itstr.COMPRESSED)
    itstr.write(tmp_path / "summed.ita", root)
    ds = tofsims.read(tmp_path / "summed.ita")
    assert ds.sizes["scan"] == 1 and ds.attrs["scans_summed"] == 3
    np.testing.assert_array_equal(ds["counts"].values[:, 0], truth["counts"].sum("scan").values)
    np.testing.assert_array_equal(ds["total"].values[0], truth["total"].sum("scan").values)
