"""Simulated files carry a marker that the readers put into ``attrs["simulated"]``, every result
derived from them keeps it, and the report's SIMULATED DATA banner is made from it alone."""

from __future__ import annotations

import re

import numpy as np
import pytest

from doptrace.core.simulated import simulated
from simulated_inputs import run_project, tofsims_entry, xrd_entry

SURFACELAB = "tofsims/surfacelab7/xlab_I241209p_A_MAPI_1f-1nA_neg-B4_NF.txt"


def test_xrd_reader_takes_the_simulator_header(tmp_path, shared):
    from doptrace import xrd
    from doptrace.xrd.rietveld import run
    from doptrace.xrd.recipe import load_recipe

    entry = xrd_entry(tmp_path, "S", True, seed=3)
    pattern = xrd.read(entry["file"])
    assert simulated(pattern).startswith("doptrace XRD simulation: simulation of ")
    result = run(load_recipe(entry["recipe"]), pattern).dataset
    assert simulated(result) == simulated(pattern)
    # the refinement itself is unaffected: Al on TM within 3 esd of the simulated 0.10
    f, e = float(result["dopant_fraction"][0]), float(result["dopant_fraction_stderr"][0])
    assert abs(f - 0.10) < 3 * e and e < 0.01
    # a measured pattern (xylib's Bruker RAW sample) carries no marker
    assert simulated(xrd.read(shared("xrd/xylib_samples/Cu3Au-1.raw"))) == ""


def test_tofsims_files_of_every_simulated_format_carry_the_marker(tmp_path, shared):
    from doptrace import tofsims
    from doptrace.tofsims import pipeline, simulate

    truth = simulate.poisson_counts(simulate.phantom((8, 32, 32), seed=2), seed=2)
    simulate.write_ita(tmp_path / "s.ita", truth, seed=2)
    simulate.write_itm(tmp_path / "s.itm", truth, seed=2)
    exports = simulate.write_ascii_exports(tmp_path, truth, stem="s", seed=2)
    expected = "doptrace ToF-SIMS simulation (seed 2), not a measurement"
    for path in (tmp_path / "s.ita", tmp_path / "s.itm", exports["spectrum"], exports["profile"]):
        assert simulated(tofsims.read(path)) == expected, path
    images = tofsims.read(list(exports["images"].values()))
    assert simulated(images) == expected
    # the comment does not disturb the data: the image exports read back the exact counts
    np.testing.assert_array_equal(images["counts"].sel(fragment="BO-").values,
                                  truth["counts"].sel(fragment="BO-").transpose("scan", "y", "x").values)
    # every result of the pipeline keeps it
    results = pipeline.analyse(tmp_path / "s.ita", crater_depth_nm=500.0, pair="BO-:MnO-")
    assert set(results) >= {"maps", "profile", "uniformity", "coloc", "integrated"}
    assert all(simulated(ds) == expected for ds in results.values())
    # a measured SurfaceLab 7 export carries none
    assert all(simulated(ds) == "" for ds in pipeline.analyse(shared(SURFACELAB)).values())


def _banner(html: str) -> str:
    match = re.search(r"SIMULATED DATA:[^<]*", html)
    return match.group(0) if match else ""


@pytest.fixture(scope="module")
def real_profile():
    from conftest import shared_path

    return str(shared_path(SURFACELAB))


def test_banner_when_the_only_simulated_input_is_xrd(tmp_path, real_profile):
    data = tmp_path / "data"
    data.mkdir()
    entries = {"S": {"xrd": [xrd_entry(data, "S", True, seed=1)], "tofsims": [{"file": real_profile}]}}
    code, html, _ = run_project(tmp_path, entries, {"dopant": "Al"})
    assert code == 0
    banner = _banner(html)
    assert banner.startswith("SIMULATED DATA: 1 input file(s)") and "S_xrd.xye" in banner
    assert "xlab_" not in banner and "al_recipe.toml" not in banner


def test_banner_when_the_only_simulated_input_is_tofsims(tmp_path, real_profile):
    data = tmp_path / "data"
    data.mkdir()
    entries = {"S": {"tofsims": [tofsims_entry(data, "S", True, seed=1, pair=True), {"file": real_profile}]}}
    code, html, _ = run_project(tmp_path, entries, {"dopant": "Al", "sims_fragment": "AlO-", "sims_host": "MnO-"})
    assert code == 0
    banner = _banner(html)
    assert banner.startswith("SIMULATED DATA: 1 input file(s)") and "S_tofsims.ita" in banner
    assert "xlab_" not in banner


def test_no_banner_for_a_project_of_measured_files(tmp_path, real_profile):
    code, html, _ = run_project(tmp_path, {"S": {"tofsims": [{"file": real_profile}]}}, {"dopant": "Al"})
    assert code == 0
    assert "SIMULATED" not in html and "doptrace ToF-SIMS simulation" not in html
    assert "Analyses" in html  # the report was written
