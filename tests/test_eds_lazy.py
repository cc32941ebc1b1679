"""Lazy (HDF5, read block by block) extraction gives the eager numbers, through every read path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from doptrace.stem_eds import model_intensities, parse_elements, read, window_intensities
from doptrace.stem_eds._blocks import _RawChunks, hdf5_source, iter_blocks, reduce_spectra
from doptrace.stem_eds.simulate import simulate_spectrum_image


def _resave(da, path, dtype, rows: int, compression=None):
    """The counts of ``da`` as ``dtype`` in a .hspy file chunked by ``rows`` rows (RosettaSciIO writer)."""
    import hyperspy.api as hs

    signal = hs.signals.Signal1D(np.asarray(da.values).astype(dtype))
    signal.set_signal_type("EDS_TEM")
    for axis, name in zip(signal.axes_manager.navigation_axes[::-1], ("y", "x")):
        axis.name, axis.units, axis.scale = name, "nm", 2.0
    energy = signal.axes_manager.signal_axes[0]
    energy.units, energy.offset = "keV", float(da.energy[0])
    energy.scale = float(da.energy[1] - da.energy[0])
    signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    signal.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
    signal.metadata.set_item("Sample.elements", ["Co", "Mn", "Ni", "O"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signal.save(str(path), overwrite=True, chunks=(rows,) + da.shape[1:], compression=compression)
    return read(path), read(path, lazy=True)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eds_lazy")
    sim = simulate_spectrum_image(folder / "sim.hspy", shape=(23, 20), n_channels=1024, kind="uniform", seed=5)
    return folder, read(sim.path)


@pytest.mark.parametrize("dtype, scale, compression", [
    ("uint16", 300, None),  # counts above 255: the shuffled high byte plane is used
    ("uint16", 1, None),    # counts below 256: the high byte plane is all zero
    ("uint32", 70000, None),
    ("float32", 1, None),
    ("uint16", 1, "gzip"),  # a filter HDF5 must decode: the hyperslab path
])
def test_lazy_blocks_are_the_stored_counts(cube, dtype, scale, compression):
    folder, da = cube
    eager, lazy = _resave(da * scale, folder / f"c_{dtype}_{scale}_{compression}.hspy", dtype, 5, compression)
    dset = hdf5_source(lazy.data)
    assert dset is not None and dset.chunks == (5, 20, 1024)
    fast = _RawChunks.open(dset, [(0, 1)])
    assert (fast is None) == (compression is not None)
    counts = eager.values
    assert counts.max() > (255 if scale > 1 else 0)
    ranges = [(3, 40), (500, 501), (700, 1024)]
    seen = 0
    for start, stop, parts in iter_blocks(lazy.data, ranges):
        for (a, b), part in zip(ranges, parts):
            np.testing.assert_array_equal(part, counts[start:stop, :, a:b].reshape(-1, b - a))
        seen += stop - start
    assert seen == 23  # the last, partial chunk (3 of 5 rows) included
    # The reduction over the file equals the same reduction of the in-memory cube exactly.
    sums = reduce_spectra(lazy.data, lambda blocks: np.stack([b.sum(axis=1) for b in blocks], axis=1), 3, ranges)
    truth = np.stack([counts[..., a:b].sum(axis=-1, dtype=np.float64) for a, b in ranges], axis=-1)
    np.testing.assert_array_equal(sums, truth)


@pytest.mark.parametrize("dtype, scale", [("uint16", 300), ("uint16", 1), ("float32", 1)])
def test_lazy_intensities_equal_eager(cube, dtype, scale):
    folder, da = cube
    eager, lazy = _resave(da * scale, folder / f"i_{dtype}_{scale}.hspy", dtype, 4)
    lines = parse_elements("O,Mn,Co,Ni", 10.0)
    ew, lw = (window_intensities(d, lines, background="auto") for d in (eager, lazy))
    np.testing.assert_array_equal(lw["intensity"].values, ew["intensity"].values)
    # Without background, a window intensity is the plain slice sum of the stored counts over
    # the window's channels (nearest channel to each edge).
    import json

    from doptrace.stem_eds.intensities import channel, energy_axis

    raw = window_intensities(lazy, lines, background=None)
    offset, step, _ = energy_axis(eager)
    for line_ in lines:
        lo, hi = json.loads(raw.attrs["windows"])[line_.name]["window"]
        truth = eager.values[..., channel(lo, offset, step):channel(hi, offset, step)].sum(axis=-1, dtype=np.float64)
        np.testing.assert_array_equal(raw["intensity"].sel(element=line_.element).values, truth)
    em, lm = (model_intensities(d, lines) for d in (eager, lazy))
    # Same calibration and weights (exact two-pass sum), so the same numbers to float rounding.
    assert lm.attrs["fwhm_mnka_fitted_ev"] == em.attrs["fwhm_mnka_fitted_ev"]
    assert lm.attrs["regions"] == em.attrs["regions"]
    for name in ("intensity", "intensity_stderr"):
        np.testing.assert_allclose(lm[name].values, em[name].values, rtol=1e-12, atol=1e-9)
