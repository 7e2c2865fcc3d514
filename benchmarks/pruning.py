"""Inference time of pruned LeNet-300-100 models against the dense one, in the same run.

    python benchmarks/pruning.py [--rows 10000] [--repeats 7] [--threads 1]

Models (784-300-100-10, ReLU, float32, random weights: timing does not depend on their values):

* dense;
* unstructured: 90% of the weights masked to zero (the arrays stay dense, so the matrix
  products cost the same: a mask alone saves nothing at inference with dense kernels);
* structured: :func:`backprop.structured.prune_units` keeping 75%, 50% and 25% of the hidden
  units (ranked by weight norm): physically smaller matrices.

Method: one warm-up predict per model, then ``--repeats`` rounds; each round times every model's
``predict`` on the same ``(rows, 784)`` array, in an order rotated round by round, so drifting
machine load hits every model alike. Reported: median seconds and the median of per-round
ratios dense / model (> 1 is faster), with BLAS pinned to ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import backprop as bp  # noqa: E402
from backprop import pruning, structured  # noqa: E402


def models() -> dict[str, bp.Sequential]:
    dense = bp.Sequential(
        [bp.Dense(784, 300), bp.ReLU(), bp.Dense(300, 100), bp.ReLU(), bp.Dense(100, 10)], seed=0
    )
    masked = dense.copy()
    pruning.prune(masked, 0.9)
    out = {"dense": dense, "unstructured 90%": masked}
    for keep in (0.75, 0.5, 0.25):
        out[f"structured {int(keep * 100)}% units"] = structured.prune_units(dense, keep)
    return out


def measure(rows: int, repeats: int) -> list[dict]:
    X = np.random.default_rng(0).random((rows, 784), dtype=np.float32)
    nets = models()
    names = list(nets)
    for m in nets.values():
        m.predict(X[:1024])  # warm-up
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            nets[name].predict(X)
            times[name].append(time.perf_counter() - start)
    dense = times["dense"]
    return [
        {
            "model": name,
            "parameters": nets[name].n_parameters,
            "nonzero weights": int(
                np.count_nonzero(nets[name].flat_parameters[: nets[name].n_weights])
            ),
            "seconds": statistics.median(times[name]),
            "speedup": statistics.median(d / t for d, t in zip(dense, times[name], strict=True)),
        }
        for name in names
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    with threadpool_limits(limits=args.threads):
        rows = measure(args.rows, args.repeats)
    print(f"predict on {args.rows} rows, {args.threads} BLAS thread(s), median of {args.repeats}")
    print(f"{'model':<26} {'parameters':>10} {'nonzero W':>10} {'seconds':>9} {'speed-up':>9}")
    for r in rows:
        print(
            f"{r['model']:<26} {r['parameters']:>10} {r['nonzero weights']:>10} "
            f"{r['seconds']:>9.4f} {r['speedup']:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
