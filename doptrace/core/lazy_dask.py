"""Keep xarray from importing ``dask.array``, ``sparse`` and ``pint`` in a process that never uses them.

xarray asks, for every NumPy array wrapped in a new ``Variable``, whether it is a dask array
(``xarray.namedarray.pycompat.array_type("dask")`` in ``as_compatible_data``), and on reading values
back whether it is a pint, sparse or cupy array (``to_numpy``); each answer imports the library the
first time. ``dask.array`` imports ``sparse``, which imports ``numba``: about 1.2 s before the first
DataArray exists, paid by every one-file CLI run whose data are plain NumPy (``doptrace xps fit``
on a 2000-level series takes ~2 s in all). xarray offers no option to skip the checks (its
``set_options`` keys were checked: ``chunk_manager`` picks a manager, it does not defer imports).

:func:`defer_dask_array` registers, before xarray has looked, a type per library whose
``isinstance`` test is True exactly for that library's array type: an object cannot be a dask
array unless ``dask.array`` has been imported, so while it has not, the answer is False without
importing it, and once anything (ToF-SIMS, STEM-EDS, a user) imports it, the test is the real
one. Dask, sparse and pint use elsewhere is therefore unchanged. xarray's cache is private: if its
shape is not the one expected (another xarray version), nothing is registered and xarray behaves
as before, only slower.

:func:`defer_dask_collection_check` does the same for xarray's other question, "is this a dask
collection?", asked when an index is built: xarray answers it by importing ``dask`` itself (0.06 s).
No object is a dask collection while ``dask`` is not imported, so until it is the answer is False.
"""

from __future__ import annotations

import sys

#: xarray's duck-array key -> (distribution, module holding the type, type name)
_DEFERRED = {"dask": ("dask", "dask.array", "Array"), "sparse": ("sparse", "sparse", "SparseArray"),
             "pint": ("pint", "pint", "Quantity"), "cupy": ("cupy", "cupy", "ndarray")}


class _WhenImportedMeta(type):
    _module: str
    _name: str

    def _real(cls):
        module = sys.modules.get(cls._module)
        return getattr(module, cls._name, None) if module is not None else None

    def __instancecheck__(cls, obj) -> bool:
        real = cls._real()
        return real is not None and isinstance(obj, real)

    def __subclasscheck__(cls, sub) -> bool:
        real = cls._real()
        return real is not None and issubclass(sub, real)


def when_imported(module: str, name: str) -> type:
    """A class standing for ``module.name`` in ``isinstance`` tests without importing ``module``."""
    return _WhenImportedMeta(f"{name}WhenImported", (), {"_module": module, "_name": name})


def defer_dask_array() -> list[str]:
    """Register deferred array types in xarray's duck-array cache; returns the keys registered.

    A library is skipped when it is not installed (xarray then finds none either), when its module
    is already imported (the real type costs nothing more) or when xarray has already looked it up.
    """
    try:
        from importlib.metadata import PackageNotFoundError, version
        from importlib.util import find_spec

        from packaging.version import Version
        from xarray.namedarray import pycompat
    except ImportError:
        return []
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    module_cls = getattr(pycompat, "DuckArrayModule", None)
    if not isinstance(cache, dict) or module_cls is None:
        return []
    done = []
    for key, (dist, module, name) in _DEFERRED.items():
        if key in cache or module in sys.modules or find_spec(dist) is None:
            continue
        try:
            dist_version = Version(version(dist))
        except PackageNotFoundError:
            continue
        entry = object.__new__(module_cls)  # the fields DuckArrayModule.__init__ sets, without its import
        entry.module, entry.version, entry.type, entry.available = None, dist_version, (when_imported(module, name),), True
        cache[key] = entry
        done.append(key)
    return done


def defer_dask_collection_check() -> bool:
    """Make ``xarray.namedarray.utils.is_dask_collection`` answer False without importing ``dask``
    while ``dask`` is not imported (after that, xarray's own answer). True when the check is deferred."""
    try:
        from xarray.namedarray import utils
    except ImportError:
        return False
    original = getattr(utils, "is_dask_collection", None)
    if original is None or getattr(original, "_doptrace_deferred", False):
        return original is not None
    if "dask" in sys.modules:
        return False  # already paid for: nothing to defer

    def is_dask_collection(x: object) -> bool:
        return "dask" in sys.modules and original(x)

    is_dask_collection._doptrace_deferred = True  # type: ignore[attr-defined]
    is_dask_collection.__doc__ = original.__doc__
    utils.is_dask_collection = is_dask_collection
    return True
