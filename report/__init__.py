"""doptrace's common layer: result conventions, provenance, figures, the HTML report and the CLI.

Only this package knows the four technique packages (``doptrace.xps``, ``doptrace.xrd``,
``doptrace.tofsims``, ``doptrace.stem_eds``); they never import it or each other.
"""

from doptrace import __version__

__all__ = ["__version__"]
