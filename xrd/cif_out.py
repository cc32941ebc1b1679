"""Refined structures as CIF text (one per phase), with esds in the usual parenthesis notation.

Example
-------
>>> texts = cif_texts(run(recipe, pattern))  # doctest: +SKIP
>>> sorted(texts)                            # doctest: +SKIP
['FAP']
"""

from __future__ import annotations

import math

import numpy as np

from .structure import CELL_NAMES


def with_esd(value: float, esd: float | None = None, digits: int = 6) -> str:
    """``9.37185(14)`` style number; plain when the esd is missing or zero.

    Examples
    --------
    >>> with_esd(9.371854, 0.000142)
    '9.37185(14)'
    """
    if esd is None or not math.isfinite(esd) or esd <= 0:
        return f"{value:.{digits}f}"
    places = max(0, 1 - int(math.floor(math.log10(esd))))
    return f"{value:.{places}f}({int(round(esd * 10**places))})"


def cif_texts(refinement) -> dict[str, str]:
    """``{phase name: CIF text}`` of a :class:`doptrace.xrd.rietveld.Refinement`."""
    model, values = refinement.model, refinement.values
    ds = refinement.dataset
    names = refinement.fit.names
    err = dict(zip(names, refinement.fit.stderr))
    out = {}
    for k, phase in enumerate(model.phases):
        lines = [f"data_{phase.name}", "_audit_creation_method 'doptrace built-in Rietveld engine'",
                 f"_symmetry_space_group_name_H-M '{phase.spacegroup.xhm()}'",
                 f"_space_group_IT_number {phase.spacegroup.number}"]
        for j, cname in enumerate(CELL_NAMES):
            tag = "_cell_length_" + cname if j < 3 else "_cell_angle_" + cname
            lines.append(f"{tag} {with_esd(float(ds[cname].values[k]), float(ds[cname + '_stderr'].values[k]))}")
        lines.append(f"_pd_proc_ls_prof_wR_factor {float(ds.rwp) / 100:.5f}")
        lines += ["", "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
                  "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy", "_atom_site_U_iso_or_equiv"]
        for site, (xyz, uiso, occ) in zip(phase.sites, model.site_state(k, values)):
            coords = []
            for axis, value in zip("xyz", xyz):
                coords.append(with_esd(float(value), err.get(f"{phase.name}:{site.label}:{axis}")))
            u = with_esd(float(uiso), err.get(f"{phase.name}:{site.label}:uiso"), 5)
            for number, (species, frac) in enumerate(occ.items()):
                label = site.label if len(occ) == 1 else f"{site.label}_{species.strip('+-0123456789')}{number}"
                lines.append(f"{label} {species} {' '.join(coords)} {np.round(frac, 5)} {u}")
        out[phase.name] = "\n".join(lines) + "\n"
    return out
