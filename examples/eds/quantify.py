"""STEM-EDS quantification of a simulated Li-rich oxide spectrum image (Cliff-Lorimer).

Run it in any folder: ``python quantify.py``. It writes ``lrmo.hspy`` with the simulator (a
uniform Li-rich oxide over a thickness wedge, 24 x 24 pixels), reads it, fits the Mn, Co, Ni and
O K lines in every pixel, sums the whole map and quantifies it with the k-factors of
``lrmo_simulated.toml`` beside this file, maps Mn at% pixel by pixel, tests the map's
homogeneity and prints (tab-separated: quantity, measured, stderr, truth) the atomic percent of
each element and the homogeneity verdict.
"""

from pathlib import Path

from doptrace import stem_eds
from doptrace.stem_eds.simulate import simulate_spectrum_image

HERE = Path(__file__).resolve().parent


def main(path="lrmo.hspy"):
    sim = simulate_spectrum_image(path, shape=(24, 24), kind="uniform", seed=2)
    da = stem_eds.read(path)
    lines = stem_eds.parse_elements("Mn,Co,Ni,O", float(da["energy"].max()), source=path)
    intensities = stem_eds.line_intensities(da, lines)
    factors = stem_eds.load_factors(HERE / "lrmo_simulated.toml")
    total = stem_eds.quantify(stem_eds.sum_region(intensities), factors)
    maps = stem_eds.quantify(intensities, factors)
    verdict = stem_eds.homogeneity(maps)["verdict"]
    truth = sim.atomic_percent.mean(("y", "x"))
    print("quantity\tmeasured\tstderr\ttruth")
    for element in total["element"].values:
        print(f"{element} (at%)\t{float(total['atomic_percent'].sel(element=element)):.3f}\t"
              f"{float(total['atomic_percent_stderr'].sel(element=element)):.3f}\t"
              f"{float(truth.sel(element=element)):.3f}")
    print(f"Mn map\t{verdict.sel(element='Mn').item()}\t-\thomogeneous")
    return total, maps


if __name__ == "__main__":
    main()
