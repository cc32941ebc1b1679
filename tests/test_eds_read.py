"""STEM-EDS readers on every real file, frames/detectors kept, lazy reads, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace.stem_eds import EDSError, bin_pixels, info, read, read_signal

ALL_FILES = {
    # file: (dims, sizes, beam energy keV)
    "16x16_12bit_packed_8bit.bcf": (("y", "x", "energy"), (16, 16, 2048), 20.0),
    "30x30_instructively_packed_16bit_compressed.bcf": (("y", "x", "energy"), (30, 30, 2048), 20.0),
    "Hitachi_TM3030Plus.bcf": (("y", "x", "energy"), (240, 320, 2048), 15.0),
    "P45_the_default_job.bcf": (("y", "x", "energy"), (75, 100, 2048), 20.0),
    "bcf_v2_50x50px.bcf": (("y", "x", "energy"), (50, 50, 2048), 20.0),
    "EDS_SEM_TM002.hspy": (("energy",), (1024,), 10.0),
    "EDS_TEM_FePt_nanoparticles.hspy": (("energy",), (992,), 200.0),
    "velox_v11_TestSI_16x16_215kx.emd": (("y", "x", "energy"), (16, 16, 4096), 300.0),
    "velox_v11_SI_empty_selection.emd": (("y", "x", "energy"), (16, 20, 4096), None),
    "real-world/nist_Fe_std.msa": (("energy",), (4096,), 20.0),
    "real-world/nist_SiO2_std.msa": (("energy",), (4096,), 20.0),
    "real-world/scifi_EMDReader_SpectrumImage_Si.emd": (("y", "x", "energy"), (16, 16, 4096), 200.0),
    "real-world/sg_P45_12bit_packed_8bit.bcf": (("y", "x", "energy"), (75, 100, 2048), 20.0),
}
#: files of ../shared/data/stem_eds refused by design, with the reason
REFUSED = {
    "velox_v11_TestSI_16x16_ReducedData_215kx.emd": "pruned Velox file: the spectrum stream was removed, "
                                                    "only maps and per-detector sum spectra remain",
}
#: totals stated in real-world/PROVENANCE.md
PROVENANCE_TOTALS = {"real-world/scifi_EMDReader_SpectrumImage_Si.emd": 6564,
                     "real-world/sg_P45_12bit_packed_8bit.bcf": 915_942}


@pytest.mark.parametrize("name", sorted(ALL_FILES))
def test_every_real_file_reads(shared, name):
    dims, sizes, beam = ALL_FILES[name]
    da = read(shared(f"stem_eds/{name}"))
    assert da.dims == dims
    assert tuple(da.sizes.values()) == sizes
    assert da["energy"].attrs["units"] == "keV"
    if beam is not None:
        assert da.attrs["beam_energy_kev"] == pytest.approx(beam)
    assert da.attrs["dispersion_kev"] == pytest.approx(float(da.energy[1] - da.energy[0]))
    if name in PROVENANCE_TOTALS:
        assert int(da.sum()) == PROVENANCE_TOTALS[name]
    for dim in ("x", "y"):
        if dim in da.dims and name.endswith((".emd", ".hspy")) or dim in da.dims and name.startswith("real-world/sg"):
            assert da[dim].attrs["units"] == "nm"
    # counts equal the hyperspy signal's, exactly
    assert float(da.sum()) == float(np.asarray(read_signal(shared(f"stem_eds/{name}")).data, dtype=float).sum())


def test_velox_metadata_geometry_and_axes(shared):
    da = read(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd"))
    assert da.attrs["elevation_deg"] == pytest.approx(35.0)
    assert da.attrs["fwhm_mnka_ev"] == pytest.approx(130.0)
    assert da.attrs["file_elements"] == "C O Ca Cu"
    # Velox: offset -0.25 keV, 10 eV/channel, pixel 3.5992 nm; live time from the four detectors
    assert float(da.energy[0]) == pytest.approx(-0.25)
    assert float(da.x[1] - da.x[0]) == pytest.approx(3.5992, abs=1e-4)
    assert 0.2 < da.attrs["live_time_s"] < 0.3


def test_velox_frames_and_detectors_kept_sum_to_the_total(shared):
    path = shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd")
    summed = read(path)
    split = read(path, sum_frames=False, sum_detectors=False)
    assert dict(split.sizes) == {"detector": 4, "frame": 2, "y": 16, "x": 16, "energy": 4096}
    np.testing.assert_array_equal(split.sum(["detector", "frame"]).values, summed.values)


def test_lazy_read_equals_eager_and_stays_lazy(shared):
    path = shared("stem_eds/bcf_v2_50x50px.bcf")
    lazy = read(path, lazy=True)
    assert hasattr(lazy.data, "dask")
    np.testing.assert_array_equal(np.asarray(lazy.data.compute()), read(path).values)


def test_bin_pixels_sums_blocks(shared):
    da = read(shared("stem_eds/30x30_instructively_packed_16bit_compressed.bcf"))
    binned = bin_pixels(da, 4)
    assert dict(binned.sizes) == {"y": 7, "x": 7, "energy": 2048}
    np.testing.assert_array_equal(binned.values[0, 0], da.values[:4, :4].sum(axis=(0, 1)))
    assert float(binned.x[0]) == pytest.approx(float(da.x[:4].mean()))


def test_pruned_velox_file_is_an_error_not_an_empty_result(shared):
    path = shared("stem_eds/velox_v11_TestSI_16x16_ReducedData_215kx.emd")
    with pytest.raises(EDSError, match="no EDS spectrum image.*pruned") as err:
        read(path)
    assert str(path) in str(err.value)


def test_truncated_bcf_is_a_one_line_error(shared, tmp_path):
    source = shared("stem_eds/P45_the_default_job.bcf")
    truncated = tmp_path / "truncated.bcf"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with pytest.raises(EDSError) as err:
        read(truncated)
    assert str(truncated) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content,suffix,problem", [
    (b"", ".emd", "empty file"),
    (b"not a spectrum", ".txt", "unsupported format"),
    (b"\x89HDF\r\n\x1a\n garbage", ".hspy", "cannot be read"),
])
def test_bad_files(tmp_path, content, suffix, problem):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(EDSError, match=problem):
        read(path)


def test_missing_file(tmp_path):
    with pytest.raises(EDSError, match="no such file"):
        read(tmp_path / "absent.bcf")


def test_info_summarises(shared):
    summary = info(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd"))
    assert summary["dims"] == "y=16 x x=16 x energy=4096"
    assert summary["beam_energy_kev"] == 300.0


@pytest.mark.parametrize("change,problem", [("zero", "holds zero counts"), ("negative", "holds negative counts"),
                                             ("nan", "NaN or infinite")])
def test_absurd_counts_are_refused(tmp_path, change, problem):
    import hyperspy.api as hs

    from doptrace.stem_eds.simulate import simulate_spectrum_image

    sim = simulate_spectrum_image(tmp_path / "s.hspy", shape=(4, 4), n_channels=256, seed=1)
    s = hs.load(str(sim.path))
    s.data = s.data.astype(float) * (0.0 if change == "zero" else 1.0)
    s.data[0, 0, 40] = {"zero": 0.0, "negative": -5.0, "nan": np.nan}[change]
    bad = tmp_path / "bad.hspy"
    s.save(str(bad))
    with pytest.raises(EDSError, match=problem) as err:
        read(bad)
    assert str(bad) in str(err.value)


def test_every_file_in_the_shared_folder_is_read_or_refused_by_design(shared):
    folder = shared("stem_eds")
    found = {str(p.relative_to(folder)) for p in folder.rglob("*")
             if p.is_file() and p.suffix.lower() not in (".md", ".txt")}
    assert found == set(ALL_FILES) | set(REFUSED)
    for name, reason in REFUSED.items():
        with pytest.raises(EDSError, match="pruned"):
            read(folder / name)
        assert reason


def _msa_header_and_counts(path):
    """EMSA keywords and the data values, read here line by line (the format is plain text)."""
    header, counts, in_data = {}, [], False
    for line in path.read_text().splitlines():
        if line.startswith("#SPECTRUM"):
            in_data = True
        elif line.startswith("#ENDOFDATA"):
            break
        elif line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif in_data and line.strip():
            counts += [float(v) for v in line.replace(",", " ").split()]
    return header, np.array(counts)


@pytest.mark.parametrize("name", ["nist_Fe_std.msa", "nist_SiO2_std.msa"])
def test_emsa_spectrum_matches_its_header_and_data_lines(shared, name):
    path = shared(f"stem_eds/real-world/{name}")
    header, counts = _msa_header_and_counts(path)
    da = read(path)
    assert da.dims == ("energy",) and da.sizes["energy"] == int(header["NPOINTS"]) == counts.size
    np.testing.assert_array_equal(da.values, counts)
    assert da.attrs["beam_energy_kev"] == float(header["BEAMKV"])
    assert da.attrs["live_time_s"] == pytest.approx(float(header["LIVETIME"]))
    assert da.attrs["real_time_s"] == pytest.approx(float(header["REALTIME"]))
    assert da.attrs["elevation_deg"] == float(header["ELEVANGLE"])
    # XPERCHAN and OFFSET in eV -> keV axis
    assert da.attrs["dispersion_kev"] == pytest.approx(float(header["XPERCHAN"]) / 1000)
    assert float(da.energy[0]) == pytest.approx(float(header["OFFSET"]) / 1000)


def test_velox_point_spectrum_sums_its_detectors(shared, tmp_path):
    """A Velox file without a spectrum-image acquisition (a point spectrum) reads as one spectrum.

    Made from the real pruned file by dropping its spectrum-image and image records: what remains
    is the layout RosettaSciIO reads as a Velox point acquisition (``Data/Spectrum`` only, one
    spectrum per Super-X detector). The four detectors' counts sum to the spectrum image's total
    in the unpruned file of the same acquisition (42097).
    """
    import h5py
    import shutil

    point = tmp_path / "point.emd"
    shutil.copyfile(shared("stem_eds/velox_v11_TestSI_16x16_ReducedData_215kx.emd"), point)
    with h5py.File(point, "r+") as h5:
        del h5["Data/SpectrumImage"]
        del h5["Data/Image"]
    total = read(point)
    assert total.dims == ("energy",) and total.sizes["energy"] == 4096
    assert int(total.sum()) == int(read(shared("stem_eds/velox_v11_TestSI_16x16_215kx.emd")).sum()) == 42097
    split = read(point, sum_detectors=False)
    assert dict(split.sizes) == {"detector": 4, "energy": 4096}
    assert sorted(int(v) for v in split.sum("energy").values) == [6437, 10177, 11538, 13945]
    np.testing.assert_array_equal(split.sum("detector").values, total.values)


def test_read_is_guarded_and_equals_an_unguarded_read(shared):
    """The watchdog's round trip (child process, .npy) changes nothing: values, coords, attrs."""
    from doptrace.stem_eds import _guard
    from doptrace.stem_eds.read import _read_here

    if not _guard.available():
        pytest.skip("no os.fork on this platform: reads run in-process")
    path = shared("stem_eds/bcf_v2_50x50px.bcf")
    assert read(path).identical(_read_here(path, False, True, True))
