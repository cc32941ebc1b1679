"""Bad XPS input: each gives one XPSError naming the file and the problem (reader part)."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

from doptrace import xps
from doptrace.xps.errors import XPSError
from doptrace.xps.formats import avantage, casa, vamas
from doptrace.xps.formats._spectrum import make_spectrum

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40


def _good_vamas(tmp_path, name="good.vms", n=5):
    grid = 190.0 + 0.5 * np.arange(n)
    da = make_spectrum("sim", grid, np.arange(1.0, n + 1), excitation_energy=1486.6, region="B 1s",
                       dwell_time=0.1, scans=2, etch_time=20.0)
    path = vamas.write(tmp_path / name, [da])
    return path, path.read_bytes().decode().split("\r\n")


def _write_lines(path, lines):
    path.write_text("\r\n".join(lines))
    return path


def _ordinate_count_line(lines):
    # The count line sits just before the 2 min/max lines and the values: after "0" additional params.
    at = len(lines) - 1 - 1  # last is "" after the final CRLF, then "end of experiment"
    while lines[at] != "end of experiment":
        at -= 1
    n_values = 5
    return at - n_values - 2 - 1


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    return message


def test_truncated_vamas(shared, tmp_path):
    raw = shared("xps/cheminfo-vamas/assigned.vms").read_bytes()
    for cut in (len(raw) // 2, 2000, 300):
        path = tmp_path / f"cut{cut}.vms"
        path.write_bytes(raw[:cut])
        with pytest.raises(XPSError) as exc:
            xps.read(path)
        message = _one_line(exc, path)
        assert "truncated" in message or "lines remain" in message or "expected" in message, message


def test_truncated_inside_values(tmp_path):
    path, lines = _good_vamas(tmp_path)
    _write_lines(path, lines[:-4])  # drop end-of-experiment and two values
    with pytest.raises(XPSError, match=r"ordinate values is 5 but only 3 lines remain|truncated") as exc:
        xps.read(path)
    _one_line(exc, path)


@pytest.mark.parametrize("content, problem", [
    (PNG, "not a recognised XPS file|binary"),
    (bytes(range(256)) * 8, "not a recognised XPS file|binary"),
    (b"hello world\nthis is not XPS\n", "not a recognised XPS file|not a VAMAS"),
    (b"", "empty file"),
    (b"\r\n\r\n   \r\n", "empty file"),
])
def test_wrong_format_named_vms(tmp_path, content, problem):
    path = tmp_path / "bad.vms"
    path.write_bytes(content)
    with pytest.raises(XPSError, match=problem) as exc:
        xps.read(path)
    _one_line(exc, path)


def test_png_named_csv_and_xlsx(tmp_path):
    for name, problem in (("x.csv", "binary|not a recognised"), ("x.xlsx", "not a zip"), ("x.xy", "binary")):
        path = tmp_path / name
        path.write_bytes(PNG)
        with pytest.raises(XPSError, match=problem) as exc:
            xps.read(path)
        _one_line(exc, path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(XPSError, match="no such file"):
        xps.read(tmp_path / "nope.vms")
    with pytest.raises(XPSError, match="is a folder"):
        xps.read(tmp_path)


def test_empty_block(tmp_path):
    path, lines = _good_vamas(tmp_path)
    at = _ordinate_count_line(lines)
    assert lines[at] == "5"
    broken = lines[:at] + ["0", "1", "1"] + ["end of experiment", ""]
    _write_lines(path, broken)
    with pytest.raises(XPSError, match="empty block \\(0 data points\\)") as exc:
        xps.read(path)
    _one_line(exc, path)


@pytest.mark.parametrize("bad, problem", [("nan", "NaN"), ("inf", "NaN or infinite"), ("12abc", "non-numeric value '12abc'"),
                                         ("", "non-numeric value ''")])
def test_bad_counts(tmp_path, bad, problem):
    path, lines = _good_vamas(tmp_path)
    at = _ordinate_count_line(lines)
    lines[at + 3 + 2] = bad  # third ordinate value
    _write_lines(path, lines)
    with pytest.raises(XPSError, match=problem) as exc:
        xps.read(path)
    _one_line(exc, path)


def test_absurd_point_count_no_allocation(tmp_path):
    path, lines = _good_vamas(tmp_path)
    at = _ordinate_count_line(lines)
    lines[at] = str(10**12)
    _write_lines(path, lines)
    tracemalloc.start()
    try:
        with pytest.raises(XPSError, match="10{12} but only") as exc:
            xps.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line(exc, path)
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize("field, value, problem", [
    ("NORM", "BOGUS", "unknown experiment mode 'BOGUS'"),
    ("REGULAR", "MAPPING", "MAPPING"),
    ("Etch Time", "Etch Time", None),
])
def test_bad_header_fields(tmp_path, field, value, problem):
    path, lines = _good_vamas(tmp_path)
    lines[lines.index(field)] = value
    _write_lines(path, lines)
    if problem is None:
        assert xps.read(path)[0].attrs["etch_time"] == 20.0
        return
    with pytest.raises(XPSError, match=problem) as exc:
        xps.read(path)
    _one_line(exc, path)


def test_non_integer_count(tmp_path):
    path, lines = _good_vamas(tmp_path)
    at = lines.index("NORM") + 3  # regions, n variables -> "1"
    assert lines[at] == "1"
    lines[at] = "one"
    _write_lines(path, lines)
    with pytest.raises(XPSError, match=r"line \d+: expected an integer for number of experimental variables") as exc:
        xps.read(path)
    _one_line(exc, path)


def test_csv_bad_rows(tmp_path):
    cases = {
        "nan.csv": ("BE,counts\n284,10\n285,nan\n286,12\n", "NaN"),
        "bad_first.csv": ("BE,counts\n2x84,10\n285,11\n286,12\n", r"line 2: non-numeric value '2x84' in a data row"),
        "nan_first.csv": ("BE,counts\n284,NaN\n285,11\n286,12\n", r"line 2: NaN or infinite value in a data row"),
        "huge_hv.csv": ("KE/eV,PE: 9223372036854775808 eV\n26,220\n28,215\n", r"is not a photon energy"),
        "text.csv": ("BE,counts\n284,10\n285,abc\n286,12\n", "line 3: non-numeric value 'abc'"),
        "ragged.csv": ("BE,counts\n284,10\n285,11,4\n", "line 3: 3 columns where the data has 2"),
        "nodata.txt": ("just\nwords\n", "no rows of numbers"),
        "ke.csv": ("KE/eV,counts\n1200,10\n1201,11\n", "kinetic-energy column but no photon energy"),
        # Tables are regular grids: a repeated (duplicated row) or out-of-order energy is refused;
        # only VAMAS IRREGULAR files may repeat energies (tests/test_xps_real_world.py).
        "dup.csv": ("284,10\n284,11\n", r"energy not strictly monotonic at point 2 \(284 then 284 eV\)"),
        "swap.csv": ("284,10\n286,11\n285,12\n", r"not strictly monotonic at point 3 \(286 then 285 eV\)"),
    }
    for name, (content, problem) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(XPSError, match=problem) as exc:
            xps.read(path)
        _one_line(exc, path)


def test_xlsx_limits(shared, tmp_path, monkeypatch):
    real = shared("xps/khervefitting/STO.xlsx")
    monkeypatch.setattr(avantage, "MAX_UNCOMPRESSED", 1000)
    with pytest.raises(XPSError, match="zip bomb") as exc:
        xps.read(real)
    _one_line(exc, real)
    monkeypatch.undo()
    # A zip that is not a workbook.
    fake = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    with pytest.raises(XPSError, match="cannot open the Excel workbook") as exc:
        xps.read(fake)
    _one_line(exc, fake)


def test_casa_malformed_lines():
    good = ("Casa Info Follows\n0\n0\n1\nCASA region (*B 1s*) (*Shirley*) 1290 1300 1 2 0 0 0 0 0 0 (*B*) 10.8 0 0.5\n"
            "2\n")
    comp = ("CASA comp (*B-O*) (*GL(30)*) Area 100 0 1e5 -1 1 MFWHM 1.2 0.5 2 -1 1 Position 1294.6 1290 1300 -1 1 "
            "RSF 0.5 MASS 10.8 INDEX -1 (*B 1s*) CONST (**) UNCORRECTEDRSF 0.5")
    linked = comp.replace("(*B-O*)", "(*TM-O-B*)").replace("Area 100 0 1e5 -1 1", "Area 50 0 1e5 0 0.5")
    info = casa.parse_comment(good + comp + "\n" + linked, source="f.vms block 2")
    assert [c.name for c in info.comps] == ["B-O", "TM-O-B"] and info.comps[1].area.factor == 0.5
    with pytest.raises(XPSError, match=r"f.vms block 2: comment line 8: malformed CASA comp line"):
        casa.parse_comment(good + comp + "\n" + comp.replace("MFWHM 1.2", "MFWHM x1.2"), source="f.vms block 2")
    with pytest.raises(XPSError, match=r"comment line 5: malformed CASA region line"):
        casa.parse_comment(good.replace("1290 1300", "1290 abc"), source="f.vms block 2")
    with pytest.raises(XPSError, match=r"2 CASA comp lines announced but only 1 lines follow"):
        casa.parse_comment(good + comp, source="f.vms block 2")
    with pytest.raises(XPSError, match=r"links its area to comp 5"):
        casa.parse_comment(good + comp + "\n" + linked.replace("Area 50 0 1e5 0 0.5", "Area 50 0 1e5 5 0.5"),
                           source="f.vms block 2")
    with pytest.raises(XPSError, match=r"CASA line outside the counted CASA sections"):
        casa.parse_comment("Casa Info Follows\n0\n0\n0\n0\n" + comp, source="f.vms block 2")
    with pytest.raises(XPSError, match=r"expected the number of process lines"):
        casa.parse_comment("Casa Info Follows\nCalib M = 1 A = 2 BE ADD\n", source="f.vms block 2")


def test_casa_error_through_a_file(tmp_path):
    grid = 190.0 + 0.5 * np.arange(5)
    da = make_spectrum("sim", grid, np.arange(1.0, 6.0), excitation_energy=1486.6, region="B 1s",
                       comment="Casa Info Follows\n0\n0\n0\n1\nCASA comp (*x*) (*GL(30)*) Area oops")
    path = vamas.write(tmp_path / "casa_bad.vms", [da])
    [back] = xps.read(path)  # the spectrum itself is fine
    with pytest.raises(XPSError, match=rf"{path} block 0: comment line 6: malformed CASA comp line"):
        casa.from_block(back)


def test_writer_refuses_bad_blocks(tmp_path):
    grid = 190.0 + 0.5 * np.arange(5)
    good = make_spectrum("sim", grid, np.arange(1.0, 6.0), excitation_energy=1486.6, region="B 1s")
    bad = good.copy()
    bad.values[2] = np.nan
    target = tmp_path / "out.vms"
    with pytest.raises(XPSError, match="NaN"):
        vamas.write(target, [good, bad])
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing half-written
    no_hv = good.copy()
    no_hv.attrs["excitation_energy"] = float("nan")
    with pytest.raises(XPSError, match="no excitation_energy"):
        vamas.write(target, [no_hv])
    with pytest.raises(XPSError, match="no blocks"):
        vamas.write(target, [])


def test_truncated_phi(shared, tmp_path):
    raw = shared("xps/pynxtools-xps/SnO2_10nm_1.pro").read_bytes()
    for cut, problem in ((len(raw) - 1000, "truncated PHI file: record"), (raw.index(b"EOFH") - 10, "no EOFH")):
        path = tmp_path / f"cut{cut}.pro"
        path.write_bytes(raw[:cut])
        with pytest.raises(XPSError, match=problem) as exc:
            xps.read(path)
        _one_line(exc, path)


def test_specs_xml_bad(shared, tmp_path):
    raw = shared("xps/pynxtools-xps/In-situ_PBTTT_XPS_SPECS.xml").read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(XPSError, match="malformed XML") as exc:
        xps.read(cut)
    _one_line(exc, cut)
    # A counts sequence that lost values: the declared length no longer matches.
    at = raw.index(b'name="counts" length="1320"')
    short = tmp_path / "short.xml"
    short.write_bytes(raw[:at] + b'name="counts" length="1321"' + raw[at + len(b'name="counts" length="1320"'):])
    with pytest.raises(XPSError, match="counts declares 1321 values, holds 1320") as exc:
        xps.read(short)
    _one_line(exc, short)
    # Entity expansion ("billion laughs") is refused by defusedxml, as a one-line XPSError.
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!-- specs.de/Serializer -->\n<!DOCTYPE a [<!ENTITY x "xx">'
                    '<!ENTITY y "&x;&x;&x;">]>\n<any>&y;</any>\n')
    with pytest.raises(XPSError, match="refused XML") as exc:
        xps.read(bomb)
    _one_line(exc, bomb)
