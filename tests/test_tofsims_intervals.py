"""Custom mass intervals: from ITM raw ions any interval; from an ITA file only its peak-list intervals."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.formats import itm
from doptrace.tofsims.intervals import parse_interval, parse_intervals, read_intervals


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("intervals")
    truth = simulate.poisson_counts(simulate.phantom((3, 16, 16)), seed=4)
    simulate.write_itm(folder / "raw.itm", truth, seed=4)
    simulate.write_ita(folder / "images.ita", truth, seed=4)
    return folder, truth


def direct_counts(path, sf, k0, low, high, shape):
    """Ions with tof in [ceil(k0 + sf sqrt(low)), ceil(k0 + sf sqrt(high))) counted from the decoded raw words."""
    lo, hi = np.ceil(k0 + sf * np.sqrt(low)), np.ceil(k0 + sf * np.sqrt(high))
    out = np.zeros(shape, np.int64)
    for scan, records in itm.iter_scans(path):
        tof = records[:, 4].astype(np.int64)
        keep = (tof >= lo) & (tof < hi)
        np.add.at(out[scan], (records[keep, 3], records[keep, 2]), 1)
    return out


def test_any_interval_from_itm_raw_data(files):
    folder, truth = files
    windows = parse_intervals(["BO-=26.9548:27.0548", "BOhalf=27.0048+-0.02", "wide=22.9:27.2"])
    ds = read_intervals(folder / "raw.itm", windows)
    # the full peak-list window gives the simulated counts exactly
    np.testing.assert_array_equal(ds["counts"].sel(fragment="BO-").values, truth["counts"].sel(fragment="BO-").values)
    sf, k0 = float(truth.attrs["sf"]), float(truth.attrs["k0"])
    for name, low, high in [("BOhalf", 26.9848, 27.0248), ("wide", 22.9, 27.2)]:
        expected = direct_counts(folder / "raw.itm", sf, k0, low, high, truth["total"].shape)
        np.testing.assert_array_equal(ds["counts"].sel(fragment=name).values, expected)
    # a narrower window holds fewer BO- ions, the wide one LiO- and BO- together
    assert 0 < int(ds["counts"].sel(fragment="BOhalf").sum()) < int(truth["counts"].sel(fragment="BO-").sum())
    both = truth["counts"].sel(fragment=["BO-", "LiO-"]).sum("fragment").values
    np.testing.assert_array_equal(ds["counts"].sel(fragment="wide").values, both)


def test_ita_without_raw_data_refuses_new_intervals_but_serves_its_own(files):
    folder, truth = files
    with pytest.raises(ToFSIMSError, match=r"images\.ita: this ITA file holds only the images of its peak list"):
        read_intervals(folder / "images.ita", parse_intervals("27.0048±0.02"))
    w = truth.sel(fragment="MnO-")
    same = parse_intervals(f"manganese={float(w['mass_low']):.6f}:{float(w['mass_high']):.6f}")
    ds = read_intervals(folder / "images.ita", same)
    np.testing.assert_array_equal(ds["counts"].sel(fragment="manganese").values, truth["counts"].sel(fragment="MnO-").values)


@pytest.mark.parametrize("text", ["BO-=27.1:27.0", "27.0", "x=a:b", "27±-"])
def test_bad_interval_texts(text):
    with pytest.raises(ToFSIMSError, match="mass interval"):
        parse_interval(text)
