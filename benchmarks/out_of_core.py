"""Peak memory of training and prediction from a memmap, against the data's size.

    python benchmarks/out_of_core.py [--rows 50000 200000 800000] [--features 256]

For each size it writes a float32 .npy of random rows to a temporary folder, opens it with
mmap_mode="r", trains one epoch (784-style wide input, batch 256, Adam) and predicts every row,
and prints the peak memory traced by tracemalloc (NumPy reports its allocations to it) next to
the size of the data on disk. Flat peaks mean memory does not grow with the data.
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import backprop as bp  # noqa: E402


def make(path: Path, rows: int, features: int) -> np.ndarray:
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 16384):
        n = min(16384, rows - start)
        X[start : start + n] = rng.random((n, features), dtype=np.float32)
    X.flush()
    del X
    return np.load(path, mmap_mode="r")


def measure(X: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    model = bp.Sequential([bp.Dense(X.shape[1], 64), bp.ReLU(), bp.Dense(64, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", batch_size=256, epochs=1, seed=0)
    tracemalloc.start()
    start = time.perf_counter()
    trainer.fit(X, y)
    fit_peak = tracemalloc.get_traced_memory()[1]
    seconds = time.perf_counter() - start
    tracemalloc.reset_peak()
    model.predict(X, batch_size=4096)
    predict_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return fit_peak, predict_peak, seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--features", type=int, default=256)
    args = parser.parse_args(argv)
    print(
        f"{'rows':>9} {'data MB':>9} {'fit peak MB':>12} {'predict peak MB':>16} "
        f"{'index arrays MB':>16} {'fit s':>7}"
    )
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            X = make(Path(tmp) / f"x{rows}.npy", rows, args.features)
            y = (np.asarray(X[:, 0]) > 0.5).astype(np.int64)
            fit_peak, predict_peak, seconds = measure(X, y)
            per_row = 2 * 8 * rows  # the training indices and the epoch's permutation of them
            print(
                f"{rows:>9} {X.nbytes / 1e6:>9.1f} {fit_peak / 1e6:>12.2f} "
                f"{predict_peak / 1e6:>16.2f} {per_row / 1e6:>16.2f} {seconds:>7.2f}"
            )
            del X
    print(
        "fit peak = parameters + optimizer state + one batch + O(n) index arrays;"
        " predict peak = one chunk of activations plus the (n, n_outputs) result"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
