"""The fast paths of ``doptrace xps fit`` (issue 14 item 7) give what the plain paths give.

- ``make_spectra`` (blocks on one grid checked as one array) equals ``make_spectrum`` block by
  block: values, coordinates, attrs, notes, and the error naming the first bad block.
- ``defer_dask_array`` and ``defer_dask_collection_check``: xarray builds NumPy-backed objects
  (with an index) without importing ``dask.array`` or ``dask``, and once dask is imported a chunked
  DataArray is still a dask array to xarray.
- ``write_netcdf`` without dask's scheduler question writes what ``to_netcdf`` writes, and still
  writes chunked datasets.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from doptrace.xps.errors import XPSError
from doptrace.xps.formats._spectrum import make_spectra, make_spectrum


def _calls(n=12, seed=0):
    rng = np.random.default_rng(seed)
    energy = np.linspace(1486.6 - 456.0, 1486.6 - 440.0, 161)  # kinetic, read as BE = hv - KE
    calls = []
    for i in range(n):
        values = rng.poisson(500.0, energy.size).astype(float)
        if i == 3:
            values[10:14] = -7.5  # processed data: noted, counted
        calls.append(dict(energy=energy, values=values, abscissa="kinetic energy", excitation_energy=1486.6,
                          region="In3d", sample="s", block_index=i, pass_energy=20.0,
                          dwell_time=[0.2, np.nan, 0.1][i % 3], scans=[5, 3, np.nan][i % 3],
                          already_per_second=i % 4 == 1, etch_time=float(i),
                          experimental_variables={"Etch Time": float(i)}, comment=f"c{i}",
                          extra_attrs={"block_id": f"b{i}", "notes": "reader note"} if i % 2 else None,
                          notes=["one"] if i == 5 else None))
    return calls


def _one_by_one(calls):
    out = []
    for call in calls:
        call = dict(call)
        out.append(make_spectrum("f.vms", call.pop("energy"), call.pop("values"), **call))
    return out


def test_make_spectra_equals_make_spectrum_block_by_block():
    calls = _calls()
    batched, plain = make_spectra("f.vms", calls), _one_by_one(calls)
    assert len(batched) == len(plain) == 12
    for a, b in zip(batched, plain):
        xr.testing.assert_identical(a, b)  # values, coords and their attrs, name, attrs
        assert np.array_equal(a.values, b.values)
    assert batched[3].attrs["negative_values"] == 4 and "4 negative intensities" in batched[3].attrs["notes"]
    assert batched[0].attrs["counts_per_unit"] == 1.0 and batched[0].attrs["units"] == "counts/s"
    assert batched[2].attrs["units"] == "counts"  # no scans: raw counts
    # each block owns its attrs (a shallow copy shares only the immutable energy index)
    batched[0].attrs["region"] = "x"
    batched[0].coords["binding_energy"].attrs["units"] = "meV"
    assert batched[1].attrs["region"] == "In 3d" and batched[1].coords["binding_energy"].attrs["units"] == "eV"


def test_make_spectra_names_the_first_bad_block():
    calls = _calls()
    calls[7]["values"] = calls[7]["values"].copy()
    calls[7]["values"][20] = np.nan
    calls[9]["values"] = np.full(161, np.inf)
    with pytest.raises(XPSError, match=r"f\.vms: block 7 \(In 3d\): 1 NaN or infinite intensity"):
        make_spectra("f.vms", calls)
    calls = _calls()
    calls[4]["energy"] = calls[4]["energy"][::-1].copy()  # another grid, still valid: built alone
    calls[6]["dwell_time"], calls[6]["scans"] = 1e-300, 1e-10  # overflows when scaled
    calls[6]["values"] = calls[6]["values"] * 1e300
    with pytest.raises(XPSError, match=r"block 6 .*overflows to infinity"):
        make_spectra("f.vms", calls)


def _fresh(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_numpy_objects_do_not_import_dask_array_and_dask_still_works():
    out = _fresh(
        "import sys, numpy as np\n"
        "import doptrace.xps\n"
        "import xarray as xr\n"
        "da = xr.DataArray(np.arange(4.0), dims='x', coords={'x': np.arange(4)})\n"
        "print(float(da.sum()), float(da.sel(x=2)), 'dask.array' in sys.modules, 'sparse' in sys.modules, "
        "'dask' in sys.modules)\n"
        "import dask.array as dsk\n"
        "lazy = xr.DataArray(dsk.arange(6.0, chunks=3), dims='x')\n"
        "print(isinstance(lazy.data, dsk.Array), lazy.chunks, float((lazy * 2).sum().compute()))\n"
        "ds = xr.Dataset({'v': lazy}).chunk({'x': 2})\n"
        "print(isinstance(ds.v.data, dsk.Array), ds.v.chunks)\n")
    lines = out.split("\n")
    assert lines[0] == "6.0 2.0 False False False"
    assert lines[1] == "True ((3, 3),) 30.0"
    assert lines[2] == "True ((2, 2, 2),)"


def test_write_netcdf_plain_and_chunked(tmp_path):
    from doptrace.report.conventions import read_netcdf, to_storable, write_netcdf

    ds = xr.Dataset({"area": (("etch_time", "component"), np.arange(6.0).reshape(3, 2), {"units": "counts eV/s"}),
                     "area_stderr": (("etch_time", "component"), np.full((3, 2), 0.5), {"units": "counts eV/s"})},
                    coords={"etch_time": ("etch_time", [0.0, 1.0, 2.0], {"units": "s"}),
                            "component": ["A", "B"]},
                    attrs={"technique": "XPS", "source": "f.vms", "fitted": "area", "quality": "ok",
                           "quality_reasons": [], "models": {"A": [1, 2]}})
    ours = read_netcdf(write_netcdf(ds, tmp_path / "ours.nc"))
    to_storable(ds).to_netcdf(tmp_path / "xarray.nc", engine="netcdf4")
    with xr.open_dataset(tmp_path / "xarray.nc") as ref, xr.open_dataset(tmp_path / "ours.nc") as raw:
        xr.testing.assert_identical(raw, ref.load())
    assert ours.attrs["models"] == {"A": [1, 2]} and ours["area"].values.tolist() == [[0, 1], [2, 3], [4, 5]]
    chunked = read_netcdf(write_netcdf(ds.chunk({"etch_time": 1}), tmp_path / "chunked.nc"))
    xr.testing.assert_identical(chunked.load(), ours.load())
