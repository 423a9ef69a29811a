"""``python -m introzoo``: the command line, as the ``introzoo`` script (the same exit codes)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
