"""The one TOML loader: read a file, and report every problem in it at once, each with its line.

``tomllib`` parses but forgets where each key stood, so :func:`key_lines` scans the text once
for table headers and ``key =`` lines (hand-written: neither ``tomllib`` nor ``tomlkit`` reports
line numbers, and a full second parser is not needed just to locate keys). A loader collects its
problems in a :class:`Problems` list against key paths and raises them together::

    doc = read_toml(path, XRDError, "recipe")
    problems = Problems(doc)
    if "phase" not in doc.data:
        problems.add((), "no [[phase]] tables")
    problems.raise_if_any(XRDError)      # "recipe.toml: line 3: ...; line 9: ..."
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DoptraceError

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class TomlFile:
    """A parsed TOML document with the line of every key it holds.

    ``lines`` maps key paths to 1-based line numbers; an element of an array of tables is
    addressed by its index (``("phase", 1, "site", 0, "xyz")``).
    """

    path: str
    text: str
    data: dict
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, *keys) -> int:
        """Line of ``keys``, or of its nearest enclosing key that has one (0 if none)."""
        keys = tuple(keys)
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return 0

    def where(self, *keys) -> str:
        """``"path: line N"`` for ``keys`` (just ``"path"`` when no line is known)."""
        line = self.line(*keys)
        return f"{self.path}: line {line}" if line else self.path


class Problems:
    """Problems found in one TOML document, each with the line of the key it concerns.

    ``add(keys, message)``; also list-like (``append(message, keys)``, ``+= [messages]``) for
    loaders that collect plain messages.
    """

    def __init__(self, doc: TomlFile):
        self.doc = doc
        self.items: list[tuple[int, str]] = []

    def add(self, keys, message: str) -> None:
        """Record ``message`` about the key path ``keys`` (a tuple; ``()`` for the whole file)."""
        self.items.append((self.doc.line(*tuple(keys)), message))

    def add_line(self, line: int, message: str) -> None:
        """Record ``message`` at a known line (0: the whole file)."""
        self.items.append((int(line), message))

    def append(self, message: str, keys=()) -> None:
        self.add(keys, message)

    def __iadd__(self, messages):
        for message in messages:
            self.add((), message)
        return self

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def message(self) -> str:
        """All problems on one line, as found: ``"path: line 3: ...; line 9: ..."``."""
        return f"{self.doc.path}: " + "; ".join(f"line {n}: {m}" if n else m for n, m in self.items)

    def raise_if_any(self, error: type[DoptraceError] = DoptraceError) -> None:
        """Raise ``error`` listing every problem, if there are any."""
        if self.items:
            raise error(self.message())


def read_toml(path, error: type[DoptraceError] = DoptraceError, what: str = "TOML file") -> TomlFile:
    """Read and parse the TOML file ``path``; ``error`` names the file (and line) on any failure.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    error : type
        The package's exception family (a :class:`DoptraceError`).
    what : str
        What the file is, for messages ("recipe", "project file", "k-factor file" ...).

    Returns
    -------
    TomlFile
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a valid TOML {what} (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    return parse_toml(text, str(path), error, what)


def parse_toml(text: str, path: str = "<toml>", error: type[DoptraceError] = DoptraceError,
               what: str = "TOML file") -> TomlFile:
    """Parse TOML ``text`` (``path`` names it in messages); a syntax error names its line.

    Examples
    --------
    >>> doc = parse_toml('title = "x"\\n[[phase]]\\nname = "a"\\n[[phase]]\\nname = "b"\\n')
    >>> doc.line("phase", 1, "name"), doc.where("phase", 1)
    (5, '<toml>: line 4')
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends "(at line L, column C)"; say the line first, as every other problem does
        match = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        where = f"{path}: line {match[1]}" if match else path
        raise error(f"{where}: not a valid TOML {what} ({exc})") from None
    return TomlFile(path, text, data, key_lines(text))


def key_lines(text: str) -> dict[tuple, int]:
    """``{key path: line}`` of the headers and keys of valid TOML ``text`` (1-based lines).

    Arrays of tables get their element index in the path; keys inside inline tables and
    multi-line values are not listed (their enclosing key is).
    """
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}  # resolved path of an array of tables -> elements so far
    current: tuple = ()
    rows = text.splitlines()
    number = 0
    while number < len(rows):
        row = rows[number].strip()
        number += 1
        if not row or row.startswith("#"):
            continue
        if row.startswith("["):
            double = row.startswith("[[")
            names, _ = _key(row[2 if double else 1:])
            resolved = _resolve(names, counts)
            if double:
                counts[resolved] = counts.get(resolved, 0) + 1
                lines.setdefault(resolved, number)  # the array itself: its first element's line
                resolved = resolved + (counts[resolved] - 1,)
            lines.setdefault(resolved, number)
            current = resolved
            continue
        names, rest = _key(row)
        if not names or not rest.startswith("="):
            continue
        path = current + tuple(names)
        lines.setdefault(path, number)
        number = _skip_value(rest[1:], rows, number)
    return lines


def _resolve(names: list[str], counts: dict[tuple, int]) -> tuple:
    """Header names -> key path, adding the current index of every array of tables on the way."""
    resolved: tuple = ()
    for name in names:
        resolved = resolved + (name,)
        if resolved in counts:
            resolved = resolved + (counts[resolved] - 1,)
    # the last name of a [[header]] is indexed by the caller, not here
    if names and resolved[-1] != names[-1]:
        resolved = resolved[:-1]
    return resolved


def _key(text: str) -> tuple[list[str], str]:
    """A (dotted, possibly quoted) key at the start of ``text`` and what follows it."""
    names, rest = [], text.lstrip()
    while rest:
        if rest[0] in "\"'":
            end = rest.find(rest[0], 1)
            while rest[0] == '"' and end > 0 and rest[end - 1] == "\\":
                end = rest.find('"', end + 1)
            if end < 0:
                return [], text
            names.append(rest[1:end])
            rest = rest[end + 1:].lstrip()
        else:
            match = _BARE.match(rest)
            if not match:
                return [], text
            names.append(match[0])
            rest = rest[match.end():].lstrip()
        if not rest.startswith("."):
            break
        rest = rest[1:].lstrip()
    return names, rest


def _skip_value(value: str, rows: list[str], number: int) -> int:
    """Index of the row after a value that starts with ``value`` on row ``number`` (1-based)."""
    depth, quote, index = 0, "", 0
    while True:
        while index < len(value):
            char = value[index]
            if quote:
                if value.startswith(quote, index) and (len(quote) == 3 or value[index - 1:index] != "\\"
                                                        or quote == "'"):
                    index += len(quote)
                    quote = ""
                    continue
                index += 1
                continue
            if char == "#":
                break
            for opener in ('"""', "'''", '"', "'"):
                if value.startswith(opener, index):
                    quote = opener
                    index += len(opener)
                    break
            else:
                depth += char in "[{"
                depth -= char in "]}"
                index += 1
        if (quote and len(quote) == 3) or depth > 0:
            if number >= len(rows):
                return number
            value, index, number = rows[number], 0, number + 1
            continue
        return number
