"""XPS: read instrument files, fit regions across etch depth, quantify.

>>> import xps
>>> blocks = xps.read("series.vms")                                      # doctest: +SKIP
>>> result = xps.fit_region(blocks, xps.load_model("b1s.toml"), c1s=True)  # doctest: +SKIP
>>> result["fraction"].sel(component="TM-O-B")                           # doctest: +SKIP
"""

from .fit import FitResult, fit_lmfit, fit_series, fit_spectra
from .model import Model, compile_model, from_casa, load_model, parse_model
from .quantify import load_rsf_table, quantify
from .read import read, stack_series
from .series import fit_casa, fit_region
from .simulate import simulate_series

__all__ = ["read", "stack_series", "load_model", "parse_model", "from_casa", "compile_model", "Model",
           "fit_spectra", "fit_series", "fit_lmfit", "FitResult", "fit_region", "fit_casa", "quantify",
           "load_rsf_table", "simulate_series"]
