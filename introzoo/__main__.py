"""``python -m introzoo``: the command line, as the ``introzoo`` script."""

from .cli import main

if __name__ == "__main__":
    main()
