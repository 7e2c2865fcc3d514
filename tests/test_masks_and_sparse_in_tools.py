"""The diagnostics that run a model layer by layer must run it as Sequential.forward does:
padding masks travel along, sparse rows stay sparse. MC dropout ignored the masks (wrong
probabilities for padded sequences) and failed on CSR input; the activation recorder recorded
padded steps as if they were real; `backprop gradcheck` and `landscape` failed on the shipped
sparse config (len() of a CSR matrix)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import softmax

import backprop as bp
from backprop.app.cli import main


def padded_ids(rng: np.random.Generator) -> np.ndarray:
    ids = rng.integers(1, 9, size=(6, 7))
    ids[:3, 4:] = 0  # half the sequences are 4 tokens long
    return ids


def padded_floats(rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(6, 7, 3)).astype(np.float32)
    X[:3, 4:] = 0.0
    return X


@pytest.mark.parametrize(
    "front, make",
    [
        (lambda: [bp.Embedding(9, 4, mask_zero=True)], padded_ids),
        (lambda: [bp.Masking()], padded_floats),
    ],
    ids=["embedding", "masking"],
)
def test_mc_dropout_without_dropping_is_the_models_own_prediction(front, make):
    X = make(np.random.default_rng(0))
    layers = [*front(), bp.LSTM(5), bp.Dropout(0.0), bp.Dense(3)]
    model = bp.Sequential(layers, input_shape=X.shape[1:], seed=0)
    mc = bp.mc_dropout_predict(model, X, n_samples=2, seed=0)
    expected = softmax(model.predict(X).astype(np.float64), axis=1)
    np.testing.assert_allclose(mc.mean, expected, rtol=0, atol=1e-12)


def test_mc_dropout_takes_sparse_rows():
    rng = np.random.default_rng(1)
    X = sp.random(20, 30, density=0.1, format="csr", random_state=1, dtype=np.float32)
    model = bp.Sequential([bp.Dense(30, 8), bp.Dropout(0.0), bp.Dense(8, 3)], seed=0)
    mc = bp.mc_dropout_predict(model, X, n_samples=2, seed=rng, batch_size=7)
    np.testing.assert_allclose(mc.mean, softmax(model.predict(X).astype(np.float64), axis=1))


def test_recorded_activations_of_padded_steps_are_the_models_zeros():
    X = padded_floats(np.random.default_rng(2))
    model = bp.Sequential(
        [bp.Masking(), bp.RNN(4, return_sequences=True), bp.ReLU(), bp.SequencePool(), bp.Dense(2)],
        input_shape=(7, 3),
        seed=0,
    )
    found = bp.monitors.ActivationRecorder(X).record(model)
    values = found["2 ReLU"].reshape(6, 7, 4)
    assert np.all(values[:3, 4:] == 0)  # a padded step returns zeros (docs/sequences.md)
    assert np.any(values[3:, 4:] != 0)


def test_gradcheck_and_landscape_run_on_a_sparse_config(tmp_path, capsys):
    rng = np.random.default_rng(3)
    words = {
        "space": "star planet orbit rocket moon comet galaxy",
        "food": "bread cheese apple soup bake salt pepper",
        "sea": "wave ship sail harbor fish tide shore",
    }
    folder = tmp_path / "texts"
    folder.mkdir()
    for name, vocab in words.items():  # fortune-format files: documents between "%" lines
        docs = [" ".join(rng.choice(vocab.split(), size=6)) for _ in range(30)]
        (folder / name).write_text("\n%\n".join(docs) + "\n")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nsource = "text"\npath = "{folder}"\n[loss]\nname = "cross_entropy"\n'
        '[[model.layers]]\ntype = "Dense"\nout_features = 4\n[[model.layers]]\ntype = "Dense"\n'
        "[trainer]\nepochs = 2\n[output]\nplots = false\n"
    )
    assert main(["gradcheck", str(config), "--samples", "3", "--max-entries", "5"]) == 0
    assert "all gradients agree" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    assert main(["landscape", str(run), "--points", "3", "--samples", "20"]) == 0
    capsys.readouterr()
    # evaluate on the config's own test split (sparse TF-IDF rows): the run's test accuracy
    assert main(["evaluate", str(run / "model.npz"), "--data", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["accuracy"] == metrics["test"]["accuracy"]


def test_unit_activations_take_sparse_rows():
    X = sp.random(20, 30, density=0.1, format="csr", random_state=1, dtype=np.float32)
    model = bp.Sequential([bp.Dense(30, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
    sparse, dense = (
        bp.structured.activations(model, X),
        bp.structured.activations(model, X.toarray()),
    )
    np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-6, atol=1e-7)
    small = bp.structured.prune_units(model, 0.5, criterion="activation", X=X)
    assert small.layers[0].params["W"].shape == (30, 4)
