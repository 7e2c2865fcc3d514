"""Where users meet pruning: the [pruning] config table, `backprop train`, the estimators'
``sparsity``/``l1_method`` keywords and their files, and the experiment script's fast form."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import backprop as bp
from backprop.app.cli import main
from backprop.app.config import ConfigError, build_pruning, load_config

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIG = """\
[data]
source = "digits"
validation_size = 0.15

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 24
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[trainer]
epochs = 4
batch_size = 64

[pruning]
sparsity = 0.75
end_step = 60       # 23 updates per epoch: the target is reached in the third epoch
frequency = 10

[early_stopping]
enabled = false

[output]
checkpoint_every = 2
"""


def test_pruning_table_builds_the_gradual_callback_and_checks_its_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    cb = build_pruning(load_config(path))
    assert isinstance(cb, bp.pruning.GradualPruning)
    assert (cb.final, cb.end_step, cb.frequency, cb.scope) == (0.75, 60, 10, "global")
    assert build_pruning(load_config(path, ["pruning.sparsity=0.0"])) is None
    path.write_text(CONFIG.replace("frequency = 10", "every = 10"))
    with pytest.raises(ConfigError, match="unknown key pruning.every"):
        load_config(path)
    path.write_text(CONFIG.replace('scope = "global"', "").replace("frequency = 10", 'scope = "x"'))
    with pytest.raises(ConfigError, match="scope must be one of"):
        build_pruning(load_config(path))


@pytest.mark.slow  # draws the run's figures: several seconds on a loaded machine
def test_backprop_train_with_a_pruning_table_saves_a_sparse_model(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    model = bp.load(tmp_path / "run" / "model.npz")
    assert model.weight_mask is not None
    assert model.sparsity()["total"] == pytest.approx(0.75, abs=1 / model.n_weights)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert "sparsity" in history[0].split(",")
    assert (tmp_path / "run" / "figures" / "sparsity.png").stat().st_size > 5000


def _digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_estimator_defaults_prune_nothing_and_sparsity_prunes_that_fraction(tmp_path):
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(16,), max_iter=12, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = bp.MLPClassifier(**kw).fit(X, y)
        sparse = bp.MLPClassifier(**kw, sparsity=0.7, pruning_epochs=6).fit(X, y)
    assert plain.model_.weight_mask is None and plain.model_.sparsity()["total"] == 0.0
    assert plain.get_params()["sparsity"] == 0.0 and plain.l1_method == "subgradient"
    n = sparse.model_.n_weights
    assert sparse.model_.sparsity()["total"] == pytest.approx(0.7, abs=1 / n)
    assert sparse.score(X, y) > 0.8
    assert sum(np.count_nonzero(W == 0) for W in sparse.coefs_) == round(0.7 * n)
    path = tmp_path / "est.npz"
    bp.save(sparse, path)
    loaded = bp.load(path)
    np.testing.assert_array_equal(loaded.model_.weight_mask, sparse.model_.weight_mask)
    np.testing.assert_array_equal(loaded.predict_proba(X), sparse.predict_proba(X))


def test_estimator_that_stops_early_finishes_the_pruning_with_a_warning():
    X, y = _digits()
    est = bp.MLPRegressor(
        hidden_layer_sizes=(8,), max_iter=2, random_state=0, sparsity=0.5, pruning_epochs=50
    )
    with pytest.warns(Warning) as caught:  # also scikit-learn's "max_iter reached"
        est.fit(X, y.astype(float))
    assert any("pruned in one shot" in str(w.message) for w in caught)
    assert est.model_.sparsity()["total"] == pytest.approx(0.5, abs=1 / est.model_.n_weights)


def test_estimator_proximal_l1_gives_exact_zeros():
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0, solver="sgd", l1=5.0)
    kw["learning_rate_init"] = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = bp.MLPClassifier(**kw).fit(X, y)
        prox = bp.MLPClassifier(**kw, l1_method="proximal").fit(X, y)
    zeros = [m.model_.sparsity()["total"] for m in (sub, prox)]
    assert zeros[0] == 0.0 and zeros[1] > 0.15
    assert prox.score(X, y) > 0.85
    with pytest.raises(ValueError, match="l1_method"):
        bp.MLPClassifier(l1_method="lasso").fit(X, y)
    with pytest.raises(ValueError, match="sparsity"):
        bp.MLPClassifier(sparsity=1.0).fit(X, y)


def test_estimator_partial_fit_raises_the_sparsity_over_pruning_epochs_calls():
    # each partial_fit call is one epoch of the schedule; the first call used to prune all of
    # it in one shot, warning that training had stopped early (and to raise max_iter)
    X, y = _digits()
    clf = bp.MLPClassifier(hidden_layer_sizes=(16,), sparsity=0.8, pruning_epochs=3)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            clf.partial_fit(X, y, classes=np.arange(10))
            seen.append(clf.model_.sparsity()["total"])
    assert 0.2 < seen[0] < seen[1] < 0.79
    assert seen[2] == seen[3] and abs(seen[2] - 0.8) < 0.01


def test_a_reloaded_estimator_goes_on_with_its_pruning_and_lr_schedules(tmp_path):
    # a file kept no update count: the partial_fit calls after bp.load started the pruning curve
    # (and any step-based learning-rate schedule) over, so sparsity 0.8 came two calls late
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(16,), sparsity=0.8, pruning_epochs=4, random_state=0)
    whole, part = bp.MLPClassifier(**kw), bp.MLPClassifier(**kw)
    for clf in (whole, part):
        for _ in range(2):
            clf.partial_fit(X, y, classes=np.arange(10))
    bp.save(part, tmp_path / "m.npz")
    bp.save(bp.load(tmp_path / "m.npz"), tmp_path / "again.npz")  # kept through a re-save too
    loaded = bp.load(tmp_path / "again.npz")
    for _ in range(2):
        whole.partial_fit(X, y)
        loaded.partial_fit(X, y)
        assert loaded._trainer.step_count == whole._trainer.step_count
        assert loaded.model_.sparsity()["total"] == whole.model_.sparsity()["total"]
    assert abs(loaded.model_.sparsity()["total"] - 0.8) < 0.01
    loaded.set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.fit(X, y)  # a fit (warm or not) starts its schedules at update 0, as before
    assert loaded._trainer.step_count == -(-len(X) // 200)


def test_a_failing_partial_fit_puts_the_pruning_mask_back_with_the_weights():
    X, y = _digits()
    clf = bp.MLPClassifier(
        hidden_layer_sizes=(16,), batch_size=50, shuffle=False, sparsity=0.8, pruning_epochs=3
    )
    clf.partial_fit(X[:200], y[:200], classes=np.arange(10))
    params, mask = clf.model_.flat_parameters.copy(), clf.model_.weight_mask.copy()
    bad = X[200:400].copy()
    bad[120:] = 1e200  # batch 3 of 4 diverges, after two batches that pruned more
    with pytest.raises(ValueError, match="non-finite"):
        clf.partial_fit(bad, y[200:400])
    np.testing.assert_array_equal(clf.model_.flat_parameters, params)
    np.testing.assert_array_equal(clf.model_.weight_mask, mask)  # was the newer, larger mask


def test_estimator_lbfgs_with_sparsity_trains_the_pruned_network():
    # L-BFGS went on from SciPy's copy of the weights after each pruning step: the pruned
    # weights took part in the whole fit and were zeroed only at its end (test accuracy 0.28)
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(32,), solver="lbfgs", pruning_epochs=20, max_iter=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = bp.MLPClassifier(**kw, sparsity=0.9, random_state=0).fit(X[:1200], y[:1200])
    assert clf.model_.sparsity()["total"] > 0.89
    assert clf.n_iter_ == 60
    assert clf.score(X[1200:], y[1200:]) > 0.8


def test_pruning_experiment_fast_form(tmp_path):
    from scripts.experiments import pruning as experiment
    from scripts.experiments import pruning_report

    results = experiment.run(tmp_path, fast=True, plots=False)
    dense = results["dense"]["test_error"]
    assert dense < 0.1
    target = experiment.FAST["gradual_targets"][0]
    g = results["gradual"][f"{target} from init"]
    assert g["kept"] == pytest.approx(1 - target, abs=0.01)
    assert g["sparsity_per_epoch"][-1] >= g["sparsity_per_epoch"][0]
    for point in results["curve"].values():
        assert point["magnitude"]["test_error"] <= point["random"]["test_error"]
    st = results["structured"]
    assert st["parameters"]["structured"] < st["parameters"]["dense"]
    assert st["dead_removed_max_abs_change"] <= 1e-4  # float32
    summary = (tmp_path / "summary.md").read_text()
    assert pruning_report.pct(dense) in summary


def test_inference_benchmark_compares_structured_and_masked_models():
    from benchmarks import pruning as bench

    rows = {r["model"]: r for r in bench.measure(rows=64, repeats=1)}
    dense = rows["dense"]
    assert dense["speedup"] == 1.0
    assert rows["unstructured 90%"]["parameters"] == dense["parameters"]  # a mask shrinks nothing
    assert rows["unstructured 90%"]["nonzero weights"] < 0.11 * dense["nonzero weights"]
    sizes = [rows[f"structured {p}% units"]["parameters"] for p in (75, 50, 25)]
    assert dense["parameters"] > sizes[0] > sizes[1] > sizes[2]


PRUNING_GUIDE = ROOT / "docs" / "user_guide" / "pruning.md"


def test_the_user_guide_pruning_example_runs(tmp_path, monkeypatch, capsys):
    text = PRUNING_GUIDE.read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(PRUNING_GUIDE), "exec"), {})
    out = capsys.readouterr().out
    assert "'total': 0.9" in out and "(64, 64)" in out
    assert bp.load(tmp_path / "pruned.npz").weight_mask.mean() == pytest.approx(0.1, abs=1e-3)


def test_the_pruning_page_and_user_guide_quote_the_numbers_of_the_results_file():
    from scripts.experiments.pruning_report import pct

    results = json.loads((ROOT / "docs/experiments/pruning/results.json").read_text())
    assert results["fast"] is False
    page = (ROOT / "docs/experiments/pruning.md").read_text()
    errors = [results[k]["test_error"] for k in ("dense", "han", "structured")]
    errors += [g["test_error"] for g in results["gradual"].values()]
    errors += [t["test_error"] for t in results["tickets"].values() if isinstance(t, dict)]
    errors += [m["test_error"] for point in results["curve"].values() for m in point.values()]
    assert [pct(e) for e in errors if pct(e) not in page] == []
    guide = PRUNING_GUIDE.read_text()
    headline = [results["dense"], results["gradual"]["0.92 from init"]]
    headline += [results["gradual"]["0.95 from init"], *results["tickets"].values()]
    quoted = [pct(r["test_error"]) for r in headline if isinstance(r, dict)]
    assert [q for q in quoted if q not in guide] == []
