"""Sparse input: backprop's MLPClassifier against scikit-learn's on the same TF-IDF CSR matrix.

    python benchmarks/sparse_text.py                      # every fortunes category, 3 rounds
    python benchmarks/sparse_text.py --categories computers people politics science work
    python benchmarks/sparse_text.py --path DIR --epochs 2 --repeats 1

Data: Debian's fortunes quotations (``python scripts/fetch_data.py fortunes``), TF-IDF fitted
on a stratified 80% training part (float32 CSR; never made dense). Both estimators get the same
matrix, the same arguments (one hidden layer, Adam, batch 200, a fixed number of epochs:
``tol=0`` and ``n_iter_no_change`` at the epoch count, so neither stops early) and one BLAS
thread. One warm-up fit each, then ``--repeats`` rounds in alternating order; the epoch time is
the median over rounds of fit time / epochs. Peak memory is measured on a separate, untimed fit
with tracemalloc (NumPy reports its allocations there): the peak above what was allocated before
the fit, so the data set itself is not counted. The test accuracy is from the last timed fit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import backprop as bp  # noqa: E402
from backprop.app import text  # noqa: E402


def load(path: str, categories: list[str] | None, min_documents: int):
    from sklearn.model_selection import train_test_split

    docs, labels = text.read_fortunes(path, categories, min_documents)
    a, b, ya, yb = train_test_split(docs, labels, test_size=0.2, stratify=labels, random_state=0)
    opts = {**text.TEXT_OPTIONS, "min_df": 2, "sublinear_tf": True}
    vec = text.tfidf(opts)
    X_train = vec.fit_transform(list(a)).astype(np.float32)
    X_test = vec.transform(list(b)).astype(np.float32)
    return X_train, ya, X_test, yb


def estimators(epochs: int, hidden: int, seed: int):
    from sklearn.neural_network import MLPClassifier

    args = dict(
        hidden_layer_sizes=(hidden,),
        solver="adam",
        batch_size=200,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs,
        random_state=seed,
    )
    return {"backprop": bp.MLPClassifier(**args), "sklearn": MLPClassifier(**args)}


def fit(est, X, y) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: intended
        start = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - start


def peak_fit_mb(est, X, y) -> float:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fit(est, X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="data/fortunes")
    parser.add_argument("--categories", nargs="*", default=None, help="default: all files")
    parser.add_argument("--min-documents", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    X, y, X_test, y_test = load(args.path, args.categories, args.min_documents)
    dense_mb = X.shape[0] * X.shape[1] * 4 / 1e6
    print(
        f"train {X.shape[0]} x {X.shape[1]} CSR float32, {X.nnz} stored values "
        f"({(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 1e6:.1f} MB; dense would be "
        f"{dense_mb:.0f} MB), {len(np.unique(y))} classes, test {X_test.shape[0]}"
    )
    with threadpool_limits(limits=1):
        for est in estimators(1, args.hidden, 0).values():  # warm-up
            fit(est, X[:400], y[:400])
        times: dict[str, list[float]] = {"backprop": [], "sklearn": []}
        scores: dict[str, float] = {}
        for r in range(args.repeats):
            ests = list(estimators(args.epochs, args.hidden, r).items())
            for name, est in ests if r % 2 == 0 else ests[::-1]:
                times[name].append(fit(est, X, y) / est.n_iter_)
                scores[name] = float(est.score(X_test, y_test))
        peaks = {
            name: peak_fit_mb(est, X, y)
            for name, est in estimators(args.epochs, args.hidden, 0).items()
        }
    epoch = {name: statistics.median(t) for name, t in times.items()}
    print(f"{'system':<10} {'s/epoch':>8} {'vs sklearn':>10} {'peak fit MB':>12} {'test acc':>9}")
    for name in ("backprop", "sklearn"):
        print(
            f"{name:<10} {epoch[name]:8.3f} {epoch[name] / epoch['sklearn']:10.2f} "
            f"{peaks[name]:12.1f} {scores[name]:9.3f}"
        )
    print(f"({args.repeats} rounds of {args.epochs} epochs, hidden {args.hidden}, 1 BLAS thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
