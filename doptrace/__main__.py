"""``python -m doptrace`` is the ``doptrace`` command."""

import sys

from doptrace.report.cli import entry

if __name__ == "__main__":
    sys.exit(entry())
