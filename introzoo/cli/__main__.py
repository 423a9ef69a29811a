"""``python -m introzoo.cli``: the command line (as ``python -m introzoo``)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
