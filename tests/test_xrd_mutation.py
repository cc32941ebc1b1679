"""Mutation tests of every XRD reader (RAW, XRDML, BRML, GSAS, xy/xye, PRM, instprm), seeded and
bounded, from the real files in ../shared/data/xrd and files written here; plus the cases issue 12
named (unknown XML encoding, a cut .xye, PRM numbers turned into NaN, one negative-values policy)
and every shared XRD file read or refused by design.

Every outcome is a pattern (finite, increasing angles; counts >= 0 unless the format holds processed
intensities, then noted) or an ``XRDError`` naming the file, within a time and memory bound.
"""

from __future__ import annotations

import math
import random
import re
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import xarray as xr

from doptrace import xrd
from doptrace.xrd.errors import XRDError
from doptrace.xrd.instrument import Instrument
from doptrace.xrd.simulate import xye_text

FAP = "xrd/gsas2_tutorials/LabData_data_FAP.XRA"
PRM = "xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"
DARA = "xrd/dara/dara_NaAlO2-1.5H2O_ZrO2_LiCoO2.12-min.xrdml"
#: readers whose values are processed intensities (negatives kept, counted, noted)
PROCESSED = ("xy", "xye", "gsas-esd", "gsas-fxy", "gsas-fxye")
ABSURD = ["NaN", "inf", "-inf", "1e308", "-1", "-1e308", "1e999", "4294967296", "garbage", "", "0", "1.5.5"]
NUMBER = re.compile(rb"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def _check_outcome(call, path):
    """A value within the contract or an XRDError naming the file; nothing else."""
    try:
        result = call(path)
    except XRDError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        assert "\n" not in str(exc)
        return "refused"
    if isinstance(result, Instrument):
        values = [v for v in result.as_dict().values() if isinstance(v, float)]
        finite = [v for k, v in result.as_dict().items() if isinstance(v, float) and k not in ("Lam2",)]
        assert all(math.isfinite(v) for v in finite), result.as_dict()
        assert values
        return "read"
    for p in result:
        assert isinstance(p, xr.DataArray)
        x, y, e = p["two_theta"].values, p.values, p["esd"].values
        assert x.size and np.all(np.isfinite(x)) and np.all(np.diff(x) > 0)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(e)) and np.all(e >= 0)
        if p.attrs["format"] in PROCESSED:
            assert p.attrs.get("negative_values", 0) == int(np.count_nonzero(y < 0))
        else:
            assert np.all(y >= 0), p.attrs["format"]
    return "read"


def _mutations(data: bytes, rng: random.Random, n: int, text: bool):
    for i in range(n):
        b = bytearray(data)
        kind = i % (5 if text else 4)
        if kind == 0:
            yield data[: rng.randrange(0, len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 12)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            yield bytes(b)
        elif kind == 2:
            at, length = rng.randrange(len(b)), rng.choice([1, 8, 64, 512])
            b[at:at + length] = bytes(len(b[at:at + length]))
            yield bytes(b)
        elif kind == 3:
            at = rng.randrange(len(b))
            yield data[:at] + data[at + rng.choice([1, 16, 256]):]
        else:
            numbers = list(NUMBER.finditer(data))
            if not numbers:
                yield data
                continue
            m = numbers[min(len(numbers) - 1, int(len(numbers) * rng.random() ** 2))]
            yield data[: m.start()] + rng.choice(ABSURD).encode() + data[m.end():]


def _campaign(tmp_path, data: bytes, suffix: str, call, seed: int, n: int = 40, case_limit_s: float = 2.0):
    """``n`` seeded mutations of ``data``, each read once: bounded in time per case and in memory."""
    rng = random.Random(seed)
    outcomes = {"read": 0, "refused": 0}
    warm = tmp_path / f"warm{suffix}"
    warm.write_bytes(data)
    _check_outcome(call, warm)  # imports and first-call costs paid outside the bounds
    tracemalloc.start()
    try:
        for case in _mutations(data, rng, n, text=suffix.lower() not in (".raw", ".brml")):
            target = tmp_path / f"case{suffix}"
            target.write_bytes(case)
            started = time.monotonic()
            outcomes[_check_outcome(call, target)] += 1
            assert time.monotonic() - started < case_limit_s
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20  # no unbounded allocation (real files here are < 100 kB)
    assert outcomes["refused"] >= 1 and sum(outcomes.values()) == n
    return outcomes


@pytest.mark.parametrize("relative,seed", [
    ("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw", 1),
    ("xrd/xylib_samples/format1.raw", 2),
    ("xrd/xylib_samples/empyrean.xrdml", 3),
    (DARA, 4),
    (FAP, 5),
    ("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_NIST660CBI.gsas", 6),
])
def test_real_pattern_mutations(shared, tmp_path, relative, seed):
    source = shared(relative)
    _campaign(tmp_path, source.read_bytes(), source.suffix, xrd.read_all, seed)


def test_prm_and_instprm_mutations(shared, tmp_path):
    source = shared(PRM)
    _campaign(tmp_path, source.read_bytes(), ".PRM", xrd.read_instrument, 7)
    instprm = ("#GSAS-II instrument parameter file\nType:PXC\nBank:1.0\nLam1:1.5405\nLam2:1.5443\nZero:0.0\n"
               "Polariz.:0.7\nAzimuth:0.0\nI(L2)/I(L1):0.5\nU:2.0\nV:-2.0\nW:5.0\nX:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")
    _campaign(tmp_path, instprm.encode(), ".instprm", xrd.read_instrument, 8)


def _xye_of_real_pattern(shared):
    return xye_text(xrd.read(shared(FAP))).encode()


def test_xye_mutations(shared, tmp_path):
    _campaign(tmp_path, _xye_of_real_pattern(shared), ".xye", xrd.read_all, 9)


def _brml(rows) -> bytes:
    datum = "".join(f"<Datum>1,1,{tt:.4f},{tt / 2:.4f},{c:g}</Datum>\n" for tt, c in rows)
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n<RawData><DataRoutes><DataRoute RouteFlag="Final">'
           f"<ScanInformation><MeasurementPoints>{len(rows)}</MeasurementPoints></ScanInformation>\n"
           + datum + "</DataRoute></DataRoutes></RawData>\n")
    return xml.encode()


def _zip(members, path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in members:
            z.writestr(name, blob)
    return path.read_bytes()


def test_brml_mutations_traversal_names_and_bombs(shared, tmp_path):
    pattern = xrd.read(shared(FAP))
    rows = list(zip(pattern["two_theta"].values[:400], pattern.values[:400]))
    good = _zip([("Experiment0/RawData0.xml", _brml(rows))], tmp_path / "seed.zip")
    _campaign(tmp_path, good, ".brml", xrd.read_all, 10)
    # member-level: the XML inside mutated and zipped again
    rng = random.Random(11)
    xml = _brml(rows)
    for case in list(_mutations(xml, rng, 30, text=True)):
        path = tmp_path / "member.brml"
        _zip([("Experiment0/RawData0.xml", case)], tmp_path / "member.brml")
        _check_outcome(xrd.read_all, path)
    # traversal and absolute names: nothing is written, read by name only
    for evil in ("../../escaped/RawData0.xml", "/abs/RawData0.xml", "Experiment0/../../RawData0.xml"):
        path = tmp_path / "trav.brml"
        _zip([(evil, xml)], path)
        before = sorted(p.name for p in tmp_path.parent.iterdir())
        assert _check_outcome(xrd.read_all, path) in ("read", "refused")
        assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
        assert not (tmp_path.parent / "escaped").exists()
    # billion laughs and quadratic blow-up inside the member: refused, fast
    laughs = b'<?xml version="1.0"?><!DOCTYPE RawData [<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"".join(b"&l%d;" % (i - 1) for _ in range(10))) for i in range(1, 10)
    ) + b"]><RawData>&l9;</RawData>"
    quadratic = (b'<?xml version="1.0"?><!DOCTYPE RawData [<!ENTITY q "' + b"x" * 50000 + b'">]><RawData>'
                 + b"&q;" * 20000 + b"</RawData>")
    for blob in (laughs, quadratic):
        path = tmp_path / "ent.brml"
        _zip([("Experiment0/RawData0.xml", blob)], path)
        t0 = time.monotonic()
        with pytest.raises(XRDError, match="unsafe XML refused"):
            xrd.read_all(path)
        assert time.monotonic() - t0 < 2.0


# ----------------------------------------------------------------------------- named cases


@pytest.mark.parametrize("encoding", ["x-unknown-42", "foo-bar", "utf-99"])
def test_xrdml_with_an_unknown_encoding_is_an_xrd_error(shared, tmp_path, encoding):
    # was: LookupError from expat asking Python's codec registry
    text = shared("xrd/xylib_samples/empyrean.xrdml").read_bytes()
    decl_end = text.index(b"?>") + 2
    bad = tmp_path / "enc.xrdml"
    bad.write_bytes(f'<?xml version="1.0" encoding="{encoding}"?>'.encode() + text[decl_end:])
    with pytest.raises(XRDError, match=rf"{re.escape(str(bad))}: XML declares an encoding Python does not know"):
        xrd.read_all(bad)


def test_half_an_xye_is_refused_not_refined(shared, tmp_path):
    """A .xye cut mid-file: every cut point of a doptrace-written file is refused (3 checks)."""
    text = _xye_of_real_pattern(shared)
    rng = random.Random(13)
    for cut in [len(text) // 2] + [rng.randrange(400, len(text) - 2) for _ in range(30)]:
        bad = tmp_path / "half.xye"
        bad.write_bytes(text[:cut])
        with pytest.raises(XRDError, match="truncated|header says .* points|rows? missing"):
            xrd.read_all(bad)


def test_cut_xye_without_a_header_is_refused_at_its_partial_last_line(tmp_path):
    rows = "".join(f"{10 + 0.02 * i:.4f} {100 + i % 7:.1f} {10.0:.4f}\n" for i in range(500))
    for cut in (len(rows) // 2 + 3, len(rows) // 3 + 9, len(rows) - 4):
        assert rows[cut - 1] != "\n"
        bad = tmp_path / "cut.xye"
        bad.write_text(rows[:cut])
        with pytest.raises(XRDError, match="the file is truncated"):
            xrd.read_all(bad)
    # a whole file without its last line end is fine
    whole = tmp_path / "whole.xye"
    whole.write_text(rows.rstrip("\n"))
    assert xrd.read(whole).sizes["two_theta"] == 500


def test_xye_with_lost_rows_is_refused_and_a_variable_step_scan_is_not(tmp_path):
    lines = [f"{10 + 0.02 * i:.4f} {100 + i % 7:.1f} 10.0" for i in range(300)]
    gap = tmp_path / "gap.xye"
    gap.write_text("\n".join(lines[:150] + lines[153:]) + "\n")
    with pytest.raises(XRDError, match=r"2theta jumps 0\.08 deg .* 3 row\(s\) missing"):
        xrd.read_all(gap)
    variable = tmp_path / "variable.xye"
    angles = np.cumsum(np.linspace(0.01, 0.05, 300)) + 10
    variable.write_text("".join(f"{a:.5f} 100 10\n" for a in angles))
    assert xrd.read(variable).sizes["two_theta"] == 300


def test_prm_numbers_changed_to_nan_or_negative_are_refused(shared, tmp_path):
    text = shared(PRM).read_text()
    for old, new, problem in (("1.544300", "-1.0000", r"second wavelength -1\.0 is negative"),
                              ("1.540500", "nan     ", r"Lam1: 'nan' is not finite|cannot read"),
                              ("0.7    0", "nan    0", r"polarization: 'nan' is not finite|cannot read")):
        bad = tmp_path / "bad.prm"
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(XRDError, match=problem):
            xrd.read_instrument(bad)
    single = tmp_path / "single.prm"
    single.write_text(text.replace("1.544300", "0.000000", 1))
    inst = xrd.read_instrument(single)
    assert inst.wavelengths[0] == 1.5405 and math.isnan(inst.wavelengths[1])  # Lam2 0: one wavelength


# ----------------------------------------------------------------------------- negative values


def test_negative_values_policy_is_the_same_for_every_xrd_reader(shared, tmp_path):
    """Counts (RAW, BRML, XRDML, GSAS STD) refuse a negative value; processed intensities
    (xy/xye, GSAS ESD/FXY/FXYE) keep it, count it and say so (NEGATIVE_COUNTS.md)."""
    # xye: kept, counted, noted
    xye = tmp_path / "neg.xye"
    xye.write_text("10.00 5 2\n10.02 -3 2\n10.04 7 2\n10.06 -1 2\n")
    p = xrd.read(xye)
    assert p.values.tolist() == [5, -3, 7, -1]
    assert p.attrs["negative_values"] == 2 and "2 negative intensities kept" in p.attrs["notes"]
    # GSAS FXYE: kept with weight 0 (as GSAS-II weighs them), counted
    fxye = tmp_path / "neg.gsas"
    fxye.write_text("t\nBANK 1 3 3 CONST 1000 2 0 0 FXYE\n1000 50 7\n1002 -4 3\n1004 70 9\n")
    g = xrd.read(fxye)
    assert g.values.tolist() == [50, -4, 70] and g["esd"].values.tolist() == [7, 0, 9]
    assert g.attrs["negative_values"] == 1
    # GSAS STD: detector counts, refused
    std = tmp_path / "neg_std.gsas"
    fields = "".join(f"{n:2d}{c:6d}" for n, c in [(1, 400), (1, -9), (1, 100), (1, 0)])
    std.write_text("title\nBANK 1 5 1 CONST 500 10 0 0 STD\n" + fields + "\n")
    with pytest.raises(XRDError, match=r"negative count -9 at point 2 of an STD bank"):
        xrd.read(std)
    # XRDML counts: refused
    text = shared("xrd/xylib_samples/empyrean.xrdml").read_text()
    start = text.index("<intensities")
    start = text.index(">", start) + 1
    first = text[start:].split()[0]
    bad = tmp_path / "neg.xrdml"
    bad.write_text(text[:start] + "-" + text[start:])
    with pytest.raises(XRDError, match=rf"negative counts \(-{first}\) at 2theta=30\.05 deg \(point 1\)"):
        xrd.read(bad)
    # BRML counts: refused
    brml = tmp_path / "neg.brml"
    _zip([("Experiment0/RawData0.xml", _brml([(10.0, 5), (10.02, -2), (10.04, 7)]))], brml)
    with pytest.raises(XRDError, match=r"negative counts \(-2\) at 2theta=10\.02 deg"):
        xrd.read(brml)


# ----------------------------------------------------------------------------- every shared file


PATTERN_FILES = {
    "gsas2_tutorials/LabData_data_FAP.XRA": 5752,
    "gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw": 3040,
    "gsas2_tutorials/MDtutorials_CWInstDemo_data_NIST660CBI.gsas": None,
    "gsas2_tutorials/StackingFaults-III_data_KGA1-CONT.RAW": 3401,
    "xylib_samples/BT86.raw": None,
    "xylib_samples/Cu3Au-1.raw": None,
    "xylib_samples/Cu3Au-2.raw": None,
    "xylib_samples/format1.raw": None,
    "xylib_samples/empyrean.xrdml": 196,
    "dara/dara_NaAlO2-1.5H2O_ZrO2_LiCoO2.12-min.xrdml": 8293,
}
INSTRUMENT_FILES = {"gsas2_tutorials/LabData_data_INST_XRY.PRM"}
#: shared XRD files that are documentation, not data
NOT_DATA = (".md", ".txt")


def test_every_file_in_the_shared_xrd_folder_reads(shared):
    folder = shared("xrd")
    found = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix not in NOT_DATA}
    assert found == set(PATTERN_FILES) | INSTRUMENT_FILES
    for name, points in PATTERN_FILES.items():
        patterns = xrd.read_all(folder / name)
        if points is not None:
            assert patterns[0].sizes["two_theta"] == points, name
    for name in INSTRUMENT_FILES:
        assert xrd.read_instrument(folder / name).wavelengths == (1.5405, 1.5443)


def test_dara_xrdml_reads_its_known_content(shared):
    """PROVENANCE: Cu Ka1/Ka2, radius 145 mm, 8293 points 9.99-100.1 deg; values checked against
    the file's own <counts> list and scan header, read here with a regular expression."""
    path = shared(DARA)
    text = path.read_text(encoding="utf-8-sig")
    counts = np.array(re.search(r"<counts[^>]*>([^<]*)</counts>", text).group(1).split(), dtype=float)
    start = float(re.search(r'<positions axis="2Theta"[^>]*>\s*<startPosition>([^<]*)<', text).group(1))
    end = float(re.search(r'<positions axis="2Theta"[^>]*>\s*<startPosition>[^<]*</startPosition>\s*'
                          r"<endPosition>([^<]*)<", text).group(1))
    p = xrd.read(path)
    assert p.sizes["two_theta"] == counts.size == 8293
    np.testing.assert_array_equal(p.values, counts)
    assert float(p.two_theta[0]) == start == pytest.approx(9.99, abs=0.01)
    assert float(p.two_theta[-1]) == pytest.approx(end) and end == pytest.approx(100.1, abs=0.01)
    assert p.attrs["step"] == pytest.approx((end - start) / 8292)
    assert (p.attrs["wavelength"], p.attrs["wavelength2"], p.attrs["ka2_ratio"]) == (1.540598, 1.544426, 0.5)
    assert p.attrs["goniometer_radius_mm"] == 145.0
    assert p.attrs["count_time"] == pytest.approx(18.249)
    np.testing.assert_allclose(p["esd"].values, np.sqrt(counts))


def test_doubled_gsas_file_and_duplicate_brml_members_are_refused(shared, tmp_path):
    """Found by the shared harness (seed 1): both read 'successfully' with an extra range."""
    text = shared(FAP).read_text()
    doubled = tmp_path / "doubled.gsas"
    doubled.write_text(text + text)
    with pytest.raises(XRDError, match=r"BANK 1 appears again \(first at line \d+\)"):
        xrd.read_all(doubled)
    brml = tmp_path / "dup.brml"
    rows = [(10.0 + 0.02 * i, 100.0) for i in range(30)]
    with pytest.warns(UserWarning, match="Duplicate name"):
        _zip([("Experiment0/RawData0.xml", _brml(rows)), ("Experiment0/RawData0.xml", _brml(rows[:10]))], brml)
    with pytest.raises(XRDError, match=r"zip lists member 'Experiment0/RawData0\.xml' more than once"):
        xrd.read_all(brml)


def test_xrdml_attenuation_list_must_match_the_intensities(shared, tmp_path):
    text = shared("xrd/xylib_samples/empyrean.xrdml").read_text()
    end = text.index("</intensities>") + len("</intensities>")
    for factors, problem in ((" ".join(["1"] * 195), r"195 beam attenuation factors but 196 intensities"),
                             (" ".join(["1"] * 195 + ["nan"]), r"must be finite and positive")):
        bad = tmp_path / "att.xrdml"
        bad.write_text(text[:end] + f"<beamAttenuationFactors>{factors}</beamAttenuationFactors>" + text[end:])
        with pytest.raises(XRDError, match=problem):
            xrd.read_all(bad)
    good = tmp_path / "att_ok.xrdml"
    good.write_text(text[:end] + "<beamAttenuationFactors>" + " ".join(["2"] * 196) + "</beamAttenuationFactors>"
                    + text[end:])
    p = xrd.read(good)
    assert p.values.sum() == 1814  # counts as stored; esds of what was counted through the attenuator
    np.testing.assert_allclose(p["esd"].values, np.sqrt(p.values / 2) * 2)
