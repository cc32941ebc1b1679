"""XRD: read powder patterns, Rietveld refinement with dopant site occupancy.

``read(path)`` -> pattern DataArray; ``load_recipe(toml)`` -> ``refine(recipe, pattern)`` -> result
Dataset (cell, weight fractions, dopant site fractions with esds and verdicts, Rwp).
``doptrace.xrd.simulate`` writes patterns with known truth; ``doptrace.xrd.gsas2`` drives GSAS-II.

Public names are imported lazily (PEP 562) so ``import doptrace.xrd`` stays cheap and each part of
the package can be used without the others being importable.

>>> from doptrace import xrd
>>> callable(xrd.refine), callable(xrd.read), sorted(xrd.__all__)[:4]
(True, True, ['Instrument', 'REGISTRY', 'XRDError', 'describe'])
"""

from __future__ import annotations

import importlib
import sys
import types

from .errors import XRDError

#: public name -> module (relative to this package) that defines it
_EXPORTS = {
    "read": "read",
    "read_all": "read",
    "read_instrument": "read",
    "describe": "read",
    "weights": "read",
    "Instrument": "instrument",
    "REGISTRY": "formats",
    "load_recipe": "recipe",
    "refine": "rietveld",
    "plot_refinement": "plot",
}
# ``refine`` is the function (the built-in engine); its module is ``rietveld`` so that importing the
# module can never rebind ``doptrace.xrd.refine``. ``doptrace.xrd.simulate`` stays the simulator
# module (``simulate.simulate``, ``simulate.write_xye``).

__all__ = ["XRDError", *_EXPORTS]


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'xrd' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    # importing submodule ``read`` binds ``xrd.read`` to the module; rebind every name it exports
    for other, where in _EXPORTS.items():
        if where == module_name and hasattr(module, other):
            globals()[other] = getattr(module, other)
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """After loading a submodule the import system binds it to the package attribute of its name;
    for ``read`` (module ``xrd/read.py``, function ``read``) that would make ``doptrace.xrd.read``
    the module whenever ``doptrace.xrd.read`` was imported first. Bind the function instead."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}" \
                and _EXPORTS.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
