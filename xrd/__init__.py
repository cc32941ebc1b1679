"""XRD: read powder patterns, Rietveld refinement with dopant site occupancy.

Public names are imported lazily (PEP 562) so ``import xrd`` stays cheap and each part of the
package can be used without the others being importable.
"""

from __future__ import annotations

import importlib

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
