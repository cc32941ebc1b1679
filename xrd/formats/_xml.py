"""Safe XML for the instrument formats: defusedxml only, entities and DTDs refused."""

from __future__ import annotations

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ._pattern import fail

#: Largest XML document parsed (bytes); a powder scan is a few MB at most.
MAX_XML_BYTES = 256 * 1024 * 1024


def parse(path, data: bytes, member: str = ""):
    """Root element of ``data``; entity declarations (XXE, billion laughs) and DTDs are refused."""
    where = f"{member}: " if member else ""
    if len(data) > MAX_XML_BYTES:
        raise fail(path, f"{where}XML of {len(data)} bytes exceeds the {MAX_XML_BYTES}-byte limit")
    try:
        return DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise fail(path, f"{where}unsafe XML refused ({type(exc).__name__}: DTD/entity declarations are not allowed)") from None
    except DET.ParseError as exc:
        raise fail(path, f"{where}malformed XML: {exc}") from None
    except LookupError as exc:
        # expat asks Python's codec registry for the declared encoding; an unknown name ends here
        raise fail(path, f"{where}XML declares an encoding Python does not know ({exc})") from None
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise fail(path, f"{where}malformed XML: {type(exc).__name__}: {exc}") from None


def local(tag: str) -> str:
    """Tag name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def children(element, name: str):
    """Direct children with local name ``name``."""
    return [c for c in element if local(c.tag) == name]


def child(element, name: str):
    """First direct child with local name ``name`` (or None)."""
    for c in element:
        if local(c.tag) == name:
            return c
    return None


def descendants(element, name: str):
    """All descendants with local name ``name``, document order."""
    return [e for e in element.iter() if local(e.tag) == name]


def text_of(element, name: str, default: str = "") -> str:
    """Stripped text of the first descendant named ``name``."""
    for e in element.iter():
        if local(e.tag) == name and e.text is not None:
            return e.text.strip()
    return default
