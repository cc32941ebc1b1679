"""The import-linter contracts of pyproject.toml hold (technique packages independent, report above
them, doptrace.core below all).

import-linter (grimp) finds a package's modules by walking the folder of its top-level package,
so it cannot see through the package-dir mapping that puts ``xps/`` at ``doptrace/xps``. The
test lays the sources out as the wheel does (a temporary ``doptrace/`` tree built from the same
package-dir table) and runs ``lint-imports`` on it with the repository's configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
# the lint-imports console script, run with this interpreter (the venv may not have the script)
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def wheel_layout(target: Path) -> Path:
    """Copy every mapped package's .py files to ``target`` as they sit in an installed wheel."""
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for dotted, folder in mapping.items():
        source = REPO / folder
        destination = target.joinpath(*dotted.split("."))
        for path in source.rglob("*.py"):
            relative = path.relative_to(source)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination / relative)
    return target


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--config", str(PYPROJECT), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def test_import_contracts_hold(tmp_path):
    root = wheel_layout(tmp_path / "layout")
    result = lint_imports(root)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report  # import-linter missing: pip install -e '.[test]'
    assert "Contracts: 3 kept, 0 broken." in report, report


def test_a_violation_is_caught(tmp_path):
    """A technique package importing another (or report) breaks the contracts."""
    root = wheel_layout(tmp_path / "layout")
    bad = root / "doptrace" / "xps" / "_layering_violation.py"
    bad.write_text("from doptrace.tofsims import read  # noqa: F401\nfrom ..report import cli  # noqa: F401\n")
    result = lint_imports(root)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    assert "BROKEN" in report and "doptrace.xps._layering_violation" in report, report
