"""Round trip: simulated VAMAS B 1s etch series -> read -> fit; shares within 2 stderr, honest stderr."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doptrace import xps
from doptrace.xps.fit import fit_spectra
from doptrace.xps.model import compile_model
from doptrace.xps.series import fit_region
from doptrace.xps.simulate import DEMO_ETCH_TIMES, WINDOWS, b1s_share, level_components, simulate_series, spectrum

B1S_MODEL = Path(__file__).resolve().parents[1] / "examples" / "xps" / "b1s.toml"


def test_series_round_trip_through_vamas(tmp_path):
    truth = simulate_series(tmp_path / "b1s.vms", regions=("B 1s",), bulk_doped=True, seed=11)
    expected = truth["regions"]["B 1s"]["fraction"][:, 1]
    assert np.allclose(expected[:5], [0.1, 0.1 + 0.4 * 20 / 150, 0.1 + 0.4 * 50 / 150, 0.1 + 0.4 * 100 / 150, 0.5])
    assert np.allclose(expected[4:], 0.5)
    ds = fit_region(xps.read(tmp_path / "b1s.vms"), xps.load_model(B1S_MODEL), source="b1s.vms")
    assert ds.sizes["etch_time"] == 8
    assert np.allclose(ds["etch_time"].values, DEMO_ETCH_TIMES)
    share = ds["fraction"].sel(component="TM-O-B").values
    err = ds["fraction_stderr"].sel(component="TM-O-B").values
    assert np.all(np.abs(share - expected) < 2 * err), (share, expected, err)
    assert np.all(err < 0.03)
    areas = ds["area"].sum("component").values
    total = truth["regions"]["B 1s"]["area"].sum(axis=1)
    assert np.all(np.abs(areas / total - 1) < 0.05)


def test_fraction_stderr_is_honest_over_200_noise_draws():
    """About 95 % of the 2-sigma intervals of the TM-O-B share contain the truth (8 levels x 200 draws)."""
    rng = np.random.default_rng(2024)
    lo, hi = WINDOWS["B 1s"]
    x = np.round(np.arange(lo, hi + 0.05, 0.1), 6)
    cpu = 1.0
    means = []
    for t in DEMO_ETCH_TIMES:
        _, comps, b0, k = level_components("B 1s", t, True)
        means.append(spectrum(x, comps, b0, k) * cpu)
    means = np.array(means)
    draws = 200
    counts = rng.poisson(np.tile(means, (draws, 1))).astype(float)
    compiled = compile_model(xps.load_model(B1S_MODEL))
    res = fit_spectra(compiled, x, counts / cpu, counts_per_unit=cpu)
    frac, err = res.fractions()
    truth = np.tile(b1s_share(np.array(DEMO_ETCH_TIMES), True), draws)
    inside = np.abs(frac[:, 1] - truth) < 2 * err[:, 1]
    coverage = inside.mean()
    assert 0.90 <= coverage <= 0.99, coverage
    # unbiased: the mean share over draws is within 3 standard errors of the mean of the truth
    per_level = (frac[:, 1] - truth).reshape(draws, -1)
    sem = per_level.std(axis=0) / np.sqrt(draws)
    assert np.all(np.abs(per_level.mean(axis=0)) < 4 * sem + 1e-3)
