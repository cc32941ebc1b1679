"""Bounded reading of zip containers (Bruker ``.brml``): no member is inflated before its
declared size, the total and the compression ratio have been checked, and inflation stops at
the declared size, so a zip bomb costs neither memory nor time."""

from __future__ import annotations

import io
import zipfile
import zlib

from ._pattern import fail

#: Largest declared size of one member that is read (bytes).
MAX_MEMBER_BYTES = 128 * 1024 * 1024
#: Largest declared size of all members together (bytes).
MAX_TOTAL_BYTES = 512 * 1024 * 1024
#: Largest uncompressed/compressed ratio accepted for a member above RATIO_FLOOR bytes.
#: XML of a powder scan compresses 5-30x; bombs reach 1000x and more.
MAX_RATIO = 200
RATIO_FLOOR = 1024 * 1024
#: Most members a container may list.
MAX_MEMBERS = 20000
_CHUNK = 1 << 20


def open_zip(path, data: bytes) -> zipfile.ZipFile:
    """Zip archive over ``data`` after checking every member's declared size, the total, the
    ratio and the member count; nothing is decompressed here."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise fail(path, f"not a readable zip container: {exc}") from None
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise fail(path, f"zip lists {len(infos)} members, more than the {MAX_MEMBERS} allowed")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise fail(path, f"zip lists member {twice[0]!r} more than once: ambiguous container refused")
    total = 0
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise fail(path, f"zip member {info.filename!r} declares {info.file_size} bytes uncompressed, more than the {MAX_MEMBER_BYTES}-byte limit: refused (zip bomb?)")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise fail(path, f"zip member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}x (limit {MAX_RATIO}x): refused as a zip bomb")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise fail(path, f"zip members declare {total} bytes uncompressed in total, more than the {MAX_TOTAL_BYTES}-byte limit: refused (zip bomb?)")
    return archive


def read_member(path, archive: zipfile.ZipFile, name: str) -> bytes:
    """Bytes of one member, inflating no more than its (already checked) declared size."""
    info = archive.getinfo(name)
    limit = info.file_size
    out = bytearray()
    try:
        with archive.open(info) as fh:
            while True:
                chunk = fh.read(min(_CHUNK, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise fail(path, f"zip member {name!r} inflates beyond its declared {limit} bytes: refused")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise fail(path, f"zip member {name!r} cannot be read: {exc}") from None
    return bytes(out)
