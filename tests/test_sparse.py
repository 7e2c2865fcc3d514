"""Sparse (scipy.sparse) input end to end: the same results as the same data made dense, the
gradients checked by finite differences, memory bounded by one batch, memmapped CSR arrays."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import backprop as bp
from backprop.data import check_X


def sparse_data(rng, n=120, d=40, density=0.1, dtype=np.float64):
    X = sp.random_array((n, d), density=density, format="csr", dtype=dtype, rng=rng)
    y = (np.asarray(X.sum(axis=1)).ravel() > np.median(X.sum(axis=1))).astype(np.int64)
    return X, y


def mlp(d, dtype="float64", seed=0, first=None):
    layers = [bp.Dense(d, 16), bp.Tanh(), bp.Dense(16, 2)]
    return bp.Sequential(([first] if first is not None else []) + layers, dtype=dtype, seed=seed)


class BatchSpy(bp.Callback):
    """Records the type and dtype of every training batch the first layer saw."""

    def __init__(self):
        self.seen = []

    def on_train_begin(self, trainer):  # (its cache is released by backward: spy on forward)
        layer = trainer.model.layers[0]

        def forward(x, training=False):
            if training:
                self.seen.append((sp.issparse(x), x.dtype, x.shape[0]))
            return type(layer).forward(layer, x, training)

        layer.forward = forward

    def on_train_end(self, trainer):
        trainer.model.layers[0].__dict__.pop("forward", None)


def test_dense_layer_forward_and_gradients_match_dense_input(rng):
    X, _ = sparse_data(rng, n=7, d=9)
    layer_s, layer_d = bp.Dense(9, 4, dtype="float64", seed=0), bp.Dense(9, 4, dtype="float64")
    layer_d.params["W"][...] = layer_s.params["W"]
    g = rng.normal(size=(7, 4))
    ys, yd = layer_s.forward(X, training=True), layer_d.forward(X.toarray(), training=True)
    assert type(ys) is np.ndarray and ys.shape == (7, 4)
    np.testing.assert_allclose(ys, yd, rtol=1e-12)
    assert layer_s.backward(g) is None  # no input gradient for a sparse input
    layer_d.backward(g)
    np.testing.assert_allclose(layer_s.grads["W"], layer_d.grads["W"], rtol=1e-12)
    np.testing.assert_allclose(layer_s.grads["b"], layer_d.grads["b"], rtol=1e-12)


def test_finite_differences_agree_with_the_sparse_backward(rng):
    X, y = sparse_data(rng, n=6, d=8, density=0.3)
    model = bp.Sequential([bp.Dense(8, 5), bp.Tanh(), bp.Dense(5, 3)], dtype="float64", seed=0)
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, y % 3, l2=0.1)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"0.W", "0.b", "2.W", "2.b"}


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.coo_array])
@pytest.mark.parametrize("mode", ["stochastic", "batch", "minibatch"])
def test_trainer_on_sparse_equals_trainer_on_dense(rng, container, mode):
    X, y = sparse_data(rng, n=40 if mode == "stochastic" else 120)
    w = rng.uniform(0.2, 2.0, size=X.shape[0])
    histories, models = [], []
    for data in (X.toarray(), container(X)):
        model = mlp(X.shape[1])
        trainer = bp.Trainer(
            model, "cross_entropy", bp.Adam(1e-2), mode=mode, batch_size=16, epochs=3, l2=1e-3,
            seed=1, callbacks=[bp.EarlyStopping(patience=1, restore_best_weights=True)],
        )  # fmt: skip
        histories.append(trainer.fit(data, y, validation_split=0.25, sample_weight=w))
        histories[-1]["evaluate"] = [trainer.evaluate(data, y, sample_weight=w)["loss"]]
        models.append((model, trainer.predict(data)))
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "evaluate"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-10, err_msg=key)
    np.testing.assert_allclose(
        models[1][0].flat_parameters, models[0][0].flat_parameters, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(models[1][1], models[0][1], rtol=1e-9, atol=1e-12)


def test_sparse_batches_keep_the_epoch_order_so_dropout_equals_dense(rng):
    # a sparse batch's rows were sorted by index, the dense batch's left in the shuffled
    # order: Dropout's masks (drawn by position) then fell on other samples, and the sparse fit
    # differed from the dense one (loss 2.43 against 2.36 after one batch of digits)
    X, y = sparse_data(rng, n=100)
    runs = []
    for data in (X.toarray(), X):
        model = bp.Sequential(
            [bp.Dense(40, 16), bp.Tanh(), bp.Dropout(0.3), bp.Dense(16, 2)], dtype="float64", seed=0
        )
        trainer = bp.Trainer(model, "cross_entropy", bp.Adam(1e-2), batch_size=16, seed=1)
        runs.append((trainer.fit(data, y, epochs=2)["loss"], model.flat_parameters.copy()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-10)
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-9, atol=1e-12)


def test_a_csr_whose_indices_point_outside_it_is_refused(rng):
    # SciPy builds it without a word; predict then read past W (values like 6e-41) and fit
    # wrote past dW
    X = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, 7]), np.array([0, 1, 2])), shape=(2, 5))
    model = bp.Sequential([bp.Dense(5, 3)], seed=0)
    trainer = bp.Trainer(model, "mse", "sgd", batch_size=2)
    for call in (
        lambda: model.predict(X),
        lambda: trainer.fit(X, np.zeros((2, 3)), epochs=1),
        lambda: bp.MLPRegressor(max_iter=1).fit(X, np.zeros(2)),
    ):
        with pytest.raises(ValueError, match=r"column index 7 is outside \[0, 5\)"):
            call()
    X.indices[:] = [0, 1]
    X.indptr[:] = [0, 2, 1]  # decreasing: row 1 would run backwards
    with pytest.raises(ValueError, match="indptr decreases"):
        model.predict(X)


def test_training_checks_the_csr_indices_once_not_at_every_batch(rng, monkeypatch):
    # the batches are SciPy's row slices of the checked X: re-checking each one (4 reductions
    # and their Python overhead) cost ~10 us a batch, ~5-10 % of a small model's step
    from backprop import sparse as sparse_mod

    calls = []
    check = sparse_mod._check_indices
    monkeypatch.setattr(
        sparse_mod, "_check_indices", lambda X, name: calls.append(name) or check(X, name)
    )
    X, y = sparse_data(rng)
    trainer = bp.Trainer(mlp(X.shape[1]), "cross_entropy", "sgd", batch_size=8, epochs=2, seed=0)
    trainer.fit(X, y)
    assert len(calls) <= 2  # X itself (and at most its first-batch probe), not 2 x 15 batches
    calls.clear()  # L-BFGS: its one batch is X itself, evaluated at every iteration
    trainer = bp.Trainer(mlp(X.shape[1]), "cross_entropy", "lbfgs", epochs=5, seed=0)
    trainer.fit(X, y)
    assert trainer.step_count > 2 and len(calls) <= 2
    calls.clear()
    mlp(X.shape[1]).predict(X[:5])  # a CSR from outside is still checked
    assert calls


def test_float32_stays_float32_and_batches_stay_sparse(rng):
    X, y = sparse_data(rng, dtype=np.float32)
    spy = BatchSpy()
    model = mlp(X.shape[1], dtype="float32")
    trainer = bp.Trainer(model, "cross_entropy", "adam", batch_size=32, epochs=1, callbacks=[spy])
    trainer.fit(X, y)
    assert spy.seen and all(s == (True, np.float32, spy.seen[0][2]) for s in spy.seen[:-1])
    assert spy.seen[0][2] == 32
    assert model.flat_parameters.dtype == np.float32
    assert trainer.predict(X).dtype == np.float32


def test_float64_data_is_cast_batch_by_batch_for_a_float32_model(rng):
    X, y = sparse_data(rng, dtype=np.float64)
    spy = BatchSpy()
    model = mlp(X.shape[1], dtype="float32")
    bp.Trainer(model, "cross_entropy", "adam", batch_size=32, epochs=1, callbacks=[spy]).fit(X, y)
    assert {s[:2] for s in spy.seen} == {(True, np.dtype(np.float32))}
    assert X.dtype == np.float64  # the data set itself is not cast


def test_a_first_layer_that_cannot_take_sparse_input_is_named(rng):
    X, y = sparse_data(rng)
    model = mlp(X.shape[1], first=bp.BatchNorm(X.shape[1]))
    with pytest.raises(TypeError, match="first layer, BatchNorm, cannot take sparse input"):
        model.forward(X)
    trainer = bp.Trainer(model, "cross_entropy", "adam", epochs=1)
    with pytest.raises(TypeError, match="BatchNorm"):
        trainer.fit(X, y)


def test_check_X_keeps_csr_converts_csc_and_rejects_nan(rng):
    X, _ = sparse_data(rng)
    assert check_X(X) is X
    assert check_X(X.tocsc()).format == "csr"
    bad = X.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_X(bad)
    with pytest.raises(ValueError, match="0 samples"):
        check_X(sp.csr_array((0, 4)))


def peak_fit_memory(X, y, batch_size=256):
    model = bp.Sequential([bp.Dense(X.shape[1], 16), bp.ReLU(), bp.Dense(16, 2)], seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", bp.Adam(1e-2), batch_size=batch_size, seed=0, epochs=1
    )
    tracemalloc.start()
    trainer.fit(X, y)
    model.predict(X, batch_size=1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, trainer


def memmapped_csr(directory, n, d=5_000, nnz_per_row=30, seed=0):
    """A float32 CSR whose data/indices/indptr are .npy memmaps, written in blocks. The index
    arrays are int32: scipy casts index arrays to the smallest dtype that holds them, so int64
    ones would be copied into memory whenever nnz < 2**31."""
    rng = np.random.default_rng(seed)
    data = np.lib.format.open_memmap(directory / "data.npy", "w+", np.float32, (n * nnz_per_row,))
    indices = np.lib.format.open_memmap(directory / "indices.npy", "w+", np.int32, data.shape)
    indptr = np.lib.format.open_memmap(directory / "indptr.npy", "w+", np.int32, (n + 1,))
    indptr[:] = np.arange(n + 1) * nnz_per_row
    y = np.empty(n, np.int64)
    for start in range(0, n, 4096):
        rows = min(4096, n - start)
        cols = np.sort(rng.integers(0, d, size=(rows, nnz_per_row)), axis=1)
        vals = rng.random((rows, nnz_per_row), dtype=np.float32)
        a, b = start * nnz_per_row, (start + rows) * nnz_per_row
        data[a:b], indices[a:b] = vals.ravel(), cols.ravel()
        y[start : start + rows] = cols[:, 0] < 0.023 * d  # a term among the first 2.3%: p ~ 0.5
    for a in (data, indices, indptr):
        a.flush()
    arrays = [np.load(directory / f"{k}.npy", mmap_mode="r") for k in ("data", "indices", "indptr")]
    X = sp.csr_matrix(tuple(arrays), shape=(n, d))
    return X, y, arrays


def test_memmapped_csr_trains_at_memory_that_does_not_grow_with_the_data(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "l").mkdir()
    small, y_small, _ = memmapped_csr(tmp_path / "s", 5_000)
    large, y_large, arrays = memmapped_csr(tmp_path / "l", 40_000)
    assert all(
        np.shares_memory(a, b)
        for a, b in zip(arrays, (large.data, large.indices, large.indptr), strict=True)
    )
    peak_small, _ = peak_fit_memory(small, y_small)
    peak_large, trainer = peak_fit_memory(large, y_large)
    # The labels, the index permutation and the predictions are O(n) (about 40 bytes a row);
    # everything else is one batch: 256 rows of CSR, never the 800 MB the dense matrix takes.
    per_row = 48 * (40_000 - 5_000)
    assert peak_large - peak_small < per_row + 1_000_000
    stored = sum(a.nbytes for a in arrays)
    assert peak_large < 0.25 * stored, f"peak {peak_large / 1e6:.1f} MB of {stored / 1e6:.1f}"
    assert trainer.history["accuracy"][-1] > 0.7, trainer.history["accuracy"]  # majority: ~0.5


def test_batch_streams_validation_data_and_backward_on_sparse(rng):
    X, y = sparse_data(rng)
    results = []
    for data in (X.toarray(), X):
        model = mlp(X.shape[1])
        trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=2, seed=0)
        batches = [(data[:60], y[:60]), (data[60:], y[60:])]
        results.append(trainer.fit(batches, validation_data=(data[:30], y[:30])))
        model.forward(data, training=True)
        dX = model.backward(np.ones((X.shape[0], 2)))
        assert (dX is None) == sp.issparse(data)  # no input gradient for a sparse input
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-10, err_msg=key)


def test_the_sparse_out_of_core_benchmark_runs(capsys):
    import importlib
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    bench = importlib.import_module("benchmarks.sparse_out_of_core")
    assert bench.main(["--rows", "1000", "2000", "--terms", "500", "--nnz", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["train", "acc"]  # the Trainer's accuracy, not a test score
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["1000", "2000"]
    assert all(float(v) >= 0 for r in rows for v in r)


@pytest.mark.parametrize("fmt", ["dia", "bsr", "coo", "csc"])
def test_chunked_predict_and_activations_take_every_sparse_format(rng, fmt):
    # forward converted any format to CSR, but predict and activations sliced rows first:
    # a DIA matrix is not subscriptable, a BSR one raised a bare NotImplementedError
    X, _ = sparse_data(rng, n=30)
    model = mlp(X.shape[1])
    Xf = X.asformat(fmt)
    np.testing.assert_allclose(model.predict(Xf, batch_size=8), model.predict(X.toarray()))
    dense = bp.structured.activations(model, X.toarray(), batch_size=8)
    np.testing.assert_allclose(bp.structured.activations(model, Xf, batch_size=8)[0], dense[0])


def test_sparse_targets_and_weights_get_an_error_that_names_them(rng):
    # a multi-label y from MultiLabelBinarizer(sparse_output=True) failed deep in the labels
    # message with "setting an array element with a sequence"; sparse weights alike
    X, y = sparse_data(rng, n=30)
    Y = sp.csr_array(np.eye(2)[y])
    trainer = bp.Trainer(mlp(X.shape[1]), "binary_cross_entropy", "adam", epochs=1)
    calls = (lambda: trainer.fit(X, Y), lambda: trainer.evaluate(X, Y), lambda: trainer.score(X, Y))
    for call in calls:
        with pytest.raises(ValueError, match=r"y is a scipy.sparse matrix .*y.toarray\(\)"):
            call()
    w = sp.csr_array(np.ones((1, 30)))
    with pytest.raises(ValueError, match=r"sample_weight is a scipy.sparse matrix"):
        trainer.fit(X, Y.toarray(), sample_weight=w)
