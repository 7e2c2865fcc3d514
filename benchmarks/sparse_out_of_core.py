"""Peak memory of training on a memmapped CSR matrix, against the data's size (dense and sparse).

    python benchmarks/sparse_out_of_core.py [--rows 25000 100000 200000] [--terms 50000]

For each size it writes a float32 CSR matrix (``--nnz`` stored values a row, int32 indices) as
three .npy files, opens them with mmap_mode="r", builds ``scipy.sparse.csr_matrix`` over the
memmaps (no copy), trains one epoch (Dense(terms, 64) -> ReLU -> Dense(64, 2), batch 256, Adam)
and predicts every row, and prints the peak memory traced by tracemalloc (NumPy reports its
allocations to it) next to the size of the CSR arrays on disk and of the same matrix made dense,
and the epoch's training accuracy (the Trainer's running accuracy over the batches; no test set).
Flat peaks mean memory does not grow with the data.
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import backprop as bp  # noqa: E402


def make(folder: Path, rows: int, terms: int, nnz: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """A memmapped CSR and labels (1 when a row holds one of the first ~1/nnz of the terms)."""
    rng = np.random.default_rng(0)
    shape = (rows * nnz,)
    data = np.lib.format.open_memmap(folder / "data.npy", "w+", np.float32, shape)
    indices = np.lib.format.open_memmap(folder / "indices.npy", "w+", np.int32, shape)
    indptr = np.lib.format.open_memmap(folder / "indptr.npy", "w+", np.int32, (rows + 1,))
    indptr[:] = np.arange(rows + 1) * nnz
    y = np.empty(rows, np.int64)
    for start in range(0, rows, 16384):
        n = min(16384, rows - start)
        cols = np.sort(rng.integers(0, terms, size=(n, nnz)), axis=1)
        a, b = start * nnz, (start + n) * nnz
        data[a:b] = rng.random(n * nnz, dtype=np.float32)
        indices[a:b] = cols.ravel()
        y[start : start + n] = cols[:, 0] < terms * 0.7 / nnz  # about half the rows
    for a in (data, indices, indptr):
        a.flush()
    del data, indices, indptr
    arrays = tuple(
        np.load(folder / f"{k}.npy", mmap_mode="r") for k in ("data", "indices", "indptr")
    )
    return sp.csr_matrix(arrays, shape=(rows, terms)), y


def measure(X: sp.csr_matrix, y: np.ndarray) -> tuple[float, float, float, float]:
    model = bp.Sequential([bp.Dense(X.shape[1], 64), bp.ReLU(), bp.Dense(64, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(1e-2), batch_size=256, epochs=1, seed=0)
    tracemalloc.start()
    start = time.perf_counter()
    trainer.fit(X, y)
    fit_peak = tracemalloc.get_traced_memory()[1]
    seconds = time.perf_counter() - start
    tracemalloc.reset_peak()
    model.predict(X, batch_size=4096)
    predict_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return fit_peak, predict_peak, seconds, trainer.history["accuracy"][-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[25_000, 100_000, 200_000])
    parser.add_argument("--terms", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=50, help="stored values a row")
    args = parser.parse_args(argv)
    print(
        f"{'rows':>8} {'CSR MB':>8} {'dense MB':>9} {'fit peak MB':>12} "
        f"{'predict peak MB':>16} {'fit s':>7} {'train acc':>9}"
    )
    with threadpool_limits(limits=1):
        for rows in args.rows:
            with tempfile.TemporaryDirectory() as tmp:
                X, y = make(Path(tmp), rows, args.terms, args.nnz)
                stored = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
                fit_peak, predict_peak, seconds, acc = measure(X, y)
                del X
            print(
                f"{rows:>8} {stored / 1e6:8.1f} {rows * args.terms * 4 / 1e6:9.0f} "
                f"{fit_peak / 1e6:12.1f} {predict_peak / 1e6:16.1f} {seconds:7.1f} {acc:9.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
