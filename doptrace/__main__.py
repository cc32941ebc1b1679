"""``python -m doptrace`` is the ``doptrace`` command."""

import sys

from doptrace.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
