"""XPS file formats: one module per format, each exposing ``read(path, **kwargs)``,
``sniff(head: bytes) -> bool`` and ``EXTENSIONS``; :data:`REGISTRY` maps extensions to them.

========== ============================================== =====================================
module     format                                         extensions
========== ============================================== =====================================
vamas      ISO 14976 VAMAS (read + write)                 .vms .vamas .npl
phi        PHI MultiPak spectra and depth profiles        .spe .pro
specs_xy   SPECS Prodigy XY export                        .xy
specs_xml  SPECS SpecsLab 2 XML (multi-channel detector)  .xml
avantage   Thermo Avantage / KherveFitting Excel          .xlsx .xlsm
text       plain tables, CasaXPS tabulated text export    .csv .txt .xy .dat .tsv
casa       CasaXPS block comments (not a file reader)     -
========== ============================================== =====================================

:func:`reader_for` picks the reader by content sniffing first (the first 64 KiB), the file
extension second, so a VAMAS file saved as ``.txt`` still reads as VAMAS.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from ..errors import XPSError
from . import avantage, phi, specs_xml, specs_xy, text, vamas

#: Readers in sniffing order (most specific content signature first); ``text`` last because it
#: also takes any .csv/.txt/.xy by extension.
READERS: list[ModuleType] = [vamas, phi, specs_xy, specs_xml, avantage, text]

#: Extension (lower case, with dot) -> reader modules that claim it.
REGISTRY: dict[str, list[ModuleType]] = {}


def register(module: ModuleType) -> None:
    """Add a reader module (``read``, ``sniff``, ``EXTENSIONS``) to the registry."""
    if module not in READERS:
        READERS.append(module)
    for ext in module.EXTENSIONS:
        REGISTRY.setdefault(ext.lower(), [])
        if module not in REGISTRY[ext.lower()]:
            REGISTRY[ext.lower()].append(module)


for _module in list(READERS):
    register(_module)

SNIFF_BYTES = 64 * 1024


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(SNIFF_BYTES)
    except IsADirectoryError:
        raise XPSError(f"{path}: is a folder, not an XPS file") from None
    except FileNotFoundError:
        raise XPSError(f"{path}: no such file") from None
    except OSError as exc:
        raise XPSError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def reader_for(path: str | os.PathLike) -> ModuleType:
    """The reader module for ``path``: content sniffing first, extension second.

    Raises
    ------
    XPSError
        "<path>: not a recognised XPS file (...)" when nothing claims it.
    """
    path = Path(path)
    head = _head(path)
    if not head.strip():
        raise XPSError(f"{path}: empty file")
    for module in READERS:
        if module.sniff(head):
            return module
    if path.suffix.lower() in vamas.EXTENSIONS and vamas.is_comment_fragment(head):
        raise XPSError(
            f"{path}: a VAMAS comment fragment (metadata lines only, no spectra); "
            "read its text with xps.formats.vamas.read_comment_fragment"
        )
    ext = path.suffix.lower()
    claimed = REGISTRY.get(ext, [])
    for module in claimed:
        if getattr(module, "ACCEPTS_BY_EXTENSION", False):
            return module
    known = ", ".join(sorted(REGISTRY))
    control = sum(1 for byte in head[:4096] if byte < 9 or 13 < byte < 32)
    kind = "binary content" if control > 0.01 * min(len(head), 4096) else "content"
    why = f"{kind} does not match the {ext} format" if claimed else f"extension {ext or '(none)'} is not one of {known}"
    raise XPSError(f"{path}: not a recognised XPS file ({why})")
