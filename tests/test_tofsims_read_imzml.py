"""imzML (vendor-neutral) via pyimzml: a 3D cube written with pyimzml's own writer reads back as
the same counts; unsafe XML is refused before pyimzml parses it."""

from __future__ import annotations

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError

SHAPE = (3, 5, 7)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from pyimzml.ImzMLWriter import ImzMLWriter

    truth = simulate.poisson_counts(simulate.phantom(SHAPE, seed=3), seed=3)
    path = tmp_path_factory.mktemp("imzml") / "cube.imzML"
    counts = truth["counts"].values
    rest = truth["total"].values.astype(np.int64) - counts.sum(axis=0, dtype=np.int64)
    # one centroid per fragment at its exact mass, plus the ions outside every window at 3.7 u
    mzs = np.append(truth["fragment_mass"].values, 3.7)
    order = np.argsort(mzs)
    with ImzMLWriter(str(path), mz_dtype=np.float64, intensity_dtype=np.float64, polarity="negative") as writer:
        for s in range(SHAPE[0]):
            for y in range(SHAPE[1]):
                for x in range(SHAPE[2]):
                    values = np.append(counts[:, s, y, x], rest[s, y, x]).astype(float)
                    writer.addSpectrum(mzs[order], values[order], (x + 1, y + 1, s + 1))
    return path, truth


def test_imzml_cube_equals_truth(written):
    path, truth = written
    ds = tofsims.read(path, fragments=list(truth["fragment"].values))
    assert ds.attrs["format"] == "imzML"
    assert ds["counts"].dtype == np.uint32
    np.testing.assert_array_equal(ds["counts"].values, truth["counts"].values)
    np.testing.assert_array_equal(ds["total"].values, truth["total"].values)
    np.testing.assert_allclose(ds["mass_low"].values, truth["mass_low"].values)
    part = tofsims.read(path, fragments=["InO-"])
    np.testing.assert_array_equal(part["counts"].values[0], truth["counts"].sel(fragment="InO-").values)


def test_imzml_needs_windows_and_refuses_entity_expansion(written, tmp_path):
    path, _ = written
    with pytest.raises(ToFSIMSError, match="needs fragments"):
        tofsims.read(path)
    bomb = tmp_path / "bomb.imzML"
    bomb.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE mzML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>\n'
        "<mzML>&b;</mzML>\n"
    )
    with pytest.raises(ToFSIMSError, match=r"bomb\.imzML: unsafe XML rejected"):
        tofsims.read(bomb, fragments=["BO-"])


@pytest.mark.parametrize("value", ["99999999999999999999999", "4294967296000", "-8"])
def test_imzml_offsets_outside_the_ibd_are_refused(written, tmp_path, value):
    """An external offset beyond the .ibd (or beyond int64: was an OverflowError) is refused with
    the file's name, before any read; the .ibd is not opened twice or left open."""
    import re
    import shutil

    path, _ = written
    text = path.read_text()
    changed = re.sub(r'(accession="IMS:1000102"[^>]*value=")(\d+)', lambda m: m.group(1) + value, text, count=3)
    assert changed != text
    bad = tmp_path / "bad.imzML"
    bad.write_text(changed)
    shutil.copy(path.with_suffix(".ibd"), bad.with_suffix(".ibd"))
    with pytest.raises(ToFSIMSError, match=r"bad\.imzML: spectrum 0: m/z array at offset -?\d+, \d+ values, lies outside"):
        tofsims.read(bad, fragments=["BO-"])
