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
