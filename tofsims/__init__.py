"""ToF-SIMS: fragment maps, depth profiles, 3D volumes, colocalization, sample comparison.

``read(path)`` -> ``counts`` (fragment, scan, y, x) -> ``sputter_to_depth`` / ``dead_time_correct``
-> ``fragment_maps``, ``depth_profile`` -> ``uniformity_test``, ``colocalization``,
``compare.compare``. ``calibrate`` fits the mass scale of a spectrum, ``peaks.peak_search`` finds and
assigns its peaks; ``mva.mva`` is PCA/NMF with Poisson scaling; ``intervals`` reads custom mass
intervals. ``simulate.write_ita`` writes an ITA
file with known truth.

>>> from doptrace import tofsims
>>> from doptrace.tofsims.simulate import write_ita
>>> truth = write_ita("depth.ita", shape=(12, 32, 32), bulk_doped=False, seed=1)
>>> profile = tofsims.depth_profile(tofsims.read("depth.ita", fragments=["BO-"]), normalize="total")
>>> int(tofsims.uniformity_test(profile)["uniform"].sel(fragment="BO-"))  # boron only near the surface
0
"""

from .calibration import calibrate, channel_to_mass, mass_to_channel
from .coloc import colocalization
from .errors import ToFSIMSError
from .maps import fragment_maps, ratio_map
from .masses import fragment_mass, peak_windows
from .processing import dead_time_correct, normalize, sputter_to_depth
from .profiles import depth_profile, uniformity_test
from .read import read
from .volume import fragment_volume
from . import coloc, compare, maps, processing, profiles, volume  # noqa: E402  analysis modules

__all__ = ["ToFSIMSError", "read", "calibrate", "channel_to_mass", "mass_to_channel", "fragment_mass", "peak_windows",
           "dead_time_correct", "normalize", "sputter_to_depth", "fragment_maps", "ratio_map", "depth_profile",
           "uniformity_test", "colocalization", "fragment_volume",
           "coloc", "compare", "maps", "processing", "profiles", "volume"]
from . import pipeline  # noqa: E402  the whole per-file pipeline (read, corrections, every result)
from .plot import plot_coloc, plot_compare, plot_maps, plot_profile, plot_projections  # noqa: E402  figures
from . import intervals, mva, peaks  # noqa: E402  custom mass intervals, PCA/NMF, peak search
from .plot_mva import plot_mva  # noqa: E402
from . import summary  # noqa: E402  the text lines the CLI prints (calibration, uniformity, MVA)

__all__ += ["pipeline", "plot_coloc", "plot_compare", "plot_maps", "plot_profile", "plot_projections",
            "intervals", "mva", "peaks", "plot_mva", "summary"]
