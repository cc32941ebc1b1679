"""Staged Rietveld refinement of a recipe -> the XRD result Dataset (shared by both engines).

:func:`build_result` assembles the result layout from plain arrays; the built-in engine
(:func:`refine`, exported as ``doptrace.xrd.refine``; :func:`run` keeps the engine's state) and
the GSAS-II driver both call it, so their results are interchangeable. (This module was
``xrd/refine.py``; it was renamed so that ``doptrace.xrd.refine`` is only ever the function.)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .dopant import dopant_verdict
from .quality import FAILED, assess, durbin_watson, serial_correlation_factor

CELL_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
#: rounds of (Le Bail extraction, linear scales + background) before the first stage
LEBAIL_START_ROUNDS = 5
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
    engine, source, recipe, used=None, extra_attrs=None, parameter_units=None,
    quality_notes=(), parameter_bounds=None, site_totals=None, occupancies=(),
    site_dopants=(), lebail_phases=(), lebail_reflections=None,
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
    parameter_units : list of str (n_par,), optional
        Units of each refined parameter (a ``parameter_units`` coordinate).
    quality_notes : list of (level, sentence)
        The engine's own findings (stage problems, convergence, width floors) for :func:`xrd.quality.assess`.
    parameter_bounds : dict name -> (lo, hi), optional
        Hard bounds of refined parameters; one at its bound gets esd NaN and a quality warning.
    site_totals : list of float (n_site,), optional
        Site total of each dopant site (upper physical bound of its fraction; default 1).
    occupancies : list of (label, value, esd, lo, hi)
        Other refined occupancies checked against their physical bounds.
    site_dopants : list of str (n_site,), optional
        Dopant element of each ``site`` entry (a ``dopant`` coordinate); with several dopant
        elements the engines label the entries ``ELEMENT@PHASE:SITE``.
    lebail_phases : list of str
        Phases fitted by Le Bail extraction (no structure): their ``weight_fraction`` is NaN, the
        others' are relative to the Rietveld phases only, and the quality record says so.
    lebail_reflections : dict, optional
        Extracted reflections of the Le Bail phases: ``phase``, ``hkl`` (str), ``two_theta`` (deg),
        ``d`` (Å) and ``intensity`` (integrated counts·deg of the Kα1 line), one entry each, stored
        over the ``lebail_reflection`` dim.

    The quality record (``attrs["quality"]``, ``attrs["quality_reasons"]``,
    ``attrs["durbin_watson"]``, ``attrs["esd_serial_factor"]``) follows :mod:`xrd.quality`; the
    dopant verdicts use it (:func:`xrd.dopant.dopant_verdict`).

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
    totals = np.ones(nsite) if site_totals is None else _arr(site_totals, nsite)

    # quality record (xrd.quality) before the verdicts, which depend on it
    par_values = _arr(parameter_values, npar)
    par_err = _arr(parameter_stderr, npar).copy()
    bounds = parameter_bounds or {}
    at_bound = []
    for i, name in enumerate(names):
        lo, hi = bounds.get(name, (-np.inf, np.inf))
        tol = 1e-9 * max(1.0, abs(par_values[i]))
        if (np.isfinite(lo) and par_values[i] <= lo + tol) or (np.isfinite(hi) and par_values[i] >= hi - tol):
            at_bound.append(name)
            par_err[i] = np.nan  # not the esd of a free parameter
    used_mask = np.ones(n, bool) if used is None else _arr(used, n, bool)
    dw = durbin_watson(_arr(obs, n), _arr(calc, n), _arr(esd, n), used_mask)
    serial = serial_correlation_factor(dw)
    sites_checked = [(f"dopant fraction on {s}", v, e, 0.0, t) for s, v, e, t in zip(sites, frac, frac_err, totals)
                     if np.isfinite(e)]
    lebail_phases = [str(p) for p in lebail_phases]
    notes = list(quality_notes)
    if lebail_phases:
        others = [p for p in phases if p not in lebail_phases]
        notes.append(("note", f"no weight fraction for the Le Bail phase(s) {', '.join(lebail_phases)} (intensities "
                              "extracted, no structure, so no mass)"
                              + (f"; the weight fractions of {', '.join(others)} are relative to the Rietveld "
                                 "phases only" if others else "")))
    quality, reasons = assess(
        names=names, values=par_values, esds=par_err, correlation=corr, gof=float(gof), durbin_watson=dw,
        nobs=int(nobs), at_bound=at_bound, weight_fraction=_arr(weight_fraction, npha),
        weight_fraction_esd=_arr(weight_fraction_stderr, npha), phases=phases,
        site_fractions=sites_checked + list(occupancies), notes=notes, lebail_phases=lebail_phases)
    failed_reason = reasons[0] if quality == FAILED else ""
    data["dopant_fraction"] = ("site", frac, {"units": "1", "long_name": "dopant fraction of the site"})
    if lebail_phases:
        data["weight_fraction"][2]["comment"] = ("NaN for Le Bail phases; the others relative to the Rietveld "
                                                 "phases only")
    refl = lebail_reflections or {}
    data["lebail_intensity"] = ("lebail_reflection", _arr(refl.get("intensity", [])), {
        "units": "counts deg", "long_name": "Le Bail extracted integrated intensity (K-alpha1 line)"})
    data["dopant_fraction_stderr"] = ("site", frac_err, {"units": "1"})
    data["dopant_verdict"] = ("site", np.array(
        [dopant_verdict(v, e, total=t, failed=failed_reason, esd_factor=serial)
         for v, e, t in zip(frac, frac_err, totals)], dtype=str))
    data["dopant_correlations"] = ("site", np.array([str(c) for c in dopant_correlations] or [], dtype=str))
    data["dopant_min_detectable"] = ("site", _arr(dopant_min_detectable, nsite), {
        "units": "1", "long_name": "smallest dopant fraction detectable at 3 sigma (Fisher information)"})
    refl_tt = _arr(reflection_two_theta)
    data["reflection_two_theta"] = ("reflection", refl_tt, {"units": "deg"})
    data["reflection_hkl"] = ("reflection", np.array([str(h) for h in reflection_hkl], dtype=str))
    data["reflection_phase"] = ("reflection", np.array([str(p) for p in reflection_phase], dtype=str))
    # ``parameters`` + ``parameters_stderr`` satisfy the result conventions; ``parameters_value`` is the
    # same array under the name the XRD contract uses.
    data["parameters"] = ("parameter", par_values, {"units": "1"})
    data["parameters_value"] = ("parameter", par_values, {"units": "1"})
    data["parameters_stderr"] = ("parameter", par_err, {"units": "1"})
    data["correlation"] = (("parameter", "parameter2"), corr, {"units": "1"})
    for name, value, units in (("rwp", rwp, "%"), ("rp", rp, "%"), ("rexp", rexp, "%"), ("gof", gof, "1"),
                               ("nobs", nobs, "1"), ("nvar", nvar, "1")):
        data[name] = ((), float(value), {"units": units})
    ds = xr.Dataset(
        data,
        coords={
            "two_theta": ("two_theta", tt, {"units": "deg"}),
            "phase": ("phase", np.array(phases, dtype=str)),
            "site": ("site", np.array(sites, dtype=str)),
            "reflection": ("reflection", np.arange(refl_tt.size), {"units": "1"}),
            "parameter": ("parameter", np.array(names, dtype=str)),
            "parameter2": ("parameter2", np.array(names, dtype=str)),
            "lebail_phase": ("lebail_reflection", np.array([str(v) for v in refl.get("phase", [])], dtype=str)),
            "lebail_hkl": ("lebail_reflection", np.array([str(v) for v in refl.get("hkl", [])], dtype=str)),
            "lebail_two_theta": ("lebail_reflection", _arr(refl.get("two_theta", [])), {"units": "deg"}),
            "lebail_d": ("lebail_reflection", _arr(refl.get("d", [])), {"units": "Å"}),
        },
    )
    if len(site_dopants):
        ds = ds.assign_coords(dopant=("site", np.array([str(e) for e in site_dopants], dtype=str)))
    if parameter_units is not None:
        ds = ds.assign_coords(parameter_units=("parameter", np.array([str(u) for u in parameter_units], dtype=str)))
    fitted = ["a", "b", "c", "alpha", "beta", "gamma", "weight_fraction", "scale", "parameters"]
    if nsite:
        fitted.append("dopant_fraction")
    if refl.get("intensity") is not None and len(refl["intensity"]):
        fitted.append("lebail_intensity")
    ds.attrs.update({"technique": "XRD", "engine": str(engine), "source": str(source), "recipe": str(recipe),
                     "fitted": " ".join(fitted), "lebail_phases": list(lebail_phases)})
    ds.attrs.update(extra_attrs or {})
    ds.attrs.update({"quality": quality, "quality_reasons": list(reasons), "durbin_watson": float(dw),
                     "esd_serial_factor": float(serial)})
    return ds


# ----------------------------------------------------------------------------------------------------
# The built-in engine's staged refinement


class Refinement:
    """Outcome of :func:`run`: the model, final values, last fit, per-stage history and the Dataset."""

    def __init__(self, model, values, fit, history, dataset):
        self.model = model
        self.values = values
        self.fit = fit
        self.history = history
        self.dataset = dataset


def load_pattern(recipe):
    """The recipe's data file read by :func:`xrd.read`; XRDError when the recipe names none."""
    from .errors import XRDError
    from .read import read

    if recipe.data_file is None:
        raise XRDError(f"{recipe.path}: no data file ([data] file = ... or --data FILE)")
    return read(recipe.data_file)


def run(recipe, pattern=None, *, start: dict | None = None, stages=None, progress: bool = False) -> Refinement:
    """Refine ``recipe`` stage by stage (cumulative groups) with the built-in engine.

    Parameters
    ----------
    recipe : xrd.recipe.Recipe
    pattern : xarray.DataArray, optional
        Measured pattern; read from ``recipe.data_file`` when omitted.
    start : dict, optional
        Starting parameter values (e.g. a previous result in a sequence or the simulation truth).
    stages : list of list of str, optional
        Cumulative groups per stage instead of the recipe's (e.g. only the final stage).
    progress : bool
        Show a tqdm bar over stages.
    """
    import time

    from tqdm import tqdm

    from .engine import LEBAIL_ITERATIONS, levenberg_marquardt, linear_start, statistics
    from .model import PatternModel
    from .quality import FLOOR_SHARE

    if pattern is None:
        pattern = load_pattern(recipe)
    model = PatternModel(recipe, pattern)
    values = model.values
    if start:
        values.update({k: float(v) for k, v in start.items() if k in values})
    groups_per_stage = stages if stages is not None else recipe.cumulative_groups()
    cycles = [st.max_cycles for st in recipe.stages] if stages is None else [20] * len(groups_per_stage)
    if not start:
        # scales (unless given) and background start from their exact linear solution
        first = [n for n, p in model.parameters.items() if p.kind == "linear" and not p.fixed
                 and not (p.group == "scale" and recipe.phase(n.split(":")[0]).scale is not None)
                 and not (p.group == "background" and recipe.background_coefficients)]
        values = linear_start(model, values, first)
        for _ in range(LEBAIL_START_ROUNDS if model.lebail else 0):
            # Le Bail phases start from equal intensities: extract, then re-solve scales and background
            model.lebail_update(values, LEBAIL_ITERATIONS)
            values = linear_start(model, values, first)
    elif model.lebail:
        model.freeze(values)
        model.lebail_update(values, LEBAIL_START_ROUNDS * LEBAIL_ITERATIONS)
    history, fit, notes = [], None, []
    bar = tqdm(list(zip(groups_per_stage, cycles)), desc="refinement stages", unit="stage", disable=not progress)
    for number, (groups, max_cycles) in enumerate(bar):
        names = model.names_in_groups(groups)
        if not names:
            continue
        values = linear_start(model, values, names)
        tic = time.perf_counter()
        last = number == len(groups_per_stage) - 1
        fit = levenberg_marquardt(model, values, names, max_cycles=max_cycles, with_covariance=last)
        values = fit.values
        stats = statistics(model, fit.calc, len(names))
        name = recipe.stages[number].name if stages is None and number < len(recipe.stages) else f"stage {number + 1}"
        history.append({"stage": name, "rwp": round(float(stats["rwp"]), 4), "gof": round(float(stats["gof"]), 4),
                        "nvar": len(names), "cycles": fit.cycles, "seconds": round(time.perf_counter() - tic, 3),
                        "converged": bool(fit.converged), "problem": fit.problem,
                        "dropped_reflection_derivatives": int(fit.dropped)})
        if fit.problem:
            notes.append(("failed", f"stage '{name}' could not proceed: {fit.problem}"))
        elif last and not fit.converged:
            notes.append(("warning", f"stage '{name}' stopped at its cycle limit ({max_cycles}) while chi² was "
                                     "still falling: not converged"))
    if fit is None:
        from .errors import XRDError

        raise XRDError(f"{recipe.path}: no stage refines anything")
    if not np.all(np.isfinite(fit.covariance)):
        fit = levenberg_marquardt(model, values, fit.names, max_cycles=0)  # covariance at the solution only
    profile_refined = "profile" in (groups_per_stage[-1] if groups_per_stage else [])
    for phase, (n_in, n_gauss, _n_lor) in zip(model.phases, model.width_floor_counts(values)):
        if profile_refined and n_in and n_gauss > FLOOR_SHARE * n_in:
            notes.append(("warning", f"{n_gauss} of {n_in} reflections of {phase.name} sit at the Gaussian-width "
                                     "floor, where U, V, W have no gradient"))
    from .texture import negative_factor_note

    for k, phase in enumerate(model.phases):
        if model.sh_terms[k]:
            pos = model.peaks(k, values)[0]
            inside = np.isfinite(pos) & (pos >= model.x[0]) & (pos <= model.x[-1])
            notes += negative_factor_note(phase.name, model.preferred_orientation(k, values)[inside])
    dataset = _dataset(model, fit, history, notes)
    return Refinement(model, values, fit, history, dataset)


def refine(recipe, pattern=None, *, start: dict | None = None, stages=None, progress: bool = False) -> xr.Dataset:
    """Rietveld refinement of a recipe with the built-in engine: the XRD result Dataset.

    The recipe's stages are refined one after the other, each adding its parameter groups to the
    ones already free (Marquardt least squares, weights 1/esd²). Esds are scaled by the goodness
    of fit; weight fractions are ``w_p = s_p M_p / sum_q s_q M_q`` (``M_p`` the unit-cell mass,
    the scales GSAS-II's), the Hill & Howard (1987) relation as GSAS-II evaluates it.

    Parameters
    ----------
    recipe : path-like or doptrace.xrd.recipe.Recipe
        Recipe TOML file (phases, sites, instrument, background, dopant candidates, stages) or a
        loaded recipe.
    pattern : path-like or xarray.DataArray, optional
        Measured pattern (a file any :func:`doptrace.xrd.read` format reads, or its result);
        default the recipe's ``[data] file``.
    start : dict, optional
        Starting parameter values by name (``"LiTMO2:a"``), e.g. a previous result in a sequence.
    stages : list of list of str, optional
        Cumulative parameter groups per stage instead of the recipe's.
    progress : bool
        Show a progress bar over the stages.

    Returns
    -------
    xarray.Dataset
        Observed, calculated, background and difference patterns over ``two_theta``; per phase
        ``a`` .. ``gamma``, ``weight_fraction``, ``scale`` each with ``*_stderr``; per dopant
        candidate site ``dopant_fraction`` ± ``dopant_fraction_stderr`` and ``dopant_verdict``;
        ``rwp``, ``rp``, ``rexp``, ``gof``; the parameter list and correlation matrix.

    References
    ----------
    H. M. Rietveld, J. Appl. Cryst. 2 (1969) 65-71. R. J. Hill and C. J. Howard, J. Appl. Cryst. 20
    (1987) 467-474 (weight fractions). B. H. Toby and R. B. Von Dreele, J. Appl. Cryst. 46 (2013)
    544-549 (GSAS-II conventions followed for profiles and agreement factors).

    Examples
    --------
    A LiNiO2-type recipe; a pattern simulated with a = 2.8801 Å, c = 14.2000 Å (Poisson noise,
    seed 1) is written as ``.xye`` and refined back:

    >>> from pathlib import Path
    >>> from doptrace import xrd
    >>> from doptrace.xrd.simulate import simulate, write_xye
    >>> _ = Path("lno.toml").write_text('''
    ... [instrument]
    ... wavelengths = [1.5406]
    ... [range]
    ... two_theta = [15.0, 90.0]
    ... [background]
    ... terms = 2
    ... coefficients = [200.0, -50.0]
    ... [[phase]]
    ... name = "LNO"
    ... space_group = "R -3 m:H"
    ... cell = [2.878, 2.878, 14.19, 90, 90, 120]
    ... site = [{label = "Ni", xyz = [0, 0, 0], occupancy = {Ni = 1.0}},
    ...         {label = "Li", xyz = [0, 0, 0.5], occupancy = {Li = 1.0}},
    ...         {label = "O", xyz = [0, 0, 0.2585], occupancy = {O = 1.0}}]
    ... [[stage]]
    ... refine = ["scale", "background"]
    ... [[stage]]
    ... refine = ["cell"]
    ... ''')
    >>> recipe = xrd.load_recipe("lno.toml")
    >>> _ = write_xye(simulate(recipe, values={"LNO:a": 2.8801, "LNO:c": 14.2}, seed=1), "lno.xye")
    >>> result = xrd.refine("lno.toml", "lno.xye")
    >>> a, a_esd = float(result["a"][0]), float(result["a_stderr"][0])
    >>> abs(a - 2.8801) < 3 * a_esd, round(a, 4)
    (True, 2.8801)
    """
    from .recipe import Recipe, load_recipe

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if pattern is not None and not isinstance(pattern, xr.DataArray):
        from .read import read

        pattern = read(pattern)
    return run(recipe, pattern, start=start, stages=stages, progress=progress).dataset


def _dataset(model, fit, history, notes=()) -> xr.Dataset:
    from .dopant import correlation_words, min_detectable
    from .engine import jacobian, statistics
    from .reflections import inverse_d_squared
    from .structure import CELL_NAMES as _CELLS

    values = fit.values
    names = fit.names
    index = {n: i for i, n in enumerate(names)}
    err = fit.stderr
    corr = fit.correlation
    stats = statistics(model, fit.calc, len(names))
    scale_chi2 = stats["gof"] ** 2

    def _row(name):
        """Gradient of parameter ``name`` over the refined ones (a tied parameter follows its source)."""
        row = np.zeros(len(names))
        if name in index:
            row[index[name]] = 1.0
        elif name in model.ties and model.ties[name][0] in index:
            row[index[model.ties[name][0]]] = model.ties[name][1]
        return row

    nph = len(model.phases)
    cell = np.zeros((nph, 6))
    cell_err = np.zeros((nph, 6))
    scales = np.zeros(nph)
    scales_err = np.zeros(nph)
    masses = np.zeros(nph)
    for k, phase in enumerate(model.phases):
        cell[k] = model.cell(k, values)
        for j, cname in enumerate(_CELLS):
            # a constrained parameter carries the esd of the free one it equals (b = a, ...)
            source = cname
            if cname not in phase.cell_free:
                source = {"b": "a", "c": "a", "beta": "alpha", "gamma": "alpha"}.get(cname, cname)
            pname = f"{phase.name}:{source}"
            if source in phase.cell_free and pname in index and np.isclose(cell[k, j], cell[k, _CELLS.index(source)]
                                                                           if cname != source else cell[k, j]):
                cell_err[k, j] = err[index[pname]]
        sname = f"{phase.name}:scale"
        scales[k] = values[sname]
        row = _row(sname)
        scales_err[k] = float(np.sqrt(max(row @ fit.covariance @ row, 0.0))) if np.any(row) else 0.0
        masses[k] = model.mass(k, values)
    # weight fractions w_p = s_p M_p / sum_q s_q M_q (GSAS-II), esd propagated from the scales' covariance
    lebail = np.array([k in model.lebail for k in range(nph)], bool)
    zm = np.where(lebail, 0.0, scales * masses)  # a Le Bail phase has no mass: no weight fraction
    total = zm.sum()
    wf = zm / total if total != 0 else np.full(nph, np.nan)
    grad = (np.diag(np.full(nph, total)) - zm[:, None]) * masses[None, :] / total**2 if total != 0 else np.zeros(
        (nph, nph))
    srows = np.array([_row(f"{p.name}:scale") for p in model.phases]).reshape(nph, len(names))
    cov_s = srows @ np.nan_to_num(fit.covariance) @ srows.T
    wf_err = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", grad, cov_s, grad), 0, None))
    wf, wf_err = np.where(lebail, np.nan, wf), np.where(lebail, np.nan, wf_err)

    # dopant: one value per candidate site; what-if from the Fisher information with every dopant
    # parameter added to the refined set
    sites, frac, frac_err, words, detect, totals, elements = [], [], [], [], [], [], []
    several = len({d.element for d in model.recipe.dopants}) > 1
    if model.dopant_params:
        extra = [p for p, _ in model.dopant_params if p not in index]
        all_names = names + extra
        if extra:
            model.freeze(values)
            sw = np.sqrt(model.weight)
            jac = jacobian(model, values, all_names) * sw[:, None]
            fisher = jac.T @ jac
        else:
            fisher = fit.fisher
        fisher_scaled = fisher / scale_chi2
        for pname, group in model.dopant_params:
            j = all_names.index(pname)
            d_min = min_detectable(fisher_scaled, j, 3.0)
            for site in group:
                element = model.dopant_element[pname]
                sites.append(f"{element}@{site}" if several else site)
                elements.append(element)
                phase_name, label = site.split(":", 1)
                totals.append(model.phases[[p.name for p in model.phases].index(phase_name)].site(label).total)
                frac.append(values[pname])
                if pname in index:
                    frac_err.append(err[index[pname]])
                    words.append(correlation_words(names, corr, index[pname]))
                else:
                    frac_err.append(np.nan)
                    words.append("not refined")
                detect.append(d_min)
    # texture index J = 1 + sum C^2/(2L+1) of each spherical-harmonics phase, esd from the coefficients' covariance
    from .texture import texture_index, texture_index_gradient

    texture = {}
    for k, phase in enumerate(model.phases):
        if model.sh_terms[k]:
            coef = {n: values[f"{phase.name}:{n}"] for n in model.sh_terms[k]}
            grad = texture_index_gradient(coef)
            row = sum(grad[n] * _row(f"{phase.name}:{n}") for n in coef)
            esd = float(np.sqrt(max(row @ np.nan_to_num(fit.covariance) @ row, 0.0))) if np.any(row) else 0.0
            texture[phase.name] = [texture_index(coef), esd]
    tt, hkl, phase_of = model.reflection_table(values)
    extracted = {"phase": [], "hkl": [], "two_theta": [], "d": [], "intensity": []}
    for k in model.lebail:
        pos = model.peaks(k, values)[0]
        inside = np.isfinite(pos) & (pos >= model.x[0]) & (pos <= model.x[-1])
        refl = model.reflections[k]
        extracted["phase"] += [model.phases[k].name] * int(inside.sum())
        extracted["hkl"] += [lab for lab, ok in zip(refl.labels(), inside) if ok]
        extracted["two_theta"] += pos[inside].tolist()
        extracted["d"] += (1.0 / np.sqrt(inverse_d_squared(model.cell(k, values), refl.hkl[inside]))).tolist()
        extracted["intensity"] += model.lebail_intensities(k, values)[inside].tolist()
    calc = fit.calc
    bkg = model.background(values)
    recipe = model.recipe
    return build_result(
        two_theta=model.x, obs=model.y, calc=calc, background=bkg, esd=model.esd,
        phases=[p.name for p in model.phases], cell=cell, cell_stderr=cell_err,
        weight_fraction=wf, weight_fraction_stderr=wf_err, scale=scales, scale_stderr=scales_err,
        sites=sites, dopant_fraction=frac, dopant_fraction_stderr=frac_err, dopant_correlations=words,
        dopant_min_detectable=detect,
        reflection_two_theta=tt, reflection_hkl=hkl, reflection_phase=phase_of,
        parameter_names=names, parameter_values=[values[n] for n in names], parameter_stderr=err,
        correlation=corr, rwp=stats["rwp"], rp=stats["rp"], rexp=stats["rexp"], gof=stats["gof"],
        nobs=stats["nobs"], nvar=stats["nvar"], engine="builtin", source=str(model.source),
        recipe=str(recipe.path), used=model.used, parameter_units=[model.parameters[n].units for n in names],
        occupancies=model.occupancy_checks(values, {n: float(e) for n, e in zip(names, err)}),
        quality_notes=notes, parameter_bounds={n: model.parameters[n].bounds for n in names}, site_totals=totals,
        site_dopants=elements, lebail_phases=[p.name for p in recipe.phases if p.lebail], lebail_reflections=extracted,
        extra_attrs={"stages": history, "wavelength": float(model.lam1),
                     **({"simulated": model.simulated} if model.simulated else {}),
                     "dopant_element": " ".join(d.element for d in recipe.dopants),
                     "dopant_min_detectable_sigma": 3.0,
                     "ties": [f"{n} = {f:g} * {src}" for n, (src, f) in model.ties.items()],
                     "site_occupancies": {f"{p.name}:{site.label}": {sp: float(o) for sp, o in st[2].items()}
                                          for k, p in enumerate(model.phases)
                                          for site, st in zip(p.sites, model.site_state(k, values))},
                     **({"texture_index": texture} if texture else {})},
    )
