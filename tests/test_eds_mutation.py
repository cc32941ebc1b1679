"""Mutation tests of every EDS reader (.bcf, .hspy, .emd, .msa): seeded, bounded, from real files.

Every mutated file must give a DataArray or an ``EDSError`` naming the file: never another
exception, a hang (each read has a time limit) or an unbounded allocation (the largest child
process's peak memory is checked).  The named cases are the ones a mutation campaign over these
readers found (issue 12): they crashed, hung or asked for gigabytes before this package checked them.
"""

from __future__ import annotations

import random
import resource
import shutil
import struct
import time

import numpy as np
import pytest
import xarray as xr

from doptrace.stem_eds import EDSError, read

#: time limit of one mutated read (s): normal reads of these files take < 3 s on a loaded machine
TIMEOUT = 8.0
#: peak memory one read may add on top of the test process (MiB)
RSS_LIMIT_MB = 1024


def _outcome(path, **kw):
    """A DataArray or an EDSError naming the file; anything else fails the test."""
    try:
        da = read(path, timeout=TIMEOUT, **kw)
    except EDSError as exc:
        assert str(path) in str(exc), str(exc)
        assert "\n" not in str(exc).strip()
        return exc
    assert isinstance(da, xr.DataArray)
    values = np.asarray(da.values)
    assert values.size and np.all(np.isfinite(values.astype(float))) and values.min() >= 0
    assert np.all(np.diff(da["energy"].values) > 0)
    return da


def _children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def _self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _byte_mutations(data: bytes, rng: random.Random, n: int, header: int = 4096):
    """``n`` seeded byte-level mutations: truncations, flips, zeroed and 0xFF regions."""
    out = []
    for i in range(n):
        kind = ("trunc", "flip", "zero", "ff")[i % 4]
        b = bytearray(data)
        hi = min(len(data), header) if rng.random() < 0.6 else len(data)
        if kind == "trunc":
            out.append((f"trunc@{(cut := rng.randrange(1, len(data)))}", data[:cut]))
            continue
        at = rng.randrange(hi)
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(hi)] = rng.randrange(256)
        else:
            length = rng.choice([4, 64, 512, 4096])
            b[at:at + length] = (b"\x00" if kind == "zero" else b"\xff") * len(b[at:at + length])
        out.append((f"{kind}@{at}", bytes(b)))
    return out


def _run_cases(tmp_path, suffix: str, cases, budget_s: float):
    """Read each mutated file (until ``budget_s`` is spent); count outcomes."""
    start = time.monotonic()
    counts = {"value": 0, "error": 0}
    baseline = _self_peak_mb()
    for label, data in cases:
        if time.monotonic() - start > budget_s:
            break
        case = tmp_path / f"case{suffix}"
        case.write_bytes(data)
        t0 = time.monotonic()
        result = _outcome(case)
        assert time.monotonic() - t0 < TIMEOUT + 5, label
        counts["error" if isinstance(result, EDSError) else "value"] += 1
    assert _children_peak_mb() < baseline + RSS_LIMIT_MB
    return counts


# ----------------------------------------------------------------------------- random, per reader


@pytest.mark.parametrize("name,budget", [
    ("stem_eds/16x16_12bit_packed_8bit.bcf", 6.0),
    ("stem_eds/EDS_TEM_FePt_nanoparticles.hspy", 6.0),
    ("stem_eds/velox_v11_TestSI_16x16_215kx.emd", 8.0),
    ("stem_eds/real-world/nist_Fe_std.msa", 4.0),
])
def test_random_byte_mutations_give_a_value_or_the_package_error(shared, tmp_path, name, budget):
    source = shared(name)
    rng = random.Random(12)
    cases = _byte_mutations(source.read_bytes(), rng, 40)
    counts = _run_cases(tmp_path, source.suffix, cases, budget)
    assert counts["value"] + counts["error"] >= 3


def test_bcf_header_fields_set_to_absurd_values(shared, tmp_path):
    source = shared("stem_eds/16x16_12bit_packed_8bit.bcf")
    data = source.read_bytes()
    rng = random.Random(3)
    cases = []
    for offset in range(0x118, 0x160, 4):
        value = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])
        b = bytearray(data)
        struct.pack_into("<I", b, offset, value)
        cases.append((f"sfs+{offset:#x}={value}", bytes(b)))
    _run_cases(tmp_path, ".bcf", cases, 10.0)
    # the fields the container walk depends on: chunk size, tree address, tree entries
    for offset, value in ((0x128, 0), (0x128, 0xFFFFFFFF), (0x140, 0xFFFF), (0x144, 0), (0x144, 0x7FFFFFFF)):
        b = bytearray(data)
        struct.pack_into("<I", b, offset, value)
        bad = tmp_path / "field.bcf"
        bad.write_bytes(bytes(b))
        with pytest.raises(EDSError, match="corrupt BCF container"):
            read(bad)


def test_bcf_with_a_zero_tree_address_is_refused_before_allocating(shared, tmp_path):
    # was: RosettaSciIO allocated 2 GB walking a tree read from the container header
    data = bytearray(shared("stem_eds/16x16_12bit_packed_8bit.bcf").read_bytes())
    struct.pack_into("<I", data, 0x140, 0)
    bad = tmp_path / "tree0.bcf"
    bad.write_bytes(bytes(data))
    before = _children_peak_mb()
    with pytest.raises(EDSError, match="corrupt BCF container"):
        read(bad)
    assert _children_peak_mb() < max(before, _self_peak_mb()) + 256


def test_truncated_bcf_at_many_offsets(shared, tmp_path):
    source = shared("stem_eds/P45_the_default_job.bcf")
    data = source.read_bytes()
    for fraction in (0.01, 0.1, 0.5, 0.9, 0.995):
        cut = tmp_path / "cut.bcf"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(EDSError, match="truncated|corrupt|cannot be read"):
            read(cut)
    # cutting only the slack after the last data byte of the last chunk loses nothing: same counts
    cut.write_bytes(data[:-595])
    assert read(cut).identical(read(source).assign_attrs(source=str(cut)))


# ----------------------------------------------------------------------------- HDF5 (.hspy)


def _hspy_variant(source, tmp_path, edit, name="v.hspy"):
    import h5py

    target = tmp_path / name
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        group = h5["Experiments"][next(iter(h5["Experiments"]))]
        edit(group)
    return target


def _replace(group, name, array, **kw):
    attrs = dict(group[name].attrs)
    del group[name]
    new = group.create_dataset(name, data=array, **kw) if array is not None else group.create_dataset(name, **kw)
    for k, v in attrs.items():
        new.attrs[k] = v


@pytest.mark.parametrize("edit,problem", [
    (lambda g: g["axis-0"].attrs.__setitem__("size", 2**31), r"axis-0 has size 2147483648 but the data have 992"),
    (lambda g: _replace(g, "data", None, shape=(2**20, 2**20, 64), dtype="u4", chunks=(1, 64, 64)),
     r"1 axes for data of 3 dimensions"),
    (lambda g: _replace(g, "data", g["data"][()][:400]), r"axis-0 has size 992 but the data have 400"),
    (lambda g: _replace(g, "data", np.zeros((0,), "u4")), r"axis-0 has size 992 but the data have 0"),
    (lambda g: g["axis-0"].attrs.__setitem__("scale", np.nan), r"axis-0 scale is nan"),
    (lambda g: g["axis-0"].attrs.__setitem__("offset", np.inf), r"axis-0 offset is inf"),
    (lambda g: _replace(g, "data", np.array([b"garbage"] * 4)), r"are not counts|has size 992"),
])
def test_hspy_declared_sizes_and_axes_are_checked_before_loading(shared, tmp_path, edit, problem):
    # was: xarray CoordinateValidationError, or HyperSpy asking for 16 GB / 256 TiB
    bad = _hspy_variant(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy"), tmp_path, edit)
    before = _children_peak_mb()
    with pytest.raises(EDSError, match=problem) as err:
        read(bad)
    assert str(bad) in str(err.value)
    assert _children_peak_mb() < max(before, _self_peak_mb()) + 256


def test_hspy_huge_shape_matching_its_axes_is_refused_by_size(tmp_path):
    import h5py

    from doptrace.stem_eds.simulate import simulate_spectrum_image

    sim = simulate_spectrum_image(tmp_path / "s.hspy", shape=(4, 4), n_channels=256, seed=1)
    with h5py.File(sim.path, "r+") as h5:
        group = h5["Experiments"][next(iter(h5["Experiments"]))]
        _replace(group, "data", None, shape=(2**20, 2**20, 256), dtype="u4", chunks=(1, 64, 256))
        group["axis-0"].attrs["size"] = 2**20
        group["axis-1"].attrs["size"] = 2**20
    with pytest.raises(EDSError, match=r"would need .* GiB|stores 0 bytes"):
        read(sim.path)


def test_hdf5_file_that_hangs_the_library_is_stopped_by_the_watchdog(shared, tmp_path):
    # 4096 zero bytes at 2482 in this file make HDF5 loop inside C code (found by the campaign)
    data = bytearray(shared("stem_eds/EDS_TEM_FePt_nanoparticles.hspy").read_bytes())
    data[2482:2482 + 4096] = bytes(len(data[2482:2482 + 4096]))
    bad = tmp_path / "loops.hspy"
    bad.write_bytes(bytes(data))
    t0 = time.monotonic()
    try:
        read(bad, timeout=3.0)
    except EDSError as exc:
        message = str(exc)
    else:
        pytest.fail("a corrupt file read as data")
    elapsed = time.monotonic() - t0
    assert str(bad) in message
    assert elapsed < 3.0 + 4.0
    if "did not finish" not in message:  # this HDF5 build may detect the damage instead of looping
        assert "cannot be read" in message


# ----------------------------------------------------------------------------- Velox (.emd)


def _emd_json_edit(source, tmp_path, key, value):
    import h5py
    import re

    target = tmp_path / "v.emd"
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        streams = h5["Data/SpectrumStream"]
        group = streams[next(iter(streams))]
        raw = group["AcquisitionSettings"][0]
        text = raw.decode() if isinstance(raw, bytes) else bytes(raw).decode()
        text = re.sub(rf'("{key}"\s*:\s*)"[^"]*"', lambda m: m.group(1) + f'"{value}"', text)
        group["AcquisitionSettings"][0] = text.encode()
    return target


@pytest.mark.parametrize("value,problem", [("4294967296", "4294967296 channels is not an EDS spectrum"),
                                           ("garbage", "no readable channel count"),
                                           ("0", "0 channels is not an EDS spectrum")])
def test_velox_channel_count_is_checked_before_decoding(shared, tmp_path, value, problem):
    bad = _emd_json_edit(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd"), tmp_path, "bincount", value)
    with pytest.raises(EDSError, match=problem):
        read(bad)


def test_emd_unsafe_dataset_sizes_are_refused(shared, tmp_path):
    import h5py

    target = tmp_path / "huge.emd"
    shutil.copyfile(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd"), target)
    with h5py.File(target, "r+") as h5:
        images = h5["Data/Image"]
        group = images[next(iter(images))]
        del group["Data"]
        group.create_dataset("Data", shape=(2**20, 2**20, 1), dtype="u2", chunks=(64, 64, 1))
    with pytest.raises(EDSError, match=r"would need .* GiB"):
        read(target)


# ----------------------------------------------------------------------------- EMSA (.msa)


def _msa_lines(shared):
    return shared("stem_eds/real-world/nist_Fe_std.msa").read_text().splitlines(keepends=True)


@pytest.mark.parametrize("change", ["nan", "negative", "npoints_huge", "xperchan_zero", "xperchan_nan",
                                    "no_spectrum", "half"])
def test_msa_mutations(shared, tmp_path, change):
    lines = _msa_lines(shared)
    start = next(i for i, line in enumerate(lines) if line.startswith("#SPECTRUM")) + 1
    if change == "nan":
        lines[start + 100] = "nan,\n"
    elif change == "negative":
        lines[start + 100] = "-7,\n"
    elif change == "npoints_huge":
        lines = [("#NPOINTS     : 4294967296\n" if ln.startswith("#NPOINTS") else ln) for ln in lines]
    elif change == "xperchan_zero":
        lines = [("#XPERCHAN    : 0\n" if ln.startswith("#XPERCHAN") else ln) for ln in lines]
    elif change == "xperchan_nan":
        lines = [("#XPERCHAN    : nan\n" if ln.startswith("#XPERCHAN") else ln) for ln in lines]
    elif change == "no_spectrum":
        lines = lines[:start - 1]
    else:
        lines = lines[: start + 2000]
    bad = tmp_path / f"{change}.msa"
    bad.write_text("".join(lines))
    result = _outcome(bad)
    if change in ("nan", "negative", "xperchan_zero", "xperchan_nan", "no_spectrum"):
        assert isinstance(result, EDSError), change
