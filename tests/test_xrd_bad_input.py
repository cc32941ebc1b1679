"""XRD bad input: each problem is one XRDError whose message starts with the file's path and
names the problem; nothing is inflated, fetched or written on the way."""

from __future__ import annotations

import re
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from doptrace import xrd
from doptrace.xrd.errors import XRDError

LAB6 = "xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_LaB6_Jan2018.raw"
PRM = "xrd/gsas2_tutorials/LabData_data_INST_XRY.PRM"


def _refused(path, pattern, call=None):
    """The call raises XRDError whose message is '<path>: ...' and matches ``pattern``."""
    call = call or xrd.read_all
    with pytest.raises(XRDError) as info:
        call(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(pattern, message), message
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ readers: reader part


def test_truncated_raw_is_refused_with_the_missing_bytes_named(shared, tmp_path):
    blob = shared(LAB6).read_bytes()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(blob[:-1000])
    _refused(cut, r"truncated: range 1 data \(3040 steps\) needs bytes \d+\.\.13216 but the file has 12216")
    header_only = tmp_path / "header.raw"
    header_only.write_bytes(blob[:300])
    _refused(header_only, r"truncated: the 712-byte file header")


def test_raw_with_nan_counts_is_refused(shared, tmp_path):
    blob = bytearray(shared(LAB6).read_bytes())
    data_start = 712 + 304 + 40
    struct.pack_into("<f", blob, data_start + 4 * 100, float("nan"))
    bad = tmp_path / "nan.raw"
    bad.write_bytes(bytes(blob))
    _refused(bad, r"intensity at 2theta=11\.97\d* deg \(point 101\) is nan: NaN/inf counts")


def test_raw_with_negative_counts_is_refused(shared, tmp_path):
    blob = bytearray(shared(LAB6).read_bytes())
    struct.pack_into("<f", blob, 712 + 304 + 40, -5.0)
    bad = tmp_path / "neg.raw"
    bad.write_bytes(bytes(blob))
    _refused(bad, r"negative counts \(-5\) at 2theta=10 deg")


def test_raw_with_absurd_step_or_range_count_is_refused(shared, tmp_path):
    blob = bytearray(shared(LAB6).read_bytes())
    struct.pack_into("<d", blob, 712 + 176, -0.02)
    bad = tmp_path / "step.raw"
    bad.write_bytes(bytes(blob))
    _refused(bad, r"range 1: start 10\.0 / step -0\.02 do not describe a 2theta scan")
    blob = bytearray(shared(LAB6).read_bytes())
    struct.pack_into("<I", blob, 12, 0)
    zero = tmp_path / "zero.raw"
    zero.write_bytes(bytes(blob))
    _refused(zero, r"file header declares 0 ranges")


@pytest.mark.parametrize("suffix", [".raw", ".xrdml", ".brml", ".xye", ".XRA", ".prm"])
def test_empty_file_is_refused(tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    call = xrd.read_instrument if suffix == ".prm" else xrd.read_all
    _refused(empty, r"file is empty", call)


def test_missing_file_and_directory_are_refused(tmp_path):
    _refused(tmp_path / "nowhere.raw", r"no such file")
    _refused(tmp_path, r"is a directory")


def test_unknown_content_is_refused(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    _refused(junk, r"not a recognised powder pattern file")


def test_nan_counts_in_text_files_are_refused(tmp_path):
    xye = tmp_path / "nan.xye"
    xye.write_text("10.0 5 2\n10.1 nan 2\n10.2 7 2\n")
    _refused(xye, r"intensity at 2theta=10\.1 deg \(point 2\) is nan: NaN/inf counts")
    xrdml = tmp_path / "nan.xrdml"
    xrdml.write_text('<?xml version="1.0"?><xrdMeasurements><xrdMeasurement><scan><dataPoints>'
                     '<positions axis="2Theta"><startPosition>10</startPosition><endPosition>11</endPosition></positions>'
                     '<commonCountingTime>1</commonCountingTime><intensities unit="counts">1 NaN 3</intensities>'
                     "</dataPoints></scan></xrdMeasurement></xrdMeasurements>")
    _refused(xrdml, r"NaN/inf counts")


def test_text_problems_are_named_with_their_line(tmp_path):
    bad_row = tmp_path / "row.xy"
    bad_row.write_text("10 1\n11 2\n12 oops\n")
    _refused(bad_row, r"line 3: '12 oops' is not a row of numbers")
    unordered = tmp_path / "order.xy"
    unordered.write_text("10 1\n11 2\n10.5 3\n")
    _refused(unordered, r"2theta is not strictly increasing at point 3 \(11 then 10\.5 deg\)")
    negative = tmp_path / "neg.xy"
    negative.write_text("10 1\n11 -2\n")
    _refused(negative, r"negative intensities without esds")


def test_truncated_gsas_std_bank_is_refused(shared, tmp_path):
    text = shared("xrd/gsas2_tutorials/LabData_data_FAP.XRA").read_text()
    cut = tmp_path / "cut.XRA"
    cut.write_text("\n".join(text.splitlines()[:300]) + "\n")
    _refused(cut, r"bank 1: truncated: BANK declares 5753 points, only 2980 found")
    tof = tmp_path / "tof.gsas"
    tof.write_text("title\nBANK 1 3 1 RALF 1000 10 0 0 ALT\n 1 2 3\n")
    _refused(tof, r"RALF bank is time-of-flight data")


def _xxe_xml(target: Path) -> str:
    return ('<?xml version="1.0"?>\n'
            f'<!DOCTYPE xrdMeasurements [<!ENTITY leak SYSTEM "file://{target}">]>\n'
            '<xrdMeasurements><xrdMeasurement><scan><dataPoints>'
            '<positions axis="2Theta"><startPosition>10</startPosition><endPosition>11</endPosition></positions>'
            "<intensities>&leak;</intensities></dataPoints></scan></xrdMeasurement></xrdMeasurements>")


def test_xml_with_an_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("1 2 3")  # would parse as intensities if the entity were expanded
    xxe = tmp_path / "xxe.xrdml"
    xxe.write_text(_xxe_xml(secret))
    _refused(xxe, r"unsafe XML refused \((EntitiesForbidden|DTDForbidden)")
    laughs = tmp_path / "laughs.xrdml"
    laughs.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                      "<xrdMeasurements>&b;</xrdMeasurements>")
    _refused(laughs, r"unsafe XML refused")


def test_brml_member_with_an_external_entity_is_refused(tmp_path):
    path = tmp_path / "xxe.brml"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("Experiment0/RawData0.xml",
                   '<?xml version="1.0"?><!DOCTYPE RawData [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
                   "<RawData>&x;</RawData>")
    _refused(path, r"Experiment0/RawData0\.xml: unsafe XML refused")


def _bomb(path: Path, megabytes: int):
    """A BRML-looking zip whose one member inflates ``megabytes`` MB of zeros (streamed, so
    building it needs no big buffer)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("Experiment0/RawData0.xml", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(chunk)


def test_zip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = tmp_path / "bomb.brml"
    _bomb(bomb, 64)
    assert bomb.stat().st_size < 1_000_000  # tiny compressed, 64 MB declared and actual
    tracemalloc.start()
    started = time.perf_counter()
    _refused(bomb, r"zip member 'Experiment0/RawData0\.xml' expands \d+x \(limit 200x\): refused as a zip bomb")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # the 64 MB were never inflated
    assert elapsed < 2.0


def _patch_sizes(blob: bytearray, uncompressed: int):
    """Set the declared uncompressed size of every member in the local and central headers."""
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := blob.find(sig, start)) >= 0:
            struct.pack_into("<I", blob, at + offset, uncompressed)
            start = at + 4


def test_zip_member_declaring_a_huge_size_is_refused(tmp_path):
    path = tmp_path / "huge.brml"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("Experiment0/RawData0.xml", "<RawData/>")
    blob = bytearray(path.read_bytes())
    _patch_sizes(blob, 0xFFFF0000)
    path.write_bytes(bytes(blob))
    _refused(path, r"declares 4294901760 bytes uncompressed, more than the \d+-byte limit: refused \(zip bomb\?\)")


def test_zip_member_inflating_beyond_its_declared_size_is_refused(tmp_path):
    path = tmp_path / "liar.brml"
    text = "<RawData>" + "<Datum>1,1,10.0,5.0,3</Datum>" * 2000 + "</RawData>"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("Experiment0/RawData0.xml", text)
    blob = bytearray(path.read_bytes())
    _patch_sizes(blob, 100)  # claims 100 bytes, holds about 60 kB
    path.write_bytes(bytes(blob))
    _refused(path, r"zip member 'Experiment0/RawData0\.xml' (inflates beyond its declared 100 bytes|cannot be read)")


def test_not_a_zip_and_a_zip_without_scans_are_refused(tmp_path):
    fake = tmp_path / "fake.brml"
    fake.write_bytes(b"PK\x03\x04RawData" + bytes(64))
    _refused(fake, r"not a readable zip container")
    empty = tmp_path / "noscan.brml"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("Experiment0/DataContainer.xml", "<DataContainer/>")
    _refused(empty, r"no RawData<N>\.xml member")


def test_brml_with_fewer_rows_than_declared_is_refused(tmp_path):
    path = tmp_path / "short.brml"
    rows = "".join(f"<Datum>1,1,{10 + 0.02 * i:.2f},{5 + 0.01 * i:.2f},{i}</Datum>" for i in range(5))
    xml = ("<RawData><DataRoutes><DataRoute><ScanInformation><MeasurementPoints>10</MeasurementPoints>"
           f"</ScanInformation>{rows}</DataRoute></DataRoutes></RawData>")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("Experiment0/RawData0.xml", xml)
    _refused(path, r"MeasurementPoints says 10 but 5 <Datum> rows are present \(truncated\?\)")


def test_bad_instrument_files_are_refused(shared, tmp_path):
    text = shared(PRM).read_text()
    no_icons = tmp_path / "noicons.prm"
    no_icons.write_text("\n".join(line for line in text.splitlines() if "ICONS" not in line))
    _refused(no_icons, r"no 'INS  1 ICONS' record \(wavelengths\) for bank 1", xrd.read_instrument)
    nan_u = tmp_path / "nan.prm"
    nan_u.write_text(text.replace("2.000000E+00", "nan         ", 1))
    _refused(nan_u, r"PRCF11 U V W: 'nan' is not finite", xrd.read_instrument)
    neutron = tmp_path / "neutron.prm"
    neutron.write_text(text.replace("PXCR", "PNCR"))
    _refused(neutron, r"HTYPE PNCR: not a constant-wavelength X-ray instrument", xrd.read_instrument)
    instprm = tmp_path / "noU.instprm"
    instprm.write_text("Type:PXC\nLam:1.54\nPolariz.:0.5\nV:0\nW:1\n")
    _refused(instprm, r"missing 'U'", xrd.read_instrument)
    bad_pol = tmp_path / "pol.instprm"
    bad_pol.write_text("Type:PXC\nLam:1.54\nPolariz.:1.5\nU:1\nV:0\nW:1\n")
    _refused(bad_pol, r"polarization 1\.5 is outside 0\.\.1", xrd.read_instrument)


def test_range_index_out_of_bounds(shared):
    path = shared(LAB6)
    with pytest.raises(XRDError, match=re.escape(f"{path}: range 1 asked but the file has 1 range (0..0)")):
        xrd.read(path, range=1)


def test_inputs_are_never_modified(shared):
    path = shared(LAB6)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    xrd.read_all(path)
    xrd.describe(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert np.isfinite(xrd.read(path).values).all()


def test_damaged_real_files_give_only_xrd_errors(shared, tmp_path):
    """Truncations and random byte damage of every real file: each read either succeeds or
    raises XRDError, never another exception (fixed seed, so the test is repeatable)."""
    rng = np.random.default_rng(20261125)
    names = [LAB6, PRM, "xrd/gsas2_tutorials/LabData_data_FAP.XRA", "xrd/xylib_samples/format1.raw",
             "xrd/xylib_samples/empyrean.xrdml", "xrd/gsas2_tutorials/MDtutorials_CWInstDemo_data_NIST660CBI.gsas"]
    outcomes = {"read": 0, "refused": 0}
    for name in names:
        source = shared(name)
        blob = source.read_bytes()
        call = xrd.read_instrument if source.suffix == ".PRM" else xrd.read_all
        for trial in range(24):
            damaged = bytearray(blob)
            if trial % 2 == 0:
                damaged = damaged[: int(rng.integers(0, len(blob)))]
            else:
                where = rng.integers(0, len(blob), size=int(rng.integers(1, 16)))
                damaged_values = rng.integers(0, 256, size=where.size)
                for i, v in zip(where, damaged_values):
                    damaged[int(i)] = int(v)
            target = tmp_path / f"damaged{source.suffix}"
            target.write_bytes(bytes(damaged))
            try:
                call(target)
                outcomes["read"] += 1
            except XRDError as exc:
                assert str(exc).startswith(f"{target}: ")
                outcomes["refused"] += 1
    assert outcomes["refused"] > 40 and sum(outcomes.values()) == 24 * len(names)
