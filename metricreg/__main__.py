"""``python -m metricreg``: the same as the ``metricreg`` command."""

import sys

from metricreg.cli import main

if __name__ == "__main__":
    sys.exit(main())
