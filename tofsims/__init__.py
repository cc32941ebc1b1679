"""ToF-SIMS: fragment maps, depth profiles, 3D volumes, colocalization, sample comparison."""

from .errors import ToFSIMSError
from .masses import fragment_mass, peak_windows
from .read import read
from . import coloc, compare, maps, processing, profiles, volume  # noqa: E402  analysis modules

__all__ = ["ToFSIMSError", "fragment_mass", "peak_windows", "read",
           "coloc", "compare", "maps", "processing", "profiles", "volume"]
