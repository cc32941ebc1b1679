"""Quantification: k-factor files, Cliff-Lorimer uncertainties, zeta factors, absorption against exSpy."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.stem_eds import EDSError, lines as xl, model_intensities, quantify, read, window_intensities
from doptrace.stem_eds.quantify import electron_dose, lines_for, load_factors, sum_region
from doptrace.stem_eds.simulate import LRMO, YIELD, simulate_spectrum_image

FEPT_K = "examples/eds/fept_exspy.toml"


@pytest.fixture
def fept(shared):
    da = read(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy"))
    factors = load_factors(FEPT_K)
    return da, factors, window_intensities(da, lines_for("Fe,Pt", factors, 20.0), background=(5.0, 2.0))


@pytest.mark.parametrize("text,problem", [
    ('source = "x"\n[kfactors]\nFe_Kz = 1.0\n', "element Fe has no X-ray line 'Kz'"),
    ('source = "x"\n[kfactors]\nFe_Ka = -1.0\n', "must be positive"),
    ('source = "x"\n[kfactors]\nFe_Ka = nan\n', "not a finite number"),
    ('source = "x"\n[kfactors]\nFe_Ka = "one"\n', "not a finite number"),
    ('source = "x"\n', r"no \[kfactors\]"),
    ('source = "x"\n[kfactors\n', "not a valid TOML"),
    ('source = "x"\n[kfactors]\nXx_Ka = 1.0\n', "unknown element 'Xx'"),
])
def test_bad_kfactor_files(tmp_path, text, problem):
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(EDSError, match=problem) as err:
        load_factors(path)
    assert str(path) in str(err.value)


def test_kfactor_for_a_line_not_in_the_spectrum(fept, tmp_path):
    da, _, _ = fept
    path = tmp_path / "k.toml"
    path.write_text('source = "x"\n[kfactors]\nFe_Ka = 1.45\nPt_Ka = 5.0\n')
    with pytest.raises(EDSError, match=r"Pt_Ka, a line not present .*axis ends at 20.\d\d keV"):
        lines_for("Fe,Pt", load_factors(path), float(da.energy[-1]))
    with pytest.raises(EDSError, match="no kfactor for Ni"):
        lines_for("Fe,Ni", load_factors(FEPT_K), float(da.energy[-1]))


def test_cliff_lorimer_uncertainty_is_first_order_poisson(fept):
    """The propagated at% stderr equals a brute-force derivative of CL against the intensity errors."""
    _, factors, ints = fept
    q = quantify(ints, factors)
    i = ints["intensity"].values
    e = ints["intensity_stderr"].values
    k = np.array([1.450226, 5.075602]) / np.array([xl.atomic_weight("Fe"), xl.atomic_weight("Pt")])

    def fe(values):
        return 100 * k[0] * values[0] / (k * values).sum()

    grad = [(fe(i + np.eye(2)[j] * 1e-3) - fe(i - np.eye(2)[j] * 1e-3)) / 2e-3 for j in range(2)]
    expected = np.sqrt(sum((g * s) ** 2 for g, s in zip(grad, e)))
    assert float(q["atomic_percent_stderr"].sel(element="Fe")) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("thickness", [10.0, 50.0, 200.0])
def test_absorption_correction_agrees_with_exspy(fept, thickness):
    """Thin-film absorption: exSpy's CL with absorption_correction=True on the same intensities."""
    _, factors, ints = fept
    exspy_fe = {10.0: 15.4754, 50.0: 15.7393, 200.0: 16.7217}[thickness]  # exSpy 0.3 on this file
    q = quantify(ints, factors, thickness_nm=thickness)
    assert float(q["atomic_percent"].sel(element="Fe")) == pytest.approx(exspy_fe, abs=0.1)
    assert np.all(q["absorption_factor"].values < 1.0)


def test_zeta_factor_recovers_mass_thickness_and_composition(tmp_path):
    """Zeta factors z_i = A_i / s_i x 1e-3 invert the simulator: rho t = t x sum_i n_i A_i x 1e-3."""
    sim = simulate_spectrum_image(tmp_path / "z.hspy", shape=(16, 16), seed=5)
    da = read(sim.path)
    elements = ["Mn", "Co", "Ni", "O"]
    zeta = {f"{e}_Ka": xl.atomic_weight(e) / YIELD[f"{e}_K"] * 1e-3 for e in elements}
    kfile = tmp_path / "z.toml"
    kfile.write_text('source = "simulator"\n[zetafactors]\n' + "\n".join(f"{k} = {v}" for k, v in zeta.items()))
    factors = load_factors(kfile)
    ints = model_intensities(da, lines_for(elements, factors, 10.0, table="zetafactors"))
    q = quantify(ints, factors, method="zeta", dose=6000.0)
    thickness = np.repeat(np.linspace(0.7, 1.3, 16)[:, None], 16, axis=1)
    truth = thickness * sum(LRMO[e] * xl.atomic_weight(e) for e in elements) * 1e-3
    ratio = q["mass_thickness"].values / truth
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.003)
    assert float(np.std(ratio)) < 3 * float((q["mass_thickness_stderr"] / q["mass_thickness"]).mean())
    total = quantify(sum_region(ints), factors, method="zeta", dose=6000.0 * 256)
    atoms = {e: LRMO[e] for e in elements}
    for e in elements:
        assert float(total["atomic_percent"].sel(element=e)) == pytest.approx(100 * atoms[e] / sum(atoms.values()), abs=0.2)
    with pytest.raises(EDSError, match="needs the electron dose"):
        quantify(ints, factors, method="zeta")


def test_electron_dose():
    assert electron_dose(1.0, 1.0) == pytest.approx(6.241509e9, rel=1e-6)
    with pytest.raises(EDSError, match="must be positive"):
        electron_dose(float("nan"), 1.0)


def test_zero_intensities_are_refused(fept):
    _, factors, ints = fept
    with pytest.raises(EDSError, match="every line intensity is zero"):
        quantify(ints.assign(intensity=ints["intensity"] * 0), factors)
