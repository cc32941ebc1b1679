"""Warnings that are not the user's concern, silenced in every process that reads files.

A module of its own so that the ``doptrace`` command can silence them without importing the
process-pool machinery of :mod:`report.execute` (30 ms of every one-file command's start-up).
"""

from __future__ import annotations

import warnings


def quiet_warnings() -> None:
    """HyperSpy 2.x warns about its own internal imports on every read; it is not the user's concern."""
    warnings.filterwarnings("ignore", message=r"Importing `.*` from `hyperspy\.", module=r"hyperspy\.")
