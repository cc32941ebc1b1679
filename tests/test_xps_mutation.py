"""Seeded, bounded mutation test of every XPS reader (issue 12).

Each reader gets seed files (simulated ones always, real ones from ``../shared/data/xps`` when
present) and a fixed, seeded set of mutations: truncations, byte flips, line deletions and
duplications, absurd numbers (1e308, -1, 0, 2^63, NaN, inf) in place of numbers; for the XML and
xlsx containers also XXE, entity expansion (billion laughs), zip bombs, path-traversal member
names and mutated members. Every outcome must be a list of finite spectra or an ``XPSError`` (the
package's error family): never another exception, a case longer than a few seconds, or a large
allocation. The case counts are small so each reader takes a few seconds.
"""

from __future__ import annotations

import io
import random
import re
import resource
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from doptrace import xps
from doptrace.xps.errors import XPSError
from doptrace.xps.formats import avantage, phi, specs_xml, specs_xy, text, vamas
from doptrace.xps.formats._spectrum import make_spectrum
from doptrace.xps.simulate import HV, simulate_series

from conftest import SHARED_DATA

ABSURD = [b"1e308", b"-1e308", b"-1", b"0", b"9223372036854775808", b"nan", b"inf", b"-inf", b"1e-320", b"NaN"]
CASE_SECONDS = 5.0
N_CASES = 60
_NUMBER = re.compile(rb"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def mutations(data: bytes, rng: random.Random, n: int = N_CASES):
    """``n`` mutated copies of ``data`` (name, bytes), seeded by ``rng``."""
    numbers = [m.span() for m in _NUMBER.finditer(data)]
    lines = data.split(b"\n")
    for i in range(n):
        kind = i % 6
        if kind == 0:
            cut = rng.randrange(0, max(len(data), 1))
            yield f"truncate@{cut}", data[:cut]
        elif kind == 1:
            out = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(len(out))] = rng.randrange(256)
            yield "byteflip", bytes(out)
        elif kind in (2, 3) and numbers:
            start, end = numbers[rng.randrange(len(numbers))]
            value = rng.choice(ABSURD)
            yield f"number@{start}={value.decode()}", data[:start] + value + data[end:]
        elif kind == 4 and len(lines) > 2:
            j = rng.randrange(len(lines))
            yield f"delete-line{j}", b"\n".join(lines[:j] + lines[j + 1:])
        else:
            j = rng.randrange(len(lines))
            yield f"duplicate-line{j}", b"\n".join(lines[: j + 1] + lines[j:])


def check_outcome(path: Path, label: str, reader=None):
    """Read ``path``; a value (finite spectra) or XPSError; anything else fails with the case."""
    started = time.perf_counter()
    try:
        blocks = reader(path) if reader is not None else xps.read(path)
    except XPSError as exc:
        message = str(exc)
        assert message and "Traceback" not in message, label
        outcome = "error"
    except Exception as exc:  # noqa: BLE001 - the test exists to catch these
        pytest.fail(f"{label}: {type(exc).__name__} outside the XPSError family: {exc}")
    else:
        assert blocks, label
        for block in blocks:
            assert np.all(np.isfinite(block.values)), label
            assert np.all(np.isfinite(block[block.dims[0]].values)), label
        outcome = "value"
    elapsed = time.perf_counter() - started
    assert elapsed < CASE_SECONDS, f"{label}: took {elapsed:.1f} s"
    return outcome


def run_campaign(tmp_path, seeds: dict[str, bytes], suffix: str, seed: int, reader=None, n: int = N_CASES):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = random.Random(seed)
    outcomes = {"value": 0, "error": 0}
    for name, data in seeds.items():
        for index, (label, mutated) in enumerate(mutations(data, rng, n)):
            path = tmp_path / f"{name}-{index}{suffix}"
            path.write_bytes(mutated)
            outcomes[check_outcome(path, f"{name} {label}", reader)] += 1
            path.unlink()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 400, f"peak memory grew {grown_mb:.0f} MB during the campaign"
    assert outcomes["error"] > 0  # the mutations do reach the checks
    return outcomes


def _real(*relative: str) -> dict[str, bytes]:
    out = {}
    for rel in relative:
        path = SHARED_DATA / "xps" / rel
        if path.exists():
            out[Path(rel).name] = path.read_bytes()
    return out


# ----------------------------------------------------------------------------- seed builders


def sim_vamas(tmp_path) -> bytes:
    simulate_series(tmp_path / "seed.vms", etch_times=(0.0, 50.0), regions=("C 1s",), step=0.5, seed=1)
    return (tmp_path / "seed.vms").read_bytes()


def sim_vamas_casa(tmp_path) -> bytes:
    block = make_spectrum("s", np.linspace(290, 280, 21), 100 + 50 * np.exp(-((np.linspace(290, 280, 21) - 285) ** 2)),
                          excitation_energy=HV, region="C 1s", dwell_time=0.1, scans=2)
    block.attrs["comment"] = (
        "Casa Info Follows\n1\nCalib M = 284.6 A = 284.8 BE ADD\n1\nannot text v2315 Display 0.1 0.1\nC 1s\n1\n"
        "CASA region (*C 1s*) (*Shirley*) 1196.6 1206.6 1 2 0 0 0 -450 0 0 (*C 1s*) 12.011 0 1\n1\n"
        "CASA comp (*C-C*) (*GL(30)*) Area 100 0 1e5 -1 1 MFWHM 1.2 0.5 2 -1 1 Position 1201.8 1196.6 1206.6 -1 1 "
        "RSF 1 MASS 12 INDEX -1 (*C 1s*) CONST (**) UNCORRECTEDRSF 1")
    return vamas.write(tmp_path / "casa.vms", [block]).read_bytes()


def sim_csv() -> bytes:
    be = np.arange(280.0, 290.0, 0.25)
    rows = "\n".join(f"{e:.2f},{100 + 900 * np.exp(-((e - 285) ** 2)):.1f}" for e in be)
    return ("BE/eV,CPS\n" + rows + "\n").encode()


def sim_casa_text() -> bytes:
    lines = ["Cycle 0:sample:C 1s", "Characteristic Energy eV\t1486.6\tAcquisition Time s\t0.2", "K.E.\tCounts\tB.E.\tCPS"]
    for ke in np.arange(1196.0, 1206.0, 0.5):
        cps = 100 + 900 * np.exp(-((1486.6 - ke - 285) ** 2))
        lines.append(f"{ke:.1f}\t{cps * 0.2:.1f}\t{1486.6 - ke:.1f}\t{cps:.2f}")
    return ("\r\n".join(lines) + "\r\n").encode()


def sim_specs_xy() -> bytes:
    head = ["# Created by:        SpecsLab Prodigy, Version 4.0", "# Energy Axis:       Binding Energy",
            "# Count Rate:        Counts per Second", "# Group:             g", "# Region:            C 1s",
            "# Pass Energy:       20", "# Excitation Energy: 1486.61", "# Dwell Time:        0.1",
            "# Values/Curve:      20", "# Cycle: 0, Curve: 0, Scan: 0"]
    rows = [f"{e:.2f}  {100 + 900 * np.exp(-((e - 285) ** 2)):.2f}" for e in np.arange(280.0, 290.0, 0.5)]
    return ("\n".join(head + rows) + "\n").encode()


def sim_specs_xml() -> bytes:
    n, head, tail, shifts = 20, 1, 1, (-0.01, 0.01)
    counts = " ".join(f"<ulong>{int(100 + 50 * np.sin(i))}</ulong>" for i in range((n + head + tail) * len(shifts)))
    detectors = "".join(f'<struct type_name="Detector"><double name="shift">{s}</double></struct>' for s in shifts)
    xml = (
        '<?xml version="1.0"?>\n<any version="1.6" xmlns="http://www.specs.de/Serializer">'
        '<struct type_name="RegionGroup"><string name="name">grp</string><sequence name="regions">'
        '<struct type_name="RegionData"><string name="name">C 1s</string><struct name="region">'
        f'<ulong name="values_per_curve">{n}</ulong><ulong name="curves_per_scan">1</ulong>'
        '<double name="scan_delta">0.5</double><double name="kinetic_energy">1196.6</double>'
        '<double name="excitation_energy">1486.6</double><double name="pass_energy">20</double>'
        '<double name="dwell_time">0.1</double><ulong name="num_scans">1</ulong></struct>'
        f'<ulong name="mcd_head">{head}</ulong><ulong name="mcd_tail">{tail}</ulong>{detectors}'
        '<struct type_name="Cycle"><struct type_name="ScanData">'
        f'<sequence name="counts" length="{(n + head + tail) * len(shifts)}">{counts}</sequence>'
        '</struct></struct></struct></sequence></struct></any>\n')
    # The reader's parser is namespace-blind on tags: keep SpecsLab's default namespace off the tags.
    return xml.replace(' xmlns="http://www.specs.de/Serializer"', ' type="http://www.specs.de/Serializer"').encode()


def sim_phi() -> bytes:
    n = 40
    header = ["SOFH", "Platform: PC", "FileType: SPECTRUM", "FileDesc: sim",
              f"SpectralRegDef: 1 1 C1s 6 {n} -0.25 290.0000 280.2500 289.0000 1.0000 0.100000 23.50 AREA",
              "SpectralRegDef2: 1 290.0 3 0 2 8000", "NoSpatialArea: 1", "XraySource: Al 1486.6 mono", "EOFH", ""]
    values = (100 + 900 * np.exp(-((np.linspace(290, 280.25, n) - 285) ** 2))).astype("<f4")
    record = [0] * 24
    record[0], record[6], record[7], record[8], record[9] = 1, 1, 1, n, 1
    record[22], record[23] = 4 * n, 4 + 96
    binary = struct.pack("<I", 1) + struct.pack("<24I", *record) + values.tobytes()
    return "\r\n".join(header).encode() + binary


def sim_xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "C1s Scan"
    sheet.append(["Binding Energy (E)", "Counts / s", "C-C", "Backgnd.", "Envelope"])
    sheet.append(["eV", "Counts / s"])
    for e in np.arange(290.0, 280.0, -0.5):
        peak = 900 * np.exp(-((e - 285) ** 2))
        sheet.append([float(e), float(100 + peak), float(100 + peak), 100.0, float(100 + peak)])
    stream = io.BytesIO()
    book.save(stream)
    return stream.getvalue()


# ----------------------------------------------------------------------------- text-like readers


@pytest.mark.parametrize("seed", [1, 2])
def test_vamas_mutations(tmp_path, seed):
    seeds = {"sim": sim_vamas(tmp_path), "casa": sim_vamas_casa(tmp_path),
             **_real("khervefitting/Pt4f.vms", "real-world/lg4x_Mutlipak_vms.npl")}
    out = run_campaign(tmp_path, seeds, ".vms", seed)
    assert out["value"] > 0


def test_casa_comment_mutations(tmp_path):
    # The CasaXPS model in a block comment: parse and rebuild the model; XPSError or a model.
    from doptrace.xps.formats import casa
    from doptrace.xps.model import from_casa

    def read_model(path):
        blocks = xps.read(path)
        for block in blocks:
            info = casa.from_block(block)
            if info is not None and info.comps and info.regions:
                from_casa(info, HV, source=str(path))
        return blocks

    run_campaign(tmp_path, {"casa": sim_vamas_casa(tmp_path)}, ".vms", 3, reader=read_model, n=90)


@pytest.mark.parametrize("seed", [1, 2])
def test_text_mutations(tmp_path, seed):
    seeds = {"csv": sim_csv(), **_real("lg4x-v2/0-150W_NiWC1s_C1s.txt")}
    run_campaign(tmp_path, seeds, ".csv", seed)
    run_campaign(tmp_path, {"casa_export": sim_casa_text()}, ".txt", seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_specs_xy_mutations(tmp_path, seed):
    seeds = {"sim": sim_specs_xy(), **_real("pynxtools-xps/MgFe2O4_small.xy")}
    run_campaign(tmp_path, seeds, ".xy", seed, reader=specs_xy.read, n=40)


@pytest.mark.parametrize("seed", [1, 2])
def test_phi_mutations(tmp_path, seed):
    seeds = {"sim": sim_phi(), **_real("pynxtools-xps/SnO2_10nm.spe")}
    run_campaign(tmp_path, seeds, ".spe", seed, reader=phi.read)


def test_values_per_curve_and_header_counts_are_honoured(tmp_path):
    path = tmp_path / "short.xy"
    path.write_bytes(sim_specs_xy().replace(b"# Values/Curve:      20", b"# Values/Curve:      21"))
    with pytest.raises(XPSError, match=r"region 'C 1s' cycle 0: 20 data points, but '# Values/Curve: 21'"):
        specs_xy.read(path)
    path = tmp_path / "nan.xy"
    data = sim_specs_xy()
    path.write_bytes(data.replace(data.splitlines()[12].split()[1], b"nan", 1))
    with pytest.raises(XPSError, match="NaN or infinite intensity"):
        specs_xy.read(path)
    path = tmp_path / "bad.spe"
    path.write_bytes(sim_phi().replace(b"SpectralRegDef2: 1 290.0 3", b"SpectralRegDef2: 1 290.0 nan"))
    with pytest.raises(XPSError, match="malformed SpectralRegDef2 line"):
        phi.read(path)
    path.write_bytes(sim_phi().replace(b"C1s 6 40", b"C1s 6 41"))
    with pytest.raises(XPSError, match="region 'C1s': 40 values, header says 41"):
        phi.read(path)
    good = tmp_path / "good.spe"
    good.write_bytes(sim_phi())
    (spectrum,) = phi.read(good)
    assert spectrum.sizes["binding_energy"] == 40 and spectrum.attrs["region"] == "C 1s"
    assert spectrum.attrs["scans"] == 3 and spectrum.attrs["dwell_time"] == 0.1


# ----------------------------------------------------------------------------- XML and xlsx containers


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE any [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       b'<any type="http://www.specs.de/Serializer"><string name="name">&xxe;</string></any>\n')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']>\n<any type="http://www.specs.de/Serializer"><string name="name">&lol9;</string></any>\n')


@pytest.mark.parametrize("seed", [1, 2])
def test_specs_xml_mutations(tmp_path, seed):
    seeds = {"sim": sim_specs_xml(), **_real("pynxtools-xps/In-situ_PBTTT_XPS_SPECS.xml")}
    out = run_campaign(tmp_path, seeds, ".xml", seed, reader=specs_xml.read, n=40)
    assert out["value"] > 0


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_specs_xml_entities_refused(tmp_path, payload):
    path = tmp_path / "evil.xml"
    path.write_bytes(payload)
    assert check_outcome(path, "entities", specs_xml.read) == "error"
    with pytest.raises(XPSError, match="refused XML"):
        specs_xml.read(path)


def _zip_with(base: bytes, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
              compression=zipfile.ZIP_DEFLATED) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info.filename)))
        for name, data in (add or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("seed", [1, 2])
def test_avantage_member_mutations(tmp_path, seed):
    """Mutations inside the workbook's sheet XML (the zip itself stays valid), then of the zip bytes."""
    base = sim_xlsx()
    sheet = "xl/worksheets/sheet1.xml"
    sheet_xml = zipfile.ZipFile(io.BytesIO(base)).read(sheet)
    rng = random.Random(seed)
    outcomes = {"value": 0, "error": 0}
    for index, (label, mutated) in enumerate(mutations(sheet_xml, rng, 40)):
        path = tmp_path / f"m{index}.xlsx"
        path.write_bytes(_zip_with(base, replace={sheet: mutated}))
        outcomes[check_outcome(path, f"sheet1.xml {label}", avantage.read)] += 1
    assert outcomes["value"] > 0 and outcomes["error"] > 0
    seeds = {"sim": base, **_real("khervefitting/STO.xlsx")}
    run_campaign(tmp_path, seeds, ".xlsx", seed, reader=avantage.read, n=24)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the duplicate-member case writes one on purpose
@pytest.mark.parametrize("case", ["xxe", "laughs", "external-dtd", "bomb", "inflated-shared-strings", "traversal",
                                  "duplicate-member", "missing-sheet"])
def test_avantage_container_attacks(tmp_path, case):
    base = sim_xlsx()
    sheet = "xl/worksheets/sheet1.xml"
    sheet_xml = zipfile.ZipFile(io.BytesIO(base)).read(sheet)
    if case == "xxe":
        data = _zip_with(base, replace={sheet: sheet_xml.replace(
            b"<worksheet", b'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<worksheet', 1).replace(
            b"<v>", b"<v>&xxe;", 1)})
    elif case == "laughs":
        dtd = LAUGHS.split(b"\n")[1]
        data = _zip_with(base, replace={sheet: sheet_xml.replace(b"<worksheet", dtd + b"\n<worksheet", 1).replace(
            b"<v>", b"<v>&lol9;", 1)})
    elif case == "external-dtd":
        data = _zip_with(base, replace={sheet: sheet_xml.replace(
            b"<worksheet", b'<!DOCTYPE worksheet SYSTEM "http://example.invalid/x.dtd">\n<worksheet', 1)})
    elif case == "bomb":
        data = _zip_with(base, add={"xl/media/bomb.bin": b"\0" * (64 * 1024 * 1024)})
    elif case == "inflated-shared-strings":
        strings = b"<sst>" + b"<si><t>" + b"A" * (40 * 1024 * 1024) + b"</t></si></sst>"
        data = _zip_with(base, replace={"xl/sharedStrings.xml": strings} if "xl/sharedStrings.xml" in
                         zipfile.ZipFile(io.BytesIO(base)).namelist() else None,
                         add=None if "xl/sharedStrings.xml" in zipfile.ZipFile(io.BytesIO(base)).namelist()
                         else {"xl/sharedStrings.xml": strings})
    elif case == "duplicate-member":
        data = _zip_with(base, add={sheet: sheet_xml.replace(b"<v>", b"<v>9", 1)})
    elif case == "missing-sheet":
        src = zipfile.ZipFile(io.BytesIO(base))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                if info.filename != sheet:
                    dst.writestr(info.filename, src.read(info.filename))
        data = out.getvalue()
    else:
        data = _zip_with(base, add={"../../evil.xml": b"<x/>"})
    path = tmp_path / f"{case}.xlsx"
    path.write_bytes(data)
    assert len(data) < 2 * 1024 * 1024  # small on disk: the danger is what it inflates to
    started = time.perf_counter()
    with pytest.raises(XPSError) as exc:
        avantage.read(path)
    assert time.perf_counter() - started < 2.0
    message = str(exc.value)
    expected = {"bomb": "refusing a zip bomb", "inflated-shared-strings": "refusing a zip bomb",
                "traversal": "unsafe path", "duplicate-member": "twice (ambiguous)",
                "missing-sheet": "lists worksheet 'xl/worksheets/sheet1.xml', which is missing", "xxe": "declares a DTD or entities", "external-dtd": "declares a DTD or entities", "laughs": "declares a DTD or entities"}[case]
    assert message.startswith(str(path)) and expected in message, message
