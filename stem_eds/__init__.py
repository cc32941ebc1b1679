"""STEM-EDS: element maps, quantification, homogeneity.

``read(path)`` -> counts ``DataArray`` (y, x, energy); ``line_intensities`` (model fit or windows)
-> ``quantify`` (Cliff-Lorimer / zeta) -> ``homogeneity``. ``simulate`` writes test files with
known truth.
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
