"""Training from data that does not sit in memory: memmaps, HDF5-like array-likes, batch streams."""

import tracemalloc

import numpy as np
import pytest

import backprop as bp


def make_memmap(path, n, d=128, seed=0):
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(seed)
    for start in range(0, n, 8192):  # write in blocks: the test never holds the whole array
        X[start : start + 8192] = rng.random((min(8192, n - start), d), dtype=np.float32)
    X.flush()
    y = (np.asarray(X[:, 0]) > 0.5).astype(np.int64)
    return np.load(path, mmap_mode="r"), y


def peak_fit_memory(X, y):
    model = bp.Sequential([bp.Dense(X.shape[1], 32), bp.ReLU(), bp.Dense(32, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", batch_size=256, epochs=1, seed=0)
    tracemalloc.start()
    trainer.fit(X, y)
    model.predict(X, batch_size=1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, trainer


def test_memmap_training_memory_does_not_grow_with_the_data(tmp_path):
    small, y_small = make_memmap(tmp_path / "small.npy", 10_000)
    large, y_large = make_memmap(tmp_path / "large.npy", 80_000)  # 41 MB on disk
    peak_small, _ = peak_fit_memory(small, y_small)
    peak_large, trainer = peak_fit_memory(large, y_large)
    # Beyond the labels and the index permutation (8 bytes a row each, both O(n) and tiny
    # next to the 512-byte rows), memory is the same: the data is read batch by batch.
    per_row_overhead = 2 * 8 * (80_000 - 10_000)
    assert peak_large - peak_small < per_row_overhead + 1_000_000
    assert peak_large < 0.1 * large.nbytes, f"peak {peak_large / 1e6:.1f} MB"
    assert trainer.history["accuracy"][-1] > 0.75  # one epoch of a learnable task


class SortedOnlyArray:
    """An HDF5-dataset stand-in: rows by slice or by *increasing* integer indices only, and a
    count of the largest number of rows any single read returned."""

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype = data.shape, data.dtype
        self.largest_read = 0

    def __getitem__(self, key):
        if isinstance(key, np.ndarray) and np.any(np.diff(key) <= 0):
            raise TypeError("indexing elements must be in increasing order")
        out = np.array(self._data[key])
        self.largest_read = max(self.largest_read, len(out))
        return out


def test_array_like_with_sorted_fancy_indexing(rng):
    data = rng.normal(size=(3000, 8)).astype(np.float32)
    y = (data[:, 0] > 0).astype(int)
    X = SortedOnlyArray(data)
    model = bp.Sequential([bp.Dense(8, 16), bp.ReLU(), bp.Dense(16, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=64, epochs=5, seed=0)
    h = trainer.fit(X, y, validation_split=0.1)
    assert h["val_accuracy"][-1] > 0.9
    assert X.largest_read <= 3000  # one finite-check block (16 MB) covers it here ...
    X.largest_read = 0
    trainer.fit(X, y, epochs=1)
    model.predict(X, batch_size=500)
    assert X.largest_read <= 3000


class TensorLike:
    """What a torch tensor offers: shape, __getitem__, __array__, and a dtype that is not
    NumPy's."""

    def __init__(self, data):
        self.data, self.shape, self.dtype = data, data.shape, "torch.float32"

    def __getitem__(self, idx):
        return TensorLike(self.data[idx])

    def __array__(self, dtype=None, copy=None):
        return self.data


def test_an_array_like_with_a_foreign_dtype_is_converted(rng):
    # fit(torch_tensor, ...) failed with AttributeError: 'torch.dtype' object has no attribute
    # 'kind' (predict took it)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    losses = []
    for data in (X, TensorLike(X)):
        trainer = bp.Trainer(
            bp.Sequential([bp.Dense(3, 2)], seed=0), "cross_entropy", "sgd", seed=0
        )
        losses.append(trainer.fit(data, y, epochs=2, validation_split=0.2)["val_loss"])
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_array_like_reads_are_bounded_by_the_block_size(rng):
    data = rng.normal(size=(5000, 4096)).astype(np.float32)  # 82 MB: several 16 MB blocks
    X = SortedOnlyArray(data)
    bp.data.check_X(X)
    assert X.largest_read == (1 << 24) // (4096 * 4)


class Batches:
    """A re-iterable source of (X, y) batches, as a reader over files would be."""

    def __init__(self, X, y, size):
        self.X, self.y, self.size = X, y, size

    def __iter__(self):
        for start in range(0, len(self.X), self.size):
            yield self.X[start : start + self.size], self.y[start : start + self.size]


def test_iterable_of_batches_equals_arrays_in_the_same_order(rng):
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)

    def trained(source_is_stream):
        model = bp.Sequential([bp.Dense(5, 8), bp.Tanh(), bp.Dense(8, 3)], seed=1)
        trainer = bp.Trainer(
            model, "cross_entropy", "adam", batch_size=32, epochs=3, shuffle=False, seed=0
        )
        if source_is_stream:
            h = trainer.fit(Batches(X, y, 32), validation_data=(X[:50], y[:50]))
        else:
            h = trainer.fit(X, y, validation_data=(X[:50], y[:50]))
        return model.flat_parameters.copy(), h

    (a, ha), (b, hb) = trained(False), trained(True)
    np.testing.assert_array_equal(a, b)
    assert ha["loss"] == hb["loss"] and ha["val_loss"] == hb["val_loss"]


def test_a_one_shot_generator_fails_clearly_on_the_second_epoch(rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    gen = ((X[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8))
    trainer = bp.Trainer(bp.Sequential([bp.Dense(3, 2)], seed=0), "cross_entropy", "sgd", epochs=2)
    with pytest.raises(ValueError, match="no training batches in epoch 2.*re-iterable"):
        trainer.fit(gen)


def test_a_one_shot_generator_trains_on_every_batch_when_it_builds_the_model(rng):
    # The first batch, read to build an unbuilt model, was consumed: one epoch over a generator
    # of 5 batches took 4 steps and never saw the first 8 rows.
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    losses = []
    for built in (True, False):
        model = bp.Sequential([bp.Dense(3, 2) if built else bp.Dense(2)], seed=0)
        trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=1, seed=0)
        losses.append(trainer.fit((X[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8))["loss"])
        assert trainer.steps_per_epoch == 5
    assert losses[0] == losses[1]
    trainer = bp.Trainer(bp.Sequential([bp.Dense(2)]), "cross_entropy", "sgd", epochs=1)
    with pytest.raises(ValueError, match="batch 1: X_batch must be 2-D"):  # was: input_shape ()
        trainer.fit([(X[:, 0], y)])
    with pytest.raises(ValueError, match="in epoch 1: the iterable of batches gave none .*empty"):
        trainer.fit([])  # was told it must not be a one-shot generator


def test_a_nan_in_a_streamed_batch_names_the_epoch_and_batch(rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    bad = X.copy()
    bad[17, 1] = np.nan
    trainer = bp.Trainer(bp.Sequential([bp.Dense(3, 2)], seed=0), "cross_entropy", "sgd", epochs=2)
    before = trainer.model.flat_parameters.copy()
    with pytest.raises(ValueError, match="epoch 1, batch 3: X_batch contains NaN"):
        trainer.fit(Batches(bad, y, 8))
    assert np.all(np.isfinite(trainer.model.flat_parameters))
    assert not np.array_equal(before, trainer.model.flat_parameters)  # 2 good batches applied


def test_stream_errors_are_named(rng):
    trainer = bp.Trainer(bp.Sequential([bp.Dense(3, 2)], seed=0), "cross_entropy", "sgd", seed=0)
    with pytest.raises(ValueError, match="y is required"):
        trainer.fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"tuple \(X, y\)"):
        trainer.fit([np.zeros((4, 3))])
    with pytest.raises(ValueError, match="X_batch has 4 features, but the model expects 3"):
        trainer.fit([(np.zeros((4, 4)), np.zeros(4, int))])
    with pytest.raises(ValueError, match="validation_data"):
        trainer.fit([(np.zeros((4, 3)), np.zeros(4, int))], validation_split=0.5)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_a_fortran_ordered_or_strided_array_is_not_copied_at_each_batch(rng, layout):
    # np.take(..., out=) copies a non-C-contiguous array whole before it gathers: a Fortran-
    # ordered X (what many readers give) was copied once per batch, 10x slower, a copy at peak.
    X = rng.random((20_000, 2 * 128), dtype=np.float32)
    X = np.asfortranarray(X[:, :128]) if layout == "fortran" else X[:, ::2]
    y = (X[:, 0] > 0.5).astype(np.int64)
    peak, trainer = peak_fit_memory(X, y)
    assert peak < X.nbytes / 4, f"peak {peak / 1e6:.1f} MB for {X.nbytes / 1e6:.1f} MB of data"
    peak_c, trainer_c = peak_fit_memory(np.ascontiguousarray(X), y)
    assert trainer.history["loss"] == trainer_c.history["loss"]  # the same batches


def test_float64_data_for_a_float32_model_is_range_checked_without_copies(rng):
    # The check for values beyond float32 took abs() of a boolean-indexed copy of every 16 MB
    # block: 50 MB traced for any float64 X given to fit, evaluate or predict of a float32 model.
    X = rng.random((40_000, 128))  # 41 MB
    X[123, 7] = -1e39
    tracemalloc.start()
    with pytest.raises(ValueError, match="magnitude 1e\\+39"):
        bp.data.check_X(X, dtype=np.float32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4_000_000, f"{peak / 1e6:.1f} MB traced"
