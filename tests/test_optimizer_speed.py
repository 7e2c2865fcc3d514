"""The fast optimizer paths (BLAS level 1, in-place passes, subnormal flushing) compute the same
numbers as the plain formulas in the optimizers' docstring. Speed itself is measured by the
benchmarks (benchmarks/steps.py), never here."""

import math

import numpy as np
import pytest

import backprop as bp
from backprop.optimizers import axpy, flush_tiny, scal


def plain(name, p, g, state, t, **kw):
    """The update rules exactly as the module docstring writes them, in NumPy, out of place."""
    lr = kw.get("lr")
    if name == "sgd":
        mu, nesterov = kw.get("momentum", 0.0), kw.get("nesterov", False)
        if not mu:
            return p - lr * g
        state["v"] = mu * state.get("v", 0 * p) - lr * g
        return p + mu * state["v"] - lr * g if nesterov else p + state["v"]
    if name == "rmsprop":
        state["s"] = kw["rho"] * state.get("s", 0 * p) + (1 - kw["rho"]) * g**2
        return p - lr * g / (np.sqrt(state["s"]) + kw["eps"])
    if name == "adagrad":
        state["s"] = state.get("s", 0 * p) + g**2
        return p - lr * g / (np.sqrt(state["s"]) + kw["eps"])
    b1, b2, eps = kw["beta_1"], kw["beta_2"], kw["eps"]
    if name == "adamw":
        p = p - lr * kw["weight_decay"] * p
    state["m"] = b1 * state.get("m", 0 * p) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0 * p) + (1 - b2) * g**2
    v = state["v"]
    if kw.get("amsgrad"):
        state["vmax"] = v = np.maximum(state.get("vmax", 0 * p), v)
    step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    return p - step * state["m"] / (np.sqrt(v) + eps)


CASES = [
    ("sgd", bp.SGD, {"lr": 0.1}),
    ("sgd", bp.SGD, {"lr": 0.1, "momentum": 0.9}),
    ("sgd", bp.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("rmsprop", bp.RMSprop, {"lr": 0.01, "rho": 0.9, "eps": 1e-8}),
    ("adagrad", bp.Adagrad, {"lr": 0.1, "eps": 1e-8}),
    ("adam", bp.Adam, {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8}),
    ("adam", bp.Adam, {"lr": 0.01, "beta_1": 0.8, "beta_2": 0.99, "eps": 1e-8, "amsgrad": True}),
    (
        "adamw",
        bp.AdamW,
        {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
    ),
]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("name, cls, kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fast_paths_equal_the_plain_formulas(name, cls, kw, dtype, rtol):
    rng = np.random.default_rng(0)
    n = 3 * bp.Adam.block_size + 17  # several Adam blocks and a ragged tail
    p = rng.standard_normal(n).astype(dtype)
    p0, ref, state = p.copy(), p.astype(np.float64), {}
    opt = cls(**kw)
    slices = [slice(0, 1000), slice(5000, n)]  # a frozen run in the middle is left alone
    for t in range(1, 26):
        g = rng.standard_normal(n).astype(dtype)
        opt.step(p, g, slices)
        for s in slices:
            sub = {k: v[s] for k, v in state.items()}
            ref[s] = plain(name, ref[s], g[s].astype(np.float64), sub, t, **kw)
            for k, v in sub.items():
                state.setdefault(k, np.zeros(n))[s] = v
    np.testing.assert_allclose(p, ref, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(p[1000:5000], p0[1000:5000])


def test_axpy_and_scal_work_in_place_on_views_and_fall_back_on_other_layouts():
    y = np.arange(10.0, dtype=np.float32)
    x = np.ones(10, np.float32)
    view = y[2:8]
    axpy(2.0, x[:6], view)
    np.testing.assert_array_equal(y, [0, 1, 4, 5, 6, 7, 8, 9, 8, 9])
    scal(0.5, view)
    np.testing.assert_array_equal(y[2:8], [2, 2.5, 3, 3.5, 4, 4.5])
    strided = np.arange(6.0)[::2]  # not contiguous: the NumPy fallback
    axpy(1.0, np.ones(3), strided)
    scal(2.0, strided)
    np.testing.assert_array_equal(strided, [2, 6, 10])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flush_zeroes_exactly_the_entries_below_the_bound(dtype):
    info = np.finfo(dtype)
    bound = info.tiny * 2.0**24
    a = np.array([0.0, bound / 2, -bound / 2, bound, -bound, 1.0, info.tiny / 4], dtype=dtype)
    flush_tiny(a, np.empty_like(a), np.empty(a.shape, bool))
    expected = np.array([0, 0, 0, bound, -bound, 1.0, 0], dtype=dtype)
    np.testing.assert_array_equal(a, expected)


def subnormal_count(a):
    return int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))


@pytest.mark.parametrize(
    "make, fast_decaying",
    [
        (lambda: bp.Adam(1e-3), "m"),
        (lambda: bp.AdamW(1e-3), "m"),
        (lambda: bp.SGD(0.01, momentum=0.5), "velocity"),
        (lambda: bp.RMSprop(1e-3, rho=0.5), "square_avg"),
    ],
    ids=["adam", "adamw", "sgd-momentum", "rmsprop"],
)
def test_state_of_gradients_that_stop_never_becomes_subnormal(make, fast_decaying):
    """Half the coordinates get gradients for 20 steps, then exact zeros (the weights of a pixel
    that is always black): their state decays. Without the flush it reaches the subnormal range;
    with it, it becomes exactly zero, and the weights are bitwise the same either way."""
    n = 4096
    runs = {}
    for flush in (16, 0):
        opt = make()
        opt.flush_every = flush
        p = np.random.default_rng(2).standard_normal(n).astype(np.float32)
        grads = np.random.default_rng(3)
        most = 0  # the largest number of subnormal state entries seen after any step
        for t in range(1500):
            g = grads.standard_normal(n).astype(np.float32) * 1e-3
            if t >= 20:
                g[: n // 2] = 0
            opt.step(p, g)
            most = max(most, sum(subnormal_count(a) for a in opt.state.values()))
        runs[flush] = (p, opt, most)
    assert make().flush_every == 16  # on by default
    assert runs[0][2] > 0  # without the flush the state passes through the subnormal range
    assert runs[16][2] == 0  # with it, never
    assert not runs[16][1].state[fast_decaying][: n // 2].any()  # exact zeros, at full speed
    np.testing.assert_array_equal(runs[16][0], runs[0][0])


def test_flushing_changes_no_training_result_bitwise():
    """A Trainer run on data with always-zero features: bitwise the same weights with the flush
    on and off (the flush only touches state that no longer moves any weight)."""
    rng = np.random.default_rng(0)
    X = rng.random((256, 20)).astype(np.float32)
    X[:, :8] = 0  # always-black pixels
    y = rng.integers(0, 3, 256)
    results = []
    for flush in (16, 0):
        model = bp.Sequential([bp.Dense(20, 16), bp.ReLU(), bp.Dense(16, 3)], seed=0)
        opt = bp.Adam(1e-2)
        opt.flush_every = flush
        bp.Trainer(model, bp.SoftmaxCrossEntropy(), opt, batch_size=8, epochs=20, seed=0).fit(X, y)
        results.append(model.flat_parameters.copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_flush_leaves_float16_state_alone():
    """float16's ``tiny * 2**24`` is 1024: the flush would zero every sensible state entry (and
    overflow computing the bound). Its subnormals are emulated in software, not slow: no flush."""
    a = np.array([0.5, -3.0, 1e-6, 1000.0], dtype=np.float16)
    kept = a.copy()
    with np.errstate(over="raise"):
        flush_tiny(a, np.empty_like(a), np.empty(a.shape, bool))
    np.testing.assert_array_equal(a, kept)
    runs = []
    for flush in (16, 0):
        opt = bp.SGD(0.1, momentum=0.9)
        opt.flush_every = flush
        p = np.ones(4, np.float16)
        for _ in range(16):
            opt.step(p, np.full(4, 0.5, np.float16))
        runs.append((p.copy(), opt.state["velocity"].copy()))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
