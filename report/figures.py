"""Figures for the report: matplotlib only, rendered headless and embedded inline (no network)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # reports are written on machines without a screen
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(width: float = 6.4, height: float = 4.0):
    """A figure and one axes, sized for the report."""
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def figure_to_data_uri(fig, dpi: int = 110) -> str:
    """PNG data URI of ``fig``; the figure is closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def format_value(value: float, stderr: float | None = None, units: str = "") -> str:
    """``1.234(56) unit`` style text: value with its esd at the esd's precision.

    Examples
    --------
    >>> format_value(0.1234, 0.0056)
    '0.123 ± 0.006'
    """
    import math

    suffix = f" {units}" if units and units != "1" else ""
    if value is None or not math.isfinite(value):
        return f"n/a{suffix}"
    if stderr is None or not math.isfinite(stderr) or stderr <= 0:
        return f"{value:.4g}{suffix}"
    digits = max(0, -int(math.floor(math.log10(stderr))))
    return f"{value:.{digits}f} ± {stderr:.{digits}f}{suffix}"
