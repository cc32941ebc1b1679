"""The IONTOF "ITStr" block container behind ``.ita``/``.itm``/``.its`` files: reader and writer.

Layout (see ``../shared/data/tofsims/PROVENANCE.md``; all integers little-endian)::

    file      = b"ITStrF01" block                      # root block at offset 8
    block     = type:u8 0x19000000:u32 name_len:u32 id:u32 n_children:u32 length1:u32 length2:u32
                name[name_len] value[length1]           # 25-byte header
    type 0x01 / 0x03 (directory / continuation): value = 41-byte head
                (names_start:u32 capacity:u32 next_head[25] next_offset:u64), n_children x 33-byte
                entries (type:u8 name_index:u32 name_len:u32 id:u32 has_data:u32 length:u64
                offset:u64), then the concatenated child names; name_index counts from the value
                start; a non-zero next_offset points at a continuation (type 0x03) with more entries.
    type 0x00: scalar leaf (int32, float64, UTF-16LE text; the path says which)
    type 0x80: zlib-compressed leaf (arrays)

Siblings may share a name and differ by ``id`` (``Image[3]`` is the child ``Image`` with id 3).

Why hand-written: no maintained library reads this container (rosettasciio has no IONTOF
reader; pySPM is an application with pinned heavy dependencies, slow per-scan reads, and opens
files it may edit). This reader only ever maps files read-only and checks every offset and
length against the file size before it slices or allocates.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from doptrace.core.atomic import atomic_open

from .._files import existing_file
from ..errors import ToFSIMSError

MAGIC = b"ITStrF01"
MARKER = b"\x19\x00\x00\x00"
HEADER = struct.Struct("<B4s5I")  # 25 bytes
DIR_HEAD = struct.Struct("<II5s5IQ")  # 41 bytes
ENTRY = np.dtype(
    [
        ("type", "u1"),
        ("index", "<u4"),
        ("name_len", "<u4"),
        ("id", "<u4"),
        ("has_data", "<u4"),
        ("length", "<u8"),
        ("offset", "<u8"),
    ]
)  # packed: 33 bytes
assert ENTRY.itemsize == 33
DIRECTORY_TYPES = (0x01, 0x03)
LEAF, COMPRESSED = 0x00, 0x80
MAX_NAME = 4096
# the largest array one leaf may decompress to unless the caller knows the exact size
MAX_LEAF_BYTES = 1 << 31
_STEP = re.compile(r"^(?P<name>[^\[\]]*)(?:\[(?P<id>\d+)\])?$")


@dataclass(frozen=True)
class Block:
    """One block's header: where it is, what it is, where its value starts."""

    offset: int
    type: int
    name: str
    id: int
    n_children: int
    length: int
    value_offset: int

    @property
    def is_directory(self) -> bool:
        return self.type in DIRECTORY_TYPES


@dataclass(frozen=True)
class Entry:
    """One directory entry (a child reference)."""

    name: str
    id: int
    type: int
    length: int
    offset: int


class ITStrFile:
    """A read-only, memory-mapped ITStr container.

    State is real here (an open map and a cache of directory listings), hence a class.

    Examples
    --------
    >>> with ITStrFile("scan.ita") as f:                                  # doctest: +SKIP
    ...     nx = f.int32("Meta/SI Image/res_x")
    """

    def __init__(self, path):
        self.path = existing_file(path)
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            self._file.close()
            raise ToFSIMSError(f"{self.path}: cannot map file ({exc})") from None
        self.size = len(self._map)
        self._view = memoryview(self._map)
        self._listing: dict[int, list[Entry]] = {}
        if self.size < len(MAGIC) + HEADER.size:
            self.close()
            raise ToFSIMSError(f"{self.path}: truncated file ({self.size} bytes), not an ITStr container")
        if bytes(self._view[: len(MAGIC)]) != MAGIC:
            magic = bytes(self._view[: len(MAGIC)])
            self.close()
            raise ToFSIMSError(f"{self.path}: wrong magic {magic!r}, expected {MAGIC!r} (not an IONTOF ITA/ITM file)")
        try:
            self.root = self.block_at(len(MAGIC))
        except ToFSIMSError:
            self.close()
            raise

    # -- life cycle -------------------------------------------------------------------------
    def close(self) -> None:
        view, self._view = getattr(self, "_view", None), None
        mapping, self._map = getattr(self, "_map", None), None
        self._listing = {}
        try:
            if view is not None:
                view.release()
            if mapping is not None:
                mapping.close()
        except BufferError:
            pass  # an array still borrows the map; it is unmapped when that array is freed
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fail(self, problem: str):
        raise ToFSIMSError(f"{self.path}: {problem}")

    # -- structure --------------------------------------------------------------------------
    def block_at(self, offset: int) -> Block:
        """Parse the block header at ``offset``; every length is checked against the file size."""
        if offset < len(MAGIC) or offset + HEADER.size > self.size:
            self._fail(f"block at offset {offset} lies past the end of the file ({self.size} bytes)")
        btype, marker, name_len, bid, n_children, length1, _length2 = HEADER.unpack_from(self._view, offset)
        if marker != MARKER:
            self._fail(f"no block at offset {offset} (marker {marker.hex()}, expected 19000000); file corrupt")
        if name_len > MAX_NAME or offset + HEADER.size + name_len > self.size:
            self._fail(f"block at offset {offset} has a name of {name_len} bytes past the end of the file")
        value_offset = offset + HEADER.size + name_len
        if value_offset + length1 > self.size:
            self._fail(
                f"block at offset {offset} claims {length1} bytes of value, past the end of the file "
                f"({self.size} bytes; truncated?)"
            )
        try:
            name = bytes(self._view[offset + HEADER.size : value_offset]).decode("ascii")
        except UnicodeDecodeError:
            self._fail(f"block at offset {offset} has a non-ASCII name")
        return Block(offset, btype, name, bid, n_children, length1, value_offset)

    def children(self, block: Block) -> list[Entry]:
        """The entries of a directory block, following its continuation chain."""
        if not block.is_directory:
            return []
        cached = self._listing.get(block.offset)
        if cached is not None:
            return cached
        entries: list[Entry] = []
        seen = set()
        chunk = block
        while True:
            seen.add(chunk.offset)
            if chunk.length < DIR_HEAD.size:
                self._fail(f"directory {chunk.name!r} at offset {chunk.offset} is shorter than its 41-byte head")
            next_offset = DIR_HEAD.unpack_from(self._view, chunk.value_offset)[-1]
            table_end = DIR_HEAD.size + ENTRY.itemsize * chunk.n_children
            if table_end > chunk.length:
                self._fail(
                    f"directory {chunk.name!r} at offset {chunk.offset} lists {chunk.n_children} children "
                    f"that do not fit in its {chunk.length}-byte value"
                )
            table = np.frombuffer(
                self._view, ENTRY, count=chunk.n_children, offset=chunk.value_offset + DIR_HEAD.size
            )
            bad = (table["index"].astype(np.int64) + table["name_len"] > chunk.length) | (
                table["offset"] + HEADER.size > self.size
            )
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                self._fail(
                    f"directory {chunk.name!r} entry {i} points past the end of the file "
                    f"(offset {int(table['offset'][i])}, file {self.size} bytes)"
                )
            value = chunk.value_offset
            for row in table.tolist():
                btype, index, name_len, bid, _has_data, length, offset = row
                try:
                    name = bytes(self._view[value + index : value + index + name_len]).decode("ascii")
                except UnicodeDecodeError:
                    self._fail(f"directory {chunk.name!r} has a non-ASCII child name")
                entries.append(Entry(name, bid, btype, length, offset))
            if next_offset == 0:
                break
            if next_offset in seen:
                self._fail(f"directory {block.name!r} continuation chain loops at offset {next_offset}")
            chunk = self.block_at(next_offset)
            if not chunk.is_directory:
                self._fail(f"directory {block.name!r} continuation at offset {next_offset} is not a directory")
        self._listing[block.offset] = entries
        return entries

    def child(self, block: Block, name: str, bid: int | None = None) -> Block | None:
        """The child ``name`` (with id ``bid``, or the first of that name) or None."""
        for entry in self.children(block):
            if entry.name == name and (bid is None or entry.id == bid):
                return self.block_at(entry.offset)
        return None

    def find(self, path: str, block: Block | None = None) -> Block | None:
        """Block at ``path`` ("a/b/Image[3]/c") below ``block`` (root by default), or None."""
        node = self.root if block is None else block
        for step in path.strip("/").split("/"):
            if not step:
                continue
            match = _STEP.match(step)
            if match is None:
                self._fail(f"bad block path {path!r}")
            bid = None if match["id"] is None else int(match["id"])
            node = self.child(node, match["name"], bid)
            if node is None:
                return None
        return node

    def require(self, path: str, block: Block | None = None) -> Block:
        """Like :meth:`find` but a missing block is an error naming the path."""
        node = self.find(path, block)
        if node is None:
            self._fail(f"block {path!r} is missing")
        return node

    # -- values -----------------------------------------------------------------------------
    def raw(self, block: Block) -> memoryview:
        """The block's stored value bytes (no copy)."""
        return self._view[block.value_offset : block.value_offset + block.length]

    def scalar(self, block: Block, fmt: str):
        raw = self.raw(block)
        size = struct.calcsize("<" + fmt)
        if len(raw) < size:
            self._fail(f"block {block.name!r} holds {len(raw)} bytes, too short for a {fmt!r} value")
        return struct.unpack_from("<" + fmt, raw)[0]

    def int32(self, path: str, default=None):
        block = self.find(path)
        return default if block is None else self.scalar(block, "i")

    def float64(self, path: str, default=None):
        block = self.find(path)
        return default if block is None else self.scalar(block, "d")

    def text(self, path: str, default=None):
        block = self.find(path)
        if block is None:
            return default
        return bytes(self.raw(block)).decode("utf-16-le", "replace").rstrip("\x00")

    def keyvalue(self, block: Block) -> dict:
        """A ``propstart``/``propend`` record: key, int, float and text value."""
        raw = self.raw(block)
        try:
            (klen,) = struct.unpack_from("<I", raw, 16)
            key = bytes(raw[20 : 20 + klen]).decode("utf-16-le", "replace")
            ivalue, fvalue = struct.unpack_from("<2xqd", raw, 20 + klen)
            (slen,) = struct.unpack_from("<I", raw, 38 + klen)
            if 42 + klen + slen > len(raw):
                raise struct.error("text past the end of the record")
            text = bytes(raw[42 + klen : 42 + klen + slen]).decode("utf-16-le", "replace")
        except struct.error as exc:
            self._fail(f"property record {block.name!r} is malformed ({exc})")
        return {"key": key, "int": ivalue, "float": fvalue, "string": text}

    def decompress(self, block: Block, expected_bytes: int | None = None) -> bytes:
        """Inflate a 0x80 leaf, never producing more than ``expected_bytes``.

        Without ``expected_bytes`` the limit is what deflate can possibly expand the stored bytes
        to (about 1032:1), capped at MAX_LEAF_BYTES.
        """
        if block.type != COMPRESSED:
            return bytes(self.raw(block))
        if expected_bytes is None:
            limit = min(MAX_LEAF_BYTES, 1040 * block.length + 1024)
        else:
            limit = expected_bytes
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(self.raw(block), limit)
        except zlib.error as exc:
            self._fail(f"block {block.name!r} at offset {block.offset}: corrupt zlib data ({exc})")
        if inflater.unconsumed_tail or (expected_bytes is not None and len(out) != expected_bytes):
            self._fail(
                f"block {block.name!r} at offset {block.offset} inflates to "
                f"{'more than ' if inflater.unconsumed_tail else ''}{len(out)} bytes, expected {expected_bytes}"
            )
        return out

    def array(self, block: Block, dtype, count: int | None = None) -> np.ndarray:
        """The leaf's value as a 1-D array of ``dtype`` (``count`` items exactly when given)."""
        dtype = np.dtype(dtype)
        expected = None if count is None else count * dtype.itemsize
        data = self.decompress(block, expected)
        if len(data) % dtype.itemsize:
            self._fail(f"block {block.name!r} holds {len(data)} bytes, not a whole number of {dtype} items")
        return np.frombuffer(data, dtype)

    def walk(self, block: Block | None = None, prefix: str = ""):
        """Yield ``(path, Block)`` for every block below ``block`` (depth first)."""
        node = self.root if block is None else block
        for entry in self.children(node):
            child = self.block_at(entry.offset)
            path = f"{prefix}{entry.name}[{entry.id}]"
            yield path, child
            if child.is_directory:
                yield from self.walk(child, path + "/")


# ----------------------------------------------------------------------------------------------
# Writer


@dataclass
class Node:
    """A block to write: a directory (``children``) or a leaf (``value``, ``compressed``)."""

    name: str
    id: int = 0
    value: bytes = b""
    compressed: bool = False
    children: list["Node"] | None = None
    _offset: int = field(default=0, repr=False)

    @property
    def is_directory(self) -> bool:
        return self.children is not None

    def dir(self, name: str, id: int = 0) -> "Node":
        """The child directory ``name`` (id), created when missing."""
        for child in self.children:
            if child.is_directory and child.name == name and child.id == id:
                return child
        child = Node(name, id, children=[])
        self.children.append(child)
        return child

    def path(self, path: str) -> "Node":
        """The directory at ``path`` ("a/b/Image[2]"), creating directories on the way."""
        node = self
        for step in path.strip("/").split("/"):
            if step:
                match = _STEP.match(step)
                node = node.dir(match["name"], int(match["id"] or 0))
        return node

    def leaf(self, name: str, value: bytes, id: int = 0, compressed: bool = False) -> "Node":
        child = Node(name, id, value=bytes(value), compressed=compressed)
        self.children.append(child)
        return child

    # typed leaves
    def int32(self, name: str, value: int, id: int = 0):
        return self.leaf(name, struct.pack("<i", int(value)), id)

    def uint32(self, name: str, value: int, id: int = 0):
        return self.leaf(name, struct.pack("<I", int(value)), id)

    def float64(self, name: str, value: float, id: int = 0):
        return self.leaf(name, struct.pack("<d", float(value)), id)

    def text(self, name: str, value: str, id: int = 0):
        return self.leaf(name, str(value).encode("utf-16-le"), id)

    def array(self, name: str, values, dtype, id: int = 0, level: int = 6):
        """A zlib-compressed (type 0x80) leaf holding ``values`` as little-endian ``dtype``."""
        data = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        return self.leaf(name, zlib.compress(data, level), id, compressed=True)

    def property(self, key: str, *, int_value: int = 0, float_value: float = 0.0, text: str = "", id: int = 0):
        """A ``propstart``/``propend`` key-value record named after its key."""
        k = key.encode("utf-16-le")
        s = str(text).encode("utf-16-le")
        value = (
            bytes(16)
            + struct.pack("<I", len(k))
            + k
            + struct.pack("<2xqd", int(int_value), float(float_value))
            + struct.pack("<I", len(s))
            + s
        )
        return self.leaf(key, value, id)


def new_root() -> Node:
    """An empty root directory for :func:`write`."""
    return Node("", children=[])


def _directory_value(node: Node) -> bytes:
    names, name_index = bytearray(), {}
    table_size = DIR_HEAD.size + ENTRY.itemsize * len(node.children)
    for child in node.children:
        if child.name not in name_index:
            name_index[child.name] = table_size + len(names)
            names += child.name.encode("ascii")
    head = DIR_HEAD.pack(table_size, len(node.children), bytes(5), 0, 0, 0, 0, 0, 0)
    table = np.zeros(len(node.children), ENTRY)
    for row, child in zip(table, node.children):
        row["type"] = 0x01 if child.is_directory else (COMPRESSED if child.compressed else LEAF)
        row["index"] = name_index[child.name]
        row["name_len"] = len(child.name)
        row["id"] = child.id
        row["has_data"] = 0 if child.is_directory else 1
        row["length"] = _value_length(child)
        row["offset"] = child._offset
    return head + table.tobytes() + bytes(names)


def _value_length(node: Node) -> int:
    if not node.is_directory:
        return len(node.value)
    names = {c.name for c in node.children}
    return DIR_HEAD.size + ENTRY.itemsize * len(node.children) + sum(len(n) for n in names)


def write(path, root: Node) -> None:
    """Write the tree ``root`` as an ITStr file (atomically: temp file then rename).

    Blocks are laid out depth first, parents before children, root at offset 8, as IONTOF files
    and pySPM expect.
    """
    order: list[Node] = []
    cursor = len(MAGIC)
    stack = [root]
    while stack:
        node = stack.pop()
        node._offset = cursor
        cursor += HEADER.size + len(node.name.encode("ascii")) + _value_length(node)
        order.append(node)
        if node.is_directory:
            stack.extend(reversed(node.children))
    with atomic_open(Path(path), "wb") as out:
        out.write(MAGIC)
        for node in order:
            value = _directory_value(node) if node.is_directory else node.value
            btype = 0x01 if node.is_directory else (COMPRESSED if node.compressed else LEAF)
            n_children = len(node.children) if node.is_directory else 0
            out.write(HEADER.pack(btype, MARKER, len(node.name), node.id, n_children, len(value), len(value)))
            out.write(node.name.encode("ascii"))
            out.write(value)
