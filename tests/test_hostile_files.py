"""Files written by an adversary: forged zip records, repeated members, oversized numbers,
edited checkpoint headers and estimator tables. Each is refused with one ModelFileError that
names the file, before any array data is read."""

import io
import json
import re
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import backprop as bp
from backprop import filecheck
from backprop.app.cli import main
from backprop.io import HEADER, ModelFileError, read_archive, write_archive


# -- a hand-written zip whose records say whatever we like -----------------------------------
def _npy_header(dtype: str, shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def forge_zip(path, members):
    """Write ``members`` = [(name, data, declared_size)] as a stored zip64 archive whose local
    headers and central directory both declare ``declared_size`` bytes for each member, however
    few bytes of ``data`` follow. Returns the file's size."""
    out, central = bytearray(), bytearray()
    for name, data, size in members:
        name_b = name.encode()
        crc = zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, size, size)
        offset = len(out)
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
            len(name_b), len(extra),
        )  # fmt: skip
        out += name_b + extra + data
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
            len(name_b), len(extra), 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name_b + extra
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0
    )
    path.write_bytes(bytes(out + central + end))
    return path.stat().st_size


def _json_member(header: dict) -> bytes:
    blob = json.dumps(header).encode()
    return _npy_header("|u1", (len(blob),)) + blob


def forged_terabyte_model(path):
    """A ~1 KB file that consistently claims a 2^20 x 2^20 float32 layer (4 TiB): the
    architecture, the array table, the .npy headers and both zip records all agree."""
    n = 2**20
    header = {
        "format": "backprop",
        "version": 1,
        "kind": "Sequential",
        "config": {
            "dtype": "float32",
            "layers": [{"type": "Dense", "config": {"in_features": n, "out_features": n}}],
        },
        "metadata": {},
        "arrays": {
            "param/0.W": {"dtype": "<f4", "shape": [n, n]},
            "param/0.b": {"dtype": "<f4", "shape": [n]},
        },
    }
    head = _json_member(header)
    w, b = _npy_header("<f4", (n, n)), _npy_header("<f4", (n,))
    return forge_zip(
        path,
        [
            (f"{HEADER}.npy", head, len(head)),
            ("param/0.W.npy", w + b"\0" * 64, len(w) + 4 * n * n),
            ("param/0.b.npy", b + b"\0" * 64, len(b) + 4 * n),
        ],
    )


def test_a_kilobyte_file_declaring_terabytes_is_refused_without_allocating(tmp_path):
    path = tmp_path / "forged.npz"
    assert forged_terabyte_model(path) < 2048
    with zipfile.ZipFile(path) as z:  # the zip records really do declare 4 TiB
        assert z.getinfo("param/0.W.npy").file_size > 4 * 10**12
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"forged.npz: member param/0.W.npy declares"):
            bp.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_the_command_line_reports_a_forged_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "forged.npz"
    forged_terabyte_model(path)
    X = tmp_path / "x.npy"
    np.save(X, np.zeros((2, 3)))
    assert main(["predict", str(path), str(X), "--output", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("backprop: error: ") and "forged.npz" in err


def _members(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _rezip(path, members):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members:
                z.writestr(name, data)
    return path


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    bp.save(bp.Sequential([bp.Dense(3, 4), bp.ReLU(), bp.Dense(4, 2)], seed=0), path)
    return path


def test_a_repeated_member_is_refused(saved, tmp_path):
    members = _members(saved)
    other = np.lib.format.write_array  # a second W, of the right shape, after the first
    buf = io.BytesIO()
    other(buf, np.full((3, 4), 7, np.float32))
    bad = _rezip(tmp_path / "dup.npz", [*members, ("param/0.W.npy", buf.getvalue())])
    with pytest.raises(ModelFileError, match=r"dup.npz: members \['param/0.W.npy'\] appear"):
        bp.load(bad)


def test_overlapping_members_are_refused(saved, tmp_path):
    """Two directory entries pointing at the same bytes (the overlapping-member zip bomb)."""
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        infos = {i.filename: i for i in z.infolist()}
    first, second = infos["param/0.b.npy"], infos["param/2.b.npy"]
    # point the second entry's central-directory offset at the first member's local header
    cd = data.find(b"PK\x01\x02")
    while cd != -1:
        name_len = struct.unpack_from("<H", data, cd + 28)[0]
        name = bytes(data[cd + 46 : cd + 46 + name_len]).decode()
        if name == second.filename:
            struct.pack_into("<L", data, cd + 42, first.header_offset)
        cd = data.find(b"PK\x01\x02", cd + 4)
    bad = tmp_path / "overlap.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="overlap.npz: .*(overlap|local header)"):
        bp.load(bad)


@pytest.mark.parametrize("digits", [50, 5000, 100_000])
def test_a_huge_integer_in_the_header_names_the_file(saved, tmp_path, digits):
    members = dict(_members(saved))
    header = json.loads(np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"])).tobytes())
    text = json.dumps(header).replace('"version": 1', f'"version": {"9" * digits}')
    members[f"{HEADER}.npy"] = _npy_header("|u1", (len(text),)) + text.encode()
    bad = _rezip(tmp_path / "bigint.npz", list(members.items()))
    with pytest.raises(ModelFileError, match=f"bigint.npz: header holds an integer of {digits}"):
        bp.load(bad)


def test_a_directory_is_reported_as_a_directory(tmp_path, capsys):
    folder = tmp_path / "model.npz"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="model.npz: is a directory, not a model file"):
        bp.load(folder)
    with pytest.raises(ModelFileError, match="is a directory"):
        read_archive(folder)
    assert main(["evaluate", str(folder), "--data", "x.csv"]) == 2
    assert "model.npz: is a directory" in capsys.readouterr().err


def test_loading_a_checkpoint_as_a_model_points_to_load_checkpoint(tmp_path):
    trainer = bp.Trainer(bp.Sequential([bp.Dense(2, 2)], seed=0), "mse", "sgd", epochs=1)
    trainer.fit(np.zeros((4, 2)), np.zeros((4, 2)))
    bp.save_checkpoint(tmp_path / "ckpt.npz", trainer)
    with pytest.raises(ModelFileError, match=r"training checkpoint.*bp\.load_checkpoint"):
        bp.load(tmp_path / "ckpt.npz")
    write_archive(tmp_path / "odd.npz", {"kind": "Widget", "config": {}}, {})
    with pytest.raises(ModelFileError, match="known kinds: .*MLPClassifier.*MLPRegressor.*Seq"):
        bp.load(tmp_path / "odd.npz")


# -- edited headers: a CRC-valid file whose JSON says something wrong -----------------------
def _read_header(path):
    members = dict(_members(path))
    blob = np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"]))
    return members, json.loads(blob.tobytes())


def _edit_header(src, dst, fn):
    members, header = _read_header(src)
    fn(header)
    text = json.dumps(header).encode()
    members[f"{HEADER}.npy"] = _npy_header("|u1", (len(text),)) + text
    return _rezip(dst, list(members.items()))


def _ckpt_trainer():
    model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0)
    return bp.Trainer(
        model,
        "cross_entropy",
        bp.Adam(0.01),
        epochs=2,
        batch_size=8,
        schedule=bp.StepDecay(2, 0.5),
        callbacks=[bp.EarlyStopping(patience=5)],
        seed=1,
    )


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.npz"
    trainer = _ckpt_trainer()
    rng = np.random.default_rng(0)
    trainer.fit(rng.normal(size=(32, 3)), np.arange(32) % 2, validation_split=0.25)
    bp.save_checkpoint(path, trainer)
    return path


def _put(*keys, value=None, delete=False):
    def fn(header):
        node = header
        for k in keys[:-1]:
            node = node[k]
        if delete:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return fn


def _in(where, *keys, **kw):
    """An edit of the optimizer's or the first EarlyStopping's state, wherever the checkpoint
    format keeps it (beside the trainer's state, or inside it)."""

    def fn(header):
        nested = "optimizer" not in header
        if where == "optimizer":
            path = ("trainer", "optimizer") if nested else ("optimizer",)
        else:
            path = ("trainer", "callbacks", 0, "state") if nested else ("early_stopping", 0)
        _put(*path, *keys, **kw)(header)

    return fn


ES = r"(early_stopping\[0\]|trainer.callbacks\[0\].state)"
CHECKPOINT_EDITS = [
    ("negative-epoch", _put("trainer", "epoch", value=-1), r"header.trainer.epoch: .* got -1"),
    ("text-epoch", _put("trainer", "epoch", value="3"), r"trainer.epoch: .* got '3'"),
    ("no-epoch", _put("trainer", "epoch", delete=True), r"header.trainer: missing \['epoch'\]"),
    ("float-steps", _put("trainer", "step_count", value=1.5), "trainer.step_count"),
    ("rng", _put("model_rng", value={"bit_generator": "PCG64"}), "header.model_rng: missing"),
    ("rng-value", _put("trainer", "shuffle_rng", "state", "inc", value=-5), "shuffle_rng.state"),
    ("lr", _in("optimizer", "lr", value="fast"), r"optimizer.lr: .* got 'fast'"),
    ("lr-negative", _in("optimizer", "lr", value=-1.0), "optimizer.lr: expected a finite"),
    ("iterations", _in("optimizer", "iterations", value=-4), "optimizer.iterations"),
    # an optimizer moment that is no array, or step counts for another model, were taken by
    # the loader and failed only at the next fit's first step, after everything was changed
    ("moment-scalar", _in("optimizer", "state.m", value=0.5), r"optimizer.*state.m.*0.5"),
    ("moment-list", _in("optimizer", "state.v", value=[1, 2]), r"optimizer.*state.v"),
    ("moment-null", _in("optimizer", "state.m", value=None), r"optimizer.*state.m"),
    (
        "step-counts",
        _in("optimizer", "step_counts", value=[[0, 10**20, 1]]),
        r"step_counts cover 100000000000000000000 .*26",
    ),
    ("history", _put("trainer", "history", "loss", value="low"), "trainer.history.loss"),
    ("es-best", _in("es", "best", value="x"), ES + r".best: .* got 'x'"),
    ("es-wait", _in("es", "wait", value=-2), ES + r".wait: .* got -2"),
    ("es-epoch", _in("es", "best_epoch", value=-1), ES + r".best_epoch"),
    ("es-extra", _in("es", "restore", value=1), r"unknown \['restore'\]"),
    ("schedule", _put("trainer", "schedule", "predict", value=1), r"schedule: unknown"),
    ("ckpt-best", _put("extra", "checkpoint_best", value=[1]), "extra.checkpoint_best"),
    ("top-level", _put("hooks", value=[]), r"header: unknown \['hooks'\]"),
    ("trainer-key", _put("trainer", "lr_scale", value=2.0), r"header.trainer: unknown"),
]


@pytest.mark.parametrize(
    "edit, message", [c[1:] for c in CHECKPOINT_EDITS], ids=[c[0] for c in CHECKPOINT_EDITS]
)
def test_an_edited_checkpoint_header_is_refused_by_field(checkpoint_file, tmp_path, edit, message):
    bad = _edit_header(checkpoint_file, tmp_path / "edited.npz", edit)
    trainer = _ckpt_trainer()
    before = trainer.model.flat_parameters.copy()
    with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
        bp.load_checkpoint(bad, trainer)
    assert np.array_equal(trainer.model.flat_parameters, before)  # refused before any change
    bp.load_checkpoint(checkpoint_file, _ckpt_trainer())  # the unedited file loads


def _monitored_trainer():
    model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0)
    plateau = bp.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5)
    monitors = [bp.GradientMonitor(), bp.TrajectoryRecorder()]
    return bp.Trainer(model, "cross_entropy", bp.Adam(0.01), schedule=plateau, callbacks=monitors)


def _callback_state(i, key, value=None, delete=False):
    return _put("trainer", "callbacks", i, "state", key, value=value, delete=delete)


CALLBACK_EDITS = [  # 0: the plateau, 1: GradientMonitor, 2: TrajectoryRecorder
    ("plateau-scale-neg", _callback_state(0, "scale", -0.5), r"callbacks\[0\].state.scale"),
    ("plateau-scale-big", _callback_state(0, "scale", 1e6), r"callbacks\[0\].state.scale"),
    ("monitor-int", _callback_state(1, "warned", 5), r"callbacks\[1\].state.warned"),
    ("monitor-text", _callback_state(1, "warned", "abc"), r"callbacks\[1\].state.warned"),
    ("monitor-missing", _callback_state(1, "warned", delete=True), r"callbacks\[1\].state"),
    ("trajectory-epochs", _callback_state(2, "epochs", 3), r"callbacks\[2\].state"),
]


@pytest.mark.parametrize(
    "edit, message", [c[1:] for c in CALLBACK_EDITS], ids=[c[0] for c in CALLBACK_EDITS]
)
def test_an_edited_callback_state_is_refused_on_load(tmp_path, edit, message):
    """A plateau scale of 1e6 (a product of factors below 1) or -0.5 was loaded and trained
    at lr 10000 or 0; a GradientMonitor or TrajectoryRecorder state of the wrong kind was loaded without
    a word and failed at the next fit's start with a bare TypeError or KeyError, or (text for
    a list) was taken letter by letter. Each is now refused on load, naming the field."""
    X, y = np.random.default_rng(0).normal(size=(32, 3)), np.arange(32) % 2
    trainer = _monitored_trainer()
    trainer.fit(X, y, epochs=2)
    good = tmp_path / "c.npz"
    bp.save_checkpoint(good, trainer)
    bad = _edit_header(good, tmp_path / "edited.npz", edit)
    with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
        bp.load_checkpoint(bad, _monitored_trainer())
    resumed = _monitored_trainer()
    bp.load_checkpoint(good, resumed)  # the unedited file loads and trains on
    resumed.fit(X, y, epochs=1)


def test_a_trajectory_of_another_models_size_is_refused_on_load(tmp_path):
    """A TrajectoryRecorder's snapshots of the wrong width (or with another count of epochs)
    were loaded, trained on for an epoch, then failed in the next save with NumPy's 'all
    input arrays must have the same shape'."""
    X, y = np.random.default_rng(0).normal(size=(32, 3)), np.arange(32) % 2
    trainer = _monitored_trainer()
    trainer.fit(X, y, epochs=2)
    bp.save_checkpoint(tmp_path / "c.npz", trainer)
    header, arrays = read_archive(tmp_path / "c.npz")
    header = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    name = header["trainer"]["callbacks"][2]["state"]["snapshots"]["__array__"]
    assert arrays[name].shape == (3, trainer.model.n_parameters)
    write_archive(tmp_path / "wide.npz", header, {**arrays, name: np.zeros((3, 5), np.float32)})
    with pytest.raises(ModelFileError, match="wide.npz: .*snapshots"):
        bp.load_checkpoint(tmp_path / "wide.npz", _monitored_trainer())
    header["trainer"]["callbacks"][2]["state"]["epochs"] = [0, 1]
    write_archive(tmp_path / "short.npz", header, arrays)
    with pytest.raises(ModelFileError, match="short.npz: .*2 epochs for 3 snapshots"):
        bp.load_checkpoint(tmp_path / "short.npz", _monitored_trainer())


@pytest.mark.parametrize("what", ["cartography-width", "cartography-rows", "activations"])
def test_a_record_of_the_wrong_shape_is_refused_on_load(tmp_path, what):
    """Cartography's per-sample records of another data size, or of different epoch counts,
    and an ActivationRecorder 'start' that is no table were loaded without a word: the first
    failed at the next epoch's end or in confidence() with NumPy's shape errors, the last at
    load with a bare AttributeError."""
    X, y = np.random.default_rng(0).normal(size=(32, 3)), np.arange(32) % 2

    def trainer():
        model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0)
        records = [bp.Cartography(X, y), bp.ActivationRecorder(X)]
        return bp.Trainer(model, "cross_entropy", "adam", callbacks=records)

    first = trainer()
    first.fit(X, y, epochs=2)
    bp.save_checkpoint(tmp_path / "c.npz", first)
    header, arrays = read_archive(tmp_path / "c.npz")
    header = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    states = header["trainer"]["callbacks"]
    if what == "activations":
        states[1]["state"]["start"] = 5
    else:
        name = states[0]["state"]["probabilities"]["__array__"]
        shape = (2, 5) if what == "cartography-width" else (1, 32)
        arrays = {**arrays, name: np.zeros(shape, np.float32)}
    write_archive(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ModelFileError, match="bad.npz: "):
        bp.load_checkpoint(tmp_path / "bad.npz", trainer())
    bp.load_checkpoint(tmp_path / "c.npz", trainer())


def _fitted_estimator():
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["height", "weight", "age"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bp.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.arange(40) % 3), X


ESTIMATOR_EDITS = [
    ("set-method", _put("config", "fitted", "predict", value="x"), r"unknown \['predict'\]"),
    ("null-model", _put("config", "fitted", "model_", value=None), r"unknown \['model_'\]"),
    ("private", _put("config", "fitted", "_trainer", value=1), r"unknown \['_trainer'\]"),
    ("param", _put("config", "params", "fit", value=1), r"config.params: unknown \['fit'\]"),
    ("param-value", _put("config", "params", "activation", value="nope"), "activation.*nope"),
    ("features", _put("config", "fitted", "n_features_in_", value=-1), "n_features_in_"),
    ("width", _put("config", "fitted", "n_features_in_", value=7), "network takes 3"),
    ("outputs", _put("config", "fitted", "n_outputs_", value=9), "network gives 3"),
    ("names", _put("config", "fitted", "feature_names_in_", value=["a"]), "1 feature_names"),
    ("names-type", _put("config", "fitted", "feature_names_in_", value=[1, 2, 3]), r"\[0\]"),
    ("classes", _put("config", "fitted", "classes_", value=[]), "classes_: expected at least"),
    ("n-classes", _put("config", "fitted", "classes_", value=[0, 1, 2, 3]), "need 4 outputs"),
    (
        "link",
        _put("config", "fitted", "out_activation_", value="logistic"),
        "labels need 'softmax'",
    ),
    ("link-kind", _put("config", "fitted", "out_activation_", value="exp"), "out_activation_"),
    ("layers", _put("config", "fitted", "n_layers_", value=5), "n_layers_ is 5, the network"),
    ("hidden", _put("config", "params", "hidden_layer_sizes", value=[9]), r"the network \[4\]"),
    ("labels", _put("config", "fitted", "classes_", value=[{}, 1, 2]), r"classes_\[0\]"),
    ("dtype", _put("config", "fitted", "classes_dtype", value="|O"), "classes_dtype"),
    ("curve", _put("config", "fitted", "loss_curve_", value="x"), "loss_curve_"),
    ("no-iter", _put("config", "fitted", "n_iter_", delete=True), r"missing \['n_iter_'\]"),
    # the network's table as a number or text raised AttributeError ('int' has no 'get')
    ("model-number", _put("config", "model", value=0), "model config must be a table, got 0"),
    ("model-text", _put("config", "model", value="x"), "model config must be a table"),
    # labels classes_dtype cannot hold: an OverflowError escaped, or 0.5 was cut to 0
    ("class-overflow", _put("config", "fitted", "classes_", value=[10**19, 1, 2]), "classes_"),
    ("class-cut", _put("config", "fitted", "classes_", value=[0.5, 1, 2]), r"classes_ \[0.5"),
]


@pytest.mark.parametrize(
    "edit, message", [c[1:] for c in ESTIMATOR_EDITS], ids=[c[0] for c in ESTIMATOR_EDITS]
)
def test_an_edited_estimator_table_is_refused_by_field(tmp_path, edit, message):
    est, _ = _fitted_estimator()
    bp.save(est, tmp_path / "est.npz")
    bad = _edit_header(tmp_path / "est.npz", tmp_path / "edited.npz", edit)
    with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
        bp.load(bad)


@pytest.mark.parametrize("kind", ["mlp", "neuralnet"])
def test_a_saved_estimator_keeps_its_feature_names(tmp_path, kind):
    est, X = _fitted_estimator()
    if kind == "neuralnet":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = bp.NeuralNetClassifier([bp.Dense(4), bp.ReLU()], epochs=2, random_state=0)
            est.fit(X, np.arange(40) % 3)
    bp.save(est, tmp_path / "est.npz")
    back = bp.load(tmp_path / "est.npz")
    assert list(back.feature_names_in_) == ["height", "weight", "age"]
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    swapped = X[["weight", "height", "age"]]
    for model in (est, back):  # refused alike before and after the round trip
        with pytest.raises(ValueError, match="feature names"):
            model.predict(swapped)


def _forged_data_files(tmp_path):
    n = 2**20
    head = _npy_header("<f8", (n, n))
    npy = tmp_path / "huge.npy"
    npy.write_bytes(head + b"\0" * 64)  # a header that claims 8 TiB, and 64 bytes of data
    npz = tmp_path / "huge.npz"
    forge_zip(npz, [("X.npy", head + b"\0" * 64, len(head) + 8 * n * n)])  # zip records agree
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", _npy_header("<f8", (n, 64)) + b"\0" * 4096)  # deflates to ~50 B
    return [npy, npz, bomb]


def test_forged_data_files_are_refused_before_numpy_allocates(tmp_path, capsys):
    from backprop.app.sources import read_table

    model = tmp_path / "m.npz"
    bp.save(bp.Sequential([bp.Dense(3, 2)], seed=0), model)
    for path in _forged_data_files(tmp_path):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=f"{path.name}: .*declares .* bytes"):
                read_table(path, None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * 2**20, path
        code = main(["predict", str(model), str(path), "--output", str(tmp_path / "p.npy")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert path.name in err


def test_plot_refuses_a_forged_predictions_file_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    bp.save(bp.Sequential([bp.Dense(3, 2)], seed=0), run / "model.npz")
    forged = _forged_data_files(tmp_path)[1]
    (run / "predictions.npz").write_bytes(forged.read_bytes())
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "predictions.npz" in err and "declares" in err, err


def _cli_model(path, metadata=None, extras=None):
    model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 3)], seed=0)
    meta = {"task": "classification", "classes": ["a", "b", "c"], "n_features": 3}
    ext = {"x_mean": np.zeros(3), "x_scale": np.ones(3)}
    bp.save(model, path, metadata={**meta, **(metadata or {})}, extras={**ext, **(extras or {})})
    return path


@pytest.mark.parametrize(
    "metadata, extras, message",
    [
        ({"classes": "abc"}, None, "metadata.classes: expected a list"),
        ({"classes": ["a", "b"]}, None, "metadata.classes must name the 3 classes"),
        ({"classes": None}, None, "metadata.classes must name the 3 classes"),
        ({"task": "dance"}, None, "metadata.task: expected"),
        ({"n_features": -1}, None, "metadata.n_features"),
        (None, {"x_scale": np.zeros(3)}, r"extra/x_scale must hold 3 finite numbers > 0"),
        (None, {"x_mean": np.zeros(5)}, r"extra/x_mean must hold 3 finite numbers .*\(5,\)"),
        (None, {"x_mean": np.array([0, np.nan, 0])}, "extra/x_mean must hold 3 finite"),
        (None, {"y_mean": np.zeros((2, 2))}, r"extra/y_mean must hold 3 finite"),
    ],
)
def test_the_command_line_checks_what_it_reads_from_a_model_file(
    tmp_path, capsys, metadata, extras, message
):
    model = _cli_model(tmp_path / "m.npz", metadata, extras)
    X = tmp_path / "x.npy"
    np.save(X, np.zeros((2, 3)))
    assert main(["predict", str(model), str(X), "--output", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(f"m.npz: .*{message}", err), err
    assert not (tmp_path / "p.npy").exists()


def test_the_command_line_names_a_model_file_it_cannot_use(tmp_path, capsys):
    est, _ = _fitted_estimator()
    bp.save(est, tmp_path / "est.npz")
    X = tmp_path / "x.npy"
    np.save(X, np.zeros((2, 3)))
    code = main(["predict", str(tmp_path / "est.npz"), str(X), "--output", str(tmp_path / "p.npy")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "holds a MLPClassifier" in err, err
    good = _cli_model(tmp_path / "good.npz")  # the same checks pass a well-formed file
    assert main(["predict", str(good), str(X), "--output", str(tmp_path / "p.npy")]) == 0


def test_plot_checks_the_model_file_too(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _cli_model(run / "model.npz", {"classes": ["only one"]})
    np.savez(run / "predictions.npz", y_true=np.zeros(2, np.int64), y_pred=np.zeros(2, np.int64))
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metadata.classes must name the 3 classes" in err, err


def test_a_forged_input_shape_in_a_checkpoint_is_refused_before_building(tmp_path):
    def fresh():
        model = bp.Sequential([bp.Dense(4), bp.Tanh(), bp.Dense(2)], seed=0)  # built by data
        return bp.Trainer(model, "mse", "sgd", epochs=1)

    trainer = fresh()
    trainer.fit(np.zeros((8, 3)), np.zeros((8, 2)))
    bp.save_checkpoint(tmp_path / "ckpt.npz", trainer)
    bad = _edit_header(
        tmp_path / "ckpt.npz", tmp_path / "shape.npz", _put("model", "input_shape", value=[10**8])
    )
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="shape.npz: its model needs 1600000056 bytes"):
            bp.load_checkpoint(bad, fresh())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20
    bp.load_checkpoint(tmp_path / "ckpt.npz", fresh())  # the unedited file loads


@pytest.fixture
def layered(tmp_path):
    """A saved model with the layers whose settings a forged header edits below."""
    model = bp.Sequential(
        [bp.LSTM(3, return_sequences=True), bp.BatchNorm(), bp.SequencePool(), bp.Standardize(3)],
        input_shape=(4, 2),
        seed=0,
    )
    bp.save(model, tmp_path / "layered.npz")
    return tmp_path / "layered.npz"


def test_a_forged_standardize_width_is_refused_before_its_statistics_are_made(layered, tmp_path):
    """Standardize made its (n_features,) statistics even while only shapes were read: a
    forged width raised MemoryError (or filled gigabytes) instead of a ModelFileError."""
    edit = _put("config", "layers", 3, "config", "n_features", value=10**12)
    bad = _edit_header(layered, tmp_path / "wide.npz", edit)
    tracemalloc.start()
    try:
        with pytest.raises(
            ModelFileError, match=r"wide.npz: .*Standardize expected 1000000000000 features"
        ):
            bp.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


@pytest.mark.parametrize(
    "keys, value, message",
    [
        ((0, "config", "return_sequences"), "yes", r"layer 0 \(LSTM\): return_sequences: .*'yes'"),
        ((1, "config", "momentum"), [1, 2], r"layer 1 \(BatchNorm\): momentum: .*\[1, 2\]"),
        ((1, "config", "eps"), [], r"layer 1 \(BatchNorm\): eps: expected a number, got \[\]"),
        ((3, "config", "inverse"), 0, r"layer 3 \(Standardize\): inverse: .* got 0"),
        ((0, "trainable"), "x", r"layer 0 \(LSTM\): trainable must be true or false"),
    ],
)
def test_a_layer_setting_of_the_wrong_type_is_refused_by_name(
    layered, tmp_path, keys, value, message
):
    """Settings were passed to the constructors unchecked: a string turned return_sequences on
    by its truth value, a list reached BatchNorm's range check as a bare TypeError."""
    bad = _edit_header(
        layered, tmp_path / "typed.npz", _put("config", "layers", *keys, value=value)
    )
    with pytest.raises(ModelFileError, match=message):
        bp.load(bad)
    bp.load(layered)  # the unedited file loads


@pytest.fixture(scope="module")
def neuralnet_files(tmp_path_factory):
    """A fitted CNN classifier and LSTM regressor, saved."""
    folder, rng = tmp_path_factory.mktemp("nn"), np.random.default_rng(0)
    X_img, X_seq = rng.normal(size=(12, 5, 5, 1)), rng.normal(size=(12, 4, 2))
    clf = bp.NeuralNetClassifier([bp.Conv2D(2, 3), bp.Flatten()], epochs=1, random_state=0).fit(
        X_img, np.arange(12) % 3
    )
    reg = bp.NeuralNetRegressor([bp.LSTM(3)], epochs=1, random_state=0).fit(X_seq, X_seq[:, 0, 0])
    bp.save(clf, folder / "clf.npz")
    bp.save(reg, folder / "reg.npz")
    return folder


def _fit(*keys, **kw):
    return _put("config", "fitted", *keys, **kw)


NEURALNET_EDITS = [
    ("clf", "params", _put("config", "params", value=-1), r"config.params: expected a table"),
    ("clf", "fitted", _put("config", "fitted", value=[]), r"config.fitted: expected a table"),
    ("clf", "dtype", _fit("classes_dtype", value=[]), r"classes_dtype: expected 'object'"),
    ("clf", "classes", _fit("classes_", value=[0]), r"classes_: expected at least 2"),
    ("clf", "n-classes", _fit("classes_", value=[0, 1]), "2 classes_ for a network of 3"),
    ("clf", "outputs", _fit("n_outputs_", value=2), r"n_outputs_ is 2, the network gives \(3,\)"),
    ("clf", "features", _fit("n_features_in_", value=4), r"the network takes \(5, 5, 1\)"),
    ("clf", "seed", _fit("_seed", value="x"), r"fitted._seed: expected an integer"),
    ("reg", "no-y-1d", _fit("_y_1d", delete=True), r"missing \['_y_1d'\]"),
    ("reg", "y-1d", _fit("_y_1d", value=-1), r"_y_1d: expected true or false"),
    ("reg", "history", _fit("history_", "__pairs__", 0, value=["loss", "low"]), r"history_"),
    ("reg", "negative-outputs", _fit("n_outputs_", value=-1), r"n_outputs_: expected an integer"),
]


@pytest.mark.parametrize(
    "which, edit, message",
    [c[:1] + c[2:] for c in NEURALNET_EDITS],
    ids=[c[1] for c in NEURALNET_EDITS],
)
def test_an_edited_neuralnet_table_is_refused_by_field(
    neuralnet_files, tmp_path, which, edit, message
):
    """The NeuralNet estimators' fitted table had only an allow-list of names: a forged value
    loaded and failed later in predict (AttributeError, TypeError, IndexError), or not at all."""
    bad = _edit_header(neuralnet_files / f"{which}.npz", tmp_path / "edited.npz", edit)
    with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
        bp.load(bad)
    bp.load(neuralnet_files / f"{which}.npz")  # the unedited file loads


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "Dense", "config": {"in_features": 4000, "out_features": 4000}},
        {"type": "PReLU", "config": {"n_features": 30_000_000}},
        {"type": "Standardize", "config": {"n_features": 30_000_000}},
    ],
    ids=["Dense", "PReLU", "Standardize"],
)
def test_an_estimators_unfitted_layers_allocate_nothing_on_load(tmp_path, spec):
    """The `layers` parameter (the unfitted stack) was rebuilt with its arrays: a 3 KB file
    naming Dense(4000, 4000), or a 3e7-wide PReLU or Standardize, made bp.load allocate 240 to
    720 MB (more for larger numbers) before anything was checked against the file."""
    from sklearn.base import clone

    X, y = np.random.default_rng(0).normal(size=(12, 2)), np.arange(12) % 2
    est = bp.NeuralNetClassifier([bp.Dense(2, 3), bp.PReLU(3)], epochs=1, random_state=0)
    bp.save(est.fit(X, y), tmp_path / "est.npz")
    bad = _edit_header(
        tmp_path / "est.npz",
        tmp_path / "big.npz",
        _put("config", "params", "layers", value={"__layers__": [spec]}),
    )
    tracemalloc.start()
    try:
        loaded = bp.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20
    assert type(loaded.layers[0]).__name__ == spec["type"]
    again = clone(bp.load(tmp_path / "est.npz")).fit(X, y)  # an unforged stack still fits
    assert np.array_equal(again.predict_proba(X), clone(est).fit(X, y).predict_proba(X))


@pytest.mark.parametrize(
    "field, value",
    [(6, 99), (8, 1), (8, 1 << 6), (10, 99)],  # version 9.9, encryption, unknown method
    ids=["zip-version", "encrypted", "strong-encryption", "compression-method"],
)
def test_zip_features_zipfile_cannot_read_are_refused_by_name(saved, tmp_path, field, value):
    """A central-directory entry asking for what zipfile does not implement made it raise
    NotImplementedError (RuntimeError for a password), which escaped as a traceback instead of
    a ModelFileError."""
    data = bytearray(saved.read_bytes())
    cd = data.find(b"PK\x01\x02")  # the first entry: the header member
    struct.pack_into("<H", data, cd + field, value)
    bad = tmp_path / "odd.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="odd.npz: "):
        bp.load(bad)
    with pytest.raises(ModelFileError, match="odd.npz: "):
        filecheck.check_array_file(bad)


@pytest.mark.parametrize("where", ["kind", "dtype"])
@pytest.mark.parametrize("value", [[1, 2], {"a": 1}])
def test_a_list_or_table_where_the_header_wants_a_name_is_refused(saved, tmp_path, where, value):
    """A header whose kind, or an array's dtype, was a JSON list or table raised
    "TypeError: unhashable type" from a set lookup instead of a ModelFileError."""
    members = dict(_members(saved))
    header = json.loads(np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"])).tobytes())
    if where == "kind":
        header["kind"] = value
    else:
        header["arrays"]["param/0.W"]["dtype"] = value
    members[f"{HEADER}.npy"] = _json_member(header)
    bad = _rezip(tmp_path / "named.npz", list(members.items()))
    with pytest.raises(ModelFileError, match=f"named.npz: .*{where}"):
        bp.load(bad)


@pytest.mark.parametrize("n", [2**40, 50 * 2**20])
def test_a_header_member_declaring_more_bytes_than_it_holds_allocates_nothing(saved, tmp_path, n):
    """The header member's own .npy header was trusted: declaring 2^40 bytes made NumPy
    allocate them before it found the member short (a MemoryError, or a bare "EOF" ValueError
    naming no file after allocating 50 MiB)."""
    members = dict(_members(saved))
    blob = np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"])).tobytes()
    members[f"{HEADER}.npy"] = _npy_header("|u1", (n,)) + blob
    bad = _rezip(tmp_path / "long.npz", list(members.items()))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"long.npz: .*header"):
            bp.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize(
    "edit",
    [
        lambda layers, cfg: layers[0]["config"].update(padding=10**6),  # 2e6 x 2e6 outputs
        lambda layers, cfg: cfg.update(input_shape=[2**15, 2**15, 1]),  # 1e9 pixels per image
    ],
    ids=["conv padding", "input_shape"],
)
def test_a_forged_activation_size_is_refused_at_load(tmp_path, edit):
    # no parameter depends on a convolution's padding or on the image size ahead of a global
    # pooling, so the file loaded and predict then asked NumPy for terabytes (or silently
    # gigabytes per sample)
    model = bp.Sequential(
        [bp.Conv2D(2, 3, padding=1), bp.GlobalAvgPool2D(), bp.Dense(2)], input_shape=(5, 5, 1)
    )
    bp.save(model, tmp_path / "m.npz")

    def forge(header):
        edit(header["config"]["layers"], header["config"])

    _edit_header(tmp_path / "m.npz", tmp_path / "bad.npz", forge)
    with pytest.raises(ModelFileError, match=r"values per sample, over the 268435456"):
        bp.load(tmp_path / "bad.npz")
    assert bp.load(tmp_path / "m.npz").predict(np.ones((1, 5, 5, 1), np.float32)).shape == (
        1,
        2,
    )  # the original loads


@pytest.mark.parametrize("nested", [False, True], ids=["top level", "inside a Residual"])
def test_a_forged_padding_with_a_stride_that_undoes_it_is_refused_at_load(tmp_path, nested):
    # the bound read the layers' outputs only: a padding of 10^5 with a stride of 5 * 10^4
    # keeps the output at 5 x 5, yet predict pads every image to 2 * 10^5 pixels a side (160
    # GB of float32); and a Residual's layers were not read at all
    conv = bp.Conv2D(1, 3, padding=1)
    layers = [bp.Residual([conv]) if nested else conv, bp.GlobalAvgPool2D(), bp.Dense(2)]
    model = bp.Sequential(layers, input_shape=(5, 5, 1), seed=0)
    bp.save(model, tmp_path / "m.npz")

    def forge(header):
        spec = header["config"]["layers"][0]
        spec = spec["config"]["layers"][0] if nested else spec
        spec["config"].update(padding=10**5 + 1, stride=50_001)  # (5 + 200002 - 3) // s + 1 = 5

    _edit_header(tmp_path / "m.npz", tmp_path / "bad.npz", forge)
    where = r"layer 0\.0 \(Conv2D\)" if nested else r"layer 0 \(Conv2D\)"
    with pytest.raises(ModelFileError, match=where + r" padded input \(200007, 200007, 1\)"):
        bp.load(tmp_path / "bad.npz")


def test_a_model_over_the_activation_bound_that_saved_loads_once_the_bound_is_raised(
    tmp_path, monkeypatch
):
    # save takes any model, and load refused one whose input holds over 2**28 values per
    # sample without saying how to read a file one trusts (the bound is a module constant)
    model = bp.Sequential(
        [bp.GlobalAvgPool2D(), bp.Dense(1)], input_shape=(2**14, 2**14, 2), seed=0
    )
    bp.save(model, tmp_path / "big.npz")
    with pytest.raises(ModelFileError, match=r"for a file you trust, raise bp\.io\.MAX_SAMPLE"):
        bp.load(tmp_path / "big.npz")
    monkeypatch.setattr(bp.io, "MAX_SAMPLE_VALUES", 2**29)
    assert bp.load(tmp_path / "big.npz").in_shape == (2**14, 2**14, 2)
