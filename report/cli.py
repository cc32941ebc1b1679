"""doptrace: dopant depth profiles from XRD, XPS, ToF-SIMS and STEM-EDS instrument files.

Errors in input files surface as one line naming the file and the problem and exit status 2.
Any other exception is a bug in doptrace: one line says so and names the log file that holds its
traceback, and the exit status is 70.
"""

from __future__ import annotations

import argparse
import sys

from doptrace.core.errors import EXIT_INTERNAL_ERROR, DoptraceError, log_internal_error, short_message

from . import __version__
from .errors import ReportError
from .techniques import adapters

EXIT_BAD_INPUT = 2
EXIT_FAILED_ANALYSES = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doptrace", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"doptrace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="process a project file into a report")
    run.add_argument("project", help="project TOML file")
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _parallel_options(run)
    run.set_defaults(handler=_run)

    demo = sub.add_parser("demo", help="simulate the demo samples and run them")
    demo.add_argument("--out", default="demo-report", help="output folder (default: demo-report)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _parallel_options(demo)
    demo.set_defaults(handler=_demo)

    for adapter in adapters().values():
        adapter.register_cli(sub)
    return parser


def _parallel_options(parser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="local worker processes (default: one per CPU; 1 runs everything in this process)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="send the per-file work to this dask.distributed scheduler instead "
                             "(workers must see the same files at the same paths)")


def _report_summary(summary) -> int:
    print(f"report: {summary.out_dir / 'report.html'}")
    for evidence in summary.evidence:
        print(f"{evidence.sample}: {evidence.verdict}. {evidence.reason}")
    cached = len(summary.analyses) - len(summary.redone)
    if cached:
        print(f"{cached} of {len(summary.analyses)} analyses reused from the cache"
              + ("; nothing changed, so the report was kept as it was" if summary.report_reused else ""))
    for analysis in summary.failed:
        print(f"doptrace: failed: {analysis.entry.key}: {analysis.error}", file=sys.stderr)
    return EXIT_FAILED_ANALYSES if summary.failed else 0


def _run(args) -> int:
    from .runner import run_project

    if args.workers is not None and args.workers < 1:
        raise ReportError(f"--workers must be at least 1, got {args.workers}")
    return _report_summary(run_project(args.project, args.out, progress=not args.quiet, workers=args.workers,
                                       scheduler=args.scheduler))


def _demo(args) -> int:
    from .demo import run_demo

    return _report_summary(run_demo(args.out, seed=args.seed, progress=not args.quiet, workers=args.workers,
                                    scheduler=args.scheduler))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # before any heavy import: --help stays fast
    from .quiet import quiet_warnings

    quiet_warnings()
    try:
        return int(args.handler(args) or 0)
    except (DoptraceError, OSError) as exc:
        # Every package's exception family subclasses DoptraceError and names the file.
        print(f"doptrace: error: {short_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback in a log file
        print(f"doptrace: {log_internal_error(exc, _log_folder(args))}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def entry() -> int:
    """The ``doptrace`` command (console script and ``python -m doptrace``): :func:`main`, then exit.

    Every output is written and closed by then; ``gc.freeze`` spares the process the collector's
    last pass over every object at interpreter exit (0.05 s once xarray and pandas are loaded, 5 %
    of ``doptrace xps fit`` on a 2000-level series). Objects are still freed as usual; only
    cyclic garbage left at exit is not collected, as the process ends anyway. ``main`` alone
    (called by tests and other programs in their own process) does not freeze anything.
    """
    import gc

    code = main()
    gc.freeze()
    return code


def _log_folder(args):
    """The output folder of ``run``/``demo`` when it exists (the log sits beside the report), else None."""
    from pathlib import Path

    out = getattr(args, "out", None)
    return out if args.command in ("run", "demo") and out and Path(out).is_dir() else None


if __name__ == "__main__":
    sys.exit(entry())
