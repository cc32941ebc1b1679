"""Shared test fixtures.

Real instrument files live in ``../shared/data/<technique>/`` beside the repository (never copied
in); tests that need them skip with a clear reason when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DOPTRACE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(relative: str) -> Path:
    """Path of a real file under ``../shared/data``; skips the test when it is not there."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} (../shared/data is absent on this machine)")
    return path


@pytest.fixture
def shared():
    """``shared("xps/cheminfo-vamas/assigned.vms")`` -> Path, or skip when ../shared is absent."""
    return shared_path
