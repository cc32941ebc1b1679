"""Staged Rietveld refinement of a recipe -> the XRD result Dataset (shared by both engines).

:func:`build_result` assembles the result layout from plain arrays; the built-in engine
(:func:`refine`) and the GSAS-II driver both call it, so their results are interchangeable.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .dopant import dopant_verdict

CELL_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
CELL_UNITS = ("Å", "Å", "Å", "deg", "deg", "deg")


def _arr(values, n=None, dtype=float):
    out = np.asarray(values if values is not None else [], dtype=dtype)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"expected {n} values, got {out.shape}")
    return out


def build_result(
    *,
    two_theta, obs, calc, background, esd,
    phases, cell, cell_stderr, weight_fraction, weight_fraction_stderr, scale, scale_stderr,
    sites=(), dopant_fraction=(), dopant_fraction_stderr=(), dopant_correlations=(), dopant_min_detectable=(),
    reflection_two_theta=(), reflection_hkl=(), reflection_phase=(),
    parameter_names=(), parameter_values=(), parameter_stderr=(), correlation=None,
    rwp, rp, rexp, gof, nobs, nvar,
    engine, source, recipe, used=None, extra_attrs=None,
) -> xr.Dataset:
    """The XRD result Dataset from arrays (one layout for every engine).

    Parameters
    ----------
    two_theta, obs, calc, background, esd : array (n,)
        Pattern on the refinement grid (deg, counts).
    phases : list of str
        Phase names (``phase`` dim).
    cell, cell_stderr : array (n_phase, 6)
        a, b, c (Å), alpha, beta, gamma (deg) and their esds.
    weight_fraction, scale (+ ``_stderr``) : array (n_phase,)
    sites : list of str
        Dopant candidate sites ``PHASE:SITE`` (``site`` dim); the verdict is computed here with
        :func:`xrd.dopant.dopant_verdict`.
    dopant_fraction, dopant_fraction_stderr, dopant_min_detectable : array (n_site,)
    dopant_correlations : list of str (n_site,)
        The strongest correlations of each site's fraction, in words.
    reflection_two_theta, reflection_hkl, reflection_phase : (n_refl,)
    parameter_names, parameter_values, parameter_stderr : (n_par,); correlation : (n_par, n_par)
    rwp, rp, rexp : float (%); gof : float; nobs, nvar : int
    engine : "builtin" or "gsas2"; source : data file; recipe : recipe file.
    used : bool array (n,), optional
        Points inside the refinement (False in excluded regions).

    Returns
    -------
    xarray.Dataset
        Follows :mod:`report.conventions`.
    """
    tt = _arr(two_theta)
    n = tt.size
    phases = [str(p) for p in phases]
    npha = len(phases)
    cell = _arr(cell).reshape(npha, 6)
    cell_stderr = _arr(cell_stderr).reshape(npha, 6)
    sites = [str(s) for s in sites]
    nsite = len(sites)
    names = [str(p) for p in parameter_names]
    npar = len(names)
    corr = np.full((npar, npar), np.nan) if correlation is None else _arr(correlation).reshape(npar, npar)

    def pattern(values, units):
        return ("two_theta", _arr(values, n), {"units": units})

    data = {
        "obs": pattern(obs, "counts"),
        "calc": pattern(calc, "counts"),
        "background": pattern(background, "counts"),
        "diff": pattern(_arr(obs, n) - _arr(calc, n), "counts"),
        "esd": pattern(esd, "counts"),
        "used": ("two_theta", np.ones(n, dtype=np.int8) if used is None else _arr(used, n, np.int8), {"units": "1"}),
    }
    for k, (name, units) in enumerate(zip(CELL_NAMES, CELL_UNITS)):
        data[name] = ("phase", cell[:, k], {"units": units})
        data[f"{name}_stderr"] = ("phase", cell_stderr[:, k], {"units": units})
    for name, values, errors in (("weight_fraction", weight_fraction, weight_fraction_stderr),
                                 ("scale", scale, scale_stderr)):
        data[name] = ("phase", _arr(values, npha), {"units": "1"})
        data[f"{name}_stderr"] = ("phase", _arr(errors, npha), {"units": "1"})
    frac = _arr(dopant_fraction, nsite)
    frac_err = _arr(dopant_fraction_stderr, nsite)
    data["dopant_fraction"] = ("site", frac, {"units": "1", "long_name": "dopant fraction of the site"})
    data["dopant_fraction_stderr"] = ("site", frac_err, {"units": "1"})
    data["dopant_verdict"] = ("site", np.array([dopant_verdict(v, e) for v, e in zip(frac, frac_err)], dtype=object))
    data["dopant_correlations"] = ("site", np.array([str(c) for c in dopant_correlations] or [], dtype=object))
    data["dopant_min_detectable"] = ("site", _arr(dopant_min_detectable, nsite), {
        "units": "1", "long_name": "smallest dopant fraction detectable at 3 sigma (Fisher information)"})
    refl_tt = _arr(reflection_two_theta)
    data["reflection_two_theta"] = ("reflection", refl_tt, {"units": "deg"})
    data["reflection_hkl"] = ("reflection", np.array([str(h) for h in reflection_hkl], dtype=object))
    data["reflection_phase"] = ("reflection", np.array([str(p) for p in reflection_phase], dtype=object))
    # ``parameters`` + ``parameters_stderr`` satisfy the result conventions; ``parameters_value`` is the
    # same array under the name the XRD contract uses.
    data["parameters"] = ("parameter", _arr(parameter_values, npar), {"units": "1"})
    data["parameters_value"] = ("parameter", _arr(parameter_values, npar), {"units": "1"})
    data["parameters_stderr"] = ("parameter", _arr(parameter_stderr, npar), {"units": "1"})
    data["correlation"] = (("parameter", "parameter2"), corr, {"units": "1"})
    for name, value, units in (("rwp", rwp, "%"), ("rp", rp, "%"), ("rexp", rexp, "%"), ("gof", gof, "1"),
                               ("nobs", nobs, "1"), ("nvar", nvar, "1")):
        data[name] = ((), float(value), {"units": units})
    ds = xr.Dataset(
        data,
        coords={
            "two_theta": ("two_theta", tt, {"units": "deg"}),
            "phase": ("phase", np.array(phases, dtype=object)),
            "site": ("site", np.array(sites, dtype=object)),
            "reflection": ("reflection", np.arange(refl_tt.size), {"units": "1"}),
            "parameter": ("parameter", np.array(names, dtype=object)),
            "parameter2": ("parameter2", np.array(names, dtype=object)),
        },
    )
    fitted = ["a", "b", "c", "alpha", "beta", "gamma", "weight_fraction", "scale", "parameters"]
    if nsite:
        fitted.append("dopant_fraction")
    ds.attrs.update({"technique": "XRD", "engine": str(engine), "source": str(source), "recipe": str(recipe),
                     "fitted": " ".join(fitted)})
    ds.attrs.update(extra_attrs or {})
    return ds
