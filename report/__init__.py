"""doptrace's common layer: result conventions, provenance, figures, the HTML report and the CLI.

Only this package knows the four technique packages (``xps``, ``xrd``, ``tofsims``,
``stem_eds``); they never import it or each other.
"""

__version__ = "0.1.0"
