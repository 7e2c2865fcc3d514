"""Optimizers: one hand-worked step each (arithmetic in the comments), in-place updates, state."""

import copy
import re

import numpy as np
import pytest

import backprop as bp


def one_step(opt, p, g, steps=1):
    p = np.array(p, dtype=np.float64)
    g = np.array(g, dtype=np.float64)
    before = p  # the same object must be updated in place
    for _ in range(steps):
        opt.step(p, g)
    assert p is before
    return p


def test_sgd_plain():
    # p = 1 - 0.1 * 0.5 = 0.95 ; p = -2 - 0.1 * (-1) = -1.9
    np.testing.assert_allclose(one_step(bp.SGD(lr=0.1), [1.0, -2.0], [0.5, -1.0]), [0.95, -1.9])


def test_sgd_momentum_two_steps():
    # step 1: v = 0.9*0 - 0.1*1 = -0.1        p = 1 - 0.1 = 0.9
    # step 2: v = 0.9*(-0.1) - 0.1*1 = -0.19  p = 0.9 - 0.19 = 0.71
    np.testing.assert_allclose(one_step(bp.SGD(lr=0.1, momentum=0.9), [1.0], [1.0], 2), [0.71])


def test_sgd_nesterov_two_steps():
    # step 1: v = -0.1;  p += 0.9*(-0.1) - 0.1*1 = -0.19      -> 0.81
    # step 2: v = 0.9*(-0.1) - 0.1 = -0.19; p += 0.9*(-0.19) - 0.1 = -0.271 -> 0.539
    opt = bp.SGD(lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(one_step(opt, [1.0], [1.0], 2), [0.539])


def test_rmsprop():
    # s = 0.9*0 + 0.1*2^2 = 0.4 ; p = 1 - 0.01 * 2 / (sqrt(0.4) + 1e-8) = 1 - 0.0316227766
    p = one_step(bp.RMSprop(lr=0.01, rho=0.9, eps=1e-8), [1.0], [2.0])
    np.testing.assert_allclose(p, [1 - 0.02 / (np.sqrt(0.4) + 1e-8)], rtol=1e-14)
    assert p[0] == pytest.approx(0.968377223, abs=1e-9)


def test_adagrad_two_steps():
    # step 1: s = 4;  p = 1 - 0.1 * 2 / 2 = 0.9
    # step 2: s = 8;  p = 0.9 - 0.1 * 2 / sqrt(8) = 0.9 - 0.0707106781 = 0.8292893219
    opt = bp.Adagrad(lr=0.1, eps=0.0 + 1e-12)
    np.testing.assert_allclose(one_step(opt, [1.0], [2.0], 2), [0.8292893219], rtol=1e-9)


def test_adam_first_step_moves_by_lr():
    # m = 0.1*g, v = 0.001*g^2; step size = lr*sqrt(1-0.999)/(1-0.9) = lr*0.316227766
    # update = step * m / (sqrt(v) + eps) = lr * 0.316227766 * 0.1 g / (0.0316227766 |g| + eps)
    #        ~= lr * sign(g)  (to within eps)
    p = one_step(bp.Adam(lr=0.01, eps=1e-8), [1.0, 1.0], [3.0, -0.5])
    np.testing.assert_allclose(p, [0.99, 1.01], rtol=1e-6)


def test_adam_second_step_by_hand():
    # g1 = 1, g2 = 2; b1 = 0.9, b2 = 0.999, lr = 0.1, eps = 1e-8
    # m = 0.1 -> 0.09 + 0.2 = 0.29;  v = 0.001 -> 0.000999 + 0.004 = 0.004999
    # step size t=2: 0.1 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.1 * 0.0447101778 / 0.19
    # p1 = 1 - 0.1 * sqrt(0.001) / 0.1 * 0.1 / (sqrt(0.001) + 1e-8)   (~0.9)
    # p2 = p1 - 0.0235316725 * 0.29 / (sqrt(0.004999) + 1e-8)
    opt = bp.Adam(lr=0.1)
    p = np.array([1.0])
    opt.step(p, np.array([1.0]))
    p1 = 1 - 0.1 * np.sqrt(0.001) / 0.1 * 0.1 / (np.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(p, [p1], rtol=1e-14)
    opt.step(p, np.array([2.0]))
    step = 0.1 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    np.testing.assert_allclose(p, [p1 - step * 0.29 / (np.sqrt(0.004999) + 1e-8)], rtol=1e-12)


def test_amsgrad_uses_the_largest_second_moment():
    # after a big gradient then a small one, v drops but v_max does not: smaller step than Adam
    plain, ams = bp.Adam(lr=0.1), bp.Adam(lr=0.1, amsgrad=True)
    p1, p2 = np.array([0.0]), np.array([0.0])
    for g in (10.0, 0.1):
        plain.step(p1, np.array([g]))
        ams.step(p2, np.array([g]))
    assert abs(p2[0] + 0.1) < abs(p1[0] + 0.1)  # both moved ~-0.1 on step 1
    np.testing.assert_array_equal(
        ams.state["v_max"], np.maximum(ams.state["v_max"], ams.state["v"])
    )


def test_adamw_decays_weights_decoupled_from_the_gradient():
    # zero gradient: Adam's step is 0, only the decay acts: p = 2 - 0.1 * 0.5 * 2 = 1.9
    opt = bp.AdamW(lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(one_step(opt, [2.0], [0.0]), [1.9])


def test_step_respects_slices_and_dtype():
    p = np.ones(6, dtype=np.float32)
    g = np.ones(6, dtype=np.float32)
    opt = bp.SGD(lr=0.5, momentum=0.5)
    opt.step(p, g, [slice(0, 2), slice(4, 6)])
    np.testing.assert_array_equal(p, [0.5, 0.5, 1, 1, 0.5, 0.5])
    assert p.dtype == np.float32 and opt.state["velocity"].dtype == np.float32


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(5, 4))
    a, b = bp.Adam(lr=0.05), bp.Adam(lr=0.05)
    pa = np.zeros(4)
    for g in grads[:3]:
        a.step(pa, g)
    pb = pa.copy()
    b.load_state_dict(a.state_dict())
    for g in grads[3:]:
        a.step(pa, g)
        b.step(pb, g)
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: bp.SGD(lr=-1), "lr"),
        (lambda: bp.SGD(lr=float("nan")), "lr"),
        (lambda: bp.SGD(lr=0.1, momentum=1.0), "momentum"),
        (lambda: bp.SGD(lr=0.1, nesterov=True), "nesterov"),
        (lambda: bp.Adam(beta_1=1.5), "beta_1"),
        (lambda: bp.RMSprop(eps=0), "eps"),
        (lambda: bp.AdamW(weight_decay=-1), "weight_decay"),
        (lambda: bp.optimizers.get("adamx"), "valid names"),
    ],
)
def test_bad_hyperparameters_are_named(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_an_optimizer_that_stepped_one_model_refuses_another():
    # One optimizer passed to two Trainers: the second model would start from the first one's
    # moments and step count (same size), or from fresh moments with the old step count (another
    # size, Adam's bias correction then scaling its first step by ~3). Refused, with the way out.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    opt = bp.Adam(0.01)
    first = bp.Sequential([bp.Dense(4, 5), bp.Dense(5, 3)], seed=0)
    bp.Trainer(first, "cross_entropy", opt, seed=0).fit(X, y, epochs=2)
    for hidden in (5, 8):
        other = bp.Sequential([bp.Dense(4, hidden), bp.Dense(hidden, 3)], seed=1)
        with pytest.raises(ValueError, match="another parameter vector.*reset"):
            bp.Trainer(other, "cross_entropy", opt, seed=0).fit(X, y, epochs=1)
    bp.Trainer(first, "cross_entropy", opt, seed=0).fit(X, y, epochs=1)  # its own model: fine
    # the ways out: reset() starts afresh; a deep copy carries the state over to a copy
    copied = first.copy()
    carried = copy.deepcopy(opt)
    p, g = first.flat_parameters, np.ones_like(first.flat_parameters)
    opt.step(p, g)
    carried.step(copied.flat_parameters, g)
    np.testing.assert_array_equal(p, copied.flat_parameters)
    opt.reset()
    opt.step(other.flat_parameters, np.ones_like(other.flat_parameters))
    assert opt.iterations == 1


def test_loaded_state_of_another_size_is_refused_and_of_another_dtype_is_converted():
    a, p64 = bp.Adam(0.1), np.zeros(4)
    a.step(p64, np.ones(4))
    b = bp.Adam(0.1)
    b.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="m .*shape \\(4,\\).*\\(5,\\)"):
        b.step(np.zeros(5), np.ones(5))
    c = bp.Adam(0.1)
    c.load_state_dict(a.state_dict())  # float64 moments, float32 parameters: kept, converted
    p32 = p64.astype(np.float32)  # where a is now
    c.step(p32, np.ones(4, np.float32))
    a.step(p64, np.ones(4))
    assert c.state["m"].dtype == np.float32 and c.iterations == 2
    np.testing.assert_allclose(p32, p64, rtol=1e-6)


@pytest.mark.parametrize("cls", [bp.Adam, bp.AdamW])
def test_adam_counts_the_steps_of_each_entry_for_its_bias_correction(cls):
    # A layer frozen for the first steps, then unfrozen (gradual unfreezing): its moments start
    # at zero, so its bias correction must count its own steps, as torch.optim.Adam's per-
    # parameter step does; with the global count its first steps were ~3 to 6 times too large.
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(9, 6))
    opt, p = cls(lr=0.1), np.zeros(6)
    head, tail = cls(lr=0.1), cls(lr=0.1)  # the same entries, each with its own optimizer
    ph, pt = np.zeros(3), np.zeros(3)
    for k, g in enumerate(grads):
        opt.step(p, g, [slice(0, 3)] if k < 5 else None)  # entries 3: frozen for 5 steps
        head.step(ph, g[:3])
        if k >= 5:
            tail.step(pt, g[3:])
    np.testing.assert_array_equal(p[:3], ph)
    np.testing.assert_array_equal(p[3:], pt)
    assert opt.iterations == 9


def test_adam_step_counts_survive_a_state_dict_round_trip():
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(6, 5))
    a, pa = bp.Adam(lr=0.1), np.zeros(5)
    for k, g in enumerate(grads[:3]):
        a.step(pa, g, [slice(0, 2)] if k < 2 else None)
    b, pb = bp.Adam(lr=0.1), pa.copy()
    b.load_state_dict(a.state_dict())
    for g in grads[3:]:
        a.step(pa, g)
        b.step(pb, g)
    np.testing.assert_array_equal(pa, pb)
    with pytest.raises(ValueError, match="step_counts"):
        bp.Adam().load_state_dict({**a.state_dict(), "step_counts": [[0, 2, 3], [3, 5, 1]]})


def test_a_pickled_optimizer_continues_on_the_unpickled_model():
    import pickle

    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    opt, g = bp.Adam(0.1), np.ones(model.n_parameters, np.float32)
    opt.step(model.flat_parameters, g, [slice(0, 6)])
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    opt.step(model.flat_parameters, g)
    opt2.step(model2.flat_parameters, g)
    np.testing.assert_array_equal(model.flat_parameters, model2.flat_parameters)


def test_adam_refuses_strided_slices_it_would_count_wrongly():
    with pytest.raises(ValueError, match="contiguous runs"):
        bp.Adam().step(np.zeros(6), np.ones(6), [slice(0, 6, 2)])


def test_sgd_momentum_switched_on_after_construction_gets_its_velocity():
    # state_names was fixed at construction: a KeyError 'velocity' at the next step
    opt, p = bp.SGD(lr=0.1), np.zeros(2)
    opt.step(p, np.ones(2))
    opt.momentum = 0.5
    opt.step(p, np.ones(2))  # v = -0.1, p = -0.1 - 0.1
    opt.step(p, np.ones(2))  # v = 0.5 * -0.1 - 0.1 = -0.15
    np.testing.assert_allclose(p, [-0.35, -0.35])


def test_an_optimizer_without_state_may_step_several_models():
    # Plain SGD keeps no moments: one instance for several models (a sweep over seeds) carries
    # nothing from one to the next, as before the owner check; an SGD with momentum is refused.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    opt = bp.SGD(0.1)
    for seed in (0, 1):
        model = bp.Sequential([bp.Dense(4, 5), bp.Dense(5, 3)], seed=seed)
        bp.Trainer(model, "cross_entropy", opt, seed=0).fit(X, y, epochs=1)
        alone = bp.Sequential([bp.Dense(4, 5), bp.Dense(5, 3)], seed=seed)
        bp.Trainer(alone, "cross_entropy", bp.SGD(0.1), seed=0).fit(X, y, epochs=1)
        np.testing.assert_array_equal(model.flat_parameters, alone.flat_parameters)
    opt.momentum = 0.9  # now it has a velocity, which belongs to the next model it steps
    bp.Trainer(model, "cross_entropy", opt, seed=0).fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="another parameter vector"):
        bp.Trainer(alone, "cross_entropy", opt, seed=0).fit(X, y, epochs=1)


def test_an_sgd_pickled_before_state_names_became_a_property_still_copies():
    # SGD's state_names was an instance attribute until it became a property: an SGD unpickled
    # from an older version holds it in its __dict__, and deepcopy (a resumed trainer's
    # load_state_dict, lr_find, an estimator's fit) failed on "property has no setter".
    old = bp.SGD(0.1, momentum=0.9)
    old.__dict__["state_names"] = ("velocity",)  # as pickle.loads restores an older SGD
    p = np.zeros(3)
    old.step(p, np.ones(3))
    new = copy.deepcopy(old)
    q = p.copy()
    new.step(q, np.ones(3))
    old.step(p, np.ones(3))
    np.testing.assert_array_equal(p, q)
    new.momentum = 0.0
    assert new.state_names == ()  # the property, not the unpickled attribute


@pytest.mark.parametrize("make", [lambda: bp.SGD(0.1), lambda: bp.RMSprop(), lambda: bp.Adam()])
@pytest.mark.parametrize(
    "slices", [[np.array([0, 2])], [np.array([True, False, True, False])], [(0, 2)], slice(0, 2)]
)
def test_step_refuses_slices_that_are_not_slice_objects(make, slices):
    """Index arrays or tuples as ``slices`` failed with NumPy's "truth value of an array is
    ambiguous" (SGD, RMSprop) or "'numpy.ndarray' object has no attribute 'indices'" (Adam)."""
    p = np.ones(4)
    with pytest.raises(ValueError, match=r"slices must be a list of slice objects .*got"):
        make().step(p, np.ones(4), slices)
    np.testing.assert_array_equal(p, np.ones(4))


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_adam_matches_a_per_entry_step_count_over_random_freeze_patterns(amsgrad, decay):
    """The run-length coded ``step_counts`` against a plain per-entry count ``t`` (NumPy), over
    random sets of trainable runs per step, with a state_dict round trip half-way."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        n = int(rng.integers(1, 16))
        opt = bp.AdamW(0.01, weight_decay=decay, amsgrad=amsgrad)
        p = rng.normal(size=n)
        q, m, v, v_max, t = p.copy(), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        for k in range(12):
            ends = np.unique(rng.integers(0, n + 1, size=2 * int(rng.integers(0, 4))))
            slices = [slice(int(a), int(b)) for a, b in zip(ends[::2], ends[1::2], strict=False)]
            if k == 6:
                saved = opt.state_dict()
                opt = bp.AdamW(**opt.config())
                opt.load_state_dict(saved)
            g = rng.normal(size=n)
            opt.step(p, g, None if k % 5 == 0 else slices)
            on = np.zeros(n, bool)
            for s in [slice(0, n)] if k % 5 == 0 else slices:
                on[s] = True
            t[on] += 1
            q[on] *= 1 - 0.01 * decay
            m[on] = 0.9 * m[on] + 0.1 * g[on]
            v[on] = 0.999 * v[on] + 0.001 * g[on] ** 2
            v_max[on] = np.maximum(v_max[on], v[on])
            root = np.sqrt((v_max if amsgrad else v)[on])
            q[on] -= 0.01 * np.sqrt(1 - 0.999 ** t[on]) / (1 - 0.9 ** t[on]) * m[on] / (root + 1e-8)
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
        coded = np.concatenate([np.full(b - a, c) for a, b, c in opt.state_dict()["step_counts"]])
        np.testing.assert_array_equal(coded, t)


@pytest.mark.parametrize("make", [lambda: bp.SGD(0.1), lambda: bp.Adam(), lambda: bp.Adagrad()])
@pytest.mark.parametrize("shape", [(1,), (), (5,), (4, 1)])
def test_step_refuses_gradients_of_another_shape_before_changing_anything(make, shape):
    """A (1,) or 0-d gradient was broadcast over every parameter (the same step for all, no
    error); a (5,) one failed with a broadcasting error after ``iterations`` had counted it."""
    opt, p = make(), np.zeros(4)
    with pytest.raises(
        ValueError, match=rf"grads has shape {re.escape(str(shape))}, params \(4,\)"
    ):
        opt.step(p, np.ones(shape))
    np.testing.assert_array_equal(p, np.zeros(4))
    assert opt.iterations == 0
