"""A trained model keeps nothing of its data: every layer releases what its training forward
cached once its backward has used it (Conv2D's way), and an inference forward caches nothing.

Before, after ``Trainer.fit`` most layers still held their last training batch (``Dense._x``
of the first layer is the training rows themselves; after L-BFGS, the whole training set), so a
pickled ``MLPClassifier(solver="lbfgs")`` of 0.04 MB of parameters weighed 3.5 MB."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.layers.containers import named_layers

BATCH, N, N_PREDICT = 7, 14, 11  # sizes no layer's own shapes share (6 features, 5 steps)


def vector(make):
    return "vec", [make(), bp.Dense(6), make(), bp.Dense(3)]


def image(make):
    return "img", [make(), bp.Conv2D(2, 1), bp.Flatten(), bp.Dense(3)]


def sequence(make):
    return "seq", [make(), bp.Dense(3), make(), bp.SequencePool(), bp.Dense(3)]


#: How each registered layer type goes into a small model (a new layer needs an entry here).
RECIPES = {
    **{
        name: (lambda name=name: vector(bp.layers.REGISTRY[name]))
        for name in (
            "Identity",
            "Sigmoid",
            "Tanh",
            "ReLU",
            "LeakyReLU",
            "ELU",
            "PReLU",
            "GELU",
            "SiLU",
            "Softplus",
            "Softmax",
            "BatchNorm",
            "LayerNorm",
        )
    },
    "Dense": lambda: vector(lambda: bp.Dense(6)),
    "Dropout": lambda: vector(lambda: bp.Dropout(0.3)),
    "Standardize": lambda: vector(lambda: bp.Standardize(6, mean=0.5, scale=2.0)),
    "Residual": lambda: vector(lambda: bp.Residual([bp.Dense(6), bp.ReLU(), bp.Dropout(0.2)])),
    "Conv2D": lambda: image(lambda: bp.Conv2D(2, 3, padding="same")),
    "MaxPool2D": lambda: image(lambda: bp.MaxPool2D(2, stride=1, padding="same")),
    "AvgPool2D": lambda: image(lambda: bp.AvgPool2D(2, stride=1, padding="same")),
    "RandomShift2D": lambda: image(lambda: bp.RandomShift2D(1)),
    "GlobalAvgPool2D": lambda: ("img", [bp.Conv2D(3, 2), bp.GlobalAvgPool2D(), bp.Dense(3)]),
    "Flatten": lambda: ("img", [bp.Flatten(), bp.Dense(3)]),
    "Reshape": lambda: ("vec", [bp.Reshape((3, 2)), bp.Flatten(), bp.Dense(3)]),
    "Conv1D": lambda: sequence(lambda: bp.Conv1D(3, 2, padding="same")),
    "MaxPool1D": lambda: sequence(lambda: bp.MaxPool1D(2, stride=1, padding="same")),
    "AvgPool1D": lambda: sequence(lambda: bp.AvgPool1D(2, stride=1, padding="same")),
    "GlobalAvgPool1D": lambda: ("seq", [bp.Conv1D(3, 2), bp.GlobalAvgPool1D(), bp.Dense(3)]),
    "RNN": lambda: sequence(lambda: bp.RNN(3, return_sequences=True, truncate=2)),
    "LSTM": lambda: sequence(lambda: bp.LSTM(3, return_sequences=True)),
    "GRU": lambda: sequence(lambda: bp.GRU(3, return_sequences=True)),
    "MultiHeadSelfAttention": lambda: sequence(lambda: bp.MultiHeadSelfAttention(2, 2)),
    "Masking": lambda: sequence(bp.Masking),
    "SequencePool": lambda: ("seq", [bp.SequencePool("last"), bp.Dense(3)]),
    "SinusoidalPositionalEncoding": lambda: sequence(bp.SinusoidalPositionalEncoding),
    "LearnedPositionalEncoding": lambda: sequence(bp.LearnedPositionalEncoding),
    "Embedding": lambda: ("ids", [bp.Embedding(9, 4, mask_zero=True), bp.LSTM(3), bp.Dense(3)]),
}

BUILT_IN = sorted(
    name for name, cls in bp.layers.REGISTRY.items() if cls.__module__.startswith("backprop.")
)


def inputs(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "ids":
        return rng.integers(0, 9, size=(n, 5))
    shape = {"vec": (6,), "img": (6, 6, 2), "seq": (5, 6)}[kind]
    X = rng.normal(size=(n, *shape))
    if kind == "seq":
        X[::3, -2:] = 0.0  # padded steps, for Masking
    return X


def held_arrays(
    layer: bp.Layer | bp.Sequential, path: str = ""
) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every array a layer (and, recursively, its children) keeps in its
    attributes, in dicts, lists and tuples of them; not its declared parameters, gradients and
    buffers, nor its scratch buffers (a Workspace, not looked into)."""
    found = []

    def visit(name: str, value) -> None:
        if isinstance(value, np.ndarray):
            found.append((name, value.shape))
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(f"{name}[{k!r}]", v)
        elif isinstance(value, list | tuple):
            for k, v in enumerate(value):
                visit(f"{name}[{k}]", v)

    for key, value in vars(layer).items():
        if key not in ("params", "grads", "buffers", "layers", "weight_mask"):
            visit(f"{path}{type(layer).__name__}.{key}", value)
    for j, child in enumerate(getattr(layer, "children", list)()):
        found += held_arrays(child, f"{path}{j}.")
    return found


def batch_sized(model: bp.Sequential, sizes: tuple[int, ...]) -> list:
    """Arrays with an axis of one of ``sizes`` kept by the layers, or by the model itself
    (which keeps a step's arrays until the next forward: not after fit)."""
    own = [(name, shape) for name, shape in held_arrays(model) if not name.startswith("flat")]
    return [
        (name, shape)
        for name, shape in own
        + [(f"{i}.{n}", shape) for i, la in enumerate(model.layers) for n, shape in held_arrays(la)]
        if any(s in sizes for s in shape)
    ]


def test_every_registered_layer_has_a_recipe():
    missing = sorted(set(BUILT_IN) - set(RECIPES))
    assert not missing, f"add a small model for {missing} to RECIPES"


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_no_layer_keeps_a_batch_after_training_or_inference(name, optimizer):
    if optimizer == "lbfgs" and name in ("Dropout", "RandomShift2D", "Residual"):
        pytest.skip("L-BFGS refuses random layers (a noisy objective)")
    kind, layers = RECIPES[name]()
    rng = np.random.default_rng(0)
    X, y = inputs(kind, N, rng), rng.integers(0, 3, N)
    model = bp.Sequential(layers, seed=0)
    opt = bp.LBFGS() if optimizer == "lbfgs" else optimizer
    trainer = bp.Trainer(model, "cross_entropy", opt, epochs=2, batch_size=BATCH, seed=0)
    trainer.fit(X, y)
    assert any(type(la).__name__ == name for _, la, _ in named_layers(model.layers))
    assert batch_sized(model, (BATCH, N)) == []
    trainer.predict(inputs(kind, N_PREDICT, rng))
    assert batch_sized(model, (N_PREDICT,)) == []
    assert trainer.loss._grad is None  # the loss's dL/dy too


def missing_cache(layer: bp.Layer, g: np.ndarray) -> bool:
    try:
        layer.backward(g)
    except RuntimeError as exc:
        return "backward called without a preceding forward" in str(exc)
    return False


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_second_backward_without_a_forward_says_so(name):
    """A released cache is a missing one: the layers that refuse a backward before any forward
    refuse a second backward after one forward too (and do not reuse or crash on a None)."""
    X = inputs(RECIPES[name]()[0], BATCH, np.random.default_rng(0))
    fresh = bp.Sequential(RECIPES[name]()[1], dtype="float64", seed=0)
    grads = [np.ones_like(out) for _, _, out in fresh.layer_outputs(X)]
    refusing = [i for i, la in enumerate(fresh.layers) if missing_cache(la, grads[i])]
    assert len(fresh.layers) - 1 in refusing  # the last Dense at least
    model = bp.Sequential(RECIPES[name]()[1], dtype="float64", seed=0)
    outs = [out for _, _, out in model.layer_outputs(X, training=True)]
    model.backward(np.ones_like(outs[-1]))
    for i in refusing:
        assert missing_cache(model.layers[i], grads[i]), f"layer {i} {model.layers[i]}"


@pytest.mark.parametrize(
    "layer, shape",
    [(bp.Dropout(0.5), (7, 6)), (bp.RandomShift2D(1), (7, 4, 4, 2)), (bp.Masking(9.0), (7, 5, 6))],
)
def test_an_identity_at_inference_layer_refuses_a_second_backward(layer, shape):
    """Their backward is the identity after an inference forward; after a training forward it
    applies the mask or shifts, once: a second backward used to repeat it, now it is refused."""
    x = np.random.default_rng(0).normal(size=shape)
    x[:, 0] = 9.0  # a padded step for Masking
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(g), g)  # before any forward: the identity
    layer.forward(x)
    if isinstance(layer, bp.Masking):  # its inference forward zeroes steps, and keeps no mask
        with pytest.raises(RuntimeError, match=r"backward called without a preceding forward"):
            layer.backward(g)
    else:
        np.testing.assert_array_equal(layer.backward(g), g)  # after an inference forward too
    layer.forward(x, training=True)
    assert not np.array_equal(layer.backward(g), g)
    with pytest.raises(RuntimeError, match=r"backward called without a preceding forward"):
        layer.backward(g)


def test_a_fitted_lbfgs_classifier_pickles_to_about_its_parameters():
    # 3.5 MB for 38 KB of parameters: the first Dense and the ReLU held the whole training set
    # (1797 x 64 floats, three times), the loss its gradient, L-BFGS its curvature pairs
    from sklearn.datasets import load_digits

    from backprop.estimators import MLPClassifier

    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    size = len(pickle.dumps(clf))  # (pickle in this test only: how big a saved object is)
    assert size < 10 * clf.model_.flat_parameters.nbytes
    assert clf.score(X, y) > 0.9


def test_gradient_monitor_still_counts_dead_units_and_mc_dropout_leaves_no_mask():
    # GradientMonitor reads each ReLU's output after backward: the ReLUs keep it while the
    # monitor runs (keep_output) and let go of it when training ends
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, 6)), rng.integers(0, 3, N)
    model = bp.Sequential(
        [bp.Dense(6), bp.ReLU(), bp.Dropout(0.3), bp.Dense(3)], input_shape=(6,), seed=0
    )
    model.layers[0].params["b"][:3] = -100.0  # three units dead for every sample
    monitor = bp.GradientMonitor()
    trainer = bp.Trainer(
        model, "cross_entropy", "sgd", epochs=1, batch_size=BATCH, seed=0, callbacks=[monitor]
    )
    history = trainer.fit(X, y)
    assert history["dead_relu/1"] == [0.5]
    assert batch_sized(model, (BATCH, N)) == [] and not model.layers[1].keep_output
    bp.mc_dropout_predict(model, X[:N_PREDICT], n_samples=3)
    assert batch_sized(model, (N_PREDICT,)) == []


def test_a_convolution_input_is_not_held_to_the_end_of_the_step():
    """Conv2D frees its input mid-backward, as it did before the other layers learnt to: the
    Sequential's held arrays kept it to the step's end (LeNet-5's peak: +0.6 MB of 12.9)."""
    model = bp.Sequential(
        [bp.Conv2D(2, 3), bp.ReLU(), bp.MaxPool2D(2), bp.Conv2D(2, 3), bp.Flatten(), bp.Dense(3)],
        input_shape=(8, 8, 1),
        seed=0,
    )
    out = model.forward(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), training=True)
    x = model.layers[3]._x
    before = sys.getrefcount(x)
    model.backward(np.ones_like(out))
    assert sys.getrefcount(x) == before - 1  # the layer's reference went, and no other came


def test_gradient_monitor_gives_back_a_relu_kept_by_its_user():
    """A user who sets ``keep_output`` reads ``last_output`` after training: the monitor turned
    it off (and dropped the output) when training ended."""
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(6), bp.ReLU(), bp.Dense(3)], input_shape=(6,), seed=0)
    model.layers[1].keep_output = True
    monitor = bp.GradientMonitor()
    trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=1, batch_size=N, callbacks=[monitor])
    trainer.fit(rng.normal(size=(N, 6)), rng.integers(0, 3, N))
    assert model.layers[1].keep_output and model.layers[1].last_output.shape == (N, 6)
