"""A ToF-SIMS project entry with custom mass intervals and an MVA: results follow the conventions, the
section draws the ratio map and the score maps / loadings."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.report.conventions import check_result
from doptrace.report.project import Entry
from doptrace.report.runner import Analysis
from doptrace.report.techniques import adapters
from doptrace.tofsims import simulate


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sims_mva_project")
    truth = simulate.poisson_counts(simulate.phantom((10, 32, 32), rim_px=0, seed=4), seed=4)
    path = folder / "raw.itm"
    simulate.write_itm(path, truth, seed=4)
    masses = [f"{name}={float(truth['mass_low'].sel(fragment=name)):.6f}:{float(truth['mass_high'].sel(fragment=name)):.6f}"
              for name in ("BO-", "MnO-", "InO-", "ClO-", "O-")]
    settings = {"file": path, "masses": masses, "normalize": "total", "mva": "pca", "mva_components": 3,
                "pair": "BO-:MnO-"}
    adapter = adapters()["tofsims"]
    results = adapter.analyse(dict(settings))
    return truth, settings, results, adapter


def test_entry_keys_are_in_the_schema(analysed):
    _, settings, _, adapter = analysed
    assert set(settings) <= set(adapter.ENTRY_SCHEMA)


def test_results_from_custom_intervals_equal_the_truth_and_pass_the_conventions(analysed):
    truth, _, results, _ = analysed
    for name, ds in results.items():
        check_result(ds, name)
    maps = results["maps"]
    np.testing.assert_array_equal(maps["counts"].sel(fragment="BO-").values,
                                  truth["counts"].sel(fragment="BO-").sum("scan").values)
    # the entry's pair BO-:MnO-: the maps carry its pixel ratio map
    num = truth["counts"].sel(fragment="BO-").sum("scan").values.astype(float)
    den = truth["counts"].sel(fragment="MnO-").sum("scan").values.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(maps["ratio"].values, np.where(den > 0, num / den, np.nan))
    scores = results["mva"]["scores"].sel(component=1).values.ravel()
    assert abs(np.corrcoef(scores, truth["oxide"].values.ravel())[0, 1]) > 0.9


def test_section_draws_the_ratio_map_and_the_mva(analysed):
    _, settings, results, adapter = analysed
    analysis = Analysis(Entry("S", "tofsims", 0, settings), results)
    blocks = adapter.section([analysis])
    captions = [getattr(b, "caption", "") for b in blocks]
    assert any("last panel: pixel ratio BO-/MnO-" in c for c in captions)
    mva_plots = [b for b in blocks if "PCA of the summed image" in getattr(b, "caption", "")]
    assert len(mva_plots) == 1
    fig = mva_plots[0].function(*mva_plots[0].args)
    assert len(fig.axes) >= 6  # scores and loadings for 3 components (+ colour bars)
