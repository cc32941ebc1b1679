"""Result tables as CSV or XLSX files (every technique's ``--table``), written atomically.

:func:`dataset_table` lays a result Dataset out as one row per (level, item) — e.g. an XPS fit's
etch level and component — with a column per variable on those dims (its ``_stderr`` beside it)
and the per-level variables repeated; :func:`write_table` writes such a table by the file's suffix:
``.csv`` (UTF-8, comma separated, floats repr-exact) or ``.xlsx`` (openpyxl, numbers as numbers,
to 1e-15 relative: openpyxl writes 16 significant digits, Excel shows 15).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from .atomic import atomic_write, write_text
from .errors import DoptraceError

TABLE_SUFFIXES = (".csv", ".xlsx")


def _header(name: str, units) -> str:
    return f"{name} ({units})" if units not in (None, "", "1") else str(name)


def dataset_table(ds, level_dim: str, item_dim: str) -> tuple[list[str], list[list]]:
    """``(header, rows)``: one row per ``(level_dim, item_dim)`` pair of ``ds``.

    Columns: the level coordinate, the item coordinate, the item's own coordinates (e.g. an
    XPS quantification's ``line`` and ``rsf``), every numeric variable or coordinate over exactly
    ``(level_dim, item_dim)`` (``X`` then ``X_stderr``) and the text ones (labels), then every
    numeric variable over ``(level_dim,)`` alone. Units go into the headers (``center (eV)``). Values are the
    Dataset's floats, unrounded. A result with a quality record (``attrs["quality"]``) gets a last
    column ``quality`` on every row, so that a failed fit's numbers never leave without the word.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"area": (("t", "c"), [[1.0, 2.0]], {"units": "eV"}),
    ...                  "area_stderr": (("t", "c"), [[0.1, 0.2]], {"units": "eV"})},
    ...                 coords={"t": ("t", [5.0], {"units": "s"}), "c": ["a", "b"]})
    >>> dataset_table(ds, "t", "c")
    (['t (s)', 'c', 'area (eV)', 'area_stderr (eV)'], [[5.0, 'a', 1.0, 0.1], [5.0, 'b', 2.0, 0.2]])
    """
    import numpy as np

    def numeric(name):
        return np.issubdtype(ds[name].dtype, np.number) or ds[name].dtype == bool

    def over(dims):
        names = [str(n) for n in ds.data_vars if ds[n].dims == dims]
        return names + [str(n) for n in ds.coords if ds[n].dims == dims and n not in (level_dim, item_dim)]

    pair = [n for n in over((level_dim, item_dim)) if numeric(n)]
    labels = [n for n in over((level_dim, item_dim)) if not numeric(n)]  # e.g. the background used
    # each value followed by its esd, in the Dataset's order
    ordered = [n for n in pair if not n.endswith("_stderr")]
    ordered = [c for n in ordered for c in ([n, f"{n}_stderr"] if f"{n}_stderr" in pair else [n])]
    ordered += [n for n in pair if n not in ordered] + labels
    per_item = over((item_dim,))
    per_level = [n for n in over((level_dim,)) if numeric(n)]
    header = [_header(level_dim, ds[level_dim].attrs.get("units")), item_dim]
    header += [_header(n, ds[n].attrs.get("units")) for n in per_item + ordered + per_level]
    levels = ds[level_dim].values
    items = ds[item_dim].values
    values = {n: np.asarray(ds[n].values) for n in per_item + ordered + per_level}
    rows = []
    for i in range(levels.size):
        for j in range(items.size):
            row = [_plain(levels[i]), _plain(items[j])]
            row += [_plain(values[n][j]) for n in per_item]
            row += [_plain(values[n][i, j]) for n in ordered]
            row += [_plain(values[n][i]) for n in per_level]
            rows.append(row)
    quality = ds.attrs.get("quality")
    if quality is not None:
        header.append("quality")
        rows = [row + [str(quality)] for row in rows]
    return header, rows


def _plain(value):
    """A numpy scalar as the Python int/float/str it holds (openpyxl and csv want plain types)."""
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    if isinstance(value, bytes):
        value = value.decode()
    return value


def write_table(path: str | os.PathLike, header: list[str], rows: list[list], sheet: str = "table",
                error=DoptraceError) -> Path:
    """Write a table to ``.csv`` or ``.xlsx`` (by the suffix), atomically; another suffix raises ``error``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            # repr-exact floats; NaN written as an empty cell would hide it, so "nan" stays
            writer.writerow([repr(v) if isinstance(v, float) and math.isfinite(v) else v for v in row])
        return write_text(path, buffer.getvalue())
    if suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook()
        table = book.active
        table.title = sheet[:31]
        table.append(header)
        for row in rows:
            # Excel cannot hold NaN/inf as numbers: those cells stay empty
            table.append([None if isinstance(v, float) and not math.isfinite(v) else v for v in row])
        table.freeze_panes = "A2"
        return atomic_write(path, lambda p: book.save(p), suffix=".xlsx")
    raise error(f"{path}: a table is written as {' or '.join(TABLE_SUFFIXES)}, not '{suffix or '(no suffix)'}'")


__all__ = ["TABLE_SUFFIXES", "dataset_table", "write_table"]
