"""``python -m wsframe``: the command line (see :mod:`wsframe.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
