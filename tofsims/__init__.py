"""ToF-SIMS: fragment maps, depth profiles, 3D volumes, colocalization, sample comparison."""

from .errors import ToFSIMSError
from .masses import fragment_mass, peak_windows
from .read import read

__all__ = ["ToFSIMSError", "fragment_mass", "peak_windows", "read"]
