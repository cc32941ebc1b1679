"""doptrace's bundled examples: recipes, fit models and k-factor tables, one folder per technique.

Installed as package data (``doptrace.examples``) because the demo reads its XRD recipe and XPS
models from here; read them with ``importlib.resources.files("doptrace.examples")``.
"""
