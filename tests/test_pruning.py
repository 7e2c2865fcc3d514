"""Unstructured pruning: masks, exact zeros through every optimizer and its state, files,
checkpoints, schedules, lottery-ticket rewinding and proximal L1."""

import numpy as np
import pytest

import backprop as bp
from backprop import pruning
from backprop.checkpoint import Checkpoint
from backprop.io import ModelFileError, read_archive, write_archive
from backprop.regularization import soft_threshold


def _data(n=120, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 0.8)
    return X, y


def _model(dtype="float64", seed=0):
    return bp.Sequential(
        [bp.Dense(6, 12), bp.ReLU(), bp.Dense(12, 8), bp.Tanh(), bp.Dense(8, 3)],
        dtype=dtype,
        seed=seed,
    )


class PrunedStayZero(bp.Callback):
    """After every update (and every L-BFGS iteration): the largest |pruned weight| seen."""

    def __init__(self):
        self.worst = 0.0
        self.checks = 0

    def _check(self, trainer):
        m = trainer.model
        if m.weight_mask is None:  # (a schedule has not pruned yet)
            return
        w = m.flat_parameters[: m.n_weights]
        self.worst = max(self.worst, float(np.max(np.abs(w[~m.weight_mask]), initial=0.0)))
        self.checks += 1

    def on_batch_end(self, trainer, batch, logs):
        self._check(trainer)

    def on_epoch_end(self, trainer, epoch, logs):
        self._check(trainer)


OPTIMIZERS = {
    "sgd": lambda: bp.SGD(0.1),
    "momentum": lambda: bp.SGD(0.1, momentum=0.9),
    "nesterov": lambda: bp.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: bp.RMSprop(0.01),
    "adagrad": lambda: bp.Adagrad(0.1, initial_accumulator=0.1),
    "adam": lambda: bp.Adam(0.01),
    "amsgrad": lambda: bp.Adam(0.01, amsgrad=True),
    "adamw": lambda: bp.AdamW(0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_pruned_weights_and_their_optimizer_state_stay_exactly_zero(name):
    X, y = _data()
    model = _model()
    watch = PrunedStayZero()
    trainer = bp.Trainer(
        model, "cross_entropy", OPTIMIZERS[name](), batch_size=16, l1=1e-3, l2=1e-3, seed=0
    )
    trainer.fit(X, y, epochs=2)  # the optimizer state is now non-zero everywhere
    state = trainer.optimizer.state
    assert all(
        np.count_nonzero(s[: model.n_weights]) > 0.9 * model.n_weights for s in state.values()
    )
    mask = pruning.prune(model, 0.6)  # without the optimizer: fit must clear the state itself
    before = model.flat_parameters.copy()
    trainer.callbacks = [watch]
    trainer.fit(X, y, epochs=2)
    w = model.flat_parameters[: model.n_weights]
    assert watch.checks > 10 and watch.worst == 0.0
    assert np.all(w[~mask] == 0)
    for key, s in trainer.optimizer.state.items():  # stale momentum/moments would revive them
        assert np.all(s[: model.n_weights][~mask] == 0), key
    kept_moved = np.abs(w[mask] - before[: model.n_weights][mask])
    assert np.count_nonzero(kept_moved) > 0.9 * mask.sum()  # the kept weights still train
    assert model.sparsity()["total"] == pytest.approx(0.6, abs=1 / model.n_weights)


class Drift(bp.Optimizer):
    """A user's optimizer that moves every parameter, gradient or not: p -= lr * (g + 1)."""

    def _update(self, p, g, state):
        p -= self.lr * (g + 1.0)


def test_a_custom_optimizer_that_moves_every_parameter_cannot_revive_pruned_weights():
    X, y = _data()
    model = _model()
    mask = pruning.prune(model, 0.5)
    watch = PrunedStayZero()
    bp.Trainer(model, "cross_entropy", Drift(0.01), batch_size=16, callbacks=[watch]).fit(X, y)
    assert watch.checks > 10 and watch.worst == 0.0
    assert np.all(model.flat_parameters[: model.n_weights][~mask] == 0)


def test_state_left_over_from_before_pruning_would_revive_weights():
    # What the test above guards against, shown directly: momentum carries a pruned weight
    # away from zero when only the gradient is masked.
    X, y = _data()
    model = _model()
    opt = bp.SGD(0.1, momentum=0.9)
    trainer = bp.Trainer(model, "cross_entropy", opt, batch_size=16, seed=0)
    trainer.fit(X, y, epochs=1)
    mask = pruning.compute_mask(model, 0.6)
    model.flat_parameters[: model.n_weights][~mask] = 0
    grads = np.zeros_like(model.flat_gradients)
    opt.step(model.flat_parameters, grads)
    assert np.count_nonzero(model.flat_parameters[: model.n_weights][~mask]) > 0


def test_a_mask_set_without_the_optimizer_clears_its_state_at_the_next_step():
    # set_mask's own enforce used up the "mask changed" note, so after_step never cleared the
    # moments of the weights GradualPruning (which has no optimizer) pruned: they kept moving
    # those weights at every step, zeroed again after it, until fit ended
    X, y = _data()
    model = _model()
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=16, seed=0)
    for _ in range(3):
        trainer.train_step(X[:16], y[:16])
    mask = pruning.prune(model, 0.5)  # as GradualPruning does: no optimizer
    trainer.train_step(X[:16], y[:16])
    for name, s in trainer.optimizer.state.items():
        assert np.count_nonzero(s[: model.n_weights][~mask]) == 0, name
    assert np.all(model.flat_parameters[: model.n_weights][~mask] == 0)


def test_lbfgs_never_moves_a_pruned_weight():
    X, y = _data()
    model = _model()
    mask = pruning.prune(model, 0.5)
    watch = PrunedStayZero()
    before = model.flat_parameters.copy()
    trainer = bp.Trainer(model, "cross_entropy", bp.LBFGS(), epochs=15, callbacks=[watch])
    trainer.fit(X, y)
    assert watch.checks >= 10 and watch.worst == 0.0
    moved = model.flat_parameters[: model.n_weights][mask] != before[: model.n_weights][mask]
    assert moved.mean() > 0.9


def test_gradual_pruning_under_lbfgs_keeps_each_new_mask_from_the_next_iteration_on():
    # SciPy holds its own copy of the point: pruning between iterations zeroed the model's
    # weights but the next iteration went on from SciPy's copy, reviving every pruned weight
    X, y = _data()
    model = _model()
    watch = PrunedStayZero()
    gradual = pruning.GradualPruning(0.7, begin_step=0, end_step=6, frequency=2)
    trainer = bp.Trainer(model, "cross_entropy", bp.LBFGS(), callbacks=[gradual, watch])
    history = trainer.fit(X, y, epochs=10)
    assert watch.checks >= 10 and watch.worst == 0.0
    assert history["sparsity"][-1] >= 0.69
    assert trainer.optimizer.result.nit == 10  # the iterations of every run since the first
    kept = model.flat_parameters[: model.n_weights][model.weight_mask]
    assert np.count_nonzero(kept) == kept.size  # and the survivors were trained


def test_early_stopping_restoring_older_weights_keeps_the_later_mask():
    X, y = _data()
    model = _model()
    # a huge min_delta: only the first epoch "improves", so its weights (sparsity ~0.4) return
    es = bp.EarlyStopping(monitor="loss", patience=50, min_delta=1e9, restore_best_weights=True)
    gradual = pruning.GradualPruning(0.8, begin_step=0, end_step=40, frequency=5)
    trainer = bp.Trainer(
        model, "cross_entropy", bp.Adam(0.01), batch_size=8, callbacks=[gradual, es]
    )
    trainer.fit(X, y, epochs=4)  # best loss early (low sparsity); the mask ends at 0.8
    assert es.best_epoch == 0
    assert np.all(model.flat_parameters[: model.n_weights][~model.weight_mask] == 0)


def test_sparsity_per_layer_and_total():
    model = _model()
    params = model.parameters()
    params["0.W"][:3] = 0  # 3 of 6 rows: 36 of 72
    params["2.W"][...] = 0  # all 96
    params["0.b"][...] = 0  # biases do not count
    s = model.sparsity()
    assert s["0.W"] == 0.5 and s["2.W"] == 1.0 and s["4.W"] == 0.0
    assert s["total"] == pytest.approx((36 + 96) / (72 + 96 + 24))
    assert set(s) == {"0.W", "2.W", "4.W", "total"}


def test_global_mask_uses_one_threshold_and_layer_mask_one_fraction_per_layer():
    model = _model()
    w = model.flat_parameters[: model.n_weights]
    mask = pruning.compute_mask(model, 0.7)
    assert (~mask).sum() == round(0.7 * w.size)
    assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()
    per = pruning.compute_mask(model, 0.5, scope="layer")
    for name, sl in pruning.weight_slices(model).items():
        assert (~per[sl]).sum() == round(0.5 * (sl.stop - sl.start)), name
    assert model.weight_mask is None  # computing a mask changes nothing
    d = pruning.compute_mask(model, {"0.W": 0.25}, scope="layer")
    assert (~d).sum() == 18
    with pytest.raises(ValueError, match="unknown weight parameters"):
        pruning.compute_mask(model, {"1.W": 0.5}, scope="layer")
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        pruning.compute_mask(model, 1.0)
    with pytest.raises(ValueError, match="rng"):
        pruning.compute_mask(model, 0.5, method="random")


def test_pruning_again_never_revives_a_pruned_weight():
    model = _model()
    first = pruning.prune(model, 0.3, method="random", rng=np.random.default_rng(0))
    model.flat_parameters[: model.n_weights] += 5.0  # pruned weights now look large
    second = pruning.prune(model, 0.5)
    assert not np.any(second & ~first)
    assert (~second).sum() == round(0.5 * model.n_weights)


def test_set_mask_validates_shape_and_dtype():
    model = _model()
    with pytest.raises(ValueError, match="boolean array of shape"):
        pruning.set_mask(model, np.ones(model.n_weights))
    with pytest.raises(ValueError, match=f"shape \\({model.n_weights},\\)"):
        pruning.set_mask(model, np.ones(3, bool))


def test_polynomial_sparsity_follows_zhu_and_gupta():
    # s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3 with s_i = 0, s_f = 0.8, t0 = 10, t1 = 50
    f = pruning.polynomial_sparsity
    assert f(10, 0.8, 10, 50) == 0.0
    assert f(30, 0.8, 10, 50) == pytest.approx(0.8 - 0.8 * 0.5**3)  # 0.7
    assert f(50, 0.8, 10, 50) == pytest.approx(0.8)
    assert f(90, 0.8, 10, 50) == pytest.approx(0.8)


def test_gradual_pruning_with_begin_equal_to_end_prunes_to_final_at_once():
    # t = t0 = t1 took the t <= t0 branch (s_i = 0): the one pruning step pruned nothing, and
    # the mask never reached `final`, which the docstring says it keeps after end_step
    assert pruning.polynomial_sparsity(5, 0.8, 5, 5) == 0.8
    assert pruning.polynomial_sparsity(4, 0.8, 5, 5) == 0.0
    X, y = _data()
    model = _model()
    gradual = pruning.GradualPruning(0.8, begin_step=3, end_step=3, frequency=100)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=16, callbacks=[gradual])
    trainer.fit(X, y, epochs=1)
    assert model.sparsity()["total"] == pytest.approx(0.8, abs=0.01)


def test_gradual_pruning_on_a_trainer_already_past_end_step_prunes_to_final():
    # its steps are counted by trainer.step: added to a trainer that had already taken more
    # updates than end_step (or with end_step=0), it never pruned, without a word
    X, y = _data()
    for end, warm in ((0, 0), (20, 2)):
        model = _model()
        trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=16)
        if warm:
            trainer.fit(X, y, epochs=warm)  # 16 updates
            trainer.fit(X, y, epochs=warm)  # 32 > end_step
        trainer.callbacks = [pruning.GradualPruning(0.7, begin_step=0, end_step=end)]
        trainer.fit(X, y, epochs=1)
        assert model.sparsity()["total"] == pytest.approx(0.7, abs=0.01), end


def test_gradual_pruning_callback_reaches_the_target_monotonically():
    X, y = _data()
    model = _model()
    gradual = pruning.GradualPruning(0.9, begin_step=5, end_step=45, frequency=10)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=8, callbacks=[gradual])
    trainer.fit(X, y, epochs=4)  # 15 updates per epoch
    s = trainer.history["sparsity"]
    assert s[0] == pytest.approx(1 - (1 - 0.9 * (1 - (1 - 10 / 40) ** 3)), abs=0.02)
    assert all(b >= a for a, b in zip(s, s[1:], strict=False))
    assert s[-1] == pytest.approx(0.9, abs=0.01)
    assert 1 - pruning.kept_fraction(model) == pytest.approx(0.9, abs=0.01)


def test_weight_snapshot_and_rewind_to_init_or_update_k():
    X, y = _data()
    model = _model()
    init = model.flat_parameters.copy()
    snaps = [pruning.WeightSnapshot(0), pruning.WeightSnapshot(7)]
    trainer = bp.Trainer(
        model, "cross_entropy", bp.Adam(0.01), batch_size=8, callbacks=snaps, seed=1
    )
    trainer.fit(X, y, epochs=2)
    np.testing.assert_array_equal(snaps[0].params, init)
    assert not np.array_equal(snaps[1].params, init)
    mask = pruning.prune(model, 0.8, optimizer=trainer.optimizer)
    pruning.rewind(model, snaps[0].params, trainer.optimizer)
    w, w0 = model.flat_parameters[: model.n_weights], init[: model.n_weights]
    np.testing.assert_array_equal(w[mask], w0[mask])
    assert np.all(w[~mask] == 0)
    assert trainer.optimizer.iterations == 0 and trainer.optimizer.state == {}
    pruning.reinitialize(model, np.random.default_rng(7))
    assert np.all(w[~mask] == 0) and not np.array_equal(w[mask], w0[mask])


def test_snapshot_at_update_k_equals_k_updates_of_the_same_run():
    X, y = _data()
    snap = pruning.WeightSnapshot(5)
    a = _model()
    bp.Trainer(a, "cross_entropy", bp.SGD(0.1), batch_size=8, shuffle=False, callbacks=[snap]).fit(
        X, y, epochs=1
    )
    b = _model()
    bp.Trainer(b, "cross_entropy", bp.SGD(0.1), batch_size=8, shuffle=False).fit(
        X[:40], y[:40], epochs=1
    )
    np.testing.assert_array_equal(snap.params, b.flat_parameters)


def test_rewind_to_a_snapshot_never_taken_says_so():
    """A WeightSnapshot whose step the run never reached holds None; rewinding to it said
    "snapshot has shape (), the model's parameters (n,)"."""
    X, y = _data()
    snap = pruning.WeightSnapshot(10**6)
    model = _model()
    bp.Trainer(model, "cross_entropy", bp.SGD(0.1), batch_size=8, callbacks=[snap]).fit(
        X, y, epochs=1
    )
    before = model.flat_parameters.copy()
    with pytest.raises(ValueError, match=r"no snapshot \(None\).*step was never reached"):
        pruning.rewind(model, snap.params)
    np.testing.assert_array_equal(model.flat_parameters, before)


def test_snapshot_step_takes_a_numpy_integer_and_refuses_bad_ones():
    """``WeightSnapshot(np.int64(5))`` (a step computed with NumPy) was refused as "step must be
    an integer >= 0"."""
    assert pruning.WeightSnapshot(np.int64(5)).step == 5
    assert type(pruning.WeightSnapshot(np.int64(5)).step) is int
    for bad in (-1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="step must be"):
            pruning.WeightSnapshot(bad)


def test_iterative_pruning_reaches_the_final_sparsity_in_geometric_rounds():
    assert pruning.round_sparsities(0.875, 3) == pytest.approx([0.5, 0.75, 0.875])
    X, y = _data()
    model = _model()
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=16, seed=0)
    trainer.fit(X, y, epochs=3)
    rounds = pruning.iterative_pruning(trainer, X, y, 0.875, 3, 1, evaluate=(X, y))
    assert [r["target"] for r in rounds] == pytest.approx([0.5, 0.75, 0.875])
    assert rounds[-1]["sparsity"] >= 0.875 and "accuracy" in rounds[-1]


def test_save_load_keeps_the_mask_and_stores_the_weights_compactly(tmp_path):
    X, y = _data()
    model = _model("float32")
    bp.Trainer(model, "cross_entropy", "adam", batch_size=16).fit(X, y, epochs=1)
    dense_path, sparse_path = tmp_path / "dense.npz", tmp_path / "sparse.npz"
    bp.save(model, dense_path)
    assert bp.load(dense_path).weight_mask is None
    mask = pruning.prune(model, 0.9)
    bp.save(model, sparse_path)
    loaded = bp.load(sparse_path)
    np.testing.assert_array_equal(loaded.weight_mask, mask)
    np.testing.assert_array_equal(loaded.flat_parameters, model.flat_parameters)
    with np.load(sparse_path, allow_pickle=False) as f:
        names = set(f.files)
    assert "param/0.W" not in names and "param/pruning/values" in names
    assert sparse_path.stat().st_size < dense_path.stat().st_size
    # the loaded model keeps training with its mask
    bp.Trainer(loaded, "cross_entropy", "adam", batch_size=16).fit(X, y, epochs=1)
    assert np.all(loaded.flat_parameters[: loaded.n_weights][~mask] == 0)


def test_saving_a_masked_model_whose_pruned_weights_are_not_zero_is_refused(tmp_path):
    # the compact file stores the kept weights only: the loaded model silently predicted
    # differently from the one saved
    X, y = _data()
    model = _model("float32")
    dense = model.state_dict()
    pruning.prune(model, 0.5)
    model.load_state_dict(dense)  # the mask stays, the pruned weights are back
    with pytest.raises(ValueError, match=r"pruned weights are not zero.*enforce"):
        bp.save(model, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    pruning.enforce(model)
    bp.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").predict(X), model.predict(X))


def _rewrite_header(path, out, edit):
    """Copy a model file with ``edit(header, arrays)`` applied (a tampered file)."""
    header, arrays = read_archive(path)
    edit(header, arrays)
    header = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    write_archive(out, header, arrays)


def test_a_compact_file_that_lies_about_its_mask_is_refused(tmp_path):
    model = _model("float32")
    pruning.prune(model, 0.5)
    path = tmp_path / "m.npz"
    bp.save(model, path)

    def more_kept(header, arrays):
        header["config"]["pruning"]["n_kept"] -= 1
        arrays["param/pruning/values"] = arrays["param/pruning/values"][:-1]

    _rewrite_header(path, tmp_path / "a.npz", more_kept)
    with pytest.raises(ModelFileError, match="keeps .* weights, the header says"):
        bp.load(tmp_path / "a.npz")

    def short_values(header, arrays):
        arrays["param/pruning/values"] = arrays["param/pruning/values"][:-1]

    _rewrite_header(path, tmp_path / "b.npz", short_values)
    with pytest.raises(ModelFileError, match="do not match the architecture"):
        bp.load(tmp_path / "b.npz")

    def padding(header, arrays):
        bits = arrays["param/pruning/mask"].copy()
        bits[-1] |= 1  # 192 weights: no padding; the mask gains a kept weight instead
        arrays["param/pruning/mask"] = bits

    _rewrite_header(path, tmp_path / "c.npz", padding)
    with pytest.raises(ModelFileError):
        bp.load(tmp_path / "c.npz")


def _ckpt_run(path, callbacks=()):
    model = _model("float32")
    gradual = pruning.GradualPruning(0.75, begin_step=0, end_step=60, frequency=15)
    ckpt = Checkpoint(path)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(0.05, momentum=0.9),
        batch_size=16,
        callbacks=[gradual, *callbacks, ckpt],
        seed=3,
    )
    return model, trainer, ckpt


def test_resumed_pruning_run_keeps_its_mask_and_equals_the_uninterrupted_run(tmp_path):
    X, y = _data()
    a, ta, _ = _ckpt_run(tmp_path / "a.npz")
    ta.fit(X, y, epochs=6)

    class Stop(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch + 1 == 3

    _, tb, _ = _ckpt_run(tmp_path / "b.npz", [Stop()])
    tb.fit(X, y, epochs=6)
    c, tc, ckpt = _ckpt_run(tmp_path / "b.npz")
    assert c.weight_mask is None
    ckpt.resume(tc)
    assert c.weight_mask is not None and (~c.weight_mask).mean() > 0.3
    watch = PrunedStayZero()
    tc.callbacks.insert(0, watch)
    tc.fit(X, y, epochs=6 - tc.epoch)
    assert watch.worst == 0.0
    np.testing.assert_array_equal(c.weight_mask, a.weight_mask)
    np.testing.assert_array_equal(c.flat_parameters, a.flat_parameters)


def test_resumed_run_keeps_its_weight_snapshot_for_rewinding(tmp_path):
    """The snapshot is checkpointed: resuming after it was taken neither fails ("added after")
    nor records the resumed weights instead; a snapshot added late is still refused."""
    X, y = _data()
    snap_a = pruning.WeightSnapshot(4)
    a, ta, _ = _ckpt_run(tmp_path / "a.npz", [snap_a])
    ta.fit(X, y, epochs=5)

    class Stop(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch + 1 == 2

    _, tb, _ = _ckpt_run(tmp_path / "b.npz", [pruning.WeightSnapshot(4), Stop()])
    tb.fit(X, y, epochs=5)
    snap_c = pruning.WeightSnapshot(4)
    c, tc, ckpt = _ckpt_run(tmp_path / "b.npz", [snap_c])
    ckpt.resume(tc)
    tc.fit(X, y, epochs=5 - tc.epoch)
    assert snap_c.params.dtype == np.float32
    np.testing.assert_array_equal(snap_c.params, snap_a.params)
    np.testing.assert_array_equal(c.flat_parameters, a.flat_parameters)
    late = pruning.WeightSnapshot(4)
    tc.callbacks.insert(0, late)
    with pytest.raises(ValueError, match=r"WeightSnapshot\(step=4\) added after \d+ updates"):
        tc.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="1-D float array"):
        late.load_state_dict({"params": "not an array"})

    def no_params(header, arrays):  # a forged header: the snapshot's state without its array
        header["trainer"]["callbacks"][1]["state"] = {}

    _rewrite_header(tmp_path / "b.npz", tmp_path / "forged.npz", no_params)
    with pytest.raises(ModelFileError, match=r"forged.npz: .*callbacks\[1\].state: missing"):
        bp.load_checkpoint(tmp_path / "forged.npz", _ckpt_run(tmp_path / "x.npz", [late])[1])


def test_soft_threshold_shrinks_and_zeroes():
    w = np.array([-0.3, -0.05, 0.0, 0.02, 0.5])
    soft_threshold(w, 0.1)
    np.testing.assert_allclose(w, [-0.2, 0.0, 0.0, 0.0, 0.4])
    assert np.signbit(w[1]) or w[1] == 0


def test_proximal_l1_gives_exact_zeros_where_subgradient_l1_gives_none():
    X, y = _data(200)
    zeros = {}
    for method in ("subgradient", "proximal"):
        model = _model()
        trainer = bp.Trainer(
            model, "cross_entropy", bp.SGD(0.05), batch_size=20, l1=0.02, l1_method=method, seed=0
        )
        trainer.fit(X, y, epochs=30)
        zeros[method] = model.sparsity()["total"]
        assert trainer.history["loss"][-1] < trainer.history["loss"][0]
    assert zeros["subgradient"] == 0.0  # weights hover around zero, never on it
    assert zeros["proximal"] > 0.15
    with pytest.raises(ValueError, match="l1_method"):
        bp.Trainer(_model(), "cross_entropy", "sgd", l1_method="lasso")
    with pytest.raises(ValueError, match="L-BFGS"):
        bp.Trainer(_model(), "cross_entropy", "lbfgs", l1_method="proximal")


def test_masked_gradients_are_zero_where_pruned_and_exact_where_kept():
    # float64 central differences of loss + L2 penalty with respect to the kept weights.
    X, y = _data(40)
    model = _model()
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(1e-9), batch_size=40, l2=0.01, seed=0)
    trainer.fit(X, y, epochs=1)
    mask = pruning.prune(model, 0.5)
    trainer.loss_and_gradients(X, y)
    g = model.flat_gradients[: model.n_weights].copy()
    assert np.all(g[~mask] == 0) and np.count_nonzero(g[mask]) > 0.9 * mask.sum()
    w = model.flat_parameters
    rng = np.random.default_rng(1)
    eps = 1e-6
    for i in rng.choice(np.flatnonzero(mask), 12, replace=False):
        old = w[i]
        w[i] = old + eps
        up = trainer.loss_and_gradients(X, y)[0]
        w[i] = old - eps
        down = trainer.loss_and_gradients(X, y)[0]
        w[i] = old
        assert (up - down) / (2 * eps) == pytest.approx(g[i], rel=1e-5, abs=1e-9)


def test_masks_cover_nested_weights_of_containers():
    X, y = _data()
    model = bp.Sequential(
        [bp.Dense(6, 8), bp.Residual([bp.Dense(8), bp.Tanh()]), bp.Dense(8, 3)],
        dtype="float64",
        seed=0,
    )
    assert set(pruning.weight_slices(model)) == {"0.W", "1.0.W", "2.W"}
    mask = pruning.prune(model, 0.5, scope="layer")
    bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=16).fit(X, y, epochs=2)
    s = model.sparsity()
    assert s["1.0.W"] == 0.5 and np.all(model.flat_parameters[: model.n_weights][~mask] == 0)


def test_masks_cover_convolution_kernels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6, 6, 2))
    y = rng.integers(0, 3, 24)
    model = bp.Sequential(
        [bp.Conv2D(4, 3), bp.ReLU(), bp.Flatten(), bp.Dense(3)],
        input_shape=(6, 6, 2),
        dtype="float64",
        seed=0,
    )
    mask = pruning.prune(model, 0.7)
    watch = PrunedStayZero()
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.05, momentum=0.9), batch_size=8)
    trainer.callbacks = [watch]
    trainer.fit(X, y, epochs=2)
    assert "0.W" in model.sparsity() and watch.worst == 0.0 and watch.checks > 5
    assert np.all(model.parameters()["0.W"].ravel()[~mask[: 3 * 3 * 2 * 4]] == 0)
