"""``python -m ferlab`` and ``torchrun -m ferlab``: the ``ferlab`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
