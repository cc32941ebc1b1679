"""The example scripts in examples/ run as a user runs them and find the simulators' truth.

Each script simulates its own input in the current folder, runs the analysis and prints
tab-separated rows ``quantity, measured, stderr, truth``; the test runs it in an empty temporary
folder (a subprocess, as ``python examples/.../script.py``) and checks the rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def run(script: str, cwd: Path) -> dict[str, tuple[str, str, str]]:
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "quantity\tmeasured\tstderr\ttruth" or lines[0] == "quantity\tfitted\tstderr\ttruth", lines[0]
    rows = {}
    for line in lines[1:]:
        quantity, value, err, truth = line.split("\t")
        rows[quantity] = (value, err, truth)
    return rows


def within(rows, quantity, sigmas=3.0, floor=0.0):
    value, err, truth = rows[quantity]
    assert abs(float(value) - float(truth)) <= sigmas * float(err) + floor, (quantity, value, err, truth)


def test_xps_fit_b1s(tmp_path):
    rows = run("xps/fit_b1s.py", tmp_path)
    shares = [q for q in rows if q.startswith("TM-O-B share")]
    assert len(shares) == 8
    for quantity in shares:
        within(rows, quantity)
    # the simulator's TM-O-B share (bulk doped): 0.1 at the surface, 0.5 from 150 s on
    assert float(rows["TM-O-B share at 0 s"][2]) == 0.1 and float(rows["TM-O-B share at 400 s"][2]) == 0.5
    for quantity in (q for q in rows if q.startswith("charge at")):
        value, _, truth = rows[quantity]
        assert abs(float(value) - float(truth)) < 0.05, quantity  # C 1s charge correction within 0.05 eV
    assert (tmp_path / "b1s-series.vms").is_file()


def test_xrd_refine_li_rich(tmp_path):
    rows = run("xrd/refine_li_rich.py", tmp_path)
    for quantity in ("LiTMO2 a (A)", "LiTMO2 c (A)", "Li2MnO3 a (A)", "Li2MnO3 c (A)"):
        within(rows, quantity, floor=2e-5)  # 5-decimal printing
    sites = [q for q in rows if q.startswith("B fraction on")]
    assert len(sites) == 5
    for quantity in sites:
        within(rows, quantity)
    assert float(rows["B fraction on LiTMO2:Li"][2]) == 0.05
    assert 2.0 < float(rows["Rwp (%)"][0]) < 4.5  # 30000-count peaks: Rwp near Rexp (about 3 %)


def test_tofsims_maps_and_depth(tmp_path):
    rows = run("tofsims/maps_and_depth.py", tmp_path)
    for sample in ("bulk", "surface"):
        value, _, truth = rows[f"{sample}: BO- counts"]
        assert value == truth  # integer counts read back exactly
        assert rows[f"{sample}: BO- uniform below 60 nm"][0] == rows[f"{sample}: BO- uniform below 60 nm"][2]
    assert rows["bulk: BO- uniform below 60 nm"][0] == "1" and rows["surface: BO- uniform below 60 nm"][0] == "0"
    # boron sits in the oxide grains only in the bulk-doped sample (simulated 5 BO-/voxel vs 0.05 background)
    assert float(rows["bulk: BO-/total grains over matrix (scans 8-15)"][0]) > 10
    assert float(rows["surface: BO-/total grains over matrix (scans 8-15)"][0]) < 2


def test_eds_quantify(tmp_path):
    rows = run("eds/quantify.py", tmp_path)
    for element in ("Mn", "Co", "Ni", "O"):
        within(rows, f"{element} (at%)")
    # the simulated oxide without Li: Li1.2Mn0.54Co0.13Ni0.13O2 -> Mn 0.54/2.8 = 19.29 at%
    assert abs(float(rows["Mn (at%)"][2]) - 100 * 0.54 / 2.8) < 0.01
    assert rows["Mn map"][0] == "homogeneous"
