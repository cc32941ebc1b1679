"""Peak resident memory of this process, shared by the benchmarks (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM in MB (reset at exec, unlike ru_maxrss after a fork); ru_maxrss where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
