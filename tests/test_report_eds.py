"""The STEM-EDS adapter: CLI commands and their errors, a demo project run, the report section."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.report import cli
from doptrace.report.conventions import read_netcdf, write_netcdf
from doptrace.report.demo import simulate_entries, write_project_file
from doptrace.report.runner import run_project
from doptrace.report.techniques import adapters
from doptrace.stem_eds.simulate import LRMO

FEPT_K = "examples/eds/fept_exspy.toml"


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info(shared, capsys):
    code, out, _ = _run(capsys, "eds", "info", str(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd")))
    assert code == 0
    assert "y=16 x x=16 x energy=4096" in out and "beam_energy_kev" in out and "300.0" in out


def test_quantify_fept_published_answer(shared, capsys, tmp_path):
    out_file = tmp_path / "q.nc"
    code, out, _ = _run(capsys, "eds", "quantify", str(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy")),
                        "--elements", "Fe,Pt", "--kfactors", FEPT_K, "--method", "windows", "--background", "5,2",
                        "--out", str(out_file), "--quiet")
    assert code == 0 and "Fe_Ka" in out
    q = read_netcdf(out_file)
    assert float(q["atomic_percent"].sel(element="Fe")) == pytest.approx(15.41, abs=0.05)
    assert q.attrs["technique"] == "stem_eds" and "atomic_percent" in q.attrs["fitted"]


def test_maps_then_homogeneity(tmp_path, capsys):
    from doptrace.stem_eds.simulate import kfactor_toml, simulate_spectrum_image

    sim = simulate_spectrum_image(tmp_path / "s.hspy", shape=(32, 32), kind="inclusion", element="Mn", seed=2)
    kfile = tmp_path / "k.toml"
    kfile.write_text(kfactor_toml())
    maps, plot = tmp_path / "m.nc", tmp_path / "m.png"
    code, out, _ = _run(capsys, "eds", "maps", str(sim.path), "--elements", "O,Mn,Co,Ni", "--kfactors", str(kfile),
                        "--out", str(maps), "--plot", str(plot), "--quiet")
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    m = read_netcdf(maps)
    assert m["atomic_percent"].dims == ("element", "y", "x")
    truth = sim.atomic_percent.sel(element=["O", "Mn", "Co", "Ni"])
    truth = 100 * truth / truth.sum("element")
    assert float(m["total_atomic_percent"].sel(element="Mn")) == pytest.approx(float(truth.sel(element="Mn").mean()), abs=0.5)
    hom = tmp_path / "h.nc"
    code, out, _ = _run(capsys, "eds", "homogeneity", str(maps), "--out", str(hom), "--plot", str(tmp_path / "h.png"))
    assert code == 0 and "Mn   inhomogeneous at scale" in out
    assert read_netcdf(hom)["H"].dims == ("element", "block_size")
    # binning: 4 x 4 pixels summed, same total composition
    binned = tmp_path / "b.nc"
    assert _run(capsys, "eds", "maps", str(sim.path), "--elements", "Mn,Co,Ni", "--bin", "4", "--out", str(binned),
                "--quiet")[0] == 0
    assert read_netcdf(binned).sizes["x"] == 8


@pytest.mark.parametrize("case", ["pruned", "truncated", "element", "kline", "zeromap", "background", "bin0"])
def test_bad_input_is_one_line_exit_2_and_no_output(shared, tmp_path, capsys, case):
    out_file = tmp_path / "out.nc"
    if case == "pruned":
        argv = ["eds", "maps", str(shared("stem_eds/velox_v11_TestSI_16x16_ReducedData_215kx.emd")),
                "--elements", "Ca,Cu", "--out", str(out_file)]
        expect = "no EDS spectrum image"
    elif case == "truncated":
        source = shared("stem_eds/bcf_v2_50x50px.bcf")
        bad = tmp_path / "cut.bcf"
        bad.write_bytes(source.read_bytes()[:200_000])
        argv = ["eds", "maps", str(bad), "--elements", "Al,Cu", "--out", str(out_file)]
        expect = "truncated BCF file"
    elif case == "element":
        argv = ["eds", "maps", str(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy")), "--elements", "Fe,Qq",
                "--out", str(out_file)]
        expect = "unknown element 'Qq'"
    elif case == "kline":
        kfile = tmp_path / "k.toml"
        kfile.write_text('source = "x"\n[kfactors]\nFe_Ka = 1.45\nPt_Ka = 5.0\n')
        argv = ["eds", "quantify", str(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy")), "--elements", "Fe,Pt",
                "--kfactors", str(kfile), "--out", str(out_file)]
        expect = "Pt_Ka, a line not present"
    elif case == "background":
        argv = ["eds", "maps", str(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy")), "--elements", "Fe,Pt",
                "--method", "windows", "--background", "0.5,2", "--out", str(out_file)]
        expect = "lies on"
    elif case == "bin0":
        source = shared("stem_eds/bcf_v2_50x50px.bcf")
        argv = ["eds", "maps", str(source), "--elements", "Al,Cu", "--bin", "0", "--out", str(out_file)]
        expect = f"{source}: bin 0 must be a positive number"
    else:
        import xarray as xr

        zero = xr.Dataset(
            {"intensity": (("element", "y", "x"), np.zeros((2, 8, 8)), {"units": "count"}),
             "intensity_stderr": (("element", "y", "x"), np.zeros((2, 8, 8)), {"units": "count"})},
            coords={"element": ["Mn", "Co"], "x": ("x", np.arange(8.0), {"units": "nm"}),
                    "y": ("y", np.arange(8.0), {"units": "nm"})},
            attrs={"technique": "stem_eds", "source": "zero", "fitted": "intensity"},
        )
        maps = write_netcdf(zero, tmp_path / "zero.nc")
        argv = ["eds", "homogeneity", str(maps), "--out", str(out_file)]
        expect = f"{maps}: the maps hold zero counts"  # names the file passed, not its source spectrum
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doptrace: error: ") and expect in lines[0]
    assert not out_file.exists()
    assert not list(tmp_path.glob(".out*"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eds_project")
    found = simulate_entries(folder, ['eds'], seed=7)
    entries = {sample: techniques['eds'] for sample, techniques in found.items()}
    write_project_file(folder, found, "eds demo")
    summary = run_project(folder / "project.toml", folder / "out", progress=False)
    return folder, entries, summary


def test_demo_project_tells_surface_boron_from_bulk_boron(project):
    folder, entries, summary = project
    assert not summary.failed, [a.error for a in summary.failed]
    schema = adapters()["eds"].ENTRY_SCHEMA
    for found in entries.values():
        assert set(found[0]) <= set(schema)
    results = folder / "out" / "results"
    surface = read_netcdf(results / "BM-LRMO__eds0__homogeneity.nc")
    bulk = read_netcdf(results / "LBO-LRMO__eds0__homogeneity.nc")
    assert str(surface["verdict"].sel(element="B").values).startswith("inhomogeneous")
    assert float(surface["slope_radial"].sel(element="B")) > 3 * float(surface["slope_radial_stderr"].sel(element="B"))
    assert not str(bulk["verdict"].sel(element="B").values).startswith("inhomogeneous")
    for element in ("Mn", "Co", "Ni"):
        assert str(bulk["verdict"].sel(element=element).values) == "homogeneous"
        assert str(surface["verdict"].sel(element=element).values) == "homogeneous"
    quant = read_netcdf(results / "LBO-LRMO__eds0__quant.nc")
    atoms = {"O": LRMO["O"], "B": 0.06, "Mn": LRMO["Mn"], "Co": LRMO["Co"], "Ni": LRMO["Ni"]}
    for element in ("Mn", "Co", "Ni", "O"):
        truth = 100 * atoms[element] / sum(atoms.values())
        assert float(quant["total_atomic_percent"].sel(element=element)) == pytest.approx(truth, abs=1.0)
    assert int(quant["qualitative"].sel(element="B")) == 1


def test_report_section_has_maps_h_plots_correlations_and_verdicts(project):
    folder, _, summary = project
    html = (folder / "out" / "report.html").read_text()
    assert "STEM-EDS" in html
    assert "H versus block size" in html and "Pearson correlation" in html and "Homogeneity verdicts" in html
    assert "atomic-percent maps" in html and html.count("data:image/png;base64") >= 8


def test_quantify_a_region(tmp_path, capsys):
    """The Mn-rich inclusion (centre) against the matrix (a corner), totals over pixel regions."""
    from doptrace.stem_eds.simulate import kfactor_toml, simulate_spectrum_image

    sim = simulate_spectrum_image(tmp_path / "s.hspy", shape=(32, 32), kind="inclusion", element="Mn",
                                  amplitude=0.3, seed=4)
    kfile = tmp_path / "k.toml"
    kfile.write_text(kfactor_toml())
    truth = sim.atomic_percent.sel(element=["Mn", "Co", "Ni"])
    truth = 100 * truth / truth.sum("element")
    for region, (xs, ys) in {"13:19,13:19": (slice(13, 19), slice(13, 19)), "0:6,0:6": (slice(0, 6), slice(0, 6))}.items():
        out = tmp_path / f"q{region[0]}.nc"
        code, _, _ = _run(capsys, "eds", "quantify", str(sim.path), "--elements", "Mn,Co,Ni", "--kfactors", str(kfile),
                          "--region", region, "--out", str(out), "--quiet")
        assert code == 0
        q = read_netcdf(out)
        expected = float(truth.sel(element="Mn").isel(x=xs, y=ys).mean())
        assert float(q["total_atomic_percent"].sel(element="Mn")) == pytest.approx(expected, abs=0.6)
        assert q.attrs["total_region"] == region
    code, _, err = _run(capsys, "eds", "quantify", str(sim.path), "--elements", "Mn,Co,Ni", "--kfactors", str(kfile),
                        "--region", "0:99,0:4", "--out", str(tmp_path / "bad.nc"))
    assert code == 2 and "outside the 32 x 32 pixel map" in err and not (tmp_path / "bad.nc").exists()


def test_fresh_process_error_is_exactly_one_line(shared, tmp_path):
    """In a new interpreter (HyperSpy imported for the first time) stderr holds the one error line only."""
    import subprocess
    import sys

    out_file = tmp_path / "m.nc"
    done = subprocess.run(
        [sys.executable, "-m", "doptrace", "eds", "maps",
         str(shared("stem_eds/velox_v11_TestSI_16x16_ReducedData_215kx.emd")), "--elements", "Ca,Cu",
         "--out", str(out_file)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("doptrace: error: ") and "pruned" in done.stderr
    assert not out_file.exists()


def test_quantify_with_zeta_factors_and_dose(tmp_path, capsys):
    """--dose switches to the zeta method: composition and mass thickness of the simulator's truth."""
    from doptrace.stem_eds import lines as xl
    from doptrace.stem_eds.simulate import YIELD, simulate_spectrum_image

    sim = simulate_spectrum_image(tmp_path / "z.hspy", shape=(16, 16), kind="uniform", seed=21)
    elements = ["Mn", "Co", "Ni", "O"]
    kfile = tmp_path / "z.toml"
    kfile.write_text('source = "simulator"\n[zetafactors]\n' + "\n".join(
        f"{e}_Ka = {xl.atomic_weight(e) / YIELD[f'{e}_K'] * 1e-3}" for e in elements))
    out = tmp_path / "z.nc"
    code, _, _ = _run(capsys, "eds", "quantify", str(sim.path), "--elements", ",".join(elements), "--kfactors",
                      str(kfile), "--dose", "6000", "--out", str(out), "--quiet")
    assert code == 0
    q = read_netcdf(out)
    atoms = sum(LRMO[e] for e in elements)
    for e in elements:
        assert float(q["total_atomic_percent"].sel(element=e)) == pytest.approx(100 * LRMO[e] / atoms, abs=0.2)
    thickness = np.repeat(np.linspace(0.7, 1.3, 16)[:, None], 16, axis=1)  # the simulator's wedge
    truth = thickness * sum(LRMO[e] * xl.atomic_weight(e) for e in elements) * 1e-3
    assert float((q["mass_thickness"].values / truth).mean()) == pytest.approx(1.0, abs=0.005)
    code, _, err = _run(capsys, "eds", "quantify", str(sim.path), "--elements", "Mn,Co", "--kfactors", str(kfile),
                        "--dose", "0", "--out", str(tmp_path / "bad.nc"), "--quiet")
    assert code == 2 and "dose per pixel must be a positive number" in err and not (tmp_path / "bad.nc").exists()
