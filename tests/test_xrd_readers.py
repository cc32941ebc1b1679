"""XRD readers: every real file in ../shared/data/xrd, plus files of every format written here
from the published layouts with known contents."""

from __future__ import annotations

import hashlib
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from doptrace import xrd
from doptrace.xrd.errors import XRDError
from doptrace.xrd.formats import REGISTRY, find_format

REAL_PATTERNS = [
    "xrd/gsas2_tutorials/LabData_data_FAP.XRA",
    "xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw",
    "xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_NIST660CBI.gsas",
    "xrd/gsas2_tutorials/StackingFaults-III_data_KGA1-CONT.RAW",
    "xrd/xylib_samples/BT86.raw",
    "xrd/xylib_samples/Cu3Au-1.raw",
    "xrd/xylib_samples/Cu3Au-2.raw",
    "xrd/xylib_samples/format1.raw",
    "xrd/xylib_samples/empyrean.xrdml",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- real files


@pytest.mark.parametrize("relative", REAL_PATTERNS)
def test_every_real_pattern_reads_with_the_shared_layout(shared, relative):
    path = shared(relative)
    before = _sha(path)
    patterns = xrd.read_all(path)
    assert patterns
    for i, p in enumerate(patterns):
        assert p.dims == ("two_theta",)
        assert p["two_theta"].attrs["units"] == "deg"
        assert p.attrs["units"] == "counts" and p["esd"].attrs["units"] == "counts"
        assert p.attrs["technique"] == "XRD" and p.attrs["source"] == str(path)
        assert p.attrs["range_index"] == i and p.attrs["n_ranges"] == len(patterns)
        for key in ("format", "wavelength", "wavelength2", "ka2_ratio", "step", "sample", "count_time"):
            assert key in p.attrs
        x = p["two_theta"].values
        assert np.all(np.diff(x) > 0) and np.all(np.isfinite(p.values)) and np.all(p.values >= 0)
        assert p.attrs["step"] == pytest.approx(np.mean(np.diff(x)), rel=1e-6)
        assert np.all(p["esd"].values >= 0)
    assert _sha(path) == before  # read-only


def test_lab6_raw_point_count_and_range_match_gsas2(shared):
    # REFERENCE.md: GSAS-II reads 3040 points, 10.0-70.00445 deg, step 0.0197448 deg; radius 250 mm
    p = xrd.read(shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw"))
    x = p["two_theta"].values
    assert x.size == 3040
    assert x[0] == pytest.approx(10.0, abs=1e-9)
    assert x[-1] == pytest.approx(70.00445, abs=5e-6)
    assert p.attrs["step"] == pytest.approx(0.0197448, abs=1e-9)
    assert p.attrs["wavelength"] == pytest.approx(1.5406)
    assert p.attrs["wavelength2"] == pytest.approx(1.54439)
    assert p.attrs["ka2_ratio"] == pytest.approx(0.5)
    assert p.attrs["goniometer_radius_mm"] == pytest.approx(250.0)
    assert p.attrs["format"] == "bruker-raw"
    assert p["esd"].values == pytest.approx(np.sqrt(p.values))


def test_kaolinite_raw_has_3401_points_from_2_to_70(shared):
    p = xrd.read(shared("xrd/gsas2_tutorials/StackingFaults-III_data_KGA1-CONT.RAW"))
    assert p.sizes["two_theta"] == 3401
    assert p["two_theta"].values[[0, -1]] == pytest.approx([2.0, 70.0])
    assert p.attrs["count_time"] == pytest.approx(4.0)
    assert p.attrs["sample"].startswith("KGa-1")


def test_format1_raw_has_three_ranges(shared):
    path = shared("xrd/xylib_samples/format1.raw")
    ranges = xrd.read_all(path)
    shape = [(r.sizes["two_theta"], *np.round(r["two_theta"].values[[0, -1]], 6)) for r in ranges]
    assert shape == [(101, 10.0, 20.0), (26, 30.0, 35.0), (51, 40.0, 45.0)]
    assert [r.attrs["step"] for r in ranges] == pytest.approx([0.1, 0.2, 0.1])
    third = xrd.read(path, range=2)
    assert third.sizes["two_theta"] == 51 and third.attrs["range_index"] == 2
    with pytest.raises(XRDError, match=r"format1\.raw: range 3 asked but the file has 3 ranges"):
        xrd.read(path, range=3)
    assert "3 ranges" in xrd.describe(path)


def _independent_raw101(path: Path):
    """A second decoding of a RAW1.01 file, written from the DIFFRAC plus XCH appendix with plain
    struct calls: returns [(start2theta, step, [counts...]), ...]."""
    blob = path.read_bytes()
    assert blob[:7] == b"RAW1.01"
    (nranges,) = struct.unpack("<i", blob[12:16])
    out, at = [], 712
    for _ in range(nranges):
        hlen, nsteps = struct.unpack("<ii", blob[at:at + 8])
        (two_theta0,) = struct.unpack("<d", blob[at + 16:at + 24])
        (step,) = struct.unpack("<d", blob[at + 176:at + 184])
        (extra,) = struct.unpack("<i", blob[at + 256:at + 260])
        first = at + hlen + extra
        counts = [struct.unpack("<f", blob[first + 4 * k:first + 4 * k + 4])[0] for k in range(nsteps)]
        out.append((two_theta0, step, counts))
        at = first + 4 * nsteps
    assert at == len(blob)  # the whole file accounted for
    return out


@pytest.mark.parametrize("relative", [
    "xrd/xylib_samples/Cu3Au-1.raw",
    "xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw",
    "xrd/xylib_samples/format1.raw",
])
def test_raw_matches_an_independent_byte_level_decode(shared, relative):
    path = shared(relative)
    expected = _independent_raw101(path)
    got = xrd.read_all(path)
    assert len(got) == len(expected)
    for p, (start, step, counts) in zip(got, expected):
        assert p.values.tolist() == counts  # every intensity, exactly
        assert p["two_theta"].values[0] == start and p.attrs["step"] == step
        assert p["two_theta"].values[-1] == pytest.approx(start + step * (len(counts) - 1), abs=1e-12)


def test_fap_xra_follows_gsas2_point_count_and_values(shared):
    path = shared("xrd/gsas2_tutorials/LabData_data_FAP.XRA")
    p = xrd.read(path)
    # GSAS-II: 5752 points 15.0-130.02 (NCHAN 5753 minus one, its STD reading)
    assert p.sizes["two_theta"] == 5752
    assert p["two_theta"].values[[0, -1]] == pytest.approx([15.0, 130.02], abs=1e-9)
    assert p.attrs["step"] == pytest.approx(0.02)
    # first and last data fields as printed in the file
    assert p.values[:5].tolist() == [609, 612, 673, 619, 627]
    assert p.values[-3:].tolist() == [84, 84, 0]
    assert p["esd"].values[0] == pytest.approx(math.sqrt(609))
    assert p["esd"].values[-1] == 0.0 and xrd.weights(p)[-1] == 0.0  # zero counts: weight 0
    assert xrd.weights(p)[0] == pytest.approx(1 / 609)
    assert p.attrs["format"] == "gsas-std" and math.isnan(p.attrs["wavelength"])


def test_nist660c_gsas_file(shared):
    p = xrd.read(shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_NIST660CBI.gsas"))
    # BANK 1 8378 838 CONST 1500.66 1.31303 ... STD
    assert p.sizes["two_theta"] == 8377
    assert p["two_theta"].values[0] == pytest.approx(15.0066)
    assert p.attrs["step"] == pytest.approx(0.0131303)
    assert p.values[:3].tolist() == [2364, 2382, 2386]


def test_prm_is_read_as_gsas2_reads_it(shared):
    inst = xrd.read_instrument(shared("xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"))
    assert isinstance(inst, xrd.Instrument)
    assert inst.wavelengths == pytest.approx((1.5405, 1.5443))
    assert inst.ka2_ratio == 0.5 and inst.polarization == 0.7 and inst.zero == 0.0
    assert (inst.U, inst.V, inst.W) == (2.0, -2.0, 5.0)
    assert (inst.X, inst.Y, inst.Z) == (0.0, 0.0, 0.0)
    assert inst.SH_L == 0.002  # PRCF12 ignored, as GSAS-II does
    assert inst.radius_mm == 200.0 and inst.has_ka2


def test_prm_gsas1_reading_takes_the_profile_line(shared):
    inst = xrd.read_instrument(shared("xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"), gsas2=False)
    assert inst.SH_L == pytest.approx(0.02)  # S/L 0.01 + H/L 0.01
    assert (inst.U, inst.V, inst.W) == (2.0, -2.0, 5.0)


def test_xrdml_values_from_its_xml(shared):
    p = xrd.read(shared("xrd/xylib_samples/empyrean.xrdml"))
    assert p.sizes["two_theta"] == 196
    assert p["two_theta"].values[[0, -1]] == pytest.approx([30.05, 41.75])
    assert p.attrs["step"] == pytest.approx(0.06)
    assert p.attrs["wavelength"] == 1.540598 and p.attrs["wavelength2"] == 1.544426
    assert p.attrs["ka2_ratio"] == 0.5 and p.attrs["count_time"] == pytest.approx(0.44)
    assert p.attrs["goniometer_radius_mm"] == 240.0
    assert p.values[:5].tolist() == [8, 11, 6, 10, 10] and p.values[-3:].tolist() == [6, 4, 6]
    assert p.values.sum() == 1814  # sum of the <intensities> list


def test_describe_names_points_range_step_and_wavelength(shared):
    text = xrd.describe(shared("xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw"))
    assert "3040 points" in text and "10.0000-70.0044 deg" in text and "step 0.01974" in text
    assert "lambda1 1.54060 A" in text


def test_content_sniffing_finds_a_raw_file_under_another_name(shared, tmp_path):
    target = tmp_path / "scan.dat"
    target.write_bytes(shared("xrd/xylib_samples/Cu3Au-1.raw").read_bytes())
    assert find_format(target).NAME == "bruker-raw"
    assert xrd.read(target).sizes["two_theta"] == 3901


# ------------------------------------------------------------------ files written here


def _raw_v1(path, ranges):
    """Bruker RAW v1 ("RAW ") with ranges of (start, step, counts, time, name, ka1, ka2)."""
    out = bytearray()
    for i, (start, step, counts, time, name, ka1, ka2) in enumerate(ranges):
        head = bytearray(152)
        struct.pack_into("<I", head, 0, len(counts))
        struct.pack_into("<ff", head, 4, time, step)
        struct.pack_into("<f", head, 20, start)
        head[36:36 + len(name)] = name.encode()
        struct.pack_into("<ff", head, 68, ka1, ka2)
        struct.pack_into("<I", head, 148, 1 if i < len(ranges) - 1 else 0)
        out += b"RAW " + head + np.asarray(counts, "<f4").tobytes()
    Path(path).write_bytes(bytes(out))


def _raw_v2(path, ranges, waves=(1.5406, 1.5444, 0.5)):
    head = bytearray(256)
    head[:4] = b"RAW2"
    struct.pack_into("<H", head, 4, len(ranges))
    head[168:176] = b"01/02/03"
    head[188:190] = b"Cu"
    struct.pack_into("<3f", head, 190, *waves)
    out = bytearray(head)
    for start, step, counts, time in ranges:
        block = bytearray(64)
        struct.pack_into("<HH", block, 0, 64, len(counts))
        struct.pack_into("<3f", block, 8, time, step, start)
        struct.pack_into("<H", block, 46, 298)
        out += block + np.asarray(counts, "<f4").tobytes()
    Path(path).write_bytes(bytes(out))


def _raw_v4(path, ranges, waves=(1.5406, 1.54439, 0.5)):
    out = bytearray(61)
    out[:7] = b"RAW4.00"
    out[12:20] = b"11/25/26"
    var = bytearray(36 + 16)
    struct.pack_into("<II", var, 0, 10, len(var))
    var[12:20] = b"SAMPLEID"
    var[36:36 + 8] = b"LRMO-B01"
    src = bytearray(120)
    struct.pack_into("<II", src, 0, 30, 120)
    struct.pack_into("<dd", src, 80, waves[0], waves[1])
    struct.pack_into("<d", src, 104, waves[2])
    src[116:118] = b"Cu"
    out += var + src
    for scan, start, step, counts, time in ranges:
        head = bytearray(160)
        struct.pack_into("<I", head, 0, 0)
        head[32:32 + len(scan)] = scan.encode()
        struct.pack_into("<dd", head, 72, start, step)
        struct.pack_into("<If", head, 88, len(counts), time)
        struct.pack_into("<d", head, 112, waves[0])
        axis = bytearray(64)
        struct.pack_into("<II", axis, 0, 50, 64)
        axis[12:18] = b"2Theta"
        struct.pack_into("<d", axis, 56, start)
        struct.pack_into("<II", head, 136, 4, len(axis))
        out += head + axis + np.asarray(counts, "<f4").tobytes()
    Path(path).write_bytes(bytes(out))


def test_raw_version1_two_ranges(tmp_path):
    path = tmp_path / "v1.raw"
    _raw_v1(path, [(10.0, 0.05, [1, 2, 3, 4], 1.5, "sampleA", 1.5406, 1.5444),
                   (40.0, 0.1, [7, 8, 9], 2.0, "sampleA", 1.5406, 1.5444)])
    a, b = xrd.read_all(path)
    assert a.values.tolist() == [1, 2, 3, 4] and b.values.tolist() == [7, 8, 9]
    assert a["two_theta"].values == pytest.approx([10.0, 10.05, 10.1, 10.15])
    assert b["two_theta"].values == pytest.approx([40.0, 40.1, 40.2])
    assert a.attrs["count_time"] == 1.5 and b.attrs["count_time"] == 2.0
    assert a.attrs["sample"] == "sampleA" and a.attrs["wavelength"] == pytest.approx(1.5406)
    assert a.attrs["file_version"] == "1"


def test_raw_version2(tmp_path):
    path = tmp_path / "v2.raw"
    _raw_v2(path, [(5.0, 0.02, [10, 20, 30], 0.5), (50.0, 0.04, [5, 6], 1.0)])
    a, b = xrd.read_all(path)
    assert a.values.tolist() == [10, 20, 30] and b.values.tolist() == [5, 6]
    assert b["two_theta"].values == pytest.approx([50.0, 50.04])
    assert a.attrs["ka2_ratio"] == 0.5 and a.attrs["wavelength2"] == pytest.approx(1.5444)
    assert a.attrs["temperature_K"] == 298 and a.attrs["anode"] == "Cu"


def test_raw_version4_reads_2theta_ranges_and_skips_others(tmp_path):
    path = tmp_path / "v4.raw"
    _raw_v4(path, [("Locked Coupled", 20.0, 0.01, [3, 1, 4, 1, 5], 0.2),
                   ("Rocking Curve", 15.0, 0.01, [9, 9], 0.2),
                   ("Unlocked Coupled", 60.0, 0.02, [2, 7], 0.4)])
    a, b = xrd.read_all(path)
    assert a.values.tolist() == [3, 1, 4, 1, 5] and b.values.tolist() == [2, 7]
    assert a["two_theta"].values[-1] == pytest.approx(20.04) and b["two_theta"].values[0] == 60.0
    assert a.attrs["wavelength"] == pytest.approx(1.5406) and a.attrs["ka2_ratio"] == 0.5
    assert a.attrs["sample"] == "LRMO-B01" and a.attrs["scan_type"] == "Locked Coupled"
    assert "Rocking Curve" in a.attrs["skipped_ranges"]


def _rawdata_xml(two_theta, counts, time=0.5, waves=(1.5406, 1.54439, 0.5), extra_columns=True):
    rows = "".join(
        f"<Datum>{time},1,{x:.4f},{x / 2:.4f},{c}{',25.0' if extra_columns else ''}</Datum>"
        for x, c in zip(two_theta, counts)
    )
    step = (two_theta[-1] - two_theta[0]) / (len(two_theta) - 1)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<RawData xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<FixedInformation><Instrument><PrimaryTracks><TrackInfoData><MountedOptics><InfoData>"
        f'<Tube><WaveLengthAlpha1 Value="{waves[0]}" Unit="A"/><WaveLengthAlpha2 Value="{waves[1]}" Unit="A"/>'
        f'<WaveLengthRatio Value="{waves[2]}"/></Tube>'
        "</InfoData></MountedOptics></TrackInfoData></PrimaryTracks></Instrument></FixedInformation>"
        "<DataRoutes><DataRoute RouteFlag=\"Final\"><ScanInformation>"
        f"<TimePerStep>{time}</TimePerStep><MeasurementPoints>{len(counts)}</MeasurementPoints>"
        '<ScanAxes><ScanAxisInfo AxisId="TwoTheta" AxisName="2Theta">'
        f"<Start>{two_theta[0]}</Start><Stop>{two_theta[-1]}</Stop><Increment>{step}</Increment>"
        "</ScanAxisInfo></ScanAxes></ScanInformation>"
        f"{rows}</DataRoute></DataRoutes></RawData>"
    )


def _brml(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("Experiment0/DataContainer.xml", "<DataContainer/>")
        for name, text in members.items():
            z.writestr(name, text)


def test_brml_written_here_reads_every_scan(tmp_path):
    x1 = np.round(np.arange(10.0, 10.5, 0.02), 4)
    c1 = (np.arange(x1.size) * 3 + 7).tolist()
    x2 = np.round(np.arange(30.0, 30.3, 0.05), 4)
    c2 = list(range(100, 100 + x2.size))
    path = tmp_path / "scan.brml"
    _brml(path, {"Experiment0/RawData1.xml": _rawdata_xml(x2, c2, time=2.0, extra_columns=False),
                 "Experiment0/RawData0.xml": _rawdata_xml(x1, c1)})
    a, b = xrd.read_all(path)
    assert a.values.tolist() == c1 and b.values.tolist() == c2  # RawData0 first
    assert a["two_theta"].values == pytest.approx(x1) and b["two_theta"].values == pytest.approx(x2)
    assert a.attrs["wavelength"] == 1.5406 and a.attrs["wavelength2"] == 1.54439 and a.attrs["ka2_ratio"] == 0.5
    assert a.attrs["count_time"] == 0.5 and b.attrs["count_time"] == 2.0
    assert a.attrs["format"] == "brml" and a.attrs["member"] == "Experiment0/RawData0.xml"
    assert a.attrs["step"] == pytest.approx(0.02)


def _xrdml(scans, unit="counts"):
    body = ""
    for kind, axis, values, time in scans:
        if kind == "list":
            positions = f"<listPositions>{' '.join(f'{v:.4f}' for v in axis)}</listPositions>"
        else:
            positions = f"<startPosition>{axis[0]}</startPosition><endPosition>{axis[-1]}</endPosition>"
        timing = (f'<commonCountingTime unit="seconds">{time}</commonCountingTime>' if np.isscalar(time)
                  else f'<countingTimes unit="seconds">{" ".join(map(str, time))}</countingTimes>')
        body += (
            '<xrdMeasurement measurementType="Scan"><usedWavelength intended="K-Alpha 1">'
            '<kAlpha1 unit="Angstrom">1.5405980</kAlpha1><kAlpha2 unit="Angstrom">1.5444260</kAlpha2>'
            "<ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1></usedWavelength>"
            '<scan scanAxis="Gonio"><dataPoints>'
            f'<positions axis="2Theta" unit="deg">{positions}</positions>'
            '<positions axis="Omega" unit="deg"><commonPosition>4.0</commonPosition></positions>'
            f'{timing}<intensities unit="{unit}">{" ".join(map(str, values))}</intensities>'
            "</dataPoints></scan></xrdMeasurement>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.1">'
            f"<sample><id>S1</id><name>LRMO</name></sample>{body}</xrdMeasurements>")


def test_xrdml_count_rates_list_positions_and_two_scans(tmp_path):
    path = tmp_path / "rates.xrdml"
    x = [20.0, 20.1, 20.25, 20.3]
    path.write_text(_xrdml([("list", x, [10.0, 20.0, 30.0, 40.0], 2.0),
                            ("range", [50.0, 51.0], [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])], unit="counts per second"))
    a, b = xrd.read_all(path)
    assert a["two_theta"].values == pytest.approx(x)
    assert a.values.tolist() == [20.0, 40.0, 60.0, 80.0]  # cps x 2 s
    assert a["esd"].values == pytest.approx(np.sqrt([20, 40, 60, 80]))
    assert b["two_theta"].values == pytest.approx([50.0, 50.5, 51.0])
    assert b.values.tolist() == [1.0, 4.0, 12.0]
    assert a.attrs["sample"] == "LRMO" and a.attrs["n_ranges"] == 2


def test_gsas_esd_and_fxye_banks(tmp_path):
    path = tmp_path / "two.gsas"
    esd_line = "".join(f"{c:8.1f}{e:8.2f}" for c, e in [(100, 10), (121, 11), (144, 12), (169, 13), (196, 14)])
    lines = [
        "written by the test",
        "BANK 1 5 1 CONST 1000.0 2.0 0 0 ESD",
        esd_line,
        "BANK 2 3 3 CONST 3000 0 0 0 FXYE",
        "3000.0 50.0 7.0",
        "3002.5 60.0 8.0",
        "3005.0 70.0 9.0",
    ]
    path.write_text("\n".join(lines) + "\n")
    a, b = xrd.read_all(path)
    assert a.values.tolist() == [100, 121, 144, 169, 196]
    assert a["esd"].values.tolist() == [10, 11, 12, 13, 14]
    assert a["two_theta"].values == pytest.approx([10.0, 10.02, 10.04, 10.06, 10.08])
    assert b["two_theta"].values == pytest.approx([30.0, 30.025, 30.05])
    assert b["esd"].values.tolist() == [7, 8, 9] and b.attrs["format"] == "gsas-fxye"


def test_std_counter_numbers_divide_the_variance(tmp_path):
    path = tmp_path / "nctr.gsas"
    fields = "".join(f"{n:2d}{c:6d}" for n, c in [(2, 400), (4, 900), (1, 100), (1, 0)])
    path.write_text("title\nBANK 1 5 1 CONST 500 10 0 0 STD\n" + fields + "\n")
    p = xrd.read(path)
    assert p.values.tolist() == [400, 900, 100, 0]  # NCHAN-1 = 4 points, as GSAS-II
    assert p["esd"].values.tolist() == pytest.approx([math.sqrt(200), math.sqrt(225), 10, 0])


def test_xy_xye_csv_headers_and_descending_angles(tmp_path):
    xye = tmp_path / "p.xye"
    xye.write_text("# doptrace test\n# wavelength = 1.5406\n/* comment */\n10.0 4 2\n10.1 9 3.5\n10.2 16 4\n")
    p = xrd.read(xye)
    assert p.values.tolist() == [4, 9, 16] and p["esd"].values.tolist() == [2, 3.5, 4]
    assert p.attrs["wavelength"] == 1.5406 and p.attrs["format"] == "xye"
    csv = tmp_path / "p.csv"
    csv.write_text("two_theta,counts\n30.2,5\n30.1,6\n30.0,7\n")
    q = xrd.read(csv)
    assert q["two_theta"].values.tolist() == [30.0, 30.1, 30.2] and q.values.tolist() == [7, 6, 5]
    assert q["esd"].values == pytest.approx(np.sqrt([7, 6, 5]))
    xy = tmp_path / "p.xy"
    xy.write_text("1.0\t100\n2.0\t200\n")
    assert xrd.read(xy).values.tolist() == [100, 200]


def test_xye_round_trip_of_a_real_pattern(shared, tmp_path):
    p = xrd.read(shared("xrd/gsas2_tutorials/LabData_data_FAP.XRA"))
    out = tmp_path / "fap.xye"
    np.savetxt(out, np.column_stack([p["two_theta"].values, p.values, p["esd"].values]), fmt="%.10g")
    q = xrd.read(out)
    assert q["two_theta"].values == pytest.approx(p["two_theta"].values, abs=1e-9)
    assert q.values.tolist() == p.values.tolist()
    assert q["esd"].values == pytest.approx(p["esd"].values, rel=1e-9)


def test_instprm_single_and_two_wavelengths(tmp_path):
    two = tmp_path / "cu.instprm"
    two.write_text("#GSAS-II instrument parameter file\nType:PXC\n"
                   "Lam1:1.5405;Lam2:1.5443;Zero:0.01;Polariz.:0.7;Azimuth:0.0;I(L2)/I(L1):0.5\n"
                   "U:2.0;V:-2.0;W:5.0;X:0.5;Y:1.5;SH/L:0.002\n")
    inst = xrd.read_instrument(two)
    assert inst.wavelengths == (1.5405, 1.5443) and inst.ka2_ratio == 0.5 and inst.zero == 0.01
    assert (inst.U, inst.V, inst.W, inst.X, inst.Y, inst.Z, inst.SH_L) == (2.0, -2.0, 5.0, 0.5, 1.5, 0.0, 0.002)
    one = tmp_path / "syn.instprm"
    one.write_text("#GSAS-II instrument parameter file; do not add/delete items!\nType:PXC\nBank:1.0\n"
                   "Lam:0.413263\nPolariz.:0.99\nAzimuth:0.0\nZero:0.0\nU:1.163\nV:-0.126\nW:0.063\n"
                   "X:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")
    mono = xrd.read_instrument(one)
    assert mono.wavelength == 0.413263 and math.isnan(mono.wavelengths[1]) and not mono.has_ka2
    assert mono.polarization == 0.99 and mono.U == 1.163


def test_instprm_bank_selection(tmp_path):
    path = tmp_path / "two_banks.instprm"
    path.write_text("#Bank 1: first\nType:PXC\nLam:1.0\nPolariz.:0.5\nU:1\nV:0\nW:1\n"
                    "#Bank 2: second\nType:PXC\nLam:2.0\nPolariz.:0.6\nU:3\nV:0\nW:4\n")
    assert xrd.read_instrument(path, bank=2).wavelength == 2.0
    assert xrd.read_instrument(path, bank=1).U == 1.0


def test_registry_lists_every_format_by_extension():
    names = {m.NAME for mods in REGISTRY.values() for m in mods}
    assert names == {"bruker-raw", "brml", "xrdml", "gsas", "xy"}
    assert [m.NAME for m in REGISTRY[".raw"]] == ["bruker-raw", "gsas"]
    assert REGISTRY[".brml"][0].NAME == "brml" and REGISTRY[".xra"][0].NAME == "gsas"


def test_prm_written_without_fortran_columns_and_single_wavelength(tmp_path):
    loose = tmp_path / "loose.prm"
    loose.write_text("INS   HTYPE   PXCR\nINS  1 ICONS 1.5405 1.5443 0.0 0 0.65 0 0.48\n"
                     "INS  1PRCF1     3    8      0.01\nINS  1PRCF11   3.0 -1.0 4.0 0.1\n")
    inst = xrd.read_instrument(loose)
    assert inst.wavelengths == (1.5405, 1.5443) and inst.polarization == 0.65 and inst.ka2_ratio == 0.48
    assert (inst.U, inst.V, inst.W) == (3.0, -1.0, 4.0)
    mono = tmp_path / "mono.prm"
    mono.write_text("INS   HTYPE   PXCR\n"
                    f"INS  1 ICONS{0.7093:10.6f}{0.0:10.6f}{0.0:10.1f}{0:10d}{0.99:10.2f}{0:5d}{0.0:10.1f}\n"
                    "INS  1PRCF11   1.000000E+00   0.000000E+00   1.000000E+00   0.000000E+00\n")
    m = xrd.read_instrument(mono)
    assert m.wavelength == 0.7093 and not m.has_ka2 and m.ka2_ratio == 0.0 and m.polarization == 0.99
