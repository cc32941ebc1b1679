"""Several input files on one command line, each output named after its input (every technique's CLI).

Standard library only at module level: the adapters' CLI parts import this while the ``doptrace``
command starts (tests/test_cli_startup.py).

An adapter's command takes ``files`` (one or more paths or glob patterns, expanded here too, for
shells that do not expand them, such as Windows's) and ``--out-dir``; each of its output options
is a *template*:

- ``--out {stem}_fit.nc``: ``{stem}`` (the input's name without suffix) and ``{name}`` (with it)
  are filled in per input; a relative template goes under ``--out-dir`` when one is given;
- ``--out fit.nc`` with one input: written as given;
- ``--out fit.nc`` with several inputs: with ``--out-dir D`` becomes ``D/<stem>_fit.nc``;
  without, it is refused (every input would overwrite the same file);
- option not given: a required output (``--out``) defaults to ``<out-dir>/<stem><suffix>`` when
  ``--out-dir`` is given; optional outputs are not written.

Two inputs mapped to the same output (same stem in different folders) are refused before anything
is read. :func:`run_each` runs the command per input, reports a bad input in one line naming it and
goes on with the next; the exit status is the worst of all.

Examples
--------
>>> import argparse
>>> p = argparse.ArgumentParser(); add_inputs(p); _ = p.add_argument("--out")
>>> args = p.parse_args(["a.vms", "b.vms", "--out-dir", "res", "--out", "{stem}.nc"])
>>> names = Outputs(args.files, args.out_dir)
>>> [str(names.path(args.out, f, ".nc")) for f in names.inputs]  # doctest: +SKIP
['res/a.nc', 'res/b.nc']
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

_MAGIC = set("*?[")


def add_inputs(parser, help_text: str = "input file(s); glob patterns such as 'data/*.vms' are expanded") -> None:
    """Add the positional ``files`` (one or more) and ``--out-dir`` to a subcommand's parser."""
    parser.add_argument("files", nargs="+", metavar="file", help=help_text)
    parser.add_argument("--out-dir", help="folder for the outputs (created); output options may use "
                                          "{stem} / {name} of each input")


def expand(patterns, error=ValueError) -> list[Path]:
    """Paths of ``patterns`` in the order given, glob patterns expanded (sorted), duplicates dropped.

    A pattern that matches nothing raises ``error`` naming it; plain paths are passed through
    (a missing file is reported by the reader, naming it).
    """
    out: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if _MAGIC & set(text) and not Path(text).exists():
            found = sorted(glob.glob(text))
            if not found:
                raise error(f"{text}: no file matches this pattern")
            out += [Path(f) for f in found]
        else:
            out.append(Path(text))
    seen, unique = set(), []
    for path in out:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


class Outputs:
    """Output names for each input of one command (module docstring gives the rules)."""

    def __init__(self, patterns, out_dir: str | None = None, error=ValueError):
        self.error = error
        self.inputs = expand(patterns, error)
        self.out_dir = Path(out_dir) if out_dir else None
        self._taken: dict[str, Path] = {}

    @property
    def several(self) -> bool:
        return len(self.inputs) > 1

    def path(self, template: str | None, source: Path, suffix: str, option: str = "--out",
             required: bool = False) -> Path | None:
        """Output path of ``option`` (its value ``template``) for input ``source``; None when the
        option is optional and not given."""
        source = Path(source)
        if template is None:
            if not required:
                return None
            if self.out_dir is None:
                raise self.error(f"{option} is required (or give --out-dir)")
            path = self.out_dir / f"{source.stem}{suffix}"
        elif "{" in template:
            try:
                name = template.format(stem=source.stem, name=source.name)
            except (KeyError, IndexError, ValueError) as exc:
                raise self.error(f"{option} {template}: only {{stem}} and {{name}} can be filled in ({exc})") from None
            path = Path(name)
            if self.out_dir is not None and not path.is_absolute():
                path = self.out_dir / path
        elif self.several:
            if self.out_dir is None:
                raise self.error(f"{option} {template}: {len(self.inputs)} input files would all write this one "
                                 "file; put {stem} in the name (e.g. {stem}_" + Path(template).name + ") or give --out-dir")
            path = self.out_dir / f"{source.stem}_{Path(template).name}"
        else:
            path = Path(template)
            if self.out_dir is not None and not path.is_absolute():
                path = self.out_dir / path
        key = f"{option}:{os.path.normcase(os.path.abspath(path))}"
        other = self._taken.setdefault(key, source)
        if other != source:
            raise self.error(f"{option}: {other} and {source} would both write {path} (same name); "
                             "use {name} in the template or separate runs")
        return path

    def check_all(self, options: dict[str, tuple[str | None, str, bool]]) -> None:
        """Name every output of every input before any is read, so clashes stop the run at once.

        ``options``: option -> (template, default suffix, required).
        """
        for source in self.inputs:
            for option, (template, suffix, required) in options.items():
                self.path(template, source, suffix, option, required)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)


def check_suffix(path, allowed: tuple[str, ...], option: str, hint: str = "", error=ValueError) -> None:
    """Refuse an output whose suffix is not one of ``allowed`` (e.g. NetCDF under a .csv name)."""
    if path is None:
        return
    suffix = Path(str(path)).suffix.lower()
    if suffix not in allowed:
        raise error(f"{path}: {option} writes {' / '.join(allowed)} files, not '{suffix or '(no suffix)'}'"
                    + (f"; {hint}" if hint else ""))


def run_each(inputs, run_one) -> int:
    """``run_one(path)`` for every input; a bad input (a :class:`DoptraceError`) is reported in one
    line naming it and the others still run. Returns the worst exit status (2 for a bad input)."""
    from doptrace.core.errors import DoptraceError, short_message

    worst = 0
    for path in inputs:
        try:
            status = run_one(Path(path)) or 0
        except DoptraceError as exc:
            if len(inputs) == 1:
                raise
            print(f"error: {short_message(exc)}", file=sys.stderr)
            status = 2
        worst = max(worst, int(status))
    return worst


def each(handler, outputs: dict[str, str], required: tuple[str, ...] = ("out",), inputs: str = "files",
         target: str = "file"):
    """Turn a one-file command handler into one that runs over every input, each output named after it.

    Parameters
    ----------
    handler : callable
        ``handler(args) -> int``: reads ``args.<target>`` (one path) and writes the paths in the
        attributes named by ``outputs``.
    outputs : dict
        Output attribute -> default suffix, e.g. ``{"out": ".nc", "plot": ".png"}``; their values
        in ``args`` are templates (module docstring).
    required : tuple of str
        Outputs that must be written (``--out``): with ``--out-dir`` they default to
        ``<out-dir>/<stem><suffix>``.
    inputs, target : str
        ``args.<inputs>`` holds the paths or patterns (``add_inputs`` makes ``files``); each
        run gets one in ``args.<target>``. When ``args.<inputs>`` is None (an optional input list,
        such as ``xrd refine --data``) the handler runs once as it is.

    Returns
    -------
    callable
        The handler to pass to ``set_defaults(handler=...)``.

    Examples
    --------
    ``p = sub.add_parser("maps"); add_inputs(p); ...; p.set_defaults(handler=each(_maps, {"out": ".nc", "plot": ".png"}))``
    """
    import argparse

    def run(args) -> int:
        if getattr(args, inputs) is None:
            return handler(args)
        from .errors import ReportError

        names = Outputs(getattr(args, inputs), getattr(args, "out_dir", None), ReportError)
        options = {f"--{k.replace('_', '-')}": (getattr(args, k, None), suffix, k in required)
                   for k, suffix in outputs.items()}
        names.check_all(options)

        def one(path: Path) -> int:
            copy = argparse.Namespace(**vars(args))
            setattr(copy, target, str(path))
            for key, suffix in outputs.items():
                out = names.path(getattr(args, key, None), path, suffix, f"--{key.replace('_', '-')}", key in required)
                setattr(copy, key, None if out is None else str(out))
            return handler(copy)

        return run_each(names.inputs, one)

    return run


__all__ = ["add_inputs", "expand", "Outputs", "check_suffix", "run_each", "each"]


def add_export_options(parser, what: str = "maps") -> None:
    """Add ``--export DIR [--format tiff|csv]``, ``--tiff DIR`` and ``--ascii DIR`` to a subcommand."""
    parser.add_argument("--export", metavar="DIR", help=f"also write the {what} into DIR (see --format), with a "
                        "JSON sidecar of the axes")
    parser.add_argument("--format", choices=["tiff", "csv"], default="tiff", help="format of --export (default tiff)")
    parser.add_argument("--tiff", metavar="DIR", help="same as --export DIR --format tiff")
    parser.add_argument("--ascii", metavar="DIR", help="same as --export DIR --format csv")


def write_exports(result, args, stem) -> None:
    """Write what :func:`add_export_options` asked for (:func:`doptrace.core.export.export`), one line each.

    ``stem`` is called only when something is exported: commands without ``--export`` (e.g. ``tofsims
    compare``, two inputs) share the writing tail but have no single input to name the files after.
    """
    from doptrace.core.export import export

    for directory, fmt in ((getattr(args, "export", None), getattr(args, "format", "tiff")),
                           (getattr(args, "tiff", None), "tiff"), (getattr(args, "ascii", None), "csv")):
        if directory:
            files = export(result, directory, fmt, stem=stem())
            print(f"exported {len(files) - 1} {fmt} file(s) and {files[-1].name} to {directory}")
