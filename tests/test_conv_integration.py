"""Convolutional models end to end: gradients of a whole CNN, training, files, configs, figures
and the convolution experiment in its fast form. Small shapes (8x8 digits) keep it quick."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.io import ModelFileError

ROOT = Path(__file__).resolve().parents[1]


def small_cnn(dtype="float32", seed=0):
    layers = [
        bp.Reshape((8, 8, 1)),
        bp.Conv2D(4, 3, padding="same"),
        bp.ReLU(),
        bp.MaxPool2D(2),
        bp.Conv2D(6, 3, stride=2, padding=1),
        bp.ReLU(),
        bp.Flatten(),
        bp.Dense(10),
    ]
    return bp.Sequential(layers, input_shape=(64,), dtype=dtype, seed=seed)


def test_every_new_layer_is_registered_and_exported():
    names = [
        "Conv1D",
        "Conv2D",
        "MaxPool1D",
        "MaxPool2D",
        "AvgPool1D",
        "AvgPool2D",
        "GlobalAvgPool1D",
        "GlobalAvgPool2D",
        "Flatten",
        "Reshape",
    ]
    for name in names:
        assert bp.layers.get(name) is getattr(bp, name)


def test_check_gradients_of_a_whole_cnn_with_a_1d_branch():
    rng = np.random.default_rng(0)
    model = bp.Sequential(
        [
            bp.Conv1D(3, 3, padding="same"),
            bp.Tanh(),
            bp.MaxPool1D(2, padding="same"),
            bp.Conv1D(4, 2, dilation=2),
            bp.AvgPool1D(2),
            bp.GlobalAvgPool1D(),
            bp.Dense(3),
        ],
        input_shape=(9, 2),
        dtype="float64",
        seed=0,
    )
    report = bp.check_gradients(
        model, bp.SoftmaxCrossEntropy(), rng.normal(size=(3, 9, 2)), [0, 2, 1]
    )
    assert report.passed, str(report)
    report = bp.check_gradients(
        small_cnn("float64"), bp.SoftmaxCrossEntropy(), rng.random((3, 64)), [1, 5, 9], l2=0.1
    )
    assert report.passed, str(report)


def test_a_cnn_learns_digits_and_stays_float32():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    model = small_cnn()
    trainer = bp.Trainer(
        model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=3e-3), batch_size=32, epochs=8, seed=0
    )
    trainer.fit(X[:1200], y[:1200])
    out = model.predict(X[1200:])
    assert out.dtype == np.float32
    assert np.mean(out.argmax(axis=1) == y[1200:]) > 0.85
    assert all(p.dtype == np.float32 for p in model.parameters().values())


def test_save_and_load_without_pickle_round_trip(tmp_path):
    model = small_cnn(seed=3)
    X = np.random.default_rng(1).random((5, 64)).astype(np.float32)
    path = tmp_path / "cnn.npz"
    bp.save(model, path)
    with np.load(path, allow_pickle=False) as f:  # a plain npz, no object arrays
        assert all(f[k].dtype != object for k in f.files)
    back = bp.load(path)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert [type(la).__name__ for la in back.layers] == [type(la).__name__ for la in model.layers]


def _rewrite_header(src, dst, edit):
    import io
    import json

    from backprop.io import HEADER

    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.lib.format.read_array(io.BytesIO(members[f"{HEADER}.npy"])).tobytes())
    edit(header)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    members[f"{HEADER}.npy"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


def _conv_entry(header):
    return next(la for la in header["config"]["layers"] if la["type"] == "Conv2D")


@pytest.mark.parametrize(
    "edit",
    [
        # the architecture says 10^6 filters of 10^3 x 10^3: its declared W would be terabytes
        lambda h: _conv_entry(h)["config"].update(filters=10**6, kernel_size=[1000, 1000]),
        # a kernel the stored weights do not match
        lambda h: _conv_entry(h)["config"].update(kernel_size=[5, 5]),
    ],
)
def test_hostile_conv_shapes_are_refused_before_reading_data(tmp_path, edit):
    import tracemalloc

    path = tmp_path / "cnn.npz"
    bp.save(small_cnn(), path)
    bad = _rewrite_header(path, tmp_path / "bad.npz", edit)
    tracemalloc.start()
    with pytest.raises((ModelFileError, ValueError)):
        bp.load(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def _digits_config(tmp_path):
    """configs/mnist-cnn.toml, edited to run on 8x8 digits for 5 epochs."""
    text = (ROOT / "configs" / "mnist-cnn.toml").read_text()
    for old, new in [
        ('source = "mnist"', 'source = "digits"'),
        ("shape = [28, 28, 1]", "shape = [8, 8, 1]"),
        ("kernel_size = 5         # 14x14", "kernel_size = 3         # 4x4"),
        ("max_shift = 2", "max_shift = 1"),  # 2 of 8 pixels is a lot for 2 epochs
        ("epochs = 15", "epochs = 5"),
        ('dir = "runs"', f"dir = {str(tmp_path / 'runs')!r}"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "digits-cnn.toml"
    path.write_text(text)
    return path


def test_configs_parse_and_name_the_new_layers():
    for name in ("mnist-cnn.toml", "fashion-cnn.toml"):
        cfg = tomllib.loads((ROOT / "configs" / name).read_text())
        types = {la["type"] for la in cfg["model"]["layers"]}
        assert {"Reshape", "Conv2D", "MaxPool2D", "Flatten", "Dense"} <= types
        for la in cfg["model"]["layers"][:-1]:  # the last Dense gets its width from the data
            bp.layers.layer_from_spec(la)


@pytest.mark.slow
def test_backprop_train_on_a_cnn_config_writes_the_cnn_figures(tmp_path):
    from backprop.app import config as config_mod
    from backprop.app.experiment import run

    cfg = config_mod.load_config(_digits_config(tmp_path))
    assert cfg["data"]["source"] == "digits"
    code, metrics = run(cfg, tmp_path / "run", quiet=True, log=lambda *a: None)
    assert code == 0
    assert metrics["test"]["accuracy"] > 0.3
    figures = {p.name for p in (tmp_path / "run" / "figures").iterdir()}
    assert {"conv_filters.png", "feature_maps.png", "confusion.png"} <= figures


@pytest.mark.slow  # runs an experiment (fast form)
def test_convolution_experiment_fast_cnn_beats_mlp_at_each_budget(tmp_path):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from scripts.experiments import convolution

    results = convolution.run(tmp_path, fast=True, plots=False)
    assert results["gradient_check"]["passed"]
    rows = results["comparison"]
    for mlp, cnn in zip(rows[::2], rows[1::2], strict=True):
        assert mlp["model"] == "MLP" and cnn["model"] == "CNN"
        assert abs(cnn["parameters"] / mlp["parameters"] - 1) < 0.15
        assert cnn["test_accuracy"] > mlp["test_accuracy"]


def test_a_huge_declared_image_size_allocates_nothing_while_loading(tmp_path):
    # Parameters of a conv net do not depend on the image size, so a file may claim 10^9 x 10^9
    # images with the right weights: reading the architecture must be arithmetic only, and the
    # file is refused (predict would need terabytes) without allocating anything.
    import tracemalloc

    model = bp.Sequential(
        [bp.Reshape((8, 8, 1)), bp.Conv2D(2, 3), bp.AvgPool2D(2, padding="same"),
         bp.GlobalAvgPool2D(), bp.Dense(3)],
        input_shape=(64,),
    )  # fmt: skip
    path = tmp_path / "cnn.npz"
    bp.save(model, path)

    def huge(h):
        h["config"]["input_shape"] = [10**18]
        h["config"]["layers"][0]["config"]["shape"] = [10**9, 10**9, 1]

    bad = _rewrite_header(path, tmp_path / "huge.npz", huge)
    tracemalloc.start()
    with pytest.raises(bp.ModelFileError, match=r"input_shape \(1000000000000000000,\) holds"):
        bp.load(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def test_neural_net_classifier_trains_the_same_cnn_on_rows_and_on_images():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    conv = [bp.Conv2D(8, 3, padding="same"), bp.ReLU(), bp.MaxPool2D(2), bp.Flatten()]
    clf = bp.NeuralNetClassifier([bp.Reshape((8, 8, 1)), *conv], epochs=6, lr=3e-3, random_state=0)
    clf.fit(X[:1200], y[:1200])
    assert clf.score(X[1200:], y[1200:]) > 0.85
    assert isinstance(clf.model_.layers[1], bp.Conv2D)
    images = bp.NeuralNetClassifier(conv, epochs=6, lr=3e-3, random_state=0)
    images.fit(X[:1200].reshape(-1, 8, 8, 1), y[:1200])
    np.testing.assert_allclose(
        images.predict_proba(X[1200:].reshape(-1, 8, 8, 1)),
        clf.predict_proba(X[1200:]),
        rtol=1e-4,
        atol=1e-6,
    )


def test_convolution_page_shows_the_numbers_of_its_results_file():
    """docs/experiments/convolution.md's table and gradient report are the full run's
    results.json, cell by cell."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import json

    from scripts.experiments._common import fmt

    page = (ROOT / "docs" / "experiments" / "convolution.md").read_text()
    results = json.loads((ROOT / "docs/experiments/convolution/results.json").read_text())
    assert results["fast"] is False and results["data"] in page
    assert results["gradient_check"]["passed"] and results["gradient_check"]["report"] in page
    columns = ["model", "architecture", "parameters", "train_loss", "test_accuracy"]
    rows = []
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("MLP", "CNN"):
            rows.append(cells)
    assert rows == [[fmt(r[c]) for c in columns] for r in results["comparison"]]
