"""The bottom layer: what every doptrace package may import, and nothing above it.

It imports no technique package and no ``doptrace.report``; import-linter holds that in CI.
"""
