"""A doptrace fit handed to CasaXPS: VAMAS blocks whose comments carry ``CASA region`` / ``CASA comp`` lines.

:func:`write_vamas` writes the spectra of a file again (ISO 14976 VAMAS, :mod:`.formats.vamas`)
with, in each fitted block's comment, the fit of that level in CasaXPS's own block-comment format
(:mod:`.formats.casa`): one ``CASA region`` line (window, background) and one ``CASA comp`` line
per component (line shape, fitted area / FWHM / position with their bounds and links), plus a
``Calib M = .. A = .. BE ADD`` process line for the level's charge shift. CasaXPS opens such a
file with the fit in place; ``doptrace xps fit F.vms --casa`` reads it back
(:func:`doptrace.xps.fit_casa`) into the same model and, refitting from the stored values, the
same areas (tests/test_xps_casa_roundtrip.py).

What CasaXPS cannot express, and what is written instead (each also listed in the returned notes):

- an *active* background (Shirley or Tougaard refined with the peaks): CasaXPS's region
  backgrounds are computed from the data; written as the static Shirley / Tougaard, so a refit
  there gives different areas;
- background ``none``: CasaXPS always subtracts one; refused;
- a Tougaard background whose B or C doptrace estimates itself (not given in the model): refused;
- line shapes without a CasaXPS formula: ``Voigt(..)`` and doptrace's ``DS(asym, gauss)``
  (CasaXPS's ``DS(a, n)`` is another profile) are refused; ``Gaussian`` / ``Lorentzian`` are
  written as their exact equivalents ``GL(0)`` / ``GL(100)``;
- groups (chemical states spanning doublet partners): CasaXPS has no such field; names carry
  over, groups do not (a re-read model groups by name);
- links are written to the *root* component (CasaXPS links point at an unlinked comp); a chain
  A -> B -> C becomes A -> C with the product ratio / summed offset, the same constraint;
- infinite bounds: CasaXPS needs numbers; an unbounded centre is bounded by the fit window, an
  unbounded FWHM by 0 .. 100 eV, an unbounded area by 0 .. 1e20;
- per-level charge shifts become one ``Calib`` line per block; any ``Calib ... BE ADD`` lines
  already in the comment are replaced by it (other process lines, annotations and vendor lines
  are kept as they were).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .errors import XPSError
from .formats import casa
from .model import KINDS, Model, compile_model

_AREA_MAX = 1e20
_FWHM_MAX = 100.0


def _casa_shape(shape: str, where: str) -> str:
    from .lineshapes import _SHAPE_RE

    cleaned = str(shape).strip()
    match = _SHAPE_RE.match(cleaned[: cleaned.index(")") + 1] if ")" in cleaned else cleaned)
    kind = match.group(1).upper() if match else ""
    if kind in ("GL", "SGL", "LA", "LF"):
        return cleaned
    if kind in ("G", "GAUSSIAN", "GAUSS"):
        return "GL(0)"
    if kind in ("L", "LORENTZIAN", "LORENTZ"):
        return "GL(100)"
    raise XPSError(f"{where}: line shape {shape!r} has no CasaXPS formula (CasaXPS knows GL, SGL, LA, LF; "
                   "doptrace's Voigt and DS(asym, gauss) are not among them)")


def _background(model: Model, where: str) -> tuple[str, tuple[float, float, float, float], list[str]]:
    bg = model.background
    notes = []
    if bg.active:
        notes.append(f"the active {bg.kind} background is written as CasaXPS's static {bg.kind}: "
                     "CasaXPS cannot refine a background with the peaks, so its areas will differ")
    if bg.kind == "shirley":
        return "Shirley", (0.0, 0.0, 0.0, 0.0), notes
    if bg.kind == "linear":
        return "Linear", (0.0, 0.0, 0.0, 0.0), notes
    if bg.kind == "tougaard":
        if bg.B is None or bg.C is None or (bg.tougaard == "U3" and bg.D is None):
            raise XPSError(f"{where}: a Tougaard background goes to CasaXPS with its B, C (and D for U3) "
                           "given in the model; doptrace estimates the missing ones, CasaXPS cannot")
        if bg.tougaard == "U2":
            return "U 2 Tougaard", (float(bg.B), -float(bg.C), 0.0, 0.0), notes
        return "U 3 Tougaard", (float(bg.B), float(bg.C), float(bg.D), 0.0), notes
    raise XPSError(f"{where}: background {bg.kind!r} cannot be written for CasaXPS (Shirley, Linear, Tougaard)")


def _links(model: Model):
    """Per component and kind: ``(root index or -1, factor-or-offset, fixed)``, chains resolved."""
    compiled = compile_model(model)
    owner = {}
    for j, comp in enumerate(model.components):
        for k, kind in enumerate(KINDS):
            i = compiled.index[k, j]
            if i >= 0 and compiled.names[i] == f"{comp.name}.{kind}":
                owner[i] = j
    out = []
    for j in range(len(model.components)):
        row = []
        for k in range(3):
            i, scale, offset = compiled.index[k, j], compiled.scale[k, j], compiled.offset[k, j]
            if i < 0:
                row.append((-1, 0.0, True))
            elif owner.get(i) == j:
                row.append((-1, 0.0, False))
            else:
                row.append((owner[i], float(offset) if k == 1 else float(scale), False))
        out.append(row)
    return out


def casa_info(ds, model: Model, level: int, excitation_energy: float, previous: casa.CasaInfo | None = None,
              where: str = "") -> tuple[casa.CasaInfo, list[str]]:
    """The CasaXPS block comment for level ``level`` of fit ``ds`` (made with ``model``).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`doptrace.xps.fit_region` or :func:`doptrace.xps.fit_casa`.
    model : doptrace.xps.model.Model
        The model the fit used (links, bounds, shapes, background).
    level : int
        Index along the fit's level dimension.
    excitation_energy : float
        Photon energy hv (eV): CasaXPS stores kinetic energies, ``KE = hv - BE``.
    previous : CasaInfo, optional
        What the block's comment already held; its process lines (except ``Calib ... BE ADD``),
        annotations and vendor lines are kept.

    Returns
    -------
    (CasaInfo, list of str)
        The comment's content, and notes on what CasaXPS cannot express.
    """
    hv = float(excitation_energy)
    where = where or str(ds.attrs.get("source", "<fit>"))
    if not (math.isfinite(hv) and hv > 0):
        raise XPSError(f"{where}: no excitation energy: CasaXPS positions are kinetic energies (KE = hv - BE)")
    dim = ds.attrs.get("level_dim", "etch_time")
    one = ds.isel({dim: level})
    background, parameters, notes = _background(model, where)
    window = model.window
    if window is None:
        energy = np.asarray(one["binding_energy"].values, float)
        window = (float(np.nanmin(energy)), float(np.nanmax(energy)))
    names = [str(n) for n in ds["component"].values]
    if names != model.names:
        raise XPSError(f"{where}: the fit's components {names} are not the model's {model.names}")
    region = casa.CasaRegion(
        name=str(ds.attrs.get("region", model.region)), background=background, ke_start=hv - window[1],
        ke_end=hv - window[0], rsf=1.0, average_width=float(model.background.average), start_offset=0.0,
        end_offset=0.0, parameters=parameters, tag=str(ds.attrs.get("region", model.region)), mass=0.0,
        flag=0.0, library_rsf=1.0)
    comps = []
    links = _links(model)
    for j, comp in enumerate(model.components):
        area, center, fwhm = (float(one[k].values[j]) for k in ("area", "center", "fwhm"))
        (a_ref, a_by, a_fixed), (c_ref, c_by, c_fixed), (w_ref, w_by, w_fixed) = links[j]
        a_lo, a_hi = (area, area) if a_fixed else (max(comp.area.min, 0.0), comp.area.max)
        a_hi = a_hi if math.isfinite(a_hi) else _AREA_MAX
        w_lo, w_hi = (fwhm, fwhm) if w_fixed else (comp.fwhm.min, comp.fwhm.max)
        w_lo, w_hi = (w_lo if math.isfinite(w_lo) else 0.0), (w_hi if math.isfinite(w_hi) else _FWHM_MAX)
        if c_fixed:
            c_lo = c_hi = center
        else:
            c_lo = comp.center.min if math.isfinite(comp.center.min) else window[0]
            c_hi = comp.center.max if math.isfinite(comp.center.max) else window[1]
        comps.append(casa.CasaComp(
            name=comp.name, lineshape=_casa_shape(comp.shape, f"{where}: component {comp.name!r}"),
            area=casa.CasaParam(area, a_lo, a_hi, a_ref, a_by if a_ref >= 0 else 1.0),
            fwhm=casa.CasaParam(fwhm, w_lo, w_hi, w_ref, w_by if w_ref >= 0 else 1.0),
            # KE = hv - BE: the bounds swap, and an offset in BE is the negative offset in KE
            position=casa.CasaPosition(hv - center, hv - c_hi, hv - c_lo, c_ref, -c_by if c_ref >= 0 else 0.0),
            rsf=1.0, mass=0.0, index=-1, tag=region.tag, const="", uncorrected_rsf=1.0))
    if len({c.name for c in model.components}) != len(model.components):
        raise XPSError(f"{where}: component names repeat; CasaXPS links need them distinct")
    if any(c.group != c.name for c in model.components):
        notes.append("component groups (chemical states) have no CasaXPS field: names carry over, groups do not")
    previous = previous if previous is not None else casa.CasaInfo()
    process = [line for line in previous.process_lines if not _is_be_calibration(line)]
    shift = float(one["charge_shift"].values) if "charge_shift" in one else 0.0
    if shift:
        # CasaXPS's calibration: the peak measured at M is moved to A (M + shift)
        ref = float(one["center"].values[0])
        process.append(f"Calib M = {ref - shift!r} A = {ref!r} BE ADD")
    info = casa.CasaInfo(regions=[region], comps=comps, process_lines=process,
                         annotations=list(previous.annotations), annotation_texts=list(previous.annotation_texts),
                         vendor_lines=list(previous.vendor_lines), present=True)
    return info, notes


def _is_be_calibration(line: str) -> bool:
    found = casa.CasaInfo(process_lines=[line]).calibrations
    return bool(found) and found[0].scale == "BE" and found[0].operation == "ADD"


def write_vamas(path: str | os.PathLike, blocks, ds, model: Model) -> tuple[Path, list[str]]:
    """Write ``blocks`` (as :func:`doptrace.xps.read` gave them) to a VAMAS file with fit ``ds`` in
    CasaXPS's block-comment format on every fitted block (the others unchanged).

    The fitted blocks are found by ``ds["block_index"]`` (one per level). Returns the path and the
    notes on what CasaXPS cannot express (module docstring); raises :class:`XPSError` when the fit
    cannot be written at all (a line shape or background CasaXPS lacks, an AES block ...).
    """
    from .formats.vamas import write

    if "block_index" not in ds.coords:
        raise XPSError(f"{path}: the fit result names no block per level (block_index); refit with this doptrace")
    by_index = {int(b.attrs.get("block_index", i)): i for i, b in enumerate(blocks)}
    out = list(blocks)
    notes: list[str] = []
    for level, index in enumerate(np.asarray(ds["block_index"].values, int)):
        if int(index) not in by_index:
            raise XPSError(f"{path}: the fit's level {level} comes from block {index}, which the file does not hold")
        i = by_index[int(index)]
        block = blocks[i]
        where = f"{block.attrs.get('source', '')}: block {index}"
        info, level_notes = casa_info(ds, model, level, float(block.attrs.get("excitation_energy", math.nan)),
                                      casa.parse_comment(str(block.attrs.get("comment", "")), source=where), where)
        notes += [n for n in level_notes if n not in notes]
        copy = block.copy()
        copy.attrs["comment"] = casa.format_comment(info)
        out[i] = copy
    return write(path, out, sample=None, instrument=str(blocks[0].attrs.get("instrument", "") or "doptrace"),
                 institution=str(blocks[0].attrs.get("institution", "") or "doptrace")), notes


__all__ = ["casa_info", "write_vamas"]
