"""Homogeneity on simulated at% maps: uniform -> homogeneous; 30 % inclusion and 10 % gradient detected."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.stem_eds import EDSError, homogeneity, model_intensities, quantify, read
from doptrace.stem_eds.quantify import lines_for, load_factors
from doptrace.stem_eds.simulate import kfactor_toml, simulate_spectrum_image


@pytest.fixture(scope="module")
def factors(tmp_path_factory):
    path = tmp_path_factory.mktemp("eds_k") / "k.toml"
    path.write_text(kfactor_toml())
    return load_factors(path)


def _quant_maps(folder, factors, dose=6000.0, **kwargs):
    sim = simulate_spectrum_image(folder / "h.hspy", shape=(32, 32), dose=dose, **kwargs)
    da = read(sim.path)
    return sim, quantify(model_intensities(da, lines_for("Mn,Co,Ni", factors, 10.0)), factors)


@pytest.mark.parametrize("seed", [11, 12])
def test_uniform_map_is_homogeneous(tmp_path, factors, seed):
    _, q = _quant_maps(tmp_path, factors, kind="uniform", seed=seed)
    h = homogeneity(q)
    assert list(h["verdict"].values) == ["homogeneous"] * 3
    # pure counting noise: H ~ 1 at every block size, within its uncertainty
    assert np.all(np.abs(h["H"].values - 1) < 4 * h["H_stderr"].values)


def test_inclusion_30_percent_is_detected(tmp_path, factors):
    sim, q = _quant_maps(tmp_path, factors, kind="inclusion", element="Mn", amplitude=0.3, seed=13)
    h = homogeneity(q)
    assert str(h["verdict"].sel(element="Mn").values).startswith("inhomogeneous at scale")
    assert float(h["H"].sel(element="Mn").max()) > 3
    # the radial profile falls outward: the Mn-rich disc is at the centre
    profile, error = h["profile_radial"].sel(element="Mn").values, h["profile_radial_stderr"].sel(element="Mn").values
    assert profile[0] - profile[-1] > 5 * np.hypot(error[0], error[-1])
    assert float(h["slope_radial"].sel(element="Mn")) < -2 * float(h["slope_radial_stderr"].sel(element="Mn"))
    # at% of Mn inside vs outside the inclusion matches truth
    truth = sim.atomic_percent.sel(element=["Mn", "Co", "Ni"])
    truth = 100 * truth / truth.sum("element")
    inside = truth.sel(element="Mn").values > truth.sel(element="Mn").values.min() + 1
    measured = q["atomic_percent"].sel(element="Mn").values
    assert measured[inside].mean() == pytest.approx(truth.sel(element="Mn").values[inside].mean(), abs=0.5)
    assert measured[~inside].mean() == pytest.approx(truth.sel(element="Mn").values[~inside].mean(), abs=0.3)


def test_gradient_10_percent_is_detected_with_the_right_slope(tmp_path, factors):
    sim, q = _quant_maps(tmp_path, factors, kind="gradient", element="Mn", amplitude=0.1, seed=14)
    h = homogeneity(q)
    assert str(h["verdict"].sel(element="Mn").values).startswith("inhomogeneous at scale")
    truth = sim.atomic_percent.sel(element=["Mn", "Co", "Ni"])
    truth = (100 * truth / truth.sum("element")).sel(element="Mn").mean("y").values
    x = q["x"].values
    true_slope = np.polyfit(x, truth, 1)[0]  # % per nm
    slope, err = float(h["slope_x"].sel(element="Mn")), float(h["slope_x_stderr"].sel(element="Mn"))
    assert abs(slope - true_slope) < 3 * err
    assert abs(float(h["slope_y"].sel(element="Mn"))) < 4 * float(h["slope_y_stderr"].sel(element="Mn"))
    # Co and Ni fractions fall as Mn rises: negative correlation with Mn
    assert float(h["correlation"].sel(element="Mn", element_b="Co")) < -0.3


def test_too_few_counts_to_tell(tmp_path, factors):
    _, q = _quant_maps(tmp_path, factors, dose=4.0, kind="gradient", element="Mn", amplitude=0.1, seed=15)
    h = homogeneity(q)
    assert "too few counts to tell" in list(h["verdict"].values)


def test_thickness_does_not_make_a_map_inhomogeneous(tmp_path, factors):
    """Raw counts follow the thickness wedge (0.7..1.3); the at% maps stay homogeneous."""
    _, q = _quant_maps(tmp_path, factors, kind="uniform", seed=16)
    counts = q["intensity"].sel(element="Mn").values
    assert counts[-4:].mean() / counts[:4].mean() > 1.6
    assert list(homogeneity(q)["verdict"].values) == ["homogeneous"] * 3


def test_zero_counts_and_bare_maps_are_refused(tmp_path, factors):
    _, q = _quant_maps(tmp_path, factors, kind="uniform", seed=17)
    with pytest.raises(EDSError, match="zero counts"):
        homogeneity(q.assign(intensity=q["intensity"] * 0.0))
    with pytest.raises(EDSError, match="needs line intensities with their stderr"):
        homogeneity(q[["atomic_percent"]])


def test_absent_boron_is_too_few_counts_not_homogeneous(tmp_path, factors):
    """No boron in the simulated sample: B at% scatters about zero, so no homogeneity claim can be made."""
    sim = simulate_spectrum_image(tmp_path / "b.hspy", shape=(32, 32), kind="uniform", seed=18)
    q = quantify(model_intensities(read(sim.path), lines_for("O,B,Mn,Co,Ni", factors, 10.0)), factors)
    h = homogeneity(q)
    assert str(h["verdict"].sel(element="B").values) == "too few counts to tell"
    assert np.all(h["cv_poisson"].sel(element="B").values > 1.0)  # noise exceeds the (near-zero) B content
    assert [str(v) for v in h["verdict"].sel(element=["Mn", "Co", "Ni"]).values] == ["homogeneous"] * 3
