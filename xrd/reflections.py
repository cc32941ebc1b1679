"""Powder reflections: hkl generation, systematic absences, Laue-class multiplicity, d-spacings.

Example
-------
>>> import gemmi
>>> refl = generate_reflections(gemmi.find_spacegroup_by_name("P m -3 m"), [4.0, 4, 4, 90, 90, 90], 1.5)
>>> refl.hkl[:3].tolist(), refl.multiplicity[:3].tolist()
([[1, 0, 0], [1, 1, 0], [1, 1, 1]], [6, 12, 8])
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from .structure import metric


@dataclass
class Reflections:
    """Unique powder reflections of one phase, sorted by decreasing d."""

    hkl: np.ndarray  # (n, 3) representative of each Laue orbit
    multiplicity: np.ndarray  # (n,) powder multiplicity
    members: np.ndarray  # (m, 3) every non-absent hkl of every orbit
    member_of: np.ndarray  # (m,) reflection index of each member

    def __len__(self) -> int:
        return int(self.hkl.shape[0])

    def labels(self) -> list[str]:
        return [" ".join(str(int(v)) for v in h) for h in self.hkl]


def inverse_d_squared(cell, hkl) -> np.ndarray:
    """``1/d^2 = h^T G* h`` (Å⁻²) for rows of ``hkl``; ``G*`` is the reciprocal metric."""
    gstar = np.linalg.inv(metric(cell))
    hkl = np.asarray(hkl, float)
    return np.einsum("ni,ij,nj->n", hkl, gstar, hkl)


def laue_rotations(sg: gemmi.SpaceGroup) -> np.ndarray:
    """Rotation parts of the Laue group (point group plus inversion), acting on row vectors hkl."""
    rots = {tuple(np.array(op.rot).ravel() // gemmi.Op.DEN) for op in sg.operations().sym_ops}
    mats = [np.array(r).reshape(3, 3) for r in rots]
    mats += [-m for m in mats]
    unique = {tuple(m.ravel()) for m in mats}
    return np.array([np.array(u).reshape(3, 3) for u in sorted(unique)])


def generate_reflections(sg: gemmi.SpaceGroup, cell, d_min: float, d_max: float = np.inf) -> Reflections:
    """Every allowed powder reflection with ``d_min <= d <= d_max``.

    Equivalent reflections under the Laue group are merged; the multiplicity is the size of the
    orbit (Friedel mates included, as a powder pattern cannot tell them apart).
    """
    g = metric(cell)
    limits = [int(np.ceil(np.sqrt(g[i, i]) / d_min)) for i in range(3)]
    grids = np.meshgrid(*(np.arange(-n, n + 1) for n in limits), indexing="ij")
    hkl = np.stack([x.ravel() for x in grids], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    inv_d2 = inverse_d_squared(cell, hkl)
    keep = (inv_d2 <= 1.0 / d_min**2) & (inv_d2 >= 1.0 / d_max**2 if np.isfinite(d_max) else True)
    hkl = hkl[keep]
    ops = sg.operations()
    absent = np.fromiter((ops.is_systematically_absent(h.tolist()) for h in hkl), bool, hkl.shape[0])
    hkl = hkl[~absent]
    if hkl.shape[0] == 0:
        empty = np.zeros((0, 3), int)
        return Reflections(empty, np.zeros(0, int), empty, np.zeros(0, int))
    span = 2 * max(limits) + 1
    offset = max(limits)

    def key(arr):
        return ((arr[..., 0] + offset) * span + (arr[..., 1] + offset)) * span + (arr[..., 2] + offset)

    # h' = h R for every Laue operator; the orbit's canonical member is the one with the largest key
    images = np.einsum("ni,rij->nrj", hkl, laue_rotations(sg))
    canonical = key(images).max(axis=1)
    uniq, member_of, counts = np.unique(canonical, return_inverse=True, return_counts=True)
    # representative: fewest negative indices, then the largest key ((0 1 2) rather than (1 -1 -2))
    score = np.sum(hkl < 0, axis=1) * (span**3 + 1) - key(hkl)
    by_score = np.lexsort((score, member_of))
    first = np.ones(by_score.size, bool)
    first[1:] = member_of[by_score][1:] != member_of[by_score][:-1]
    rep_index = by_score[first]
    reps = hkl[rep_index]
    order = np.lexsort((-reps[:, 2], -reps[:, 1], -reps[:, 0], inverse_d_squared(cell, reps).round(10)))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return Reflections(reps[order], counts[order], hkl, rank[member_of])
