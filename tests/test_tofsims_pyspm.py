"""The simulated ITA files are real IONTOF files: pySPM, an independent open-source reader, opens
them and returns exactly the simulated images, peak list, calibration and instrument settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from doptrace.tofsims import simulate

pySPM = pytest.importorskip("pySPM", reason="pySPM (test extra) is not installed")


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    path = tmp_path_factory.mktemp("pyspm") / "surface.ita"
    truth = simulate.write_ita(path, shape=(5, 20, 28), bulk_doped=False, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pySPM's own deprecation chatter
        ita = pySPM.ITA(str(path))
    yield ita, truth
    ita.f.close()


def test_pyspm_reads_the_same_images(opened):
    ita, truth = opened
    counts = truth["counts"].values
    n_frag, n_scans, ny, nx = counts.shape
    assert (ita.Nscan, ita.sx, ita.sy, ita.Nimg) == (n_scans, nx, ny, n_frag + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(n_frag):
            for s in range(n_scans):
                np.testing.assert_array_equal(ita.get_image(k + 2, s), counts[k, s])
            np.testing.assert_array_equal(ita.get_added_image(k + 2), counts[k].sum(axis=0))
        np.testing.assert_array_equal(ita.get_added_image(0), truth["total"].values.sum(axis=0))
        # the total-ion image pySPM shows (flipped up-down for display, float32)
        np.testing.assert_array_equal(np.flipud(ita.get_intensity().pixels), truth["total"].values.sum(axis=0))


def test_pyspm_reads_peaks_calibration_and_settings(opened):
    ita, truth = opened
    masses = {p["assign"]: p for p in ita.get_masses() if p["assign"]}
    assert list(masses) == list(truth["fragment"].values)
    for name in masses:
        assert masses[name]["cmass"] == truth["fragment_mass"].sel(fragment=name).item()
        assert masses[name]["lmass"] == truth["mass_low"].sel(fragment=name).item()
        assert masses[name]["umass"] == truth["mass_high"].sel(fragment=name).item()
    bo = ita.get_channels_by_name("BO-", strict=True)
    assert [c["id"]["long"] for c in bo] == [2]
    assert (ita.sf, ita.k0) == (simulate.SF, simulate.K0)
    assert ita.polarity == "Negative"
    assert ita.spp == truth.attrs["shots_per_pixel"] == 1000
    assert ita.fov == pytest.approx(100e-6)
    assert ita.get_value("Analysis.SputterTime")["float"] == 1200.0
    mass, spectrum = ita.get_spectrum()
    expected = simulate.spectrum(truth, seed=11, binning=2)
    np.testing.assert_array_equal(spectrum, expected["intensity"].values)
