"""STEM-EDS: element maps, quantification, homogeneity.

``read(path)`` -> counts ``DataArray`` (y, x, energy); ``line_intensities`` (model fit or windows)
-> ``quantify`` (Cliff-Lorimer / zeta) -> ``homogeneity``. ``simulate`` writes test files with
known truth.

>>> from importlib.resources import files
>>> from doptrace import stem_eds
>>> from doptrace.stem_eds.simulate import simulate_spectrum_image
>>> sim = simulate_spectrum_image("lrmo.hspy", shape=(16, 16), seed=1)
>>> da = stem_eds.read("lrmo.hspy")
>>> intensities = stem_eds.line_intensities(da, stem_eds.parse_elements("Mn,Co,Ni,O", 20.0))
>>> factors = stem_eds.load_factors(files("doptrace.examples") / "eds" / "lrmo_simulated.toml")
>>> stem_eds.quantify(intensities, factors)["atomic_percent"].mean(("y", "x")).round(1).values.tolist()
[19.3, 4.6, 4.7, 71.4]
"""

from .errors import EDSError
from .homogeneity import homogeneity
from .intensities import window_intensities
from .lines import parse_elements
from .model_fit import line_intensities, model_intensities
from .quantify import load_factors, quantify, sum_region
from .read import bin_pixels, info, read, read_signal

__all__ = [
    "EDSError", "bin_pixels", "homogeneity", "info", "line_intensities", "load_factors", "model_intensities",
    "parse_elements", "quantify", "read", "read_signal", "sum_region", "window_intensities",
]
from . import pipeline  # noqa: E402  the whole per-file pipeline (intensities, quantification, homogeneity)
from .plot import plot_homogeneity, plot_maps, plot_radial  # noqa: E402  figures (matplotlib imported when drawing)

__all__ += ["pipeline", "plot_homogeneity", "plot_maps", "plot_radial"]
