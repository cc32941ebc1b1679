"""``doptrace.stem_eds.pipeline``: one file's results from Python, with the cube fitted once."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.report.techniques import adapters
from doptrace.stem_eds import load_factors, model_fit, read
from doptrace.stem_eds import pipeline
from doptrace.stem_eds.simulate import LRMO, kfactor_toml, simulate_spectrum_image

ELEMENTS = ["O", "Mn", "Co", "Ni"]


@pytest.fixture(scope="module")
def particle(tmp_path_factory):
    """A simulated Li-rich oxide particle with a Mn-rich inclusion and its exact k-factors."""
    folder = tmp_path_factory.mktemp("eds_pipeline")
    sim = simulate_spectrum_image(folder / "p.hspy", shape=(24, 24), kind="inclusion", element="Mn", seed=5)
    kfile = folder / "k.toml"
    kfile.write_text(kfactor_toml())
    return sim, kfile


@pytest.fixture
def fit_calls(monkeypatch):
    """Counts calls of the real model fit (the wrapper calls it unchanged)."""
    calls = []
    real = model_fit.model_intensities

    def counted(*args, **kwargs):
        calls.append([line.name for line in args[1]])
        return real(*args, **kwargs)

    monkeypatch.setattr(model_fit, "model_intensities", counted)
    return calls


def test_the_cube_is_fitted_once_with_k_factors(particle, fit_calls):
    sim, kfile = particle
    results = adapters()["eds"].analyse({"file": sim.path, "elements": ELEMENTS, "kfactors": kfile})
    assert len(fit_calls) == 1  # was 2: once for the maps, once for the quantification
    assert sorted(fit_calls[0]) == sorted(["O_Ka", "Mn_Ka", "Co_Ka", "Ni_Ka"])
    assert set(results) == {"maps", "quant", "homogeneity"}
    # against the simulator's truth: the whole-image composition of the quantified elements
    truth = sim.atomic_percent.sel(element=ELEMENTS)
    truth = 100 * truth / truth.sum("element")
    for element in ELEMENTS:
        assert float(results["quant"]["total_atomic_percent"].sel(element=element)) == pytest.approx(
            float(truth.sel(element=element).mean()), abs=0.6)
    assert str(results["homogeneity"]["verdict"].sel(element="Mn").values).startswith("inhomogeneous")
    assert results["homogeneity"].attrs["basis"] == "atomic percent (k-factors)"


def test_one_fit_gives_what_two_separate_fits_gave(particle, fit_calls):
    """Maps and quantification from the one fit equal those of separate fits of the same lines."""
    sim, kfile = particle
    one = pipeline.analyse(sim.path, ELEMENTS, kfactors=kfile)
    assert len(fit_calls) == 1
    da = read(sim.path)
    maps = pipeline.intensities(da, ELEMENTS)
    quant = pipeline.quantified(da, load_factors(kfile), ELEMENTS)
    assert len(fit_calls) == 3
    np.testing.assert_allclose(one["maps"]["intensity"].values, maps["intensity"].values, rtol=1e-12)
    np.testing.assert_allclose(one["quant"]["atomic_percent"].values, quant["atomic_percent"].values, rtol=1e-12)
    np.testing.assert_allclose(one["quant"]["total_atomic_percent"].values, quant["total_atomic_percent"].values,
                               rtol=1e-12)
    assert list(one["maps"]["line"].values) == list(maps["line"].values)


def test_quantifying_a_subset_still_fits_once(particle, fit_calls):
    sim, kfile = particle
    results = pipeline.analyse(sim.path, ELEMENTS, kfactors=kfile, quantify=["Mn", "Co", "Ni"])
    assert len(fit_calls) == 1
    assert list(results["maps"]["element"].values) == ELEMENTS
    assert list(results["quant"]["element"].values) == ["Mn", "Co", "Ni"]
    atoms = sum(LRMO[e] for e in ("Mn", "Co", "Ni"))
    # Co is uniform in the simulated host (only Mn is richer in the inclusion)
    assert float(results["quant"]["total_atomic_percent"].sel(element="Co")) == pytest.approx(
        100 * LRMO["Co"] / atoms, abs=1.5)


def test_without_k_factors_only_maps(particle, fit_calls):
    sim, _ = particle
    results = pipeline.analyse(sim.path, ELEMENTS)
    assert len(fit_calls) == 1 and set(results) == {"maps", "homogeneity"}
    assert results["homogeneity"].attrs["basis"] == "intensity fraction (no k-factors)"
