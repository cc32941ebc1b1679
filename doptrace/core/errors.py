"""The one base error of doptrace: every package's exception family subclasses it.

``DoptraceError`` subclasses ``ValueError`` (bad input is a wrong value), so code that caught a
package's family as ``ValueError`` keeps working. The command line and the project runner catch
``DoptraceError`` (and ``OSError``) as "bad input"; any other exception is a bug and is reported
as an internal error with its traceback.
"""

from __future__ import annotations


class DoptraceError(ValueError):
    """An input problem; the message names the file and the problem.

    Examples
    --------
    >>> isinstance(DoptraceError("x.toml: line 3: unknown key 'foo'"), ValueError)
    True
    """
