"""ITM raw data (every ion as a per-scan stream): the cube built from it equals the simulator's
ground truth, pySPM decodes the same ions from our files, and corrupt streams are refused."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.formats import ita, itm, itstr

SHAPE = (3, 10, 12)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("itm") / "raw.itm"
    truth = simulate.write_itm(path, shape=SHAPE, bulk_doped=True, seed=2)
    return path, truth


def test_itm_cube_equals_truth(written):
    path, truth = written
    ds = tofsims.read(path)
    assert ds.attrs["format"].startswith("IONTOF ITM raw data")
    np.testing.assert_array_equal(ds["counts"].values, truth["counts"].values)
    np.testing.assert_array_equal(ds["total"].values, truth["total"].values)
    assert ds.attrs["n_events"] == int(truth["total"].sum())
    assert list(ds["fragment"].values) == list(simulate.DEFAULT_FRAGMENTS)
    assert ds.attrs["polarity"] == "negative" and ds.attrs["field_of_view_um"] == 100.0
    np.testing.assert_allclose(ds["sputter_time"].values, truth["sputter_time"].values)
    np.testing.assert_array_equal(ita.read_stack(path, "BO-"), truth["counts"].sel(fragment="BO-").values)
    np.testing.assert_array_equal(ita.read_stack(path, "total", scans=[2]), truth["total"].values[[2]])
    part = tofsims.read(path, fragments=["InO-", "BO-"])
    np.testing.assert_array_equal(part["counts"].values, truth["counts"].sel(fragment=["InO-", "BO-"]).values)


def test_pyspm_decodes_the_same_ions(written):
    pySPM = pytest.importorskip("pySPM", reason="pySPM (test extra) is not installed")
    path, truth = written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pySPM.ITM(str(path))
        try:
            assert raw.Nscan == SHAPE[0]
            ours = {scan: records for scan, records in itm.iter_scans(path)}
            for scan in range(SHAPE[0]):
                theirs = raw.get_raw_data(scan)
                mine: dict = {}
                for x, y, tof in ours[scan][:, 2:5].tolist():
                    mine.setdefault((x, y), []).append(tof)
                # pySPM keeps every pixel's ions but the last pixel of the stream (its parser
                # stores a pixel when the next header arrives)
                last = (SHAPE[2] - 1, SHAPE[1] - 1)
                assert set(theirs) == {(x, y) for y in range(SHAPE[1]) for x in range(SHAPE[2])} - {last}
                for pixel, channels in theirs.items():
                    assert list(channels) == mine.get(pixel, []), pixel
                order = raw.get_pixel_order(scan)
                np.testing.assert_array_equal(order, np.arange(SHAPE[1] * SHAPE[2]).reshape(SHAPE[1], SHAPE[2]))
        finally:
            raw.f.close()


def test_decode_checks_the_stream():
    good = np.array([0xC0000001, 0xD0000002, 0x40000011, 500, 700, 0xC0000002, 0xD0000002, 0x40000012], np.uint32)
    records = itm.decode(good, scan=4)
    assert records.tolist() == [[4, 0, 1, 2, 500], [4, 0, 1, 2, 700]]
    with pytest.raises(ToFSIMSError, match="ion words before the first pixel header"):
        itm.decode(good[3:])
    with pytest.raises(ToFSIMSError, match="truncated pixel header"):
        itm.decode(good[:-1])
    with pytest.raises(ToFSIMSError, match="corrupt pixel header"):
        itm.decode(good[[0, 2, 1, 3]])


def test_corrupt_raw_block_names_the_file(tmp_path):
    root = itstr.new_root()
    si = root.path("Meta/SI Image")
    si.int32("res_x", 2)
    si.int32("res_y", 2)
    si.float64("fieldofview", 1e-5)
    mi = root.path("MassIntervalList").dir("mi", 2)
    mi.int32("id", 2)
    mi.text("assign", "O-")
    for key, value in (("cmass", 15.995), ("lmass", 15.9), ("umass", 16.1)):
        mi.float64(key, value)
    root.path("MassScale").float64("sf", simulate.SF)
    root.path("MassScale").float64("k0", simulate.K0)
    raw = root.dir("rawdata")
    raw.uint32("   6", 0, id=0)
    raw.leaf("  14", zlib.compress(np.array([500, 0xC0000000], "<u4").tobytes()), compressed=True)
    path = tmp_path / "bad.itm"
    itstr.write(path, root)
    with pytest.raises(ToFSIMSError, match=r"bad\.itm: scan 0: ion words before the first pixel header"):
        tofsims.read(path)
