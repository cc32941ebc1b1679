"""The depth-profile figure of a file with many peaks (SurfaceLab exports hold over a hundred)."""

import numpy as np
import xarray as xr

from doptrace.tofsims.plot import plot_profile


def _profile(n_fragments: int, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    level = rng.permutation(np.arange(1, n_fragments + 1) * 100.0)  # distinct totals, shuffled order
    counts = rng.poisson(np.outer(level, np.ones(20))).astype(float)
    names = [f"F{k}-" for k in range(n_fragments)]
    return xr.Dataset({"counts": (("fragment", "scan"), counts), "counts_stderr": (("fragment", "scan"), np.sqrt(counts))},
                      coords={"fragment": names, "scan": np.arange(20),
                              "sputter_time": ("scan", np.arange(20) * 10.0)})


def test_many_fragments_draw_only_the_most_intense_and_say_so():
    profile = _profile(40)
    fig = plot_profile(profile, title="S")
    ax = fig.axes[0]
    drawn = [t.get_text() for t in ax.get_legend().get_texts()]
    totals = profile["counts"].sum("scan").to_series()
    assert set(drawn) == set(totals.nlargest(12).index)
    assert ax.get_title() == "S\nthe 12 most intense of 40 fragments"


def test_few_fragments_all_drawn_in_file_order():
    profile = _profile(5)
    ax = plot_profile(profile, title="S").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"F{k}-" for k in range(5)]
    assert ax.get_title() == "S"
