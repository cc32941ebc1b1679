"""The self-contained HTML report: content blocks, escaped text, inline figures, atomic write."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from .atomic import write_text
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
.undetermined{background:#f3f3f3}
</style></head><body>
<h1>{{ title }}</h1>
<nav>{% for s in sections %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in sections %}<section id="{{ s.anchor }}"><h2>{{ s.title }}</h2>
{% for b in s.blocks %}{% if b.__class__.__name__ == "Text" %}<p>{{ b.text }}</p>
{% elif b.__class__.__name__ == "Heading" %}<h3>{{ b.text }}</h3>
{% elif b.__class__.__name__ == "Table" %}<table>{% if b.caption %}<caption>{{ b.caption }}</caption>{% endif %}
<tr>{% for h in b.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in b.rows %}<tr>{% for c in r %}<td{% if c in verdicts %} class="{{ verdicts[c] }}"{% endif %}>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% elif b.__class__.__name__ == "Figure" %}<figure><img src="{{ b.uri }}" alt="{{ b.caption }}"><figcaption>{{ b.caption }}</figcaption></figure>
{% endif %}{% endfor %}</section>
{% endfor %}
</body></html>
"""


# table cells holding a verdict are shaded, so the verdict table reads at a glance
_VERDICT_CLASSES = {"supported": "supported", "contradicted": "contradicted", "not determined": "undetermined"}


def render(title: str, sections: list[Section]) -> str:
    """HTML text of the report; every string from a file or a user is escaped."""
    for number, section in enumerate(sections):
        if not section.anchor:
            section.anchor = f"s{number}"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(title=title, sections=sections, verdicts=_VERDICT_CLASSES)


def write_report(path: str | os.PathLike, title: str, sections: list[Section]) -> Path:
    """Render and write the report atomically."""
    return write_text(path, render(title, sections))
