"""XPS: read instrument files, fit regions across etch depth, quantify."""

from .fit import FitResult, fit_lmfit, fit_series, fit_spectra
from .model import Model, compile_model, from_casa, load_model, parse_model
from .read import read, stack_series

__all__ = ["read", "stack_series", "load_model", "parse_model", "from_casa", "compile_model", "Model",
           "fit_spectra", "fit_series", "fit_lmfit", "FitResult"]
