"""ToF-SIMS: fragment maps, depth profiles, 3D volumes, colocalization, sample comparison."""

from .calibration import calibrate, channel_to_mass, mass_to_channel
from .errors import ToFSIMSError
from .masses import fragment_mass, peak_windows
from .read import read
from . import coloc, compare, maps, processing, profiles, volume  # noqa: E402  analysis modules

__all__ = ["ToFSIMSError", "calibrate", "channel_to_mass", "fragment_mass", "mass_to_channel", "peak_windows", "read",
           "coloc", "compare", "maps", "processing", "profiles", "volume"]
