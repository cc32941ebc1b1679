"""Small simulated inputs about an Al dopant, one project entry per technique (test helper, not a test file).

Every file is written by doptrace's own simulators with Al in the place boron holds in the demo:
XRD Al on the LiTMO2 TM site, XPS Al 2p (Al-O-Al coating / TM-O-Al lattice), ToF-SIMS AlO- in
the oxide grains (MnO- host), STEM-EDS Al K in the Li-rich oxide.
"""

from __future__ import annotations

from pathlib import Path

#: a one-phase layered oxide with Al candidates on the TM site (0.1 s to refine)
AL_RECIPE = """\
title = "LiTMO2 with Al on the TM site"

[instrument]
wavelengths = [1.5405, 1.5443]
ka2_ratio = 0.5
polarization = 0.7
radius_mm = 200
U = 2.0
V = -2.0
W = 5.0
X = 3.0
Y = 2.0
Z = 0.0
SH_L = 0.002
zero = 0.0

[range]
two_theta = [15.0, 90.0]

[background]
type = "chebyshev"
terms = 3
coefficients = [300.0, -100.0, 40.0]

[[phase]]
name = "LiTMO2"
space_group = "R -3 m:H"
cell = [2.850, 2.850, 14.230, 90, 90, 120]
size_um = 0.15
scale = 1.0

[[phase.site]]
label = "TM"
xyz = [0.0, 0.0, 0.0]
uiso = 0.005
occupancy = { Ni = 0.333, Co = 0.333, Mn = 0.334 }

[[phase.site]]
label = "Li"
xyz = [0.0, 0.0, 0.5]
uiso = 0.012
occupancy = { Li = 1.0 }

[[phase.site]]
label = "O"
xyz = [0.0, 0.0, 0.2585]
uiso = 0.008
occupancy = { O = 1.0 }

[dopant]
element = "Al"
sites = ["LiTMO2:TM"]
start = 0.0

[[stage]]
name = "scale+background"
refine = ["scale", "background"]

[[stage]]
name = "+cell+displacement+Al"
refine = ["cell", "displacement", "occupancy"]
"""

#: Al 2p model: the simulator's coating and lattice components (74.6 and 73.7 eV)
AL2P_MODEL = """\
region = "Al 2p"
window = [69.0, 79.0]
background = { shirley = "active", average = 5 }

[[component]]
name = "Al-O-Al"
shape = "GL(30)"
center = [74.6, 74.3, 74.9]
fwhm = [1.5, 0.9, 2.4]

[[component]]
name = "TM-O-Al"
shape = "GL(30)"
center = [73.7, 73.4, 74.0]
fwhm = { same_as = "Al-O-Al" }
"""

#: the truth of the XRD entry: Al fraction on LiTMO2:TM when bulk doped
AL_ON_TM = 0.10


def xrd_entry(data: Path, sample: str, bulk_doped: bool, seed: int) -> dict:
    """A pattern with Al on the TM site (bulk doped) or none, and its recipe."""
    from doptrace.core.atomic import write_text
    from doptrace.xrd.recipe import load_recipe
    from doptrace.xrd.simulate import simulate, xye_text

    recipe = write_text(data / "al_recipe.toml", AL_RECIPE)
    pattern, truth = simulate(load_recipe(recipe), dopant={"LiTMO2:TM": AL_ON_TM if bulk_doped else 0.0},
                              counts=3.0e4, seed=seed, return_truth=True)
    return {"recipe": recipe, "file": write_text(data / f"{sample}_xrd.xye", xye_text(pattern, truth))}


def tofsims_entry(data: Path, sample: str, bulk_doped: bool, seed: int, pair: bool = False) -> dict:
    """An ITA depth-profile image stack with AlO- in the oxide grains (bulk) or a surface layer only;
    without ``pair`` the entry names no fragment pair (the project's sims_fragment/sims_host decide)."""
    from doptrace.tofsims import simulate

    path = data / f"{sample}_tofsims.ita"
    truth = simulate.phantom((12, 24, 24), bulk_doped=bulk_doped, sample=sample, seed=seed,
                             fragments=("AlO-", "MnO-", "InO-", "ClO-", "LiO-", "O-"),
                             dopant_fragments={"AlO-": 1.0})
    simulate.write_ita(path, simulate.poisson_counts(truth, seed=seed), seed=seed)
    entry = {"file": path, "fragments": ["AlO-", "MnO-", "InO-", "ClO-"], "crater_depth_nm": 500.0,
             "compare": ["InO-", "ClO-"], "seed": seed}
    if pair:
        entry["pair"] = "AlO-:MnO-"
    return entry


def xps_entry(data: Path, sample: str, bulk_doped: bool, seed: int) -> dict:
    """An Al 2p / O 1s / C 1s etch series and its Al 2p model."""
    from doptrace.core.atomic import write_text
    from doptrace.xps.simulate import simulate_series

    vms = data / f"{sample}_xps.vms"
    simulate_series(vms, bulk_doped=bulk_doped, seed=seed, regions=("Al 2p", "O 1s", "C 1s"), sample=sample)
    model = write_text(data / "al2p.toml", AL2P_MODEL)
    return {"file": vms, "model": model, "c1s": True, "quantify": ["Al 2p", "O 1s", "C 1s"]}


def eds_entry(data: Path, sample: str, bulk_doped: bool, seed: int) -> dict:
    """A spectrum image with Al uniform in the oxide (bulk) or in a rim only, and its k-factors."""
    from doptrace.core.atomic import write_text
    from doptrace.stem_eds.simulate import LRMO, kfactor_toml, simulate_spectrum_image

    elements = ["O", "Al", "Mn", "Co", "Ni"]
    kfactors = write_text(data / "eds_kfactors_al.toml", kfactor_toml(("Mn", "Co", "Ni", "O", "Al")))
    path = data / f"{sample}_eds.hspy"
    if bulk_doped:
        simulate_spectrum_image(path, shape=(24, 24), kind="uniform", base={**LRMO, "Al": 0.06},
                                thickness="particle", seed=seed)
    else:
        simulate_spectrum_image(path, shape=(24, 24), kind="rim", element="Al", amplitude=0.4,
                                thickness="particle", seed=seed)
    return {"file": path, "elements": elements, "method": "model", "kfactors": kfactors}


def run_project(folder: Path, entries: dict, checks: dict, depth: dict | None = None) -> tuple[int, str, Path]:
    """Write ``entries`` (``{sample: {technique: [entry]}}``) as a project, run it; ``(exit code,
    report HTML, output folder)``."""
    from doptrace.report import cli
    from doptrace.report.demo import write_project_file

    project = write_project_file(folder, entries, "Al in Li-rich oxides", depth or {s: {} for s in entries}, checks)
    out = folder / "out"
    code = cli.main(["run", str(project), "--out", str(out), "--quiet", "--workers", "1"])
    return code, (out / "report.html").read_text(), out
