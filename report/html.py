"""The self-contained HTML report: content blocks, escaped text, inline figures, atomic write."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from doptrace.core.atomic import write_text

from .figures import figure_to_data_uri


@dataclass
class Text:
    """A paragraph; rendered escaped."""

    text: str


@dataclass
class Heading:
    """A sub-heading inside a section; rendered escaped."""

    text: str


@dataclass
class Table:
    """A table with a header row; every cell rendered escaped."""

    header: list[str]
    rows: list[list]
    caption: str = ""


@dataclass
class Figure:
    """A matplotlib figure, embedded as a PNG data URI."""

    fig: object
    caption: str = ""
    uri: str = field(init=False, default="")

    def __post_init__(self):
        self.uri = figure_to_data_uri(self.fig)


@dataclass
class Plot:
    """A figure drawn later, maybe in another process: ``function(*args, **kwargs)`` returns a matplotlib figure.

    Reports of hundreds of analyses spend most of their time drawing figures; deferring them lets
    :func:`draw_plots` spread the drawing over worker processes. ``function`` must be importable
    (a module-level function) and its arguments picklable (xarray Datasets are).
    """

    function: object
    args: tuple = ()
    caption: str = ""
    kwargs: dict = field(default_factory=dict)
    uri: str = ""


def _draw(function, args, kwargs) -> str:
    from .quiet import quiet_warnings

    quiet_warnings()
    return figure_to_data_uri(function(*args, **kwargs))


def draw_plots(sections: list, workers: int | None = None, progress: bool = False) -> None:
    """Draw every :class:`Plot` of ``sections`` in place, on ``workers`` processes when there are many."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    plots = [b for s in sections for b in s.blocks if isinstance(b, Plot) and not b.uri]
    workers = max(1, min(workers or os.cpu_count() or 1, len(plots)))
    with tqdm(total=len(plots), desc="figures", unit="figure", disable=not progress) as bar:
        # a worker process costs seconds to start (matplotlib, xarray): only worth it for many figures
        if workers == 1 or len(plots) < 40:
            for plot in plots:
                plot.uri = _draw(plot.function, plot.args, plot.kwargs)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_draw, p.function, p.args, p.kwargs) for p in plots]
            for plot, future in zip(plots, futures):
                plot.uri = future.result()
                bar.update()


@dataclass
class Section:
    """One report section: a title and its blocks in order."""

    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left}
th{background:#eee} figure{margin:1em 0} img{max-width:100%}
figcaption{font-size:.9em;color:#444} nav a{margin-right:1em}
.failed{color:#a00} .supported{background:#e3f4e1} .contradicted{background:#f9e0de}
.undetermined{background:#f3f3f3} .context{color:#666;font-style:italic}
</style></head><body>
<h1>{{ title }}</h1>
<nav>{% for s in sections %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in sections %}<section id="{{ s.anchor }}"><h2>{{ s.title }}</h2>
{% for b in s.blocks %}{% if b.__class__.__name__ == "Text" %}<p>{{ b.text }}</p>
{% elif b.__class__.__name__ == "Heading" %}<h3>{{ b.text }}</h3>
{% elif b.__class__.__name__ == "Table" %}<table>{% if b.caption %}<caption>{{ b.caption }}</caption>{% endif %}
<tr>{% for h in b.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in b.rows %}<tr>{% for c in r %}<td{% if c in verdicts %} class="{{ verdicts[c] }}"{% endif %}>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% elif b.__class__.__name__ in ("Figure", "Plot") %}<figure><img src="{{ b.uri }}" alt="{{ b.caption }}"><figcaption>{{ b.caption }}</figcaption></figure>
{% endif %}{% endfor %}</section>
{% endfor %}
</body></html>
"""


# table cells holding a verdict are shaded, so the verdict table reads at a glance
_VERDICT_CLASSES = {"supported": "supported", "contradicted": "contradicted", "not determined": "undetermined",
                    # context rows (host elements, sites nobody expects the dopant on) are not evidence
                    "context: supported": "context", "context: contradicted": "context",
                    "context: not determined": "context"}


def render(title: str, sections: list[Section]) -> str:
    """HTML text of the report; every string from a file or a user is escaped. Plots not yet drawn are drawn here."""
    draw_plots(sections, workers=1)
    for number, section in enumerate(sections):
        if not section.anchor:
            section.anchor = f"s{number}"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(title=title, sections=sections, verdicts=_VERDICT_CLASSES)


def write_report(path: str | os.PathLike, title: str, sections: list[Section]) -> Path:
    """Render and write the report atomically."""
    return write_text(path, render(title, sections))
