"""``doptrace.tofsims.pipeline``: the whole per-file analysis from Python, without ``doptrace.report``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("doptrace.tofsims.simulate")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """The demo's bulk-doped and surface-doped ITA image stacks (500 nm craters)."""
    from doptrace.tofsims import simulate

    folder = tmp_path_factory.mktemp("tofsims_pipeline")
    paths = {}
    for sample, bulk in (("LBO-LRMO", True), ("BM-LRMO", False)):
        truth = simulate.demo_volume(sample, bulk, seed=7)
        paths[sample] = folder / f"{sample}.ita"
        simulate.write_ita(paths[sample], truth, seed=7)
    return paths


def test_pipeline_runs_without_the_report_and_tells_the_samples_apart(stacks):
    """In a fresh interpreter: results of both stacks, and no doptrace.report module imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from doptrace.tofsims import pipeline
        out = {{}}
        for sample, path in {json.dumps({k: str(v) for k, v in stacks.items()})}.items():
            results = pipeline.analyse(path, crater_depth_nm=500.0, surface_depth_nm=60.0,
                                       dopant_fragment="BO-", host_fragment="MnO-")
            u = results["uniformity"].sel(fragment="BO-")
            out[sample] = {{"kinds": sorted(results), "uniform": int(u["uniform"]),
                           "surface_to_bulk": float(u["surface_to_bulk"]),
                           "r": float(results["coloc"]["pearson_r"]),
                           "max_depth": float(results["profile"]["depth"].max())}}
        out["report_modules"] = sorted(m for m in sys.modules if m.startswith("doptrace.report"))
        print(json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["report_modules"] == []
    bulk, surface = out["LBO-LRMO"], out["BM-LRMO"]
    assert bulk["kinds"] == ["coloc", "integrated", "maps", "profile", "projections", "uniformity"]
    assert bulk["uniform"] == 1 and bulk["surface_to_bulk"] == pytest.approx(1.0, abs=0.15)
    assert surface["surface_to_bulk"] > 20  # boron only at the surface (beyond it, too few counts to test)
    assert bulk["r"] > 0.8
    assert bulk["max_depth"] == pytest.approx(500.0 * 23 / 24)  # 24 scans, depth at each scan's start


def test_parse_rates_and_lengths():
    from doptrace.tofsims.errors import ToFSIMSError
    from doptrace.tofsims.pipeline import parse_length_nm, parse_rates

    assert parse_rates([[1.0, 30], [0.5]]) == [(30.0, 1.0), (float("inf"), 0.5)]
    assert parse_length_nm("5000A") == pytest.approx(500.0)
    with pytest.raises(ToFSIMSError, match="every layer but the last"):
        parse_rates("1.0,0.5")


def test_no_fragment_is_special_unless_declared(stacks):
    """Without a declared dopant/host pair nothing is colocalized and every fragment is tested; a
    declared pair is used only where the file holds it."""
    from doptrace.tofsims import pipeline

    plain = pipeline.analyse(stacks["LBO-LRMO"], crater_depth_nm=500.0)
    names = ["BO-", "MnO-", "InO-", "ClO-", "BO2-", "LiO-", "O-"]  # the simulator's fragments
    assert "coloc" not in plain and "ratio" not in plain["maps"]
    assert [str(f) for f in plain["uniformity"]["fragment"].values] == names
    absent = pipeline.analyse(stacks["LBO-LRMO"], crater_depth_nm=500.0, dopant_fragment="AlO-", host_fragment="MnO-")
    assert "coloc" not in absent
    declared = pipeline.analyse(stacks["LBO-LRMO"], fragments=["InO-"], crater_depth_nm=500.0,
                                dopant_fragment="BO-", host_fragment="MnO-")
    assert declared["coloc"].attrs["fragment_a"] == "BO-" and declared["coloc"].attrs["fragment_b"] == "MnO-"
    assert [str(f) for f in declared["uniformity"]["fragment"].values] == ["BO-"]
    assert [str(f) for f in declared["maps"]["fragment"].values] == ["InO-", "BO-", "MnO-"]
    assert float(declared["coloc"]["pearson_r"]) > 0.8  # BO- sits in the MnO- grains of the bulk-doped stack


def test_depth_profiles_the_file_and_tests_every_fragment(stacks, tmp_path):
    """pipeline.depth: counts equal the simulated truth, BO- uniform in the bulk-doped stack and piled up
    at the surface of the other; an ASCII profile export of the same truth gives the same profile."""
    from doptrace.tofsims import simulate
    from doptrace.tofsims.pipeline import counts_beyond, depth, depth_result, total_sputter_time
    from doptrace.tofsims.summary import uniformity_lines

    truth = simulate.demo_volume("LBO-LRMO", True, seed=7)
    profile, test = depth(stacks["LBO-LRMO"], normalize=None, crater_depth_nm=500.0, surface_depth_nm=60.0)
    summed = truth["counts"].sum(("y", "x")).transpose("scan", "fragment")
    np.testing.assert_array_equal(profile["counts"].transpose("scan", "fragment").values, summed.values)
    assert [str(f) for f in test["fragment"].values] == [str(f) for f in truth["fragment"].values]
    assert int(test.sel(fragment="BO-")["uniform"]) == 1
    assert float(test.sel(fragment="BO-")["surface_to_bulk"]) == pytest.approx(1.0, abs=0.15)
    assert total_sputter_time(profile) == 1200.0  # the simulator's 24 scans of 50 s
    # counts at or below 60 nm: the scans whose start depth (500 nm * i / 24) is at least 60 nm
    beyond = truth["true_depth"].values >= 60.0
    assert counts_beyond(profile, "BO-", 60.0) == float(summed.sel(fragment="BO-").values[beyond].sum())
    assert counts_beyond(profile, "AlO-", 60.0) == float("inf")
    lines = uniformity_lines(depth_result(profile, test))
    assert lines == uniformity_lines(test) and lines[0].startswith("BO-: relative change") and "-> uniform" in lines[0]
    surface = depth(stacks["BM-LRMO"], crater_depth_nm=500.0, surface_depth_nm=60.0)[1]
    assert float(surface.sel(fragment="BO-")["surface_to_bulk"]) > 20
    exports = simulate.write_ascii_exports(tmp_path, truth, stem="bulk")
    exported, _ = depth(exports["profile"], normalize=None)
    np.testing.assert_array_equal(exported["counts"].sel(fragment="BO-").values, summed.sel(fragment="BO-").values)


def test_compare_files_and_peaks(stacks):
    """Two files' integrated intensities: a file against itself is a ratio of exactly 1; the surface-doped
    stack holds far less BO- than the bulk-doped one while the electrolyte's InO- agrees. The peak search
    on the file's own spectrum assigns BO- and MnO- within 20 ppm."""
    from doptrace.tofsims.pipeline import compare_files, parse_scans, peaks

    same = compare_files(stacks["LBO-LRMO"], stacks["LBO-LRMO"], "BO-,InO-", n_boot=200)
    np.testing.assert_allclose(same["ratio"].values, 1.0)
    cmp = compare_files(stacks["LBO-LRMO"], stacks["BM-LRMO"], ["BO-", "InO-"], scans="6:23", n_boot=200)
    assert float(cmp["ratio"].sel(fragment="BO-")) < 0.05  # 0.021 measured
    # InO- per total count: 1.027 measured, the bulk-doped stack's extra BO- counts raise its total
    assert abs(float(cmp["ratio"].sel(fragment="InO-")) - 1.0) < 0.05
    result, note = peaks(stacks["LBO-LRMO"], top=30)
    assert note == ""
    found = {str(a): abs(float(p)) for a, p in zip(result["assignment"].values, result["ppm_error"].values)}
    assert found.get("BO-", 1e9) < 20 and found.get("MnO-", 1e9) < 20  # -0.3 and -3.4 ppm measured
    assert parse_scans("2-7") == (2, 7) and parse_scans(None) is None
    from doptrace.tofsims.errors import ToFSIMSError

    with pytest.raises(ToFSIMSError, match="expected first:last"):
        parse_scans("2..7")
