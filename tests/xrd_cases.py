"""Patterns several XRD test files share (imported as ``from xrd_cases import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

LI_RICH = Path(__file__).resolve().parents[1] / "examples" / "xrd" / "li-rich-two-phase.toml"


def li_rich_broad(noise: bool = True, counts: float = 30000, seed: int = 1):
    """The Li-rich example at 15 nm and 2000 ppm with B 0.06 on LiTMO2:Li and 0.08 on the Li2MnO3 Li
    layer (Li2c, Li4h), computed by GSAS-II (issue 13's broad-peak case).

    Returns ``(recipe, pattern)``: the recipe to refine (B fractions start at the example's values)
    and the GSAS-II pattern with Poisson noise (``noise=True``) or without.
    """
    from doptrace.xrd import gsas2
    from doptrace.xrd.recipe import parse_recipe

    raw = tomllib.loads(LI_RICH.read_text(encoding="utf-8"))
    for phase in raw["phase"]:
        phase["size_um"], phase["mustrain"] = 0.015, 2000.0
    truth = copy.deepcopy(raw)
    truth.pop("dopant")
    truth["phase"][0]["site"][1]["occupancy"] = {"Li": 0.94, "B": 0.06}
    for site in truth["phase"][1]["site"]:
        if site["label"] in ("Li2c", "Li4h"):
            site["occupancy"] = {"Li": 0.92, "B": 0.08}
    pattern = gsas2.simulate(parse_recipe(truth, LI_RICH), counts=counts, seed=seed, noise=noise)
    return parse_recipe(raw, LI_RICH), pattern
