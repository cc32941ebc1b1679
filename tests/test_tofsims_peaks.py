"""Peak search on simulated spectra: every simulated peak found, assigned, its mass within its esd."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.tofsims import calibration, simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.masses import fragment_mass
from doptrace.tofsims.peaks import peak_search


@pytest.fixture(scope="module")
def spectrum():
    truth = simulate.poisson_counts(simulate.phantom((4, 32, 32)), seed=1)
    spec = simulate.spectrum(truth, seed=1)
    areas = dict(simulate.SPECTRUM_CALIBRANTS["negative"])
    for name in truth["fragment"].values:
        areas[str(name)] = areas.get(str(name), 0.0) + float(truth["counts"].sel(fragment=name).sum())
    return spec, areas


def test_every_simulated_peak_is_found_and_assigned(spectrum):
    spec, areas = spectrum
    cal = calibration.calibrate(spec)
    result = peak_search(spec, cal)
    found = [str(a) for a in result["assignment"].values]
    assert sorted(found) == sorted(areas), found  # all 15 ions, nothing spurious on the flat background
    for k, name in enumerate(found):
        peak = result.isel(peak=k)
        true_mass = fragment_mass(name)
        ppm = 1e6 * (float(peak["mass"]) - true_mass) / true_mass
        assert abs(ppm - float(peak["ppm_error"])) < 1e-6
        assert abs(ppm) < 15, (name, ppm)
        assert float(peak["assignment_z"]) < 3, (name, float(peak["assignment_z"]))
        # net counts: the Poisson draw of the simulated area (99.9 % of a Gaussian inside 1.5 FWHM)
        assert abs(float(peak["counts"]) - areas[name]) < 4 * float(peak["counts_stderr"]) + 2e-3 * areas[name], name
    # most counts first; resolving power near the simulated 4000 (FWHM measured on bins of 2 channels)
    assert np.all(np.diff(result["counts"].values) <= 0)
    assert 3000 < float(np.median(result["resolving_power"])) < 5000
    assert result.attrs["quality"] == "ok"


def test_top_and_file_calibration(spectrum):
    spec, _ = spectrum
    result = peak_search(spec, top=3)
    assert [str(a) for a in result["assignment"].values] == ["O-", "OH-", "H-"]
    assert result.attrs["quality"] == "warning"  # the file's (sf, k0) without an uncertainty


def test_bo_and_c2h3_are_both_candidates_when_close():
    # BO- (27.0048 u) and C2H3- (27.0240 u) 700 ppm apart: with a wide tolerance both are listed,
    # nearest first, each with its ppm error
    spec = simulate.spectrum_from_peaks([fragment_mass("BO-"), fragment_mass("O-")], [5e4, 5e5], polarity="negative")
    result = peak_search(spec, tolerance_ppm=1000, candidates=["C2H3-"])
    bo = result.isel(peak=int(np.argmin(np.abs(result["mass"].values - 27.0))))
    text = str(bo["candidates"].values)
    assert text.startswith("BO- ") and "C2H3- -" in text


def test_no_calibration_is_an_error_naming_the_file():
    spec = simulate.spectrum_from_peaks([16.0], [1e4])
    spec.attrs.pop("sf")
    spec.attrs["source"] = "x.txt"
    with pytest.raises(ToFSIMSError, match="x.txt: no mass calibration"):
        peak_search(spec)


def test_real_negative_spectrum_strong_peaks_assigned(shared):
    # IONTOF ASCII export of a negative spectrum binned by 200 channels (a peak inside one bin):
    # the strongest peaks are the ions every negative SIMS spectrum shows, each known to its bin
    from doptrace import tofsims

    spectrum = tofsims.read(shared("tofsims/iontof_spectrum_txt/N_HEA19_Bi1_1.txt"))
    result = peak_search(spectrum, calibration.calibrate(spectrum), top=9)
    assert result.attrs["polarity"] == "negative"
    found = [str(a) for a in result["assignment"].values]
    assert set(found) == {"H-", "Cl-", "[37Cl]-", "O-", "C2H-", "OH-", "F-", "CN-", "CH-"}
    # every assignment lies within its mass esd (bin-limited: ~0.02 u) and under 0.3 % off
    assert np.all(result["assignment_z"].values < 1.5)
    assert np.all(np.abs(result["ppm_error"].values) < 3000)
