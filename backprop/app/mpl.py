"""matplotlib for the application's figures, set up once: every figure module imports ``plt``
from here.

Files only (the Agg backend: no window) unless the user has chosen a backend already (pyplot
imported) or works in a notebook, where the figures the functions return display inline.
"""

from __future__ import annotations

import sys

import matplotlib

from ..progress import in_notebook

if "matplotlib.pyplot" not in sys.modules and not in_notebook():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt"]
