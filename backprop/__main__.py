"""``python -m backprop``: the command line (see backprop.app.cli)."""

import sys

from .app.cli import main

sys.exit(main())
