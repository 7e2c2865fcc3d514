"""``python -m backprop``: the command line (see backprop.cli)."""

import sys

from .cli import main

sys.exit(main())
