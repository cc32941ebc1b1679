"""Bad ToF-SIMS input gives one clear ToFSIMSError line naming the file and the problem, allocates
nothing absurd and leaves the input untouched."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc

import numpy as np
import pytest

from doptrace import tofsims
from doptrace.tofsims import simulate
from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.formats import itstr


@pytest.fixture(scope="module")
def good_ita(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "good.ita"
    simulate.write_ita(path, shape=(3, 8, 8), seed=1, with_spectrum=False)
    return path.read_bytes()


def _fails(path, match, **kw):
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    with pytest.raises(ToFSIMSError) as info:
        tofsims.read(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert match in message, message
    if digest:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    return message


def test_truncated_ita(tmp_path, good_ita):
    path = tmp_path / "cut.ita"
    path.write_bytes(good_ita[: len(good_ita) // 2])
    _fails(path, "past the end of the file")
    path.write_bytes(good_ita[:20])
    _fails(path, "truncated file")


def test_wrong_magic(tmp_path, good_ita):
    path = tmp_path / "magic.ita"
    path.write_bytes(b"ITStrX99" + good_ita[8:])
    _fails(path, "unsupported ITStr version")
    path.write_bytes(b"PK\x03\x04" + good_ita[4:])
    _fails(path, "wrong magic")


def test_block_pointing_past_eof(tmp_path, good_ita):
    raw = bytearray(good_ita)
    # first entry of the root directory: its absolute offset is the last <Q of the 33-byte entry
    at = 8 + 25 + 41 + 25
    struct.pack_into("<Q", raw, at, len(raw) + 10_000)
    path = tmp_path / "pointer.ita"
    path.write_bytes(bytes(raw))
    _fails(path, "points past the end of the file")


def test_block_length_past_eof(tmp_path, good_ita):
    raw = bytearray(good_ita)
    struct.pack_into("<I", raw, 8 + 17, 1 << 31)  # root block length1
    path = tmp_path / "length.ita"
    path.write_bytes(bytes(raw))
    _fails(path, "past the end of the file")


def _ita_with_size(path, nx, ny, image_bytes=b""):
    root = itstr.new_root()
    si = root.path("Meta/SI Image")
    si.int32("res_x", nx)
    si.int32("res_y", ny)
    si.float64("fieldofview", 1e-4)
    mi = root.path("MassIntervalList").dir("mi", 2)
    mi.int32("id", 2)
    mi.text("assign", "BO-")
    root.path("filterdata/TofCorrection/ImageStack/Reduced Data").int32("NumberOfScans", 1)
    stack = root.path("filterdata/TofCorrection/ImageStack/Reduced Data/ImageStackScans")
    stack.dir("Image", 2).array("ImageArray.Long", np.frombuffer(image_bytes, np.uint32), "<u4")
    itstr.write(path, root)


def test_absurd_image_size_allocates_nothing(tmp_path):
    path = tmp_path / "huge.ita"
    _ita_with_size(path, 1_000_000, 1_000_000)
    tracemalloc.start()
    try:
        _fails(path, "absurd image size 1000000 x 1000000")
        # plausible-looking size, but far more pixels than the stored bytes can hold
        _ita_with_size(path, 16384, 16384, np.arange(64, dtype=np.uint32).tobytes())
        _fails(path, "absurd image size")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6  # a 16384^2 uint32 image alone would be 1 GB


def test_image_leaf_of_wrong_size(tmp_path):
    path = tmp_path / "short.ita"
    _ita_with_size(path, 8, 8, np.arange(60, dtype=np.uint32).tobytes())  # 60 of 64 pixels
    _fails(path, "inflates to 240 bytes, expected 256")


def test_ascii_spectrum_problems(tmp_path):
    header = "# Binning: 200 channels\r\n# Deadtime Correction: on\r\nChannel\tm/z\tIntensity\r\n"
    path = tmp_path / "ragged.txt"
    path.write_bytes((header + "100\t0.0002\t2\r\n300\t0.0004\r\n500\t0.0007\t4\r\n").encode())
    _fails(path, "ragged rows: line 5 has 2 columns, expected 3")
    path = tmp_path / "nan.txt"
    path.write_bytes((header + "100\t0.0002\t2\r\n300\t0.0004\tnan\r\n").encode())
    _fails(path, "non-finite value")
    path = tmp_path / "word.txt"
    path.write_bytes((header + "100\t0.0002\t2\r\n300\t0.0004\tlots\r\n").encode())
    _fails(path, "line 5: not a number")
    path = tmp_path / "empty_data.txt"
    path.write_bytes(header.encode())
    _fails(path, "no data rows")


def test_ascii_profile_and_image_problems(tmp_path):
    path = tmp_path / "profile.txt"
    path.write_text("Depth profile\n\tBO-\tMnO-\nTime\tI\tI\n[s]\tc\tc\n0\t1\t2\n1\t3\n")
    _fails(path, "ragged rows: line 6 has 2 columns, expected 3")
    path = tmp_path / "img - BO-.txt"
    path.write_text("# Fragment: BO-\n0 0 0 5\n1 0 0 7\n1 1 0\n")
    _fails(path, "ragged rows")
    path = tmp_path / "neg - BO-.txt"
    path.write_text("# Fragment: BO-\n0 0 0 5\n1 0.5 0 7\n")
    _fails(path, "x, y and scan must be non-negative integers")


def test_missing_empty_and_unknown_files(tmp_path):
    _fails(tmp_path / "nothing.ita", "no such file")
    empty = tmp_path / "empty.ita"
    empty.write_bytes(b"")
    _fails(empty, "file is empty")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(bytes(range(256)) * 4)
    _fails(junk, "unknown ToF-SIMS file format")
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    _fails(text, "not a recognised IONTOF ASCII export")
