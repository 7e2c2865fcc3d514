"""Data sources: splits, scaling fitted on the training part only, files, MNIST-style npz."""

import numpy as np
import pytest

from backprop.app import sources

OPTS = {**sources.COMMON_OPTIONS}


def _opts(**kw):
    source = kw.get("source", "digits")
    return {**OPTS, **sources.SOURCE_OPTIONS[source], **kw}


def test_splits_are_disjoint_stratified_and_scaled_on_train_only():
    ds = sources.prepare(_opts(source="digits", test_size=0.25, validation_size=0.1))
    n = len(ds.X_train) + len(ds.X_val) + len(ds.X_test)
    assert n == 1797 and ds.task == "classification" and ds.classes == list(range(10))
    assert abs(len(ds.X_test) - 450) <= 5
    # every class keeps about its share in the test split
    assert np.bincount(ds.y_test).min() >= 40
    # standardized with training statistics: exactly centred on train, not on the other parts
    assert np.abs(ds.X_train.mean(axis=0)).max() < 1e-5
    assert np.abs(ds.X_test.mean(axis=0)).max() > 1e-3
    assert np.abs(ds.X_val.mean(axis=0)).max() > 1e-3
    assert ds.X_train.dtype == np.float32 and ds.image_shape == (8, 8)


def test_a_split_that_leaves_nothing_names_the_config_key():
    """The error named the Trainer's ``validation_split`` for a config's ``test_size``."""
    with pytest.raises(ValueError, match=r"^test_size=0\.9999 leaves no training"):
        sources.prepare(_opts(source="digits", test_size=0.9999))
    with pytest.raises(ValueError, match=r"^validation_size=0\.9 leaves no training"):
        sources.prepare(_opts(source="xor", test_size=0.0, validation_size=0.9))


def test_a_stratified_split_of_no_row_is_refused_naming_the_key():
    """test_size = 0.99 left 17 training digits, whose 10 % validation share rounded to 0 rows
    in every class: the run failed ("X_val has 0 samples", exit 1) after making its folder."""
    with pytest.raises(
        ValueError, match=r"^validation_size=0\.1 of \d+ samples in 10 classes gives no row"
    ):
        sources.prepare(_opts(source="digits", test_size=0.99, validation_size=0.1))


def test_regression_targets_are_scaled_with_training_statistics():
    ds = sources.prepare(_opts(source="diabetes"))
    assert ds.task == "regression" and ds.y_train.shape[1] == 1
    assert abs(float(ds.y_train.mean())) < 1e-5 and abs(float(ds.y_train.std()) - 1) < 1e-5
    raw = sources.inverse_y(ds, ds.y_test)
    assert 25 <= raw.min() and raw.max() <= 346


def test_csv_file_with_a_named_string_target(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    lines = ["a,label,b,c"] + [f"{x[0]},{t},{x[1]},{x[2]}" for x, t in zip(X, labels, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    ds = sources.prepare(_opts(source="file", path=str(tmp_path / "d.csv"), target="label"))
    assert ds.task == "classification" and ds.classes == ["no", "yes"] and ds.n_features == 3
    with pytest.raises(ValueError, match="no column 'lbl'; columns"):
        sources.prepare(_opts(source="file", path=str(tmp_path / "d.csv"), target="lbl"))
    with pytest.raises(FileNotFoundError, match="data file not found: .*missing.csv"):
        sources.prepare(_opts(source="file", path=str(tmp_path / "missing.csv")))


@pytest.mark.parametrize("target, shown", [("y", "'y'"), (5, "5"), ("-9", "-9")])
def test_a_bad_npy_target_is_named(tmp_path, target, shown):
    """A .npy file's target must be a column index; the error did not say what it got (the
    default target "y" of source = "file" is no index)."""
    np.save(tmp_path / "d.npy", np.zeros((6, 5)))
    with pytest.raises(ValueError, match=f"column index below 5, got {shown}$"):
        sources.read_table(tmp_path / "d.npy", target)


@pytest.mark.parametrize(
    "body, match",
    [
        # a short row: IndexError traceback ("list index out of range") from the CLI
        ("1,2,0\n3,4\n", r"line 3: 2 cells, but 3 columns"),
        # a long row (an unquoted comma): its last cell was dropped without a word
        ("1,2,0\n3,4,1,5\n", r"line 3: 4 cells, but 3 columns"),
        # a blank label became a class '' of its own
        ("1,2,0\n3,4,\n5,6,1\n", r"line 3: the target 'y' holds no value"),
        # a NaN target made the task regression, then failed at fit naming no row
        ("1,2,0\n3,4,nan\n5,6,1\n", r"line 3: the target 'y' holds 'nan'"),
        # a missing feature: "could not convert string to float: ''", no row, no column
        ("1,2,0\n3,,1\n", r"line 3: column 'b' holds a missing value"),
        ("1,2,0\n\n3,x,1\n", r"line 4: column 'b' holds 'x'"),
    ],
)
def test_a_bad_csv_row_is_named_by_line_and_column(tmp_path, body, match):
    (tmp_path / "d.csv").write_text("a,b,y\n" + body)
    with pytest.raises(ValueError, match=match):
        sources.read_table(tmp_path / "d.csv", "y")
    # a file without a header whose first row misses a value: that row was taken as the
    # header, and predict answered for one row fewer than the file has
    (tmp_path / "d.csv").write_text("1,,0\n3,4,1\n")
    with pytest.raises(ValueError, match="line 1: column '1' holds a missing value"):
        sources.read_table(tmp_path / "d.csv", None)


def test_an_npz_target_column_is_read_as_its_1d_form_and_must_be_finite(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 3
    opts = _opts(source="file", path=str(tmp_path / "d.npz"))
    for target in (y, y[:, None], y.astype(float), y[:, None].astype(float)):
        np.savez(tmp_path / "d.npz", X=X, y=target)  # a float column was taken as regression
        ds = sources.prepare(opts)
        assert ds.task == "classification" and ds.classes == [0, 1, 2]
    # a NaN target passed into the split and the target's standardization, then fit refused
    # "y contains NaN or infinity" naming no row
    np.savez(tmp_path / "d.npz", X=X, y=np.where(np.arange(60) == 7, np.nan, 0.5 * y))
    with pytest.raises(ValueError, match="d.npz: the target holds .*nan.* at row 8"):
        sources.prepare(opts)


def test_npz_file_regression(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    np.savez(tmp_path / "d.npz", X=X, y=X @ np.arange(4.0) + 0.5)
    ds = sources.prepare(_opts(source="file", path=str(tmp_path / "d.npz")))
    assert ds.task == "regression" and ds.n_outputs == 1


def test_a_constant_column_of_a_file_standardizes_to_zero(tmp_path):
    """A column of 0.1 everywhere has np.std 1.4e-17 (the mean rounds): that was the scale, so
    the constant came out as 1.0 and a test value of 0.2 as 7e15."""
    rng = np.random.default_rng(1)
    X = np.column_stack([np.full(50, 0.1), rng.normal(size=50)])
    np.savez(tmp_path / "d.npz", X=X, y=X[:, 1] + 0.5)
    ds = sources.prepare(_opts(source="file", path=str(tmp_path / "d.npz")))
    assert ds.x_scale[0] == 1.0 and not ds.X_train[:, 0].any()
    assert sources.transform_X(ds, np.array([[0.2, 0.0]]))[0, 0] == np.float32(0.1)


def test_mnist_style_file_keeps_its_test_split_and_scales_pixels(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {
        "X_train": rng.integers(0, 256, size=(30, 784), dtype=np.uint8),
        "y_train": np.arange(30, dtype=np.uint8) % 10,
        "X_test": np.full((7, 784), 255, dtype=np.uint8),
        "y_test": np.arange(7, dtype=np.uint8),
    }
    np.savez(tmp_path / "m.npz", **arrays)
    opts = _opts(source="mnist", path=str(tmp_path / "m.npz"), standardize=False, n_train=20)
    opts["validation_size"] = 0.5  # 2 images per class: 10 % of each rounds to none
    ds = sources.prepare(opts)
    assert len(ds.X_test) == 7 and np.all(ds.X_test == 1.0)
    assert len(ds.X_train) + len(ds.X_val) == 20 and ds.image_shape == (28, 28)
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    with pytest.raises(ValueError, match=r"n_train must be in \[0, 30\].*got 31"):
        sources.prepare({**opts, "n_train": 31})  # quietly trained on the 30 there are
    with pytest.raises(FileNotFoundError, match="fetch_data.py mnist"):
        sources.prepare(_opts(source="mnist", path=str(tmp_path / "none.npz")))


@pytest.mark.parametrize("source", ["adding", "mnist-rows", "file"])
def test_standardize_of_sequences_is_refused_before_training(source, tmp_path):
    """The default standardize = true on (n, t, d) data used to train the whole run and then
    crash with a traceback when model.npz was saved (Standardize holds flat per-feature
    statistics)."""
    if source == "adding":
        opts = _opts(source="adding", n_samples=40, length=6)
    elif source == "file":
        rng = np.random.default_rng(3)
        np.savez(tmp_path / "s.npz", X=rng.normal(size=(30, 5, 2)), y=np.arange(30) % 2)
        opts = _opts(source="file", path=str(tmp_path / "s.npz"))
    else:
        rng = np.random.default_rng(4)
        arrays = {
            "X_train": rng.integers(0, 256, size=(20, 784), dtype=np.uint8),
            "y_train": np.arange(20, dtype=np.uint8) % 10,
            "X_test": rng.integers(0, 256, size=(10, 784), dtype=np.uint8),
            "y_test": np.arange(10, dtype=np.uint8),
        }
        np.savez(tmp_path / "m.npz", **arrays)
        opts = _opts(source="mnist", path=str(tmp_path / "m.npz"), as_sequence=True)
        opts["validation_size"] = 0.5  # 2 images per class: 10 % of each rounds to none
    with pytest.raises(ValueError, match=r"standardize = true needs flat rows .*set standardize"):
        sources.prepare(opts)
    ds = sources.prepare({**opts, "standardize": False})
    assert ds.X_train.ndim == 3 and ds.x_mean is None


def test_split_errors_name_the_option_that_was_set():
    # prepare's test and validation splits said "validation_split", an option no config has;
    # a string fraction failed with "'<' not supported between instances of 'float' and 'str'"
    with pytest.raises(ValueError, match=r"^test_size=0.9 leaves no training samples out of 4"):
        sources.prepare(_opts(source="xor", test_size=0.9))
    with pytest.raises(ValueError, match="validation_split must be in \\(0, 1\\), got '0.1'"):
        sources.split_indices(10, "0.1", np.random.default_rng(0))
