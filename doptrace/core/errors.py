"""The one base error of doptrace: every package's exception family subclasses it.

``DoptraceError`` subclasses ``ValueError`` (bad input is a wrong value), so code that caught a
package's family as ``ValueError`` keeps working. The command line and the project runner catch
``DoptraceError`` (and ``OSError``) as "bad input"; any other exception is a bug and is reported
as an internal error with its traceback.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path


class DoptraceError(ValueError):
    """An input problem; the message names the file and the problem.

    Examples
    --------
    >>> isinstance(DoptraceError("x.toml: line 3: unknown key 'foo'"), ValueError)
    True
    """


#: exit status of the command line for a bug in doptrace (BSD sysexits EX_SOFTWARE)
EXIT_INTERNAL_ERROR = 70


def short_message(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def log_internal_error(exc: BaseException, folder: str | os.PathLike | None = None, name: str = "doptrace") -> str:
    """Write ``exc``'s full traceback to a log file and return the one-line report that names it.

    A bug (any exception that is not a :class:`DoptraceError` or ``OSError``) is not the user's
    input problem: the user gets one line, the maintainer the traceback.

    Parameters
    ----------
    exc : BaseException
        The exception being handled (its ``__traceback__`` is written).
    folder : path-like, optional
        Where the log goes (created if needed); the system's temporary folder when None or not writable.
    name : str
        Start of the log file's name.

    Returns
    -------
    str
        ``"internal error: <Type>: <first line>; traceback written to <log file>"``.
    """
    from .atomic import write_text  # atomic imports nothing of this module; late keeps errors tiny

    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log = None
    for where in ([Path(folder)] if folder is not None else []) + [Path(tempfile.gettempdir())]:
        try:
            log = write_text(where / f"{name}-internal-error-{stamp}-{os.getpid()}.log", text)
            break
        except OSError:
            continue
    short = f"{type(exc).__name__}: {short_message(exc)}"
    if log is None:
        return f"internal error: {short}; the traceback could not be written"
    return f"internal error: {short}; traceback written to {log}"
