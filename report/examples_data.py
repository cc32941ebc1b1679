"""The bundled examples (``examples/`` in the source tree, ``doptrace.examples`` when installed).

The demo reads its XRD recipe and XPS models from there through :mod:`importlib.resources`, so a
wheel install works without the source tree and the example files are the only copy.
"""

from __future__ import annotations

from importlib import resources


def example_text(relative: str) -> str:
    """Text of a bundled example file, e.g. ``example_text("xrd/li-rich-two-phase.toml")``."""
    return resources.files("doptrace.examples").joinpath(relative).read_text(encoding="utf-8")
