"""The HTML report in a real browser: it renders, its figures load, and file text cannot run as script.

The checks run headless Chromium (tests/browser.py); the same checks on hand-written broken pages
prove that each of them can fail.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from browser import BrowserTimeout, Dialog, find_chromium, render
from doptrace.report.figures import new_figure
from doptrace.report.html import Figure, Section, Table, Text, write_report

if find_chromium() is None:
    pytest.skip("chromium not installed: .ci/run installs it (apt-get install chromium), "
                "or set DOPTRACE_CHROMIUM to a Chromium/Chrome binary", allow_module_level=True)

INJECTION = "<script>alert(1)</script>"


def _profile_figure(seed: int):
    """A figure with a curve and error bars, like a depth profile in a real report."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(0, 50, 26)
    conc = 2.0 * np.exp(-depth / 15) + rng.normal(0, 0.05, depth.size)
    fig, ax = new_figure()
    ax.errorbar(depth, conc, yerr=0.1, fmt="o-")
    ax.set_xlabel("depth / nm")
    ax.set_ylabel("Mn / at.%")
    return fig


def test_report_renders_with_both_figures_and_table(tmp_path):
    table = Table(["technique", "Mn / at.%", "esd"],
                  [["XPS", "1.93", "0.07"], ["STEM-EDS", "2.11", "0.12"]], caption="surface Mn")
    sections = [
        Section("Summary", [Text("Mn depth profile of sample A17."), table]),
        Section("Profiles", [Figure(_profile_figure(1), "XPS profile"),
                             Figure(_profile_figure(2), "EDS profile")]),
    ]
    path = write_report(tmp_path / "report.html", "doptrace test report", sections)

    page = render(path)

    assert page.console_errors == []
    assert page.exceptions == []
    assert page.dialogs == []
    assert page.failed_requests == []
    assert page.images_total == page.images_loaded == 2
    assert page.title == "doptrace test report"
    for value in ("XPS", "1.93", "0.07", "STEM-EDS", "2.11", "0.12", "sample A17"):
        assert value in page.text
    # matplotlib figures are mostly white background: this page measured 2.8 % non-white pixels,
    # a page of a few text lines 0.04 %; the two 440 px tall figures make the page > 880 px tall
    assert not page.blank
    assert page.nonwhite_fraction > 0.01
    assert page.screenshot_shape[0] > 880


def test_checker_reports_broken_image_console_error_and_exception(tmp_path):
    path = tmp_path / "broken.html"
    path.write_text("""<!DOCTYPE html><html><head><title>broken</title></head><body>
<p>a page with faults</p>
<img src="data:image/png;base64,AAAA">
<script>console.error("boom");</script>
<script>throw new Error("kaput");</script>
</body></html>""")

    page = render(path)

    assert (page.images_total, page.images_loaded) == (1, 0)
    assert [m.text for m in page.console_errors] == ["boom"]
    assert len(page.exceptions) == 1 and "kaput" in page.exceptions[0]
    assert page.dialogs == []


def test_checker_reports_script_alert(tmp_path):
    path = tmp_path / "alert.html"
    path.write_text('<!DOCTYPE html><html><body><p>before</p><script>alert("x")</script>'
                    "<p>after</p></body></html>")

    page = render(path)

    assert page.dialogs == [Dialog("alert", "x")]
    # the dialog was dismissed, so the rest of the page still loaded
    assert "after" in page.text


def test_script_in_instrument_metadata_is_shown_not_run(tmp_path):
    sections = [Section("Inputs", [
        Text(f"sample comment: {INJECTION}"),
        Table(["key", "value"], [["operator", INJECTION]]),
    ])]
    path = write_report(tmp_path / "report.html", "metadata", sections)

    page = render(path)

    assert page.dialogs == []
    assert page.exceptions == []
    assert page.text.count(INJECTION) == 2


def test_timeout_raises_and_removes_the_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    page = tmp_path / "page.html"
    page.write_text("<p>x</p>")

    with pytest.raises(BrowserTimeout, match="timed out"):
        render(page, timeout=0.05)

    assert list(tmp_path.glob("doptrace-chromium-*")) == []
