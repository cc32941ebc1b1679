"""Doctests of the package folders run under their installed names (``doptrace.xps.fit``, ...).

``python -m pytest`` collects the folders ``xps/``, ``xrd/``, ``tofsims/``, ``stem_eds/``,
``report/`` and ``doptrace/`` with ``--doctest-modules`` (pyproject ``[tool.pytest.ini_options]``).
By default pytest would import ``xps/fit.py`` as a top-level module ``xps.fit`` with the
repository root put on ``sys.path``: a second copy of the package under the generic name the
installed distribution deliberately does not have. Here every folder that pyproject's
``package-dir`` maps into ``doptrace`` is collected as a plain directory (no ``__init__.py``
import by path) and each module's doctests are taken from ``importlib.import_module`` of its
``doptrace.*`` name, so the doctests run against the installed package.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

ROOT = Path(__file__).resolve().parent
_MAPPING = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
FOLDERS = {(ROOT / folder).resolve(): dotted for dotted, folder in _MAPPING.items()}


def module_name(path: Path) -> str | None:
    """``doptrace.*`` name of a .py file inside a mapped folder, None elsewhere."""
    path = Path(path).resolve()
    for folder, dotted in sorted(FOLDERS.items(), key=lambda item: -len(item[0].parts)):
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([dotted, *parts])
    return None


class InstalledDoctestModule(DoctestModule):
    """Doctests of the module imported by its ``doptrace.*`` name."""

    def _getobj(self):
        return importlib.import_module(module_name(self.path))


def pytest_collect_directory(path, parent):
    """Mapped package folders are walked as plain directories (pytest would import __init__ by path)."""
    if module_name(Path(path) / "__init__.py") is not None and (Path(path) / "__init__.py").exists():
        return pytest.Dir.from_parent(parent, path=Path(path))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    collected = yield
    name = module_name(file_path)
    if name is None:
        return collected
    return [
        InstalledDoctestModule.from_parent(parent, path=file_path) if type(node) is DoctestModule else node
        for node in collected
    ]


@pytest.fixture(autouse=True)
def _doctests_in_a_temporary_folder(request, monkeypatch):
    """Doctests write their example input files (made with the simulators) into a fresh folder."""
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))
    yield
