"""XPS: read instrument files, fit regions across etch depth, quantify.

``read(path)`` -> one DataArray per block -> ``fit_region(blocks, load_model(toml))`` (peak fits
with uncertainties per etch level) or ``quantify(blocks, regions)`` (atomic %).
``simulate_series`` writes a VAMAS etch series with known components.

>>> from importlib.resources import files
>>> from doptrace import xps
>>> truth = xps.simulate_series("series.vms", etch_times=[0.0, 150.0], regions=("B 1s", "C 1s"))
>>> blocks = xps.read("series.vms")
>>> result = xps.fit_region(blocks, xps.load_model(files("doptrace.examples") / "xps" / "b1s.toml"), c1s=True)
>>> result["fraction"].sel(component="TM-O-B").values.round(1).tolist()
[0.1, 0.5]
"""

from doptrace.core.lazy_dask import defer_dask_array, defer_dask_collection_check

defer_dask_array()  # no dask.array import (1.2 s) unless something here really makes a dask array
defer_dask_collection_check()  # nor dask itself (0.06 s) to learn that a NumPy array is not dask's

from .charge import fermi_reference, fit_region_referenced, parse_charge_ref
from .fit import FitResult, fit_lmfit, fit_series, fit_spectra
from .model import Model, compile_model, from_casa, load_model, parse_model
from .quantify import load_rsf_table, quantify
from .read import read, stack_series
from .series import fit_casa, fit_region
from .simulate import simulate_composition, simulate_series

__all__ = ["read", "stack_series", "load_model", "parse_model", "from_casa", "compile_model", "Model",
           "fit_spectra", "fit_series", "fit_lmfit", "FitResult", "fit_region", "fit_casa", "quantify",
           "load_rsf_table", "simulate_series", "simulate_composition", "parse_charge_ref", "fermi_reference",
           "fit_region_referenced"]
from .plot import plot_fit, plot_fractions, plot_gallery  # noqa: E402  figures (matplotlib imported when drawing)

__all__ += ["plot_fit", "plot_fractions", "plot_gallery"]
