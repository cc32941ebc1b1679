"""Provenance: what went in (file hashes), what ran (versions) and how (parameters, timings)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

# Libraries whose version can change a number in a result.
TRACKED_PACKAGES = (
    "doptrace", "numpy", "scipy", "xarray", "lmfit", "h5netcdf", "matplotlib", "dask",
    "gemmi", "hyperspy", "exspy", "rosettasciio", "pyimzml",
)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large instrument files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """``{"path", "sha256", "bytes"}`` for one input file."""
    path = Path(path)
    return {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict:
    """Where and when this run happened."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }
