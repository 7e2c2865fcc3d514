"""Model files: round trips, and clear refusals of malformed, truncated or foreign files."""

import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest

import backprop as bp
from backprop.io import HEADER, ModelFileError, load_file, register_kind, write_archive


def _model(dtype="float32"):
    model = bp.Sequential(
        [
            bp.Dense(5, 8),
            bp.PReLU(8),
            bp.BatchNorm(8),
            bp.Dropout(0.3),
            bp.Dense(8, 6, init="he_normal"),
            bp.GELU(),
            bp.LayerNorm(6),
            bp.LeakyReLU(0.2),
            bp.Dense(6, 3),
        ],
        dtype=dtype,
        seed=3,
    )
    # Move the BatchNorm running statistics away from their initial values.
    model.forward(np.random.default_rng(0).normal(size=(16, 5)), training=True)
    model.layers[4].trainable = False
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_preserves_architecture_weights_buffers_and_outputs(tmp_path, dtype):
    model = _model(dtype)
    path = tmp_path / "m.npz"
    bp.save(model, path)
    back = bp.load(path)
    assert repr(back) == repr(model)
    assert back.dtype == model.dtype
    assert [la.trainable for la in back.layers] == [la.trainable for la in model.layers]
    for key, value in model.state_dict().items():
        assert np.array_equal(back.state_dict()[key], value), key
    X = np.random.default_rng(1).normal(size=(7, 5))
    assert np.array_equal(back.predict(X), model.predict(X))


def test_file_is_a_plain_npz_without_pickles(tmp_path):
    path = tmp_path / "m.npz"
    bp.save(_model(), path)
    with np.load(path, allow_pickle=False) as f:
        header = json.loads(f[HEADER].tobytes())
        assert header["version"] == 1 and header["kind"] == "Sequential"
        assert f["param/0.W"].shape == (5, 8)


def test_metadata_and_extras_travel_with_the_model(tmp_path):
    path = tmp_path / "m.npz"
    bp.save(_model(), path, metadata={"classes": ["a", "b", "c"]}, extras={"x_mean": np.ones(5)})
    mf = load_file(path)
    assert mf.metadata == {"classes": ["a", "b", "c"]}
    assert np.array_equal(mf.extras["x_mean"], np.ones(5))


def _tamper(src, dst, header_fn=None, replace=None, drop=(), compress=False):
    """Copy a model file, editing its JSON header and members."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if header_fn is not None:
        import io

        blob = np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"]))
        header = header_fn(json.loads(blob.tobytes()))
        buf = io.BytesIO()
        data = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.lib.format.write_array(buf, data)
        members[f"{HEADER}.npy"] = buf.getvalue()
    for name, arr in (replace or {}).items():
        import io

        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, allow_pickle=True)
        members[f"{name}.npy"] = buf.getvalue()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(dst, "w", compression=method) as z:
        for name, data in members.items():
            if name not in drop:
                z.writestr(name, data)
    return dst


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    bp.save(_model(), path)
    return path


def _set(key, value):
    def fn(header):
        header[key] = value
        return header

    return fn


def _layer_type(name):
    def fn(header):
        header["config"]["layers"][0]["type"] = name
        return header

    return fn


def _declare(name, shape):
    def fn(header):
        header["arrays"][name]["shape"] = shape
        return header

    return fn


@pytest.mark.parametrize(
    "edit, message",
    [
        (dict(header_fn=_set("version", 99)), "version 99 is not supported"),
        (dict(header_fn=_set("format", "other")), "format"),
        (dict(header_fn=_set("kind", "Pickle")), "unknown kind 'Pickle'"),
        (dict(header_fn=_layer_type("os.system")), "unknown layer type 'os.system'"),
        (dict(header_fn=_declare("param/0.W", [5, 9])), "do not match the architecture"),
        (dict(replace={"param/0.W": np.zeros((5, 9), np.float32)}), "header declares"),
        (dict(replace={"param/0.W": np.zeros((5, 8), np.float64)}), "header declares"),
        (dict(replace={"param/0.b": np.array([None] * 8)}), "is \\|O"),
        (dict(drop=("param/0.b.npy",)), "'param/0.b' is missing"),
        (dict(compress=True), "compressed"),
        (dict(drop=(f"{HEADER}.npy",)), "no __header__"),
    ],
)
def test_malformed_files_are_refused_with_a_clear_error(saved, tmp_path, edit, message):
    bad = _tamper(saved, tmp_path / "bad.npz", **edit)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(")):
        bp.load(bad)


def test_truncated_and_foreign_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    for n in (len(data) // 2, len(data) - 30, 10):
        cut = tmp_path / f"cut{n}.npz"
        cut.write_bytes(data[:n])
        with pytest.raises(ModelFileError, match="truncated|corrupt"):
            bp.load(cut)
    text = tmp_path / "notes.npz"
    text.write_text("just text")
    with pytest.raises(ModelFileError, match="not a backprop model file"):
        bp.load(text)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        bp.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("blob", [b"{not json", b"[" * 200_000, b"\xff\xfe"])
def test_header_that_is_not_json_is_refused(saved, tmp_path, blob):
    with zipfile.ZipFile(saved) as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(blob, dtype=np.uint8))
    members[f"{HEADER}.npy"] = buf.getvalue()
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        bp.load(bad)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"kind": "x"}, {"a": np.arange(3)})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="dtype object"):
        write_archive(path, {"kind": "x"}, {"a": np.arange(3), "b": np.array([None])})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_a_saved_file_gets_the_permissions_of_an_ordinary_file(tmp_path):
    """The atomic write's temporary file came from mkstemp, mode 0600: every model file and
    checkpoint was readable by its owner only, whatever the umask (np.save gives 0644)."""
    old = os.umask(0o022)
    try:
        bp.save(bp.Sequential([bp.Dense(2, 1)], seed=0), tmp_path / "m.npz")
        os.umask(0o077)
        write_archive(tmp_path / "private.npz", {"kind": "x"}, {"a": np.arange(3)})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.npz").stat().st_mode) == 0o600
    os.chmod(tmp_path / "m.npz", 0o640)  # a file replaced keeps its own mode
    bp.save(bp.Sequential([bp.Dense(2, 1)], seed=1), tmp_path / "m.npz")
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o640


def test_metadata_json_cannot_hold_is_named(tmp_path):
    """A NumPy float32 in the metadata (a loss, say) failed with json's bare "Object of type
    float32 is not JSON serializable", naming neither the argument nor the entry."""
    model = bp.Sequential([bp.Dense(2, 1)], seed=0)
    with pytest.raises(TypeError, match=r"metadata\['run'\]\['loss'\] is .*float32.*\.item\(\)"):
        bp.save(model, tmp_path / "m.npz", metadata={"run": {"loss": np.float32(0.5)}})
    assert not (tmp_path / "m.npz").exists()


class _Pair:
    def __init__(self, scale: float, w: np.ndarray):
        self.scale, self.w = scale, w


def test_other_kinds_plug_in_through_register_kind(tmp_path):
    register_kind(
        "TestPair",
        _Pair,
        lambda obj: ({"scale": obj.scale}, {"w": obj.w}),
        lambda config, arrays, where: _Pair(config["scale"], arrays["w"]),
    )
    path = tmp_path / "pair.npz"
    bp.save(_Pair(2.5, np.arange(4.0)), path)
    back = bp.load(path)
    assert isinstance(back, _Pair) and back.scale == 2.5
    assert np.array_equal(back.w, np.arange(4.0))
    with pytest.raises(TypeError, match="cannot save a dict"):
        bp.save({}, tmp_path / "x.npz")


def test_sizes_are_checked_before_anything_is_allocated(saved, tmp_path):
    import tracemalloc

    def huge(header):
        # A consistent lie: the architecture and the declarations both claim a 10^8 x 8 layer
        # (2 GB of float32), while the member on disk holds 5 x 8. (The input width is the lie:
        # since issue 12 a lie about out_features no longer fits the next layer's width.)
        header["config"]["layers"][0]["config"]["in_features"] = 10**8
        header["config"]["input_shape"] = [10**8]
        header["arrays"]["param/0.W"]["shape"] = [10**8, 8]
        return header

    bad = _tamper(saved, tmp_path / "huge.npz", header_fn=huge)
    tracemalloc.start()
    with pytest.raises(ModelFileError, match=r"'param/0.W' is <f4 \(5, 8\), but the header"):
        bp.load(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def test_nan_weights_are_refused(saved, tmp_path):
    w = np.zeros((5, 8), np.float32)
    w[2, 3] = np.nan
    bad = _tamper(saved, tmp_path / "nan.npz", replace={"param/0.W": w})
    with pytest.raises(ModelFileError, match="parameter '0.W' contains NaN"):
        bp.load(bad)


@pytest.mark.parametrize("shape", [[10**6, 10**7], [2**40, 2**40]])
def test_a_declared_size_of_terabytes_is_refused_without_allocating(saved, tmp_path, shape):
    import tracemalloc

    def huge(header):
        header["config"]["layers"][0]["config"]["out_features"] = shape[1]
        header["config"]["layers"][0]["config"]["in_features"] = shape[0]
        header["arrays"]["param/0.W"]["shape"] = shape
        header["arrays"]["param/0.b"]["shape"] = [shape[1]]
        return header

    bad = _tamper(saved, tmp_path / "tera.npz", header_fn=huge)
    tracemalloc.start()
    with pytest.raises(ModelFileError):
        bp.load(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def _with_statistics():
    return bp.Sequential(
        [bp.Standardize(3), bp.Dense(4), bp.Residual([bp.BatchNorm(), bp.ReLU()]), bp.Dense(2)],
        input_shape=(3,),
        seed=0,
    )


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "2.0.running_var",
            -1.0,
            r"2\.0\.running_var \(BatchNorm running_var\) must be >= 0, got -1",
        ),
        ("0.scale", 0.0, r"0\.scale \(Standardize scale\) must be > 0, got 0 at index 1"),
        ("0.scale", -2.0, r"0\.scale \(Standardize scale\) must be > 0, got -2"),
    ],
)
@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_statistics_that_can_only_be_wrong_are_refused_on_load(tmp_path, kind, key, value, message):
    """A negative variance or a scale <= 0 would give NaN or sign-flipped predictions: files (and
    load_state_dict) refuse them by name, and a checkpoint changes nothing in the trainer."""
    model = _with_statistics()
    model.buffers()[key][1] = value
    trainer = bp.Trainer(model, "cross_entropy", "sgd", seed=0)
    path = tmp_path / f"{kind}.npz"
    bp.save(model, path) if kind == "model" else bp.save_checkpoint(path, trainer)
    fresh = _with_statistics()
    target = bp.Trainer(fresh, "cross_entropy", "sgd", seed=0)
    before = fresh.state_dict()
    with pytest.raises(ModelFileError, match=message):
        bp.load(path) if kind == "model" else bp.load_checkpoint(path, target)
    assert all(np.array_equal(before[k], v) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(model.state_dict())
    model.buffers()[key][1] = 0.5  # a valid value loads
    fresh.load_state_dict(model.state_dict())
    assert fresh.buffers()[key][1] == 0.5


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = _with_statistics()
    model.parameters()["1.W"][0, 0] = np.nan
    bp.save_checkpoint(tmp_path / "c.npz", bp.Trainer(model, "cross_entropy", "sgd"))
    fresh = _with_statistics()
    before = fresh.state_dict()
    with pytest.raises(ModelFileError, match="array 'model/1.W' contains NaN"):
        bp.load_checkpoint(tmp_path / "c.npz", bp.Trainer(fresh, "cross_entropy", "sgd"))
    assert all(np.array_equal(before[k], v) for k, v in fresh.state_dict().items())


@pytest.mark.parametrize(
    "array",
    [
        "state/optimizer/state.m",
        "state/callbacks/0/state/best_params",
        "state/callbacks/0/state/best_buffers/1.running_mean",
    ],
)
def test_nan_in_a_checkpoints_weight_like_arrays_is_refused(tmp_path, array):
    """Only the model's own arrays were checked: NaN in the optimizer's moments or in the best
    weights EarlyStopping puts back loaded, though files.md says NaN in an array is refused."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), np.arange(30) % 2

    def trainer():
        model = bp.Sequential([bp.Dense(3, 4), bp.BatchNorm(4), bp.Dense(2)], seed=0)
        es = bp.EarlyStopping(patience=5, restore_best_weights=True)
        return bp.Trainer(model, "cross_entropy", bp.Adam(0.01), callbacks=[es], seed=0)

    run = trainer()
    run.fit(X, y, epochs=2, validation_split=0.2)
    bp.save_checkpoint(tmp_path / "c.npz", run)
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    value = np.lib.format.read_array(io.BytesIO(members[f"{array}.npy"])).copy()
    value[0] = np.nan
    buf = io.BytesIO()
    np.lib.format.write_array(buf, value)
    members[f"{array}.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ModelFileError, match=f"bad.npz: array '{array}' contains NaN"):
        bp.load_checkpoint(tmp_path / "bad.npz", trainer())


def test_a_checkpoints_early_stopping_best_buffers_are_range_checked_too(tmp_path):
    """EarlyStopping puts its best buffers back at the end of the resumed run: a negative
    variance there is refused on load, like one in the model's own arrays."""
    X, y = np.random.default_rng(0).normal(size=(16, 3)), np.arange(16) % 2

    def trainer():
        es = bp.EarlyStopping(monitor="loss", patience=5)
        return bp.Trainer(_with_statistics(), "cross_entropy", "sgd", seed=0, callbacks=[es])

    t = trainer()
    t.fit(X, y, epochs=2)
    t.callbacks[0].best_buffers["2.0.running_var"][0] = -0.5
    bp.save_checkpoint(tmp_path / "c.npz", t)
    target = trainer()
    with pytest.raises(ModelFileError, match=r"EarlyStopping's best buffers: 2\.0\.running_var"):
        bp.load_checkpoint(tmp_path / "c.npz", target)
    assert target.epoch == 0
    t.callbacks[0].best_buffers["2.0.running_var"][0] = 0.5
    bp.save_checkpoint(tmp_path / "c.npz", t)
    bp.load_checkpoint(tmp_path / "c.npz", target)
    assert target.epoch == 2
