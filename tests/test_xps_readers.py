"""XPS readers and writers against real files, the ``vamas`` PyPI package and known truths."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import pytest

from doptrace import xps
from doptrace.xps.errors import XPSError
from doptrace.xps.formats import REGISTRY, avantage, casa, phi, reader_for, specs_xml, specs_xy, text, vamas
from doptrace.xps.formats._spectrum import make_spectrum

from conftest import SHARED_DATA

XPS_DATA = SHARED_DATA / "xps"
FRAGMENTS = {"casa_header.vms", "casa_process.vms", "kratos.vms", "phi.vms", "specs_block.vms", "specs_header.vms"}
#: Real .vms files refused by design, with the one-line reason the reader must give.
REFUSED_VMS = {
    # Omicron EIS export whose first block header lacks a line (real-world/PROVENANCE.md).
    "feranick_1.vms": r"feranick_1.vms: line 26: .*found the technique 'XPS': the block header is a line short",
}


def all_vms():
    return sorted(XPS_DATA.rglob("*.vms")) if XPS_DATA.exists() else []


# ----------------------------------------------------------------------------- every real .vms


def test_every_real_vms_reads(shared):
    shared("xps/PROVENANCE.md")
    files = all_vms()
    # 16 from the original sources + 4 in real-world/ (two xpsdeeplearning CasaXPS 2.3 files, two
    # Omicron EIS exports); the PHI MultiPak .npl is checked in test_xps_real_world.py.
    assert len(files) == 20
    spectra_files = 0
    for path in files:
        if path.name in REFUSED_VMS:
            with pytest.raises(XPSError, match=REFUSED_VMS[path.name]) as exc:
                xps.read(path)
            assert "\n" not in str(exc.value)
            continue
        if path.name in FRAGMENTS:
            # Comment fragments (metadata only): their text reads, xps.read says clearly what they are.
            assert vamas.read_comment_fragment(path)
            with pytest.raises(XPSError, match="comment fragment"):
                xps.read(path)
            continue
        blocks = xps.read(path)
        spectra_files += 1
        assert blocks, path
        for block in blocks:
            assert block.dims == ("binding_energy",)
            be = block["binding_energy"].values
            assert np.all(np.diff(be) > 0), f"{path} block {block.attrs['block_index']} not ascending"
            assert np.all(np.isfinite(block.values))
            assert block.attrs["technique"] == "XPS"
            assert block.attrs["counts_per_unit"] > 0
            assert block.attrs["region"], f"{path} block {block.attrs['block_index']} has no region name"
    assert spectra_files == 13


@pytest.mark.parametrize("name", ["ARXPS.vms", "assigned.vms", "multiplex.vms", "polyethyleneglycol.vms",
                                  "single_sample.vms", "survey.vms"])
def test_cross_check_with_vamas_package(shared, name):
    import vamas as vamas_pkg

    path = shared(f"xps/cheminfo-vamas/{name}")
    _compare_with_package(vamas_pkg.Vamas(str(path)), xps.read(path))


@pytest.mark.parametrize("relative", ["khervefitting/Pt4f.vms", "pynxtools-xps/regular.vms"])
def test_cross_check_with_vamas_package_other_sources(shared, relative):
    import vamas as vamas_pkg

    path = shared(f"xps/{relative}")
    _compare_with_package(vamas_pkg.Vamas(str(path)), xps.read(path))


def _compare_with_package(reference, ours):
    assert len(reference.blocks) == len(ours)
    for ref, block in zip(reference.blocks, ours):
        y = np.array(ref.corresponding_variables[0].y_values)
        x = ref.x_start + ref.x_step * np.arange(y.size)
        if ref.x_label.lower().startswith("kinetic"):
            x = ref.analysis_source_characteristic_energy - x
        order = np.argsort(x)
        assert block.sizes["binding_energy"] == y.size
        np.testing.assert_allclose(block["binding_energy"].values, x[order], rtol=0, atol=1e-9)
        # Our values are counts per second; x counts_per_unit gives the stored counts back.
        np.testing.assert_allclose(block.values * block.attrs["counts_per_unit"], y[order], rtol=1e-12)
        assert block.attrs["dwell_time"] == pytest.approx(ref.signal_collection_time)
        assert block.attrs["scans"] == ref.num_scans_to_compile_block
        assert block.attrs["region"].replace(" ", "") == (ref.species_label + ref.transition_or_charge_state_label).replace(" ", "")
        if len(ref.corresponding_variables) > 1:
            np.testing.assert_allclose(block["transmission"].values, np.array(ref.corresponding_variables[1].y_values)[order])


# ----------------------------------------------------------------------------- facts from PROVENANCE.md


def test_assigned_vms_facts(shared):
    blocks = xps.read(shared("xps/cheminfo-vamas/assigned.vms"))
    assert len(blocks) == 54
    assert {b.attrs["excitation_energy"] for b in blocks} == {1486.69}
    assert all("transmission" in b.coords for b in blocks)
    assert all(b.attrs["units"] == "counts/s" for b in blocks)
    labels = list(blocks[0].attrs["experimental_variables"])
    assert labels == ["Index", "PositionX [mm]", "PositionY [mm]", "PositionZ [mm]"]
    positions = {tuple(b.attrs["experimental_variables"][k] for k in labels[1:]) for b in blocks}
    # PROVENANCE.md says 5 analysis positions; the file holds 6 (six CasaRowLabel samples, 9 blocks each).
    assert len(positions) == 6
    assert sorted(collections.Counter(b.attrs["sample"] for b in blocks).values()) == [9] * 6
    assert math.isnan(blocks[0].attrs["etch_time"])
    mo = [b for b in blocks if b.attrs["region"] == "Mo 3d"]
    assert len(mo) == 6
    # Pass energy from the VAMAS field equals the Kratos comment's "Resolution : 40.00".
    assert all(b.attrs["pass_energy"] == 40.0 and "Resolution : 40.00" in b.attrs["comment"] for b in mo)
    # Kratos comment says "Dwell time : 448ms" and "Sweeps : 6" for this Mo 3d region: VAMAS fields agree.
    vendor = vamas.parse_vendor_comment(mo[-1].attrs["comment"])
    assert vendor["dwell_time"] == pytest.approx(mo[-1].attrs["dwell_time"], rel=1e-3)
    assert vendor["scans"] == mo[-1].attrs["scans"] == 6


def test_arxps_angles_stack(shared):
    blocks = xps.read(shared("xps/cheminfo-vamas/ARXPS.vms"))
    assert len(blocks) == 15
    assert vamas.read_header(shared("xps/cheminfo-vamas/ARXPS.vms")).experiment_mode == "MAP"
    for region in ("O 1s", "C 1s", "Al 2p"):
        series = xps.stack_series(blocks, region, by="Angle")
        assert series.dims == ("Angle", "binding_energy")
        assert series["Angle"].values.tolist() == [0.0, 40.0, 55.0, 63.0, 70.0]
        assert series["Angle"].attrs["units"] == "degree"
        chosen = [b for b in blocks if b.attrs["region"] == region]
        np.testing.assert_array_equal(series.sel(Angle=55.0).values,
                                      next(b for b in chosen if b.attrs["experimental_variables"]["Angle"] == 55).values)
        np.testing.assert_allclose(series["counts_per_unit"].values, [b.attrs["counts_per_unit"] for b in chosen])
    with pytest.raises(XPSError, match="no 'etch_time' value"):
        xps.stack_series(blocks, "O 1s")


def test_leading_blank_crlf_lines(shared):
    import vamas as vamas_pkg

    path = shared("xps/lg4x-v2/0-150W.vms")
    raw = path.read_bytes()
    assert raw.startswith(b"\r\n\r\n")
    blocks = xps.read(path)
    assert len(blocks) == 5
    assert [b.attrs["region"] for b in blocks] == ["wide", "Ni 2p", "O 1s", "C 1s", "W 4f"]
    # The strict package fails on the blank lines; fed the same bytes without them it agrees with us.
    _compare_with_package(vamas_pkg.Vamas(raw.lstrip(b"\r\n")), blocks)


def test_binding_energy_descending_file(shared):
    path = shared("xps/cheminfo-vamas/polyethyleneglycol.vms")
    blocks = xps.read(path)
    assert [b.attrs["abscissa"] for b in blocks] == ["binding energy"] * 4
    lines = vamas.split_lines(path.read_text(encoding="latin-1"))
    at = lines.index("Binding energy")
    start, step = float(lines[at + 2]), float(lines[at + 3])
    assert step < 0  # stored high -> low
    first = blocks[0]
    assert first["binding_energy"].values[-1] == pytest.approx(start)
    assert first["binding_energy"].values[0] == pytest.approx(start + step * (first.sizes["binding_energy"] - 1))


def test_regular_irregular_and_specs_xy_agree(shared):
    regular = xps.read(shared("xps/pynxtools-xps/regular.vms"))[0]
    irregular = xps.read(shared("xps/pynxtools-xps/irregular.vms"))[0]
    assert irregular.attrs["scan_mode"] == "IRREGULAR" and regular.attrs["scan_mode"] == "REGULAR"
    np.testing.assert_allclose(regular["binding_energy"].values, irregular["binding_energy"].values, atol=1e-9)
    np.testing.assert_allclose(regular.values, irregular.values, rtol=1e-12)
    np.testing.assert_allclose(regular["transmission"].values, irregular["transmission"].values, rtol=1e-6)
    # Same SPECS survey exported by Prodigy as .xy (counts/s, rounded to 8 digits).
    xy = xps.read(shared("xps/pynxtools-xps/MgFe2O4_small.xy"))
    assert [b.attrs["region"] for b in xy] == ["Survey", "Fe 2p"]
    np.testing.assert_allclose(xy[0]["binding_energy"].values, regular["binding_energy"].values, atol=1e-9)
    np.testing.assert_allclose(xy[0].values, regular.values, rtol=1e-5)
    assert xy[0].attrs["excitation_energy"] == 1486.61 and xy[0].attrs["pass_energy"] == 100
    assert xy[1].sizes["binding_energy"] == 56


# ----------------------------------------------------------------------------- CasaXPS comments


def test_casa_block_comment_file(shared):
    info = casa.parse_comment(shared("xps/cheminfo-vamas/casaBlockComment.txt").read_text(), source="cbc")
    assert info.present
    assert len(info.comps) == 10 and len(info.regions) == 1
    region = info.regions[0]
    assert (region.name, region.background, region.ke_start, region.ke_end) == ("Mo 3d", "Shirley", 1249.3343, 1262.7065)
    assert region.rsf == 10.804667 and region.average_width == 2 and region.parameters == (392.54541, -450.0, 0.0, 0.0)
    assert region.tag == "Mo 3d" and region.mass == 95.9219 and region.library_rsf == 9.5
    assert region.binding_window(1486.69) == pytest.approx((1486.69 - 1262.7065, 1486.69 - 1249.3343))
    first, second = info.comps[0], info.comps[1]
    assert first.name == "Mo 3d MoS2 2H" and first.lineshape == "LA(1.53,243)"
    assert first.area == casa.CasaParam(230.36971, 1e-20, 2327991.0, -1, 1.0)
    assert first.fwhm == casa.CasaParam(0.88528218, 0.2, 2.0, -1, 1.0)
    assert first.position == casa.CasaPosition(1257.22, 1257.02, 1257.22, -1, 1.0)
    assert (first.rsf, first.mass, first.index, first.tag, first.uncorrected_rsf) == (10.804667, 95.9219, -1, "Mo 3d", 9.5)
    assert second.area.ref == 0 and second.area.factor == 0.66666667
    assert second.position.ref == 0 and second.position.offset == -3.14
    assert info.comps[2].lineshape == "LA(1.53,243)" and info.comps[2].lineshape_flags == "z"
    assert info.comps[3].fwhm.ref == 2 and info.comps[3].fwhm.factor == 1
    assert [c.area.ref for c in info.comps] == [-1, 0, -1, 2, -1, -1, -1, 6, -1, 8]
    assert info.process_lines == ["Calib M = 281.1700 A = 284.8 BE ADD", "Calib M = 284.7999 A = 284.8 BE ADD"]
    assert info.calibration_shift == pytest.approx((284.8 - 281.17) + (284.8 - 284.7999))
    assert "Dwell time : 448ms" in info.vendor_lines


def test_casa_assigned_vms_comp_lines(shared):
    path = shared("xps/cheminfo-vamas/assigned.vms")
    blocks = xps.read(path)
    infos = [casa.from_block(b) for b in blocks]
    assert sum(len(i.comps) for i in infos if i) == 96
    assert sum(len(i.comps) for i in infos if i) == path.read_text(encoding="latin-1").count("CASA comp")
    shapes = {c.lineshape for i in infos if i for c in i.comps}
    assert "LA(1.53,243)" in shapes
    backgrounds = {r.background_kind for i in infos if i for r in i.regions}
    assert {"shirley", "tougaard_u2"} <= backgrounds
    # casaBlockComment.txt is one of these blocks' comments: the parsed models are equal.
    alone = casa.parse_comment(shared("xps/cheminfo-vamas/casaBlockComment.txt").read_text())
    assert casa.from_block(xps.read(shared("xps/cheminfo-vamas/survey.vms"))[0]) is None  # Kratos-only comment
    strip = lambda comps: [(c.name, c.lineshape, c.area, c.fwhm, c.position) for c in comps]  # noqa: E731
    assert any(i and strip(i.comps) == strip(alone.comps) for i in infos)


def test_casa_fragments(shared):
    process = casa.parse_comment(vamas.read_comment_fragment(shared("xps/pynxtools-xps/casa_process.vms")))
    assert len(process.process_lines) == 10 and len(process.annotations) == 2
    assert process.regions[0].background_kind == "tougaard_u2"
    assert process.regions[0].parameters[:2] == (79.760588, -1450.0)
    assert [c.lineshape for c in process.comps] == ["LF(0.9,1.1,50,300,3)"] * 3
    assert [c.fwhm.ref for c in process.comps] == [-1, 0, 0]
    assert process.calibrations[0].measured == (282.4, 283.5)
    header = casa.parse_comment(vamas.read_comment_fragment(shared("xps/pynxtools-xps/casa_header.vms")))
    assert header.present and header.version == "CasaXPS Version 2.3.25PR1.0" and header.comps == []
    kratos = vamas.parse_vendor_comment(vamas.read_comment_fragment(shared("xps/pynxtools-xps/kratos.vms")))
    assert kratos == {"dwell_time": 0.26, "scans": 1}


# ----------------------------------------------------------------------------- write -> read


def _etch_series(n_levels=8, seed=3):
    """A simulated-looking Kratos etch series: B 1s and O 1s at every level, Poisson counts."""
    rng = np.random.default_rng(seed)
    hv = 1486.69
    blocks = []
    b_grid = np.round(np.arange(185.0, 200.0 + 1e-9, 0.1), 10)
    o_grid = np.round(np.arange(525.0, 540.0 + 1e-9, 0.15), 10)
    for level, etch in enumerate(np.linspace(0, 140, n_levels)):
        for region, grid, centre in (("B 1s", b_grid, 192.0), ("O 1s", o_grid, 529.5)):
            counts = rng.poisson(300 + 4000 * np.exp(-0.5 * ((grid - centre) / 0.7) ** 2)).astype(float)
            blocks.append(make_spectrum(
                "sim", grid, counts, excitation_energy=hv, region=region, sample="LBO-LRMO",
                block_index=len(blocks), pass_energy=20.0, dwell_time=0.1, scans=7, etch_time=float(etch),
                transmission=np.linspace(0.9, 1.1, grid.size),
                comment=("Casa Info Follows\n0\n0\n0\n1\nCASA comp (*x*) (*GL(30)*) Area 1 0 2 -1 1 MFWHM 1 0 2 -1 1 "
                         f"Position 1 0 2 -1 1\nlevel {level}"),
            ))
    return blocks


def test_write_read_round_trip_exact(tmp_path):
    import vamas as vamas_pkg

    blocks = _etch_series()
    path = vamas.write(tmp_path / "series.vms", blocks, sample="LBO-LRMO")
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left behind
    back = xps.read(path)
    assert len(back) == 16
    for original, copy in zip(blocks, back):
        np.testing.assert_array_equal(copy.values, original.values)  # bit-exact counts per second
        np.testing.assert_allclose(copy["binding_energy"].values, original["binding_energy"].values, atol=1e-9)
        np.testing.assert_array_equal(copy["transmission"].values, original["transmission"].values)
        for key in ("region", "sample", "excitation_energy", "pass_energy", "dwell_time", "scans", "etch_time",
                    "counts_per_unit", "comment", "units"):
            assert copy.attrs[key] == original.attrs[key], key
        assert copy.attrs["abscissa"] == "kinetic energy"
    series = xps.stack_series(back, "B 1s")
    assert series.dims == ("etch_time", "binding_energy")
    np.testing.assert_allclose(series["etch_time"].values, np.linspace(0, 140, 8))
    assert series["etch_time"].attrs["units"] == "s"
    np.testing.assert_array_equal(series.isel(etch_time=3).values, blocks[6].values)
    assert casa.from_block(back[0]).comps[0].lineshape == "GL(30)"
    # The independent vamas package reads our file: same blocks, same counts, same KE grid.
    reference = vamas_pkg.Vamas(str(path))
    assert reference.header.experiment_variables[0].label == "Etch Time"
    assert float(reference.blocks[2].values_exp_var[0]) == pytest.approx(20.0)
    _compare_with_package(reference, back)


def test_write_binding_energy_abscissa_and_irregular(tmp_path):
    grid = np.array([280.0, 280.1, 280.25, 280.5, 281.0, 282.0])  # not uniform -> IRREGULAR
    counts = np.array([10.0, 20.0, 35.0, 50.0, 20.0, 5.0])
    da = make_spectrum("sim", grid, counts, excitation_energy=1253.6, region="C 1s", dwell_time=0.2, scans=2)
    path = vamas.write(tmp_path / "irr.vms", [da], abscissa="binding energy")
    assert vamas.read_header(path).scan_mode == "IRREGULAR"
    [back] = xps.read(path)
    np.testing.assert_array_equal(back["binding_energy"].values, grid)
    np.testing.assert_array_equal(back.values, da.values)
    assert back.attrs["abscissa"] == "binding energy" and back.attrs["counts_per_unit"] == pytest.approx(0.4)


def test_stack_series_interpolates_on_common_range():
    hv = 1486.6
    a = make_spectrum("s", np.arange(190.0, 195.01, 0.5), 2 * np.arange(190.0, 195.01, 0.5), excitation_energy=hv,
                      region="B 1s", etch_time=0.0, block_index=0)
    b_grid = np.arange(191.25, 196.0, 0.25)
    b = make_spectrum("s", b_grid, 2 * b_grid, excitation_energy=hv, region="B 1s", etch_time=30.0, block_index=1)
    other = make_spectrum("s", b_grid, b_grid, region="O 1s", etch_time=0.0, block_index=2)
    series = xps.stack_series([b, other, a], "b 1S")
    np.testing.assert_allclose(series["binding_energy"].values, [191.5, 192.0, 192.5, 193.0, 193.5, 194.0, 194.5, 195.0])
    np.testing.assert_allclose(series.values, 2 * np.tile(series["binding_energy"].values, (2, 1)))
    assert series["etch_time"].values.tolist() == [0.0, 30.0] and series.attrs["interpolated"] == 1
    with pytest.raises(XPSError, match="no blocks of region 'In 3d'"):
        xps.stack_series([a, b], "In 3d")


# ----------------------------------------------------------------------------- optional VAMAS structures


EXCLUDED = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 19, 22, 31, 32)


def _vamas_lines(*, mode="NORM", excluded=(), listing="exclude", future_exp=(), future_block=0, technique="XPS"):
    """A two-block VAMAS file written field by field from ISO 14976, with optional structures."""
    head = [vamas.IDENTIFIER, "lab", "Kratos Axis", "op", "exp", "1", "header comment", mode, "REGULAR"]
    if mode in ("MAP", "MAPDP", "NORM", "SDP"):
        head.append("2")
    if mode in ("MAP", "MAPDP"):
        head += ["2", "1", "2"]
    if listing == "exclude":
        entries = [str(-len(excluded)), *map(str, excluded)]
    else:  # inclusion list: every prefix that is not excluded
        kept = [p for p in range(1, 41) if p not in excluded]
        entries = [str(len(kept)), *map(str, kept)]
    head += ["1", "Etch Time", "s", *entries, "1", "22",
             str(len(future_exp)), *future_exp, str(future_block), "2"]
    depth_profile = mode in ("MAPDP", "MAPSVDP", "SDP", "SDPSV")
    mapping = mode in ("MAP", "MAPDP")
    field_of_view = mode in ("MAP", "MAPDP", "MAPSV", "MAPSVDP", "SEM")
    linescan = mode in ("MAPSV", "MAPSVDP", "SEM")
    blocks = []
    for index, (etch, start) in enumerate(((10.0, 1290.0), (30.0, 1290.5))):
        items = [(1, ["2024"]), (2, ["5"]), (3, ["6"]), (4, ["7"]), (5, ["8"]), (6, ["9"]), (7, ["0"]),
                 (8, ["2", "comment line", "Etch Time : 99 s"]), (9, [technique])]
        items += [(10, [str(index), "1"])] if mapping else []
        items += [(11, [str(etch)]), (12, ["Al"])]
        items += [(13, ["18", "1", "1"])] if depth_profile else []
        items += [(14, ["1486.6"]), (15, ["150"]), (16, ["1e+37", "1e+37"])]
        items += [(17, ["700", "300"])] if field_of_view else []
        items += [(18, ["0", "0", "10", "0", "10", "10"])] if linescan else []
        items += [(19, ["0"]), (20, ["0"]), (21, ["FAT"]), (22, ["20"]), (24, ["1"]), (25, ["-4.5"]), (26, ["0"]),
                  (27, ["1e+37", "1e+37"]), (28, ["0", "0"]), (29, ["B"]), (30, ["1s", "-1"]),
                  (31, ["Kinetic Energy", "eV", str(start), "0.5"]), (32, ["1", "Intensity", "d"]),
                  (33, ["pulse counting"]), (34, ["0.05"]), (35, ["4"]), (36, ["0"])]
        items += [(37, ["3000", "1e-6", "2", "2", "45", "0", "continuous"])] if depth_profile else []
        items += [(38, ["0", "0"]), (39, ["0"]), (40, ["1", "Spot", "um", "400"])]
        block = [f"blk{index}", "sample"]
        for prefix, values in items:
            if index == 0 or prefix not in excluded:
                block += values
        block += [f"f{i}" for i in range(future_block)]
        block += ["4", "10", "40", "10", "20", "40", "30"]
        blocks += block
    return head + blocks + ["end of experiment"]


@pytest.mark.parametrize("listing", ["exclude", "include"])
@pytest.mark.parametrize("mode", ["NORM", "MAP", "SDP", "MAPDP", "MAPSV", "MAPSVDP", "SDPSV", "SEM", "NOEXP"])
def test_experiment_modes_exclusion_and_future_entries(tmp_path, mode, listing):
    lines = _vamas_lines(mode=mode, excluded=EXCLUDED, listing=listing, future_exp=("x", "y"), future_block=2)
    path = tmp_path / "modes.vms"
    path.write_bytes("\r\n".join(lines).encode())
    assert vamas.read_header(path).experiment_mode == mode
    blocks = xps.read(path)
    assert [b.attrs["etch_time"] for b in blocks] == [10.0, 30.0]
    assert blocks[1].attrs["comment"] == blocks[0].attrs["comment"] == "comment line\nEtch Time : 99 s"
    assert blocks[1].attrs["date"] == "2024-05-06T07:08:09"
    assert blocks[1].attrs["pass_energy"] == 20.0
    assert blocks[1].attrs["additional_parameters"] == {"Spot": 400.0}
    # Abscissa excluded after block 0: block 1 reuses block 0's start (1290 eV KE).
    np.testing.assert_allclose(blocks[1]["binding_energy"].values, 1486.6 - np.array([1291.5, 1291.0, 1290.5, 1290.0]))
    np.testing.assert_allclose(blocks[1].values, np.array([30, 40, 20, 10]) / 0.2)
    series = xps.stack_series(blocks, "B 1s")
    assert dict(series.sizes) == {"etch_time": 2, "binding_energy": 4}


def test_etch_time_from_vendor_comment(tmp_path):
    lines = _vamas_lines()
    at = lines.index("Etch Time")
    lines[at:at + 2] = ["Index", "d"]
    path = tmp_path / "comment_etch.vms"
    path.write_text("\n".join(lines))
    assert [b.attrs["etch_time"] for b in xps.read(path)] == [99.0, 99.0]


# ----------------------------------------------------------------------------- text and Excel


def test_lg4x_kinetic_csv(shared):
    path = shared("xps/lg4x-v2/111126_0100.csv")
    [da] = xps.read(path)
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    assert raw.shape == (291, 2) and da.sizes["binding_energy"] == 291
    assert da.attrs["excitation_energy"] == 600.0 and da.attrs["abscissa"] == "kinetic energy"
    np.testing.assert_allclose(da["binding_energy"].values, np.sort(600.0 - raw[:, 0]))
    np.testing.assert_allclose(da.values, raw[::-1, 1])
    assert da.attrs["units"] == "counts"


def test_lg4x_binding_txt(shared):
    path = shared("xps/lg4x-v2/0-150W_NiWC1s_C1s.txt")
    [da] = xps.read(path)
    raw = np.loadtxt(path, skiprows=1)
    assert da.attrs["region"] == "C 1s" and da.sizes["binding_energy"] == raw.shape[0] == 301
    np.testing.assert_allclose(da.sel(binding_energy=285.0, method="nearest").values,
                               raw[np.argmin(np.abs(raw[:, 0] - 285.0)), 1])


def test_casa_text_export(shared):
    path = shared("xps/pynxtools-xps/vms_txt_export.txt")
    assert reader_for(path) is text
    blocks = xps.read(path)
    assert [b.attrs["region"] for b in blocks] == ["Survey", "Ni 2p", "Survey", "Ni 2p"]
    assert [b.attrs["sample"] for b in blocks] == ["Ni", "Ni", "NiO", "NiO"]
    assert blocks[1].attrs["counts_per_unit"] == pytest.approx(0.3) and blocks[0].attrs["dwell_time"] == 0.1
    rows = path.read_text().splitlines()
    first = rows[8].split("\t")  # K.E. Counts '' B.E. CPS
    be, counts, cps = float(first[3]), float(first[1]), float(first[4])
    assert blocks[0].sel(binding_energy=be).item() == cps
    assert cps == pytest.approx(counts / 0.1)


def test_avantage_xlsx_sheets(shared):
    from openpyxl import load_workbook

    path = shared("xps/khervefitting/Hard_carbon_Thermo.xlsx")
    blocks = xps.read(path)
    assert [b.attrs["region"] for b in blocks] == ["Survey", "O 1s", "Na 1s", "C 1s", "CKLL"]
    workbook = load_workbook(path, read_only=True)
    try:
        declared = []
        for name in ("Survey", "O1s Scan", "Na1s Scan", "C1s Scan", "CKLL Scan"):
            row = next(r for r in workbook[name].iter_rows(values_only=True) if r and r[0] == "Axis")
            declared.append(row[3])  # "Elements=" n
    finally:
        workbook.close()
    assert [b.sizes["binding_energy"] for b in blocks] == declared == [2721, 151, 171, 191, 501]
    assert all(b.attrs["units"] == "counts/s" for b in blocks)
    o1s = blocks[1]
    assert o1s.sel(binding_energy=540.08).item() == 7876.02  # first data row of 'O1s Scan'


@pytest.mark.parametrize("name, regions, points", [
    ("STO.xlsx", ["Ti 2p", "Sr 3d", "O 1s", "C 1s"], [271, 161, 201, 191]),
    ("Tougaard_Fit.xlsx", ["Na 1s", "Zn 2p", "O 1s", "C 1s", "S 2p", "Survey XPS"], None),
])
def test_kherve_xlsx(shared, name, regions, points):
    blocks = xps.read(shared(f"xps/khervefitting/{name}"))
    assert [b.attrs["region"] for b in blocks] == regions
    if points:
        assert [b.sizes["binding_energy"] for b in blocks] == points


def test_registry_and_sniffing(shared, tmp_path):
    assert vamas in REGISTRY[".vms"] and text in REGISTRY[".csv"] and avantage in REGISTRY[".xlsx"]
    assert specs_xy in REGISTRY[".xy"] and text in REGISTRY[".xy"]
    # Content first: a VAMAS file named .txt still reads as VAMAS.
    renamed = tmp_path / "really_vamas.txt"
    renamed.write_bytes(shared("xps/khervefitting/Pt4f.vms").read_bytes())
    assert reader_for(renamed) is vamas
    assert xps.read(renamed)[0].attrs["region"] == "Pt 4f"
    # Reader options: progress is accepted everywhere, format-specific options are checked.
    assert len(xps.read(shared("xps/lg4x-v2/111126_0100.csv"), progress=True)) == 1
    assert xps.read(shared("xps/lg4x-v2/111126_0100.csv"), region="O 1s")[0].attrs["region"] == "O 1s"
    with pytest.raises(XPSError, match="option\\(s\\) region do not apply to vamas files"):
        xps.read(renamed, region="x")
    notes = tmp_path / "notes.xml"
    notes.write_text("<?xml version='1.0'?><notes/>")
    with pytest.raises(XPSError, match=r"not a recognised XPS file \(content does not match the .xml format\)"):
        xps.read(notes)
    with pytest.raises(XPSError, match=r"not a recognised XPS file \(extension .md is not one of"):
        xps.read(shared("xps/PROVENANCE.md"))


def test_reading_leaves_inputs_untouched(shared):
    import hashlib

    files = [p for p in sorted(XPS_DATA.rglob("*")) if p.is_file()] if XPS_DATA.exists() else []
    if not files:
        pytest.skip("../shared/data/xps is absent")
    before = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}
    for path in files:
        try:
            xps.read(path)
        except XPSError:
            pass
    after = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}
    assert before == after


# ----------------------------------------------------------------------------- PHI MultiPak


def test_phi_spe(shared):
    path = shared("xps/pynxtools-xps/SnO2_10nm.spe")
    assert reader_for(path) is phi
    [survey] = xps.read(path)
    assert survey.attrs["region"] == "Survey" and survey.sizes["binding_energy"] == 1751
    np.testing.assert_allclose(survey["binding_energy"].values[[0, -1]], [0.0, 1400.0])
    assert survey.attrs["excitation_energy"] == 1486.6 and survey.attrs["pass_energy"] == 224.0
    # Stored values are summed counts / dwell: x dwell (counts_per_unit) gives integers.
    counts = survey.values * survey.attrs["counts_per_unit"]
    assert survey.attrs["counts_per_unit"] == pytest.approx(0.12)
    np.testing.assert_allclose(counts, np.round(counts), atol=0.01)


def test_phi_depth_profile_is_an_etch_series(shared):
    blocks = xps.read(shared("xps/pynxtools-xps/SnO2_10nm_1.pro"))
    assert len(blocks) == 4 * 21
    assert sorted({b.attrs["region"] for b in blocks}) == ["C 1s", "Si 2p", "Sn 3d5/2", "Survey"]
    series = xps.stack_series(blocks, "Sn 3d5/2")
    assert dict(series.sizes) == {"etch_time": 21, "binding_energy": 101}
    np.testing.assert_allclose(series["etch_time"].values, 30.0 * np.arange(21))  # DepthCalDef: 0.5 min per cycle
    np.testing.assert_allclose(series["binding_energy"].values[[0, -1]], [480.0, 500.0])
    # Known truth: MultiPak's own Sn 3d5/2 profile areas stored in the file. A linear background
    # through the window ends and a trapezoid integral reproduce them within 5 % at every level.
    x = series["binding_energy"].values
    for level, block in zip(series.values, sorted((b for b in blocks if b.attrs["region"] == "Sn 3d5/2"),
                                                  key=lambda b: b.attrs["etch_time"])):
        ends = [level[:3].mean(), level[-3:].mean()]
        area = np.trapezoid(level - np.interp(x, [x[:3].mean(), x[-3:].mean()], ends), x)
        assert area == pytest.approx(block.attrs["vendor_area"], rel=0.05)
    # Carbon contamination falls once sputtering starts; silicon (substrate) appears late.
    carbon = [b.attrs["vendor_area"] for b in blocks if b.attrs["region"] == "C 1s"]
    silicon = [b.attrs["vendor_area"] for b in blocks if b.attrs["region"] == "Si 2p"]
    assert carbon[0] > 3 * carbon[-1] and silicon[0] == 0 and silicon[-1] > 1000


@pytest.mark.parametrize("content", [
    "Binding Energy;Counts / s\n290,5;1200\n290,0;1300,5\n289,5;1250\n",
    "# exported\nBE\tCPS\n290,5\t1200\n290,0\t1300,5\n289,5\t1250\n",
    "290.5 1200\n290.0 1300.5\n289.5 1250\n",
    "290.5,1200\n290.0,1300.5\n289.5,1250\n",
    "K.E.\tB.E.\tCounts\tBackground\n1196.1\t290.5\t1200\t900\n1196.6\t290.0\t1300.5\t910\n1197.1\t289.5\t1250\t905\n",
    "Counts,BE/eV\n1200,290.5\n1300.5,290.0\n1250,289.5\n",
])
def test_plain_tables_delimiters_and_decimal_commas(tmp_path, content):
    path = tmp_path / "C1s_table.txt"
    path.write_text(content)
    [da] = xps.read(path)
    np.testing.assert_array_equal(da["binding_energy"].values, [289.5, 290.0, 290.5])
    np.testing.assert_array_equal(da.values, [1250.0, 1300.5, 1200.0])
    assert da.attrs["region"] == "C 1s"
    assert da.attrs["units"] == ("counts/s" if ("CPS" in content or "/ s" in content) else "counts")


# ----------------------------------------------------------------------------- SPECS SpecsLab 2 XML


def _peak_be(da, lo, hi):
    window = da.sel(binding_energy=slice(lo, hi))
    return float(window["binding_energy"][int(np.argmax(window.values))])


def test_specs_xml_mcd_rebuild(shared):
    path = shared("xps/pynxtools-xps/In-situ_PBTTT_XPS_SPECS.xml")
    assert reader_for(path) is specs_xml
    survey, c1s = xps.read(path)
    assert (survey.attrs["region"], c1s.attrs["region"]) == ("Survey", "C 1s")
    assert survey.sizes["binding_energy"] == 1403 and c1s.sizes["binding_energy"] == 201
    np.testing.assert_allclose(c1s["binding_energy"].values[[0, -1]], [280.0, 290.0], atol=1e-9)  # hv 1253.6 - KE
    assert c1s.attrs["scans"] == 2 and c1s.attrs["declared_scans"] == 15  # the public file was cut to 2 scans
    assert c1s.attrs["counts_per_unit"] == pytest.approx(0.2 * 2)
    # Known chemistry of PBTTT (thiophene polymer, Mg Ka): C 1s ~284 eV, S 2p ~164 eV, O 1s ~531.5 eV,
    # and the survey and the C 1s region put the carbon peak at the same energy.
    assert _peak_be(survey, 280, 292) == pytest.approx(284.0, abs=0.6)
    assert _peak_be(c1s, 280, 290) == pytest.approx(_peak_be(survey, 280, 292), abs=0.5)
    assert _peak_be(survey, 160, 170) == pytest.approx(164.0, abs=1.0)
    assert _peak_be(survey, 525, 540) == pytest.approx(531.5, abs=1.0)
    assert "transmission" in c1s.coords


def test_specs_xml_shift_sign_sharpens_peaks(shared):
    """The +shift convention aligns the five detectors: the opposite sign smears the C 1s peak."""
    from defusedxml import ElementTree

    root = ElementTree.parse(str(shared("xps/pynxtools-xps/In-situ_PBTTT_XPS_SPECS.xml"))).getroot()
    data = [d for d in root.iter("struct") if d.get("type_name") == "RegionData"][1]
    region = data.find("struct[@name='region']")
    value = lambda tag, name, node=region: float(node.find(f"{tag}[@name='{name}']").text)  # noqa: E731
    shifts = np.array([float(d.find("double[@name='shift']").text) for d in data.iter("struct")
                       if d.get("type_name") == "Detector"])
    counts = np.array(data.find(".//sequence[@name='counts']/ulong").text.split(), float).reshape(-1, 5)
    args = (int(value("ulong", "mcd_head", data)), value("double", "kinetic_energy"), value("double", "scan_delta"),
            value("double", "pass_energy"), int(value("ulong", "values_per_curve")))
    right = specs_xml.rebuild_mcd(counts, shifts, *args)
    wrong = specs_xml.rebuild_mcd(counts, -shifts, *args)
    assert right.max() / right.mean() > 1.5 * wrong.max() / wrong.mean()


def test_avantage_fit_and_quantification(shared):
    """Avantage's own fit in the workbook: curves add up to its envelope, areas match its table."""
    path = shared("xps/khervefitting/Hard_carbon_Thermo.xlsx")
    fits = avantage.read_fit(path)
    assert sorted(fits) == ["C 1s", "Na 1s", "O 1s"]
    c1s = fits["C 1s"]
    assert list(c1s["component"].values) == ["C1s sp2 C", "C1s Shake up", "C1s C-C", "C1s C-O-C", "C1s C=O"]
    inside = c1s["background"].values != 0
    total = c1s["background"] + c1s["component_curve"].sum("component")
    np.testing.assert_allclose(total.values[inside], c1s["envelope"].values[inside], atol=0.5)
    [spectrum] = [b for b in xps.read(path) if b.attrs["region"] == "C 1s"]
    np.testing.assert_array_equal(c1s["data"].values, spectrum.values)
    table = avantage.read_quantification(path)
    assert table.sizes["component"] == 8
    assert float(table["atomic_percent"].sum()) == pytest.approx(100.0, abs=0.05)
    x = c1s["binding_energy"].values
    for curve, name in (("C1s C-C", "C1s C-C"), ("C1s C-O-C", "C1s C-O-C"), ("C1s C=O", "C1s C=O"),
                        ("C1s Shake up", "C1s Shake up sat"), ("C1s sp2 C", "C1s sp2 C")):
        area = np.trapezoid(c1s["component_curve"].sel(component=curve).values, x)
        # The asymmetric sp2 line's tail runs past the exported window: 0.5 % of its area.
        assert area == pytest.approx(float(table["area"].sel(component=name)), rel=0.005)
    assert float(table["peak_binding_energy"].sel(component="C1s C-C")) == 284.83


def test_casa_comment_format_round_trip(shared, tmp_path):
    import dataclasses

    def content(info):
        return ([dataclasses.replace(r, line=0) for r in info.regions],
                [dataclasses.replace(c, line=0) for c in info.comps],
                info.process_lines, info.annotations, info.vendor_lines)

    infos = [casa.from_block(b) for b in xps.read(shared("xps/cheminfo-vamas/assigned.vms"))]
    infos.append(casa.parse_comment(vamas.read_comment_fragment(shared("xps/pynxtools-xps/casa_process.vms"))))
    for info in infos:
        assert content(casa.parse_comment(casa.format_comment(info))) == content(info)
    # A doptrace-made B 1s model travels to CasaXPS inside a VAMAS block comment and back.
    hv = 1486.69
    region = casa.CasaRegion("B 1s", "Shirley", hv - 196.0, hv - 188.0, 0.486, 2, 0, 0, (0, 0, 0, 0), "B 1s", 10.81, 0, 0.486)
    free = casa.CasaComp("B-O-B", "GL(30)", casa.CasaParam(1000.0, 0, 1e6, -1, 1), casa.CasaParam(1.4, 0.8, 2.5, -1, 1),
                         casa.CasaPosition(hv - 192.0, hv - 192.5, hv - 191.5, -1, 1), rsf=0.486, mass=10.81,
                         tag="B 1s", uncorrected_rsf=0.486)
    linked = dataclasses.replace(free, name="TM-O-B", area=casa.CasaParam(400.0, 0, 1e6, -1, 1),
                                 fwhm=casa.CasaParam(1.4, 0, 0, 0, 1), position=casa.CasaPosition(hv - 191.1, 0, 0, 0, 0.9))
    model = casa.CasaInfo(regions=[region], comps=[free, linked], present=True)
    grid = np.arange(186.0, 198.0, 0.1)
    da = make_spectrum("sim", grid, np.full(grid.size, 100.0), excitation_energy=hv, region="B 1s",
                       comment=casa.format_comment(model))
    [back] = xps.read(vamas.write(tmp_path / "model.vms", [da]))
    again = casa.from_block(back)
    assert content(again) == content(model)
    assert again.comps[1].binding_energy(hv) == pytest.approx(191.1)
    assert again.regions[0].binding_window(hv) == pytest.approx((188.0, 196.0))
