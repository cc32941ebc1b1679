"""The installed distribution: one import name, package data, and a wheel that works without the source tree.

Truths: the owner's layout (five folders at the repository root, installed as ``doptrace.*``) and
issue 10's must-show: a wheel install runs ``doptrace demo`` from an empty folder that also holds
``xps/``, ``xrd/`` and a ``report.py``, where ``import xps`` does not give doptrace's package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed_in_pyproject():
    """find cannot see through package-dir, so packages are listed: a new sub-package must be added there."""
    setuptools_cfg = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools_cfg["packages"])
    found = set()
    for name, folder in setuptools_cfg["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            if ".venv" in init.parts or "build" in init.relative_to(REPO).parts[:1]:
                continue
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == listed


def test_runtime_data_is_package_data():
    """What the demo and readers open at run time resolves through importlib.resources."""
    from importlib import resources

    for package, name in [("doptrace.examples", "xrd/li-rich-two-phase.toml"),
                          ("doptrace.examples", "xps/b1s.toml"),
                          ("doptrace.examples", "xps/in3d_oxide.toml"),
                          ("doptrace.xps.rsf", "scofield.csv"),
                              ("doptrace.xps.rsf", "kratos.csv")]:
        assert resources.files(package).joinpath(name).is_file(), (package, name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           str(REPO), "-w", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("doptrace-*.whl")
    return path


def test_wheel_top_level_name_is_only_doptrace(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = {n.split("/")[0] for n in names}
        top_level = zf.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode() \
            if any(n.endswith("top_level.txt") for n in names) else "doptrace\n"
    assert {t for t in top if not t.endswith(".dist-info")} == {"doptrace"}
    assert top_level.split() == ["doptrace"]
    for expected in ["doptrace/xps/rsf/scofield.csv", "doptrace/xps/rsf/kratos.csv", "doptrace/examples/xrd/li-rich-two-phase.toml",
                     "doptrace/report/techniques/xps.py", "doptrace/__main__.py",
                     "doptrace/examples/xps/b1s.toml"]:
        assert expected in names
    assert any(n.endswith("LICENSE") for n in names)


def test_wheel_install_runs_demo_from_a_lab_folder(wheel, tmp_path):
    """Installed from the wheel (no source tree on the path), in a folder holding xps/, xrd/ and report.py."""
    env_dir = tmp_path / "venv"
    # system site-packages give the dependencies; the wheel's doptrace sits first on the venv's path
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lab = tmp_path / "lab"
    for folder in ("xps", "xrd"):
        (lab / folder).mkdir(parents=True)
        (lab / folder / "sample1.vms").write_text("not a python package\n")
    (lab / "report.py").write_text("raise SystemExit('the lab report.py was imported')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}

    where = subprocess.run([str(python), "-c", "import doptrace, doptrace.xps, doptrace.report.techniques as t;"
                            "print(doptrace.__file__); print(doptrace.xps.__file__); print(sorted(t.adapters()))"],
                           cwd=lab, capture_output=True, text=True, env=env)
    assert where.returncode == 0, where.stderr
    lines = where.stdout.split("\n")
    assert str(env_dir) in lines[0] and str(env_dir) in lines[1], where.stdout
    assert lines[2] == "['eds', 'tofsims', 'xps', 'xrd']"

    # the lab's xps/ folder is data: importing "xps" there never reaches doptrace's package
    generic = subprocess.run([str(python), "-c", "import xps; print(hasattr(xps, 'read'))"],
                             cwd=lab, capture_output=True, text=True, env=env)
    assert generic.stdout.strip() == "False", (generic.stdout, generic.stderr)
    elsewhere = subprocess.run([str(python), "-c", "import xps"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "ModuleNotFoundError" in elsewhere.stderr

    demo = subprocess.run([str(env_dir / "bin" / "doptrace"), "demo", "--out", "rep", "--quiet", "--workers", "1"],
                          cwd=lab, capture_output=True, text=True, env=env, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    report = (lab / "rep" / "report.html").read_text(encoding="utf-8")
    assert "BM-LRMO" in report and "LBO-LRMO" in report
    assert "contradicted" in demo.stdout and "supported" in demo.stdout

    as_module = subprocess.run([str(python), "-m", "doptrace", "--version"], cwd=lab, capture_output=True,
                               text=True, env=env)
    assert as_module.returncode == 0 and as_module.stdout.startswith("doptrace "), as_module.stderr
