"""doptrace: dopant depth profiles from XRD, XPS, ToF-SIMS and STEM-EDS instrument files.

The installed distribution has this one import name. Its sub-packages live in folders at the
repository root and are mapped in by ``pyproject.toml``:

``doptrace.xps``, ``doptrace.xrd``, ``doptrace.tofsims``, ``doptrace.stem_eds``
    The four technique packages; each is independent of the others.
``doptrace.report``
    Result conventions, provenance, cross-technique checks, figures, the HTML report and the
    ``doptrace`` command; the only package that knows all four techniques.
``doptrace.core``
    The bottom layer every package may import: errors, atomic writes, units, TOML loading,
    value ± esd formatting.

Nothing is imported here, so ``import doptrace`` (and ``doptrace --help``) stays fast.
"""

__version__ = "0.1.0"
