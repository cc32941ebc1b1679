"""Charge references (region peak, named component, Fermi edge) against simulated charging, and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doptrace import xps
from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.xps.charge import (fermi_reference, fit_region_referenced, parse_charge_ref,
                                 reference_shifts)
from doptrace.xps.errors import XPSError
from doptrace.xps.series import region_levels
from doptrace.xps.simulate import simulate_composition, simulate_series

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "xps"
CHARGE = np.array([0.6, 0.35, -0.15])


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    path = tmp_path_factory.mktemp("charge") / "c.vms"
    simulate_composition(path, {"O 1s": 0.6, "Au 4f": 0.4}, charge=CHARGE, valence=True, seed=12)
    return path, xps.read(path)


def test_parse_charge_ref():
    r = parse_charge_ref("C 1s=285.0")
    assert (r.kind, r.target, r.energy, r.model) == ("region", "C 1s", 285.0, None)
    r = parse_charge_ref(" component : C-C @ c1s.toml = 284.8 eV")
    assert (r.kind, r.target, r.energy, r.model) == ("component", "C-C", 284.8, "c1s.toml")
    assert parse_charge_ref("Au 4f7/2=84.0").target == "Au 4f7/2"
    for bad in ("C 1s", "C 1s=abc", "C 1s@m.toml=284.8", "C 1s=99999"):
        with pytest.raises(XPSError):
            parse_charge_ref(bad, "x.vms")


def test_fermi_edge_recovers_known_shift(comp):
    """Fermi-Dirac step (300 K) x linear DOS convolved with a Gaussian, fitted to the simulated valence
    band (edge at the level's charge, a stronger d band 4.5 eV below): the shift is -charge within
    3 esd, and the esd is below 0.05 eV."""
    path, blocks = comp
    chosen, _, _, _ = region_levels(blocks, "O 1s")
    record = reference_shifts(blocks, chosen, fermi_reference("Valence"), where=str(path))
    shift, esd = record["shift"], record["shift_stderr"]
    assert np.all(np.abs(shift + CHARGE) < 3 * esd), (shift, esd)
    assert np.all(esd < 0.05) and np.all(esd > 0)
    assert record["failed"] == [] and record["warnings"] == []


def test_region_reference_spin_orbit_line(comp):
    """Au 4f7/2 = 84.0 eV names the Au 4f region; its strongest peak sits at the table's 83 eV + charge."""
    path, blocks = comp
    chosen, _, _, _ = region_levels(blocks, "O 1s")
    record = reference_shifts(blocks, chosen, parse_charge_ref("Au 4f7/2=84.0"), where=str(path))
    assert np.allclose(record["position"], 83.0 + CHARGE, atol=3 * record["position_stderr"] + 1e-3)
    assert np.allclose(record["shift"], 84.0 - 83.0 - CHARGE, atol=0.01)


def test_fit_with_fermi_reference_stores_it(comp, tmp_path):
    path, blocks = comp
    model = tmp_path / "o1s.toml"
    model.write_text('region = "O 1s"\nwindow = [526.0, 538.0]\nbackground = "shirley"\n'
                     '[[component]]\nname = "O"\ncenter = [532.0, 531.0, 533.0]\nfwhm = [1.3, 0.5, 3]\n')
    ds = fit_region_referenced(blocks, xps.load_model(model), fermi_reference("Valence"), source=str(path))
    # after the correction the O 1s line sits where the simulator put it (532.0 eV)
    centre, esd = ds["center"].sel(component="O").values, ds["charge_shift_stderr"].values
    assert np.all(np.abs(centre - 532.0) < 3 * np.hypot(esd, ds["center_stderr"].sel(component="O").values))
    assert np.allclose(ds["charge_shift"].values, -ds["charge_reference_position"].values)
    assert ds.attrs["charge_reference"].startswith("Fermi edge of region Valence")
    assert ds.attrs["charge_reference_kind"] == "fermi" and ds.attrs["quality"] in ("ok", "warning")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    path = tmp_path_factory.mktemp("xpsq") / "series.vms"
    simulate_series(path, etch_times=(0, 100, 300), regions=("B 1s", "C 1s", "O 1s"), seed=5,
                    charge=[0.5, 0.3, 0.1])
    return path


def test_cli_charge_ref_region_component_and_c1s(series, tmp_path):
    """``--charge-ref "C 1s=284.8"`` (peak + companion fit) and ``--c1s`` agree within 0.05 eV and
    recover the simulated charging; ``component:C-C@model=285.0`` puts C-C at 285.0 (0.2 eV more)."""
    outs = {}
    for name, opts in (("c1s", ["--c1s"]), ("region", ["--charge-ref", "C 1s=284.8"]),
                       ("comp", ["--charge-ref", f"component:C-C adventitious@{tmp_path / 'c1s.toml'}=285.0"])):
        if name == "comp":
            (tmp_path / "c1s.toml").write_text(
                'region = "C 1s"\nwindow = [280.0, 292.0]\nbackground = "shirley"\n'
                '[[component]]\nname = "C-C adventitious"\ncenter = [285.0, 284.0, 286.0]\nfwhm = [1.3, 0.5, 3]\n'
                '[[component]]\nname = "C-O"\ncenter = { offset_from = "C-C adventitious", by = 1.6 }\n'
                'fwhm = [1.5, 0.5, 3]\n')
        out = tmp_path / f"{name}.nc"
        assert main(["xps", "fit", str(series), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out)] + opts) == 0
        outs[name] = read_netcdf(out)
    truth = -np.array([0.5, 0.3, 0.1])
    assert np.allclose(outs["c1s"]["charge_shift"].values, truth, atol=0.05)
    assert np.allclose(outs["region"]["charge_shift"].values, outs["c1s"]["charge_shift"].values, atol=0.05)
    region = outs["region"]
    assert np.all(np.abs(region["charge_shift"].values - truth) < 3 * region["charge_shift_stderr"].values + 0.03)
    assert "C 1s at 284.8 eV" in region.attrs["charge_reference"]
    comp = outs["comp"]
    assert np.allclose(comp["charge_shift"].values, truth + 0.2, atol=0.05)
    assert np.allclose(comp["charge_reference_position"].values + comp["charge_shift"].values, 285.0)
    assert outs["c1s"].attrs["charge_reference"] == "C 1s C-C at 284.8 eV (--c1s)"


def test_cli_quantify_options(series, tmp_path, capsys):
    out = tmp_path / "q.nc"
    assert main(["xps", "quantify", str(series), "--regions", "B 1s:186-197,O 1s", "--out", str(out),
                 "--charge-ref", "C 1s=284.8", "--imfp", "tpp2m"]) == 0
    q = read_netcdf(out)
    assert "TPP-2M" in q.attrs["imfp_model"] and q["window_low"].values[0] == 186.0
    assert "charge_reference_position" in q and np.allclose(q["atomic_percent"].sum("element"), 100)
    # a fit result's components quantified beside a region
    fit = tmp_path / "b.nc"
    assert main(["xps", "fit", str(series), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(fit), "--c1s"]) == 0
    out2 = tmp_path / "q2.nc"
    assert main(["xps", "quantify", str(series), "--regions", "O 1s", "--fit", str(fit), "--out", str(out2)]) == 0
    q2 = read_netcdf(out2)
    assert q2["peak"].values.tolist() == ["O 1s", "B 1s: B-O-B", "B 1s: TM-O-B"]
    assert q2["peak_kind"].values.tolist() == ["region", "component", "component"]
    # kratos with an explicit KE exponent: one-line error, no output
    out3 = tmp_path / "q3.nc"
    capsys.readouterr()
    assert main(["xps", "quantify", str(series), "--regions", "B 1s,O 1s", "--rsf", "kratos", "--ke-exponent", "0.6",
                 "--out", str(out3)]) == 2
    assert "would apply it twice" in capsys.readouterr().err and not out3.exists()
    assert main(["xps", "quantify", str(series), "--regions", "B 1s,O 1s", "--rsf", "kratos", "--out", str(out3)]) == 0
    assert read_netcdf(out3).attrs["imfp_model"] == "none"


def test_cli_one_charge_correction_only(series, tmp_path, capsys):
    out = tmp_path / "r.nc"
    with pytest.raises(SystemExit) as stop:  # argparse: mutually exclusive options
        main(["xps", "fit", str(series), "--model", str(EXAMPLES / "b1s.toml"), "--out", str(out),
              "--c1s", "--charge-ref", "C 1s=284.8"])
    assert stop.value.code == 2 and not out.exists()
    assert "not allowed with" in capsys.readouterr().err


def test_adapter_refuses_two_charge_corrections(series):
    """A project entry (no argparse in between) with a shift and a charge reference is refused too."""
    from doptrace.report.techniques.xps import analyse

    with pytest.raises(XPSError, match="one charge correction"):
        analyse({"file": series, "model": EXAMPLES / "b1s.toml", "shift": 0.2, "charge_ref": "C 1s=284.8"})


def test_fermi_edge_on_a_spectrum_without_one_is_not_trusted(tmp_path):
    """A 'valence band' that is a flat background with one broad peak and no step: either no edge is
    found (error naming the block) or the reference is marked failed ("no Fermi edge found": the
    step is not 3 esd above zero or the broadening runs to its bound), never a silent shift."""
    from doptrace.xps.formats._spectrum import make_spectrum
    from doptrace.xps.formats.vamas import write
    from doptrace.xps.simulate import spectrum

    x = np.round(np.arange(-3.0, 9.0, 0.05), 6)
    rng = np.random.default_rng(3)
    blocks = []
    for i, region in enumerate(("O 1s", "Valence")):
        grid = x + (530.0 if region == "O 1s" else 0.0)
        y = spectrum(grid, [(5000.0, grid.mean(), 3.0, "GL(30)")], 200.0, 0.0)
        blocks.append(make_spectrum("f.vms", grid, rng.poisson(y).astype(float), abscissa="binding energy",
                                    excitation_energy=1486.6, region=region, block_index=i, etch_time=0.0))
    write(tmp_path / "f.vms", blocks)
    blocks = xps.read(tmp_path / "f.vms")
    chosen, _, _, _ = region_levels(blocks, "O 1s")
    try:
        record = reference_shifts(blocks, chosen, fermi_reference("Valence"), where="f.vms")
    except XPSError as err:
        assert "f.vms" in str(err)
    else:
        assert any("no Fermi edge found" in f for f in record["failed"]), record
