"""Several files per command for every technique (report.batch, issue 14 item 4): one output per input,
named after it, each holding that input's own result; clashing names refused before anything runs."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from doptrace.report.batch import Outputs, each, expand
from doptrace.report.cli import main
from doptrace.report.conventions import read_netcdf
from doptrace.report.errors import ReportError

LAB6 = ('[instrument]\nwavelengths = [1.5405, 1.5443]\nX = 3.0\nY = 2.0\n[range]\ntwo_theta = [20.0, 80.0]\n'
        '[background]\nterms = 4\ncoefficients = [300.0, -100.0, 40.0, 0.0]\n'
        '[[phase]]\nname = "LaB6"\nspace_group = "P m -3 m"\ncell = [{a}, {a}, {a}, 90, 90, 90]\n'
        '[[phase.site]]\nlabel = "La"\nxyz = [0, 0, 0]\nuiso = 0.005\noccupancy = {{ La = 1.0 }}\n'
        '[[phase.site]]\nlabel = "B"\nxyz = [0.1996, 0.5, 0.5]\nuiso = 0.005\noccupancy = {{ B = 1.0 }}\n'
        '[[stage]]\nname = "scale"\nrefine = ["scale", "background"]\n'
        '[[stage]]\nname = "cell"\nrefine = ["cell"]\n')


def test_outputs_names_each_input_and_refuses_clashes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/s1.vms", "a/s2.vms", "b/s1.vms"):
        (tmp_path / name).write_text("x")
    found = expand([str(tmp_path / "a" / "*.vms")])
    assert [p.name for p in found] == ["s1.vms", "s2.vms"]
    names = Outputs([str(tmp_path / "a" / "*.vms")], str(tmp_path / "out"), ReportError)
    assert [names.path("{stem}_fit.nc", p, ".nc") for p in names.inputs] == [
        tmp_path / "out" / "s1_fit.nc", tmp_path / "out" / "s2_fit.nc"]
    assert names.path(None, names.inputs[0], ".nc", "--out", required=True) == tmp_path / "out" / "s1.nc"
    assert names.path("r.png", names.inputs[1], ".png", "--plot") == tmp_path / "out" / "s2_r.png"
    clash = Outputs([str(tmp_path / "a" / "s1.vms"), str(tmp_path / "b" / "s1.vms")], str(tmp_path / "o"), ReportError)
    with pytest.raises(ReportError, match="would both write"):
        clash.check_all({"--out": ("{stem}.nc", ".nc", True)})
    with pytest.raises(ReportError, match="only {stem} and {name}"):
        Outputs([str(tmp_path / "a" / "s1.vms")], None, ReportError).path("{date}.nc", found[0], ".nc")


def test_each_runs_the_one_file_handler_per_input(tmp_path):
    seen = []

    def handler(args):
        seen.append((args.file, args.out, args.plot))
        return 4 if args.file.endswith("2.txt") else 0

    for name in ("1.txt", "2.txt"):
        (tmp_path / name).write_text("x")
    args = argparse.Namespace(files=[str(tmp_path / "*.txt")], out_dir=str(tmp_path / "o"), out=None, plot=None)
    assert each(handler, {"out": ".nc", "plot": ".png"})(args) == 4  # the worst status
    assert seen == [(str(tmp_path / "1.txt"), str(tmp_path / "o" / "1.nc"), None),
                    (str(tmp_path / "2.txt"), str(tmp_path / "o" / "2.nc"), None)]


def test_eds_maps_and_homogeneity_of_several_files(tmp_path, capsys):
    from doptrace.stem_eds.simulate import simulate_spectrum_image

    sims = [simulate_spectrum_image(tmp_path / f"grain{k}.hspy", shape=(16, 16), kind="inclusion", element="Mn",
                                    seed=k) for k in (1, 2)]
    out = tmp_path / "maps"
    assert main(["eds", "maps", str(tmp_path / "grain*.hspy"), "--elements", "Mn,Co,Ni", "--method", "windows",
                 "--out-dir", str(out), "--quiet"]) == 0
    for sim in sims:
        m = read_netcdf(out / f"{sim.path.stem}.nc")
        assert m.attrs["source"] == str(sim.path)
        assert m["intensity"].dims[-2:] == ("y", "x")
    first, second = (read_netcdf(out / f"{s.path.stem}.nc") for s in sims)
    assert not np.array_equal(first["intensity"].values, second["intensity"].values)  # each its own file
    assert main(["eds", "homogeneity", str(out / "*.nc"), "--out", str(tmp_path / "{stem}_h.nc")]) == 0
    for sim in sims:
        assert read_netcdf(tmp_path / f"{sim.path.stem}_h.nc")["H"].dims == ("element", "block_size")
    capsys.readouterr()
    # one output name for two inputs: refused, nothing written
    assert main(["eds", "maps", *[str(s.path) for s in sims], "--elements", "Mn", "--out", str(tmp_path / "one.nc")]) == 2
    assert "would all write this one file" in capsys.readouterr().err and not (tmp_path / "one.nc").exists()


def test_tofsims_maps_and_depth_of_several_files(tmp_path):
    simulate = pytest.importorskip("doptrace.tofsims.simulate")
    truths = {}
    for name, bulk, seed in (("bulk", True, 5), ("surface", False, 6)):
        truths[name] = simulate.write_ita(tmp_path / f"{name}.ita",
                                          simulate.demo_volume(name, bulk, seed=seed, shape=(6, 16, 16)), seed=seed)
    out = tmp_path / "res"
    assert main(["tofsims", "maps", str(tmp_path / "bulk.ita"), str(tmp_path / "surface.ita"), "--fragments",
                 "BO-,MnO-", "--normalize", "none", "--out-dir", str(out), "--plot", "{stem}_maps.png"]) == 0
    for name, truth in truths.items():
        result = read_netcdf(out / f"{name}.nc")
        np.testing.assert_array_equal(result["counts"].values,
                                      truth["counts"].sum("scan").sel(fragment=["BO-", "MnO-"]).values)
        assert (out / f"{name}_maps.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["tofsims", "depth", str(tmp_path / "*.ita"), "--fragments", "BO-,MnO-",
                 "--out", str(tmp_path / "{stem}_depth.nc")]) == 0
    for name, truth in truths.items():
        depth = read_netcdf(tmp_path / f"{name}_depth.nc")
        assert depth.attrs["source"].endswith(f"{name}.ita")


def test_xrd_info_and_refine_of_several_patterns(tmp_path, capsys):
    cells = {"lab6_a": 4.1568, "lab6_b": 4.1600}
    for name, a in cells.items():
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(LAB6.format(a=a))
        assert main(["xrd", "simulate", str(recipe), "--out", str(tmp_path / f"{name}.xye"), "--counts", "30000",
                     "--seed", "4", "--step", "0.04"]) == 0
    capsys.readouterr()
    assert main(["xrd", "info", str(tmp_path / "*.xye")]) == 0
    out = capsys.readouterr().out
    assert out.count("points") >= 2
    assert main(["xrd", "refine", str(tmp_path / "lab6_a.toml"), "--data", str(tmp_path / "*.xye"),
                 "--out", str(tmp_path / "{stem}.nc"), "--quiet"]) == 0
    for name, a in cells.items():
        ds = read_netcdf(tmp_path / f"{name}.nc")
        assert str(ds.attrs["source"]).endswith(f"{name}.xye")
        # each pattern refined on its own: its own simulated cell (4.1568 vs 4.1600 A) within 3 esd
        refined, esd = float(ds["a"].values[0]), float(ds["a_stderr"].values[0])
        assert abs(refined - a) < 3 * esd + 1e-5
