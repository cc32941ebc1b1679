"""The bottom layer (doptrace.core): one error family, one atomic writer, one formatter, one units table,
one TOML loader; bad input versus internal errors at the command line and in the runner."""

from __future__ import annotations

import importlib
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

from doptrace.core.atomic import atomic_open, atomic_write, write_bytes, write_text
from doptrace.core.errors import EXIT_INTERNAL_ERROR, DoptraceError
from doptrace.core.fmt import format_value
from doptrace.core.tomlfile import parse_toml, read_toml
from doptrace.core.units import Quantity, length_nm, parse_quantity, time_s, unit_factor
from doptrace.report import cli
from doptrace.report.errors import ReportError
from doptrace.report.execute import run_entry
from doptrace.report.project import Entry
from doptrace.stem_eds.errors import EDSError
from doptrace.stem_eds.quantify import load_factors
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.xps.errors import XPSError
from doptrace.xps.model import parse_model
from doptrace.xps.quantify import load_rsf_table
from doptrace.xrd.errors import XRDError


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("family", [XPSError, XRDError, ToFSIMSError, EDSError, ReportError])
def test_every_package_error_family_is_a_doptrace_error_and_a_value_error(family):
    assert issubclass(family, DoptraceError) and issubclass(family, ValueError)
    with pytest.raises(DoptraceError, match="x.vms: empty"):
        raise family("x.vms: empty")


# ------------------------------------------------------------------------------------------ atomic

def test_atomic_files_get_0644_under_umask_022_not_mkstemps_0600(tmp_path, umask_022):
    written = [write_text(tmp_path / "a.txt", "text"), write_bytes(tmp_path / "b.bin", b"\x00\x01"),
               atomic_write(tmp_path / "c.dat", lambda p: p.write_bytes(b"c"))]
    with atomic_open(tmp_path / "d.csv", "w", newline="") as out:
        out.write("x\r\n")
    written.append(tmp_path / "d.csv")
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert (tmp_path / "d.csv").read_bytes() == b"x\r\n"  # newline="" writes \r\n untranslated
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_atomic_permissions_follow_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_no_half_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.txt"

    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    write_text(target, "whole")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as out:
        out.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_keeps_a_suffix_for_writers_that_choose_the_format_by_it(tmp_path):
    seen = []
    atomic_write(tmp_path / "cube.hspy", lambda p: (seen.append(p.suffix), p.write_bytes(b"x")), suffix=".hspy")
    assert seen == [".hspy"] and (tmp_path / "cube.hspy").read_bytes() == b"x"


# ------------------------------------------------------------------------------------------ fmt

@pytest.mark.parametrize("value, stderr, units, digits, text", [
    (0.4012, 0.0437, "", 1, "0.40 ± 0.04"),
    (0.1234, 0.0056, "", 1, "0.123 ± 0.006"),
    (9.371854, 0.000142, "Å", 1, "9.3719 ± 0.0001 Å"),
    (1234.5, 56.0, "s", 1, "1234 ± 56 s"),  # esd >= 1: no decimals
    (-0.0026, 0.0231, "", 2, "-0.003 ± 0.023"),  # two esd digits keep the sign near zero
    (0.4012, 0.0437, "nm/s", 2, "0.401 ± 0.044 nm/s"),
    (2.5, None, "eV", 1, "2.5 eV"),
    (2.5, 0.0, "1", 1, "2.5"),  # unit "1" is not printed, no usable esd
])
def test_formatter_rounds_the_value_to_the_esd(value, stderr, units, digits, text):
    assert format_value(value, stderr, units, esd_digits=digits) == text


def test_formatter_missing_values():
    assert format_value(float("nan"), 0.1, "nm") == "n/a nm"
    assert format_value(None, 0.1, "nm", missing="-") == "-"


# ------------------------------------------------------------------------------------------ units

def test_units_convert_by_their_si_definitions():
    # SI definitions: 1 Å = 1e-10 m, 1 µm = 1e-6 m, 1 pm = 1e-12 m; 1 min = 60 s, 1 h = 3600 s
    assert length_nm("Å") == pytest.approx(1e-10 / 1e-9)
    assert length_nm("µm") == length_nm("\u03bcm") == length_nm("um") == pytest.approx(1e-6 / 1e-9)
    assert length_nm("pm") == pytest.approx(1e-12 / 1e-9) and length_nm("m") == pytest.approx(1 / 1e-9)
    assert time_s("min") == 60 and time_s("h") == 3600 and time_s("ms") == pytest.approx(1e-3)
    assert unit_factor("nm/min") == ("rate", pytest.approx(1 / 60))
    assert unit_factor("Å/s") == ("rate", pytest.approx(0.1))
    # 0.5 µm/h = 500 nm / 3600 s
    assert parse_quantity("0.5 ± 0.05 µm/h", "rate").value == pytest.approx(500 / 3600)
    assert parse_quantity({"value": 2, "stderr": 0.1, "units": "min"}, "time") == Quantity(120.0, 6.0, "s")


def test_units_case_and_unknowns():
    assert length_nm("UM") is None and length_nm("UM", any_case=True) == 1e3
    assert length_nm("å", any_case=True) == 0.1 and time_s("Minutes", any_case=True) == 60
    assert time_s("d", 1.0, any_case=True) == 1.0  # the caller's default for a unit that is not a time
    with pytest.raises(DoptraceError, match="unknown unit 'furlong'"):
        unit_factor("furlong")
    with pytest.raises(DoptraceError, match="'nm' is a length unit, but a rate"):
        parse_quantity("0.4 nm", "rate")


# ------------------------------------------------------------------------------------------ TOML

BAD_RECIPE = """title = "bad"
colour = "blue"
[range]
two_theta = [80, 10]
[[phase]]
name = "A"
space_group = "P m -3 m"
cell = [4, 4, 4,
        90, 90, 90]
[[phase.site]]
label = "X"
xyz = [0, 0, 0]
occupancy = { Cu = 1.5 }
[[phase.site]]
label = "Y"
xyz = [0, 0]
occupancy = { Cu = 0.5 }
[[stage]]
refine = ["scale", "everything"]
"""


def test_toml_key_lines_follow_arrays_of_tables_and_multiline_values():
    doc = parse_toml(BAD_RECIPE, "r.toml")
    assert doc.line("colour") == 2 and doc.line("range", "two_theta") == 4
    assert doc.line("phase", 0, "cell") == 8 and doc.line("phase", 0, "site", 0) == 10
    assert doc.line("phase", 0, "site", 1, "xyz") == 16  # after the two-line cell array
    assert doc.line("phase", 0, "site", 1, "occupancy", "Cu") == 17  # inline table: its key's line
    assert doc.line("stage", 0, "refine") == 19 and doc.where("nothing") == "r.toml"


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('a = 1\nb = "open\n')
    with pytest.raises(XRDError, match=rf"^{re.escape(str(path))}: line 2: not a valid TOML recipe"):
        read_toml(path, XRDError, "recipe")
    with pytest.raises(XRDError, match="recipe not found"):
        read_toml(tmp_path / "missing.toml", XRDError, "recipe")


def test_recipe_loader_lists_every_problem_with_its_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_RECIPE)
    with pytest.raises(XRDError) as info:
        xrd_recipe.load_recipe(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: line 2: unknown recipe section(s): colour; ")
    found = re.findall(r"line (\d+): ([^;]+)", message)
    assert [int(n) for n, _ in found] == [2, 4, 10, 14, 19]
    assert "two_theta [80.0, 10.0]" in found[1][1] and "occupancies sum to 1.5" in found[2][1]
    assert "site Y xyz must be a list of 3" in found[3][1] and "'everything'" in found[4][1]


def test_other_loaders_list_every_problem_with_its_line(tmp_path):
    kfactors = tmp_path / "k.toml"
    kfactors.write_text('source = "x"\n[kfactors]\nFe_Ka = -1.0\nPt_La = 1.0\nXx_Ka = 2.0\n')
    with pytest.raises(EDSError) as info:
        load_factors(kfactors)
    assert re.fullmatch(rf"{re.escape(str(kfactors))}: line 3: kfactors.Fe_Ka = -1.0 must be positive; "
                        r"line 5: .*unknown element 'Xx'.*", str(info.value))
    rsf = tmp_path / "rsf.toml"
    rsf.write_text('[rsf]\n"B 1s" = 0.486\n"C 1s" = -1\n"O 1s" = "x"\n')
    with pytest.raises(XPSError, match=r"rsf.toml: ke_correction = true .* must be stated; "
                                       r"line 3: RSF of 'C 1s' .*; line 4: RSF of 'O 1s'"):
        load_rsf_table(str(rsf))
    model = 'window = [197.0, 186.0]\ncolour = 1\n[[component]]\nname = "A"\ncenter = 191\nfwhm = -1\n' \
            '[[component]]\ncenter = 3\n'
    with pytest.raises(XPSError) as info:
        parse_model(model, "m.toml")
    assert [int(n) for n in re.findall(r"line (\d+):", str(info.value))] == [2, 1, 6, 7]


# ------------------------------------------------------------------- bad input vs internal error

def _pattern(path):
    x = np.arange(10.0, 80.0, 0.05)
    np.savetxt(path, np.column_stack([x, 100 + 50 * np.exp(-((x - 40) / 0.1) ** 2)]))
    return path


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "garbage.xy"
    bad.write_text("this is not\na pattern\n")
    code = cli.main(["xrd", "info", str(bad)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT == 2
    assert err.count("\n") == 1 and err.startswith("doptrace: error: ") and str(bad) in err


def test_cli_bug_is_internal_error_with_traceback_log(tmp_path, capsys, monkeypatch):
    data = _pattern(tmp_path / "p.xy")
    assert cli.main(["xrd", "info", str(data)]) == 0  # the real path works ...
    capsys.readouterr()

    def broken(*args, **kwargs):  # ... until a fault is injected into it
        raise RuntimeError("injected fault")

    monkeypatch.setattr(xrd_read, "read_all", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code = cli.main(["xrd", "info", str(data)])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL_ERROR == 70
    assert err.count("\n") == 1
    match = re.fullmatch(r"doptrace: internal error: RuntimeError: injected fault; traceback written to (\S+)\n", err)
    assert match, err
    log = Path(match[1])
    assert log.parent == tmp_path / "tmp"
    text = log.read_text()
    assert text.startswith("Traceback (most recent call last):")
    assert "in describe" in text and text.rstrip().endswith("RuntimeError: injected fault")
    assert stat.S_IMODE(log.stat().st_mode) == 0o666 & ~_umask()


def test_runner_reports_bad_input_and_logs_a_bug_per_analysis(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("[[phase]\nname = 'x'\n")
    results = tmp_path / "out" / "results"
    results.mkdir(parents=True)
    entry = Entry("S1", "xrd", 0, {"recipe": recipe})

    bad = run_entry(entry, results)
    assert bad.error.startswith(f"{recipe}: line 1: not a valid TOML recipe") and not bad.outputs

    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(xrd_recipe, "load_recipe", broken)
    bug = run_entry(entry, results)
    match = re.fullmatch(r"internal error: RuntimeError: injected fault; traceback written to (\S+)", bug.error)
    assert match, bug.error
    log = Path(match[1])
    assert log.parent == tmp_path / "out" and log.name.startswith("doptrace-S1__xrd0-internal-error-")
    assert "in analyse" in log.read_text() and "RuntimeError: injected fault" in log.read_text()


# the modules (``doptrace.xrd.read`` is also the name of a function the package exports)
xrd_read = importlib.import_module("doptrace.xrd.read")
xrd_recipe = importlib.import_module("doptrace.xrd.recipe")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
