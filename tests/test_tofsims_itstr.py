"""The ITStr block container: writer and reader agree, and the reader follows the documented layout
(including directory continuation chunks, which our writer never produces, built here byte by byte)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from doptrace.tofsims.errors import ToFSIMSError
from doptrace.tofsims.formats import itstr


def _tree():
    root = itstr.new_root()
    meta = root.path("Meta/SI Image")
    meta.int32("res_x", 64)
    meta.float64("fieldofview", 1.25e-4)
    meta.text("description", "total ions µ")
    stack = root.path("filterdata/Images")
    for k in range(3):
        stack.dir("Image", k).array("ImageArray.Long", np.arange(12, dtype=np.uint32) * (k + 1), "<u4")
    root.path("propend").property("Measurement.SputterTime", int_value=7, float_value=812.5, text="812.5 s")
    return root


def test_round_trip_values_and_ids(tmp_path):
    path = tmp_path / "t.ita"
    itstr.write(path, _tree())
    with itstr.ITStrFile(path) as f:
        assert f.int32("Meta/SI Image/res_x") == 64
        assert f.float64("Meta/SI Image/fieldofview") == 1.25e-4
        assert f.text("Meta/SI Image/description") == "total ions µ"
        for k in range(3):
            block = f.require(f"filterdata/Images/Image[{k}]/ImageArray.Long")
            assert block.type == itstr.COMPRESSED
            np.testing.assert_array_equal(f.array(block, "<u4", 12), np.arange(12) * (k + 1))
        record = f.keyvalue(f.require("propend/Measurement.SputterTime"))
        assert record == {"key": "Measurement.SputterTime", "int": 7, "float": 812.5, "string": "812.5 s"}
        assert f.find("Meta/nothing") is None
        assert f.int32("Meta/nothing", -1) == -1
        paths = [p for p, _ in f.walk()]
        assert "filterdata[0]/Images[0]/Image[2][2]/ImageArray.Long[0]" not in paths  # ids are per name
        assert "filterdata[0]/Images[0]/Image[2]/ImageArray.Long[0]" in paths
        assert len(paths) == 15  # 5 under Meta, 8 under filterdata, 2 under propend


def test_block_layout_matches_the_documented_header(tmp_path):
    path = tmp_path / "t.ita"
    itstr.write(path, _tree())
    raw = path.read_bytes()
    assert raw[:8] == b"ITStrF01"
    btype, marker, name_len, bid, n_children, length1, length2 = struct.unpack_from("<B4s5I", raw, 8)
    assert (btype, marker, name_len, n_children, length1 == length2) == (1, b"\x19\x00\x00\x00", 0, 3, True)
    # first directory entry of the root: 33 bytes after the 41-byte head
    entry = struct.unpack_from("<BIIIIQQ", raw, 8 + 25 + 41)
    child_type, name_index, child_name_len, child_id, has_data, blen, offset = entry
    value = 8 + 25
    assert raw[value + name_index : value + name_index + child_name_len] == b"Meta"
    assert (child_type, child_id, has_data) == (1, 0, 0)
    assert struct.unpack_from("<B4s", raw, offset) == (1, b"\x19\x00\x00\x00")


def _block(btype, name, value, bid=0, n_children=0):
    name = name.encode("ascii")
    return struct.pack("<B4s5I", btype, b"\x19\x00\x00\x00", len(name), bid, n_children, len(value), len(value)) + name + value


def _directory(entries, next_offset=0):
    """A directory value with entries ``[(type, name, id, length, offset)]``."""
    names, index = b"", {}
    table = 41 + 33 * len(entries)
    for _, name, *_ in entries:
        if name not in index:
            index[name] = table + len(names)
            names += name.encode("ascii")
    head = struct.pack("<II5s5IQ", table, len(entries), bytes(5), 0, 0, 0, 0, 0, next_offset)
    body = b"".join(
        struct.pack("<BIIIIQQ", t, index[n], len(n), i, int(t != 1), length, offset) for t, n, i, length, offset in entries
    )
    return head + body + names


def test_reader_follows_directory_continuations(tmp_path):
    """A root directory split over two chunks (type 0x01 then 0x03) lists all its children."""
    leaf_a = _block(0, "a", struct.pack("<i", 11))
    leaf_b = _block(0, "b", struct.pack("<i", 22), bid=5)
    leaf_c = _block(0x80, "c", zlib.compress(np.arange(4, dtype="<u4").tobytes()))
    # layout: magic | root chunk | leaf a | continuation chunk | leaf b | leaf c
    root_len = len(_block(1, "", _directory([(0, "a", 0, 4, 0)], 1)))
    a_at = 8 + root_len
    cont_at = a_at + len(leaf_a)
    cont_len = len(_block(3, "", _directory([(0, "b", 5, 4, 0), (0x80, "c", 0, 0, 0)])))
    b_at = cont_at + cont_len
    c_at = b_at + len(leaf_b)
    root = _block(1, "", _directory([(0, "a", 0, 4, a_at)], next_offset=cont_at), n_children=1)
    cont = _block(3, "", _directory([(0, "b", 5, 4, b_at), (0x80, "c", 0, len(leaf_c) - 26, c_at)]), n_children=2)
    path = tmp_path / "cont.ita"
    path.write_bytes(b"ITStrF01" + root + leaf_a + cont + leaf_b + leaf_c)
    with itstr.ITStrFile(path) as f:
        assert [(e.name, e.id) for e in f.children(f.root)] == [("a", 0), ("b", 5), ("c", 0)]
        assert f.int32("a") == 11
        assert f.int32("b[5]") == 22
        assert f.find("b[0]") is None
        np.testing.assert_array_equal(f.array(f.require("c"), "<u4", 4), [0, 1, 2, 3])


def test_continuation_loop_is_an_error(tmp_path):
    root_len = len(_block(1, "", _directory([], 1)))
    root = _block(1, "", _directory([], next_offset=8))  # points at itself
    assert len(root) == root_len
    path = tmp_path / "loop.ita"
    path.write_bytes(b"ITStrF01" + root)
    with itstr.ITStrFile(path) as f, pytest.raises(ToFSIMSError, match="loops"):
        f.children(f.root)


def test_decompression_is_bounded(tmp_path):
    """A leaf claiming a small array but inflating to far more is refused without inflating it all."""
    root = itstr.new_root()
    root.array("bomb", np.zeros(1 << 22, np.uint32), "<u4")  # 16 MB of zeros, ~16 kB compressed
    path = tmp_path / "bomb.ita"
    itstr.write(path, root)
    with itstr.ITStrFile(path) as f, pytest.raises(ToFSIMSError, match="inflates to more than"):
        f.array(f.require("bomb"), "<u4", 16)


def test_reader_never_writes(tmp_path):
    path = tmp_path / "t.ita"
    itstr.write(path, _tree())
    before = path.read_bytes()
    path.chmod(0o444)
    with itstr.ITStrFile(path) as f:
        list(f.walk())
    assert path.read_bytes() == before
