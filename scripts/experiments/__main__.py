"""Run the guided experiments: ``python -m scripts.experiments [--fast] [--out DIR] [NAME ...]``.

Without names it runs all ten, in order, each writing its figures, ``summary.md`` and
``results.json`` into ``DIR/NAME`` (default ``docs/experiments/NAME``, or
``runs/experiments/NAME`` with ``--fast`` so that a fast run never overwrites the documented one).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from ._common import DOCS, FAST

NAMES = [
    "modes",
    "vanishing",
    "exploding",
    "regularization",
    "optimizers",
    "initialization",
    "transfer",
    "tools",
    "residual",
    "convolution",
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.experiments", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"experiments to run: {', '.join(NAMES)}")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"parent folder of the outputs (default {DOCS}; with --fast {FAST})",
    )
    parser.add_argument("--fast", action="store_true", help="the reduced forms the tests run")
    args = parser.parse_args()
    if args.out is None:  # a fast run never overwrites the documented full run
        args.out = FAST if args.fast else DOCS
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"unknown experiment {unknown[0]!r}; valid names: {', '.join(NAMES)}")
    for name in args.names or NAMES:
        module = importlib.import_module(f"{__package__}.{name}")
        start = time.perf_counter()
        with threadpool_limits(limits=1):
            module.run(args.out / name, fast=args.fast)
        print(f"{name}: {time.perf_counter() - start:.1f} s -> {args.out / name}", flush=True)


if __name__ == "__main__":
    main()
