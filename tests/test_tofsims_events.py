"""Raw event lists -> cube: exact against the simulator, independent of the chunk size, streamed
with memory bounded by the cube and about two chunks, and strict about bad records."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.formats import events
from doptrace.tofsims.masses import peak_windows

SHAPE = (6, 16, 20)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "run.events"
    truth = simulate.poisson_counts(simulate.phantom(SHAPE, bulk_doped=True, seed=4), seed=4)
    truth = simulate.write_events(path, truth, seed=4)
    return path, truth


def _cube(path, truth, **kw):
    return events.events_to_cube(path, truth, SHAPE, sf=truth.attrs["sf"], k0=truth.attrs["k0"], **kw)


@pytest.mark.parametrize("chunk", [1, 997, 1 << 17])
def test_cube_equals_truth_for_any_chunk_size(written, chunk):
    path, truth = written
    if chunk == 1:
        chunk = 4096  # smallest practical: many chunks per scan
    cube = _cube(path, truth, chunk_events=chunk)
    np.testing.assert_array_equal(cube["counts"].values, truth["counts"].values)
    np.testing.assert_array_equal(cube["total"].values, truth["total"].values)
    assert list(cube["fragment"].values) == list(truth["fragment"].values)
    np.testing.assert_array_equal(cube["tof_low"].values, truth["tof_low"].values)


def test_registry_and_channel_windows(written):
    path, truth = written
    ds = tofsims.read(path, windows=truth, shape=SHAPE, sf=truth.attrs["sf"], k0=truth.attrs["k0"],
                      sputter_time_total=600.0, field_of_view_um=80.0)
    np.testing.assert_array_equal(ds["counts"].values, truth["counts"].values)
    assert ds["sputter_time"].values[1] == pytest.approx(100.0)
    assert ds["x"].values[0] == pytest.approx(2.0)
    # the same windows given in channels (no sf/k0) give the same cube
    channels = {str(n): (int(lo), int(hi)) for n, lo, hi in
                zip(truth["fragment"].values, truth["tof_low"].values, truth["tof_high"].values)}
    again = events.events_to_cube(path, channels, SHAPE)
    np.testing.assert_array_equal(again["counts"].values, truth["counts"].values)
    with pytest.raises(ToFSIMSError, match="needs windows"):
        tofsims.read(path)


def test_memory_is_bounded_by_cube_plus_chunks(written):
    path, truth = written
    n_events = path.stat().st_size // 20
    chunk = 2048
    assert n_events > 50 * chunk  # the whole list is far bigger than what may be held at once
    windows = peak_windows(list(truth["fragment"].values))
    tracemalloc.start()
    try:
        events.events_to_cube(path, windows, SHAPE, sf=truth.attrs["sf"], k0=truth.attrs["k0"], chunk_events=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cube = (len(windows["fragment"]) + 1) * int(np.prod(SHAPE)) * 4
    chunk = max(chunk, 2 * (len(windows["fragment"]) + 1) * SHAPE[1] * SHAPE[2])  # >= two scans' histograms
    # cube + total; read buffer, carried copy and per-event work arrays (index, codes, bincount's
    # int64 copy: ~ 6 chunk-equivalents); histogram work arrays over <= 2 scans; interpreter slack
    per_chunk_bins = (len(windows["fragment"]) + 1) * 2 * SHAPE[1] * SHAPE[2] * 8
    bound = cube + 6 * chunk * 20 + 3 * per_chunk_bins + 200_000
    assert peak < bound, (peak, bound)
    assert peak < n_events * 20 / 4  # never anything like the whole event list


def test_unsorted_and_sparse_lists_count_right(written, tmp_path):
    """Shuffled records (every chunk spans all scans: the sort-based path) give the same cube."""
    path, truth = written
    records = np.fromfile(path, "<u4").reshape(-1, 5)
    shuffled = tmp_path / "shuffled.events"
    shuffled.write_bytes(records[np.random.default_rng(0).permutation(len(records))].tobytes())
    cube = _cube(shuffled, truth, chunk_events=5000)
    np.testing.assert_array_equal(cube["counts"].values, truth["counts"].values)
    np.testing.assert_array_equal(cube["total"].values, truth["total"].values)


def test_bad_event_lists(tmp_path, written):
    _, truth = written
    w = peak_windows(["BO-", "MnO-"])
    kw = dict(sf=truth.attrs["sf"], k0=truth.attrs["k0"])
    bad = tmp_path / "trunc.events"
    bad.write_bytes(np.zeros(7, "<u4").tobytes())  # 28 bytes: one record and a bit
    with pytest.raises(ToFSIMSError, match=r"trunc\.events: truncated event list"):
        events.events_to_cube(bad, w, (2, 4, 4), **kw)
    outside = tmp_path / "outside.events"
    outside.write_bytes(np.array([[0, 0, 9, 1, 1000]], "<u4").tobytes())
    with pytest.raises(ToFSIMSError, match=r"outside\.events: event outside the 4 x 4 x 2 cube"):
        events.events_to_cube(outside, w, (2, 4, 4), **kw)
    with pytest.raises(ToFSIMSError, match="overlap"):
        events.events_to_cube(outside, {"a": (10, 20), "b": (15, 30)}, (2, 4, 4))
    with pytest.raises(ToFSIMSError, match="absurd cube shape"):
        events.events_to_cube(outside, w, (10**6, 10**4, 10**4), **kw)
