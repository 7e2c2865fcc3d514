"""The guided experiments (scripts/experiments) in their fast form: each test runs one
experiment through the public API and checks the qualitative claim its page makes. They are
marked slow (``make test-fast`` leaves them out; ``make test`` runs them).

Figures are the slow part on a loaded machine, so only one test draws them; the others check
the numbers (``plots=False``).
"""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # scripts/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from scripts.experiments import (  # noqa: E402
    adding,
    exploding,
    exploding_through_time,
    initialization,
    modes,
    optimizers,
    regularization,
    residual,
    sequential_mnist,
    transfer,
    vanishing,
)
from scripts.experiments._common import fmt  # noqa: E402


@pytest.mark.slow  # runs an experiment (fast form)
def test_modes_minibatch_beats_batch_per_epoch_and_stochastic_is_noisiest(tmp_path):
    runs = modes.run(tmp_path, fast=True, plots=False)["runs"]
    mini, batch, sgd = runs["minibatch"], runs["batch"], runs["stochastic"]
    # mini-batch reaches the target loss within the run; full batch takes more epochs or never
    assert mini["epochs_to_target"] is not None
    assert batch["epochs_to_target"] is None or batch["epochs_to_target"] > mini["epochs_to_target"]
    # full-batch descent with this step never raises the training loss; single samples often do
    assert batch["upward_share"] == 0.0
    assert sgd["upward_share"] > 0.3
    assert sgd["upward_share"] > 2 * mini["upward_share"]
    assert sgd["updates"] == 300 * sgd["epochs"]  # one update per sample
    summary = (tmp_path / "summary.md").read_text()
    assert f"{mini['final_train_loss']:.4g}" in summary


@pytest.mark.slow  # runs an experiment (fast form)
def test_vanishing_sigmoid_first_layer_gradient_orders_of_magnitude_below_relu(tmp_path):
    runs = vanishing.run(tmp_path, fast=True, plots=False)["runs"]
    sigmoid, relu, bn = runs["sigmoid"], runs["ReLU + He"], runs["sigmoid + BatchNorm"]
    assert sigmoid["first_layer_grad_epoch1"] < 1e-3 * relu["first_layer_grad_epoch1"]
    assert sigmoid["first_over_last_epoch1"] < 1e-3
    # ReLU + He and batch normalization keep all layers within about an order of magnitude
    assert relu["first_over_last_epoch1"] > 0.1
    assert bn["first_over_last_epoch1"] > 0.1
    per_layer = sigmoid["grad_norm_per_layer_epoch1"]
    assert all(a < b for a, b in zip(per_layer, per_layer[1:], strict=False))  # shrinks backwards


@pytest.mark.slow  # runs an experiment (fast form)
def test_exploding_diverges_without_clipping_and_trains_with_global_norm_clipping(tmp_path):
    runs = exploding.run(tmp_path, fast=True)["runs"]  # this one also draws its figure
    free, clipped = runs["no clipping"], runs["clip_norm=1"]
    assert free["diverged"] != "no"
    assert free["max_grad_norm"] > 1e3 * free["first_grad_norm"]  # the norm blew up
    assert clipped["diverged"] == "no"
    assert math.isfinite(clipped["final_train_loss"])
    assert clipped["final_train_loss"] < clipped["first_loss"] / 5
    assert clipped["clipped_share"] > 0.5  # the bound was active
    png = tmp_path / "exploding_gradients.png"
    assert png.stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text())["fast"] is True


@pytest.mark.slow  # runs an experiment (fast form)
def test_regularization_narrows_the_train_validation_gap(tmp_path):
    runs = regularization.run(tmp_path, fast=True, plots=False)["runs"]
    none = runs.pop("none")
    assert none["train_loss"] < 0.01 and none["gap"] > 0.2  # it overfits
    for label, r in runs.items():
        assert r["gap"] < none["gap"], label
    assert runs["early stopping"]["epochs_run"] < none["epochs_run"]


@pytest.mark.slow  # runs an experiment (fast form)
def test_optimizers_adaptive_and_lbfgs_beat_small_sgd_and_too_large_lr_fails(tmp_path):
    results = optimizers.run(tmp_path, fast=True, plots=False)
    opt, sweep = results["optimizers"], results["lr_sweep"]
    sgd = opt["SGD lr=0.01"]["final_train_loss"]
    assert opt["Adam lr=0.001"]["final_train_loss"] < sgd
    assert opt["L-BFGS (full batch)"]["final_train_loss"] < 0.5 * sgd
    assert opt["momentum 0.9"]["final_train_loss"] < sgd
    good = sweep["0.5"]["final_train_loss"]
    assert sweep["0.001"]["final_train_loss"] > 5 * good  # too small: barely moves
    too_large = sweep["32.0"]
    # too large: the loss rises above where it started, and ends far above the good rate's
    assert too_large["diverged"] or too_large["max_loss_over_initial"] > 2
    assert too_large["final_train_loss"] > 10 * good
    lrs = results["schedule_lr"]
    assert len(set(lrs["Constant"])) == 1
    decay = lrs["ExponentialDecay(0.9)"]
    assert all(b < a for a, b in zip(decay, decay[1:], strict=False))


@pytest.mark.slow  # runs an experiment (fast form)
def test_initialization_zeros_never_break_symmetry(tmp_path):
    runs = initialization.run(tmp_path, fast=True, plots=False)["runs"]
    width = initialization.WIDTH
    for label in ("zeros", "constant 1/fan_in"):
        assert runs[label]["distinct_units_per_layer"] == [1] * (initialization.DEPTH - 1), label
    for label in ("Glorot uniform", "He normal"):
        assert runs[label]["min_distinct_units"] == width, label
    assert runs["zeros"]["rms_last_hidden"] == 0.0
    assert runs["small N(0, 0.01^2)"]["rms_last_hidden"] < 1e-6  # the signal vanishes
    assert runs["large N(0, 1)"]["rms_last_hidden"] > 1e3  # the signal explodes
    assert runs["large N(0, 1)"]["diverged"]
    he = runs["He normal"]
    assert he["final_train_loss"] < 0.7 * he["initial_loss"]
    small = runs["small N(0, 0.01^2)"]
    assert small["final_train_loss"] > 0.95 * small["initial_loss"]  # stalls


@pytest.mark.slow  # runs an experiment (fast form)
def test_transfer_on_8x8_digits_specialized_features_lose_to_random_ones(tmp_path):
    results = transfer.run(tmp_path, fast=True, plots=False, use_mnist=False)["digits"]
    assert results["source_test_accuracy"] > 0.9
    for n, few in results["mean_accuracy"].items():
        # frozen features of digits 0-4 separate digits 5-9 far above chance (0.2) ...
        assert few["frozen features"] > 0.5, n
        # ... yet worse than frozen *random* features: the source network discarded what
        # tells 5-9 apart. (On MNIST the source features win: docs/experiments/transfer.md.)
        assert few["frozen random features"] > few["frozen features"], n
        # the copied weights are still a fine starting point when everything is trained
        assert few["fine-tuned"] > few["frozen features"], n


@pytest.mark.slow  # runs an experiment (fast form)
def test_adding_problem_gradient_vanishes_through_time_in_the_tanh_rnn(tmp_path):
    runs = adding.run(tmp_path, fast=True, plots=False)["runs"]
    rnn, lstm = runs["tanh RNN t=20"], runs["LSTM t=20"]
    # at initialization the gradient reaching the first step is orders of magnitude below the
    # last step's in the tanh RNN, much less so through the LSTM's cell
    assert rnn["grad_first_over_last_init"] < 1e-3
    assert lstm["grad_first_over_last_init"] > 10 * rnn["grad_first_over_last_init"]
    assert all(math.isfinite(r["test_mse"]) for r in runs.values())
    summary = (tmp_path / "summary.md").read_text()
    assert f"{rnn['test_mse']:.4g}" in summary


@pytest.mark.slow  # runs an experiment (fast form)
def test_adding_problem_runs_lengths_and_networks_separately_and_keeps_the_others(tmp_path):
    """``--lengths``/``--network``: a run of part of the experiment keeps the other runs of the
    same recipe in the output folder, replaces the ones it reruns, and drops other recipes."""
    adding.run(tmp_path, fast=True, plots=False, lengths=(10,))
    runs = adding.run(tmp_path, fast=True, plots=False, lengths=(20,))["runs"]
    assert sorted(runs) == sorted(f"{n} t={t}" for n in adding.CELLS for t in (10, 20))
    again = adding.run(tmp_path, fast=True, plots=False, lengths=(10,), networks=("GRU",))["runs"]
    assert again == runs  # the rerun replaced GRU t=10 with the same numbers (same seeds)
    rows = [
        line for line in (tmp_path / "summary.md").read_text().splitlines() if "| GRU |" in line
    ]
    assert len(rows) == 2
    other = adding.run(tmp_path, fast=True, plots=False, lengths=(10,), networks=("GRU",), epochs=1)
    assert list(other["runs"]) == ["GRU t=10"] and other["epochs"] == 1
    with pytest.raises(ValueError, match="'RNN'"):
        adding.run(tmp_path, fast=True, lengths=(10,), networks=("RNN",))


@pytest.mark.slow  # runs an experiment (fast form)
def test_exploding_through_time_diverges_without_clipping(tmp_path):
    runs = exploding_through_time.run(tmp_path, fast=True, plots=False)["runs"]
    free, clipped = runs["no clipping"], runs["clip_norm=1"]
    assert free["state_grad_ratio_init"] > 1e4  # the gradient grows going back in time
    assert free["max_loss"] > 1e6 * free["first_loss"] or free["diverged"] != "no"
    assert clipped["diverged"] == "no" and clipped["clipped_share"] == 1.0
    assert clipped["max_loss"] < 2 * clipped["first_loss"]


@pytest.mark.slow  # runs an experiment (fast form)
def test_sequential_mnist_fast_form_runs(tmp_path):
    if not (ROOT / "data" / "mnist.npz").is_file():
        pytest.skip("data/mnist.npz missing (python scripts/fetch_data.py mnist)")
    runs = sequential_mnist.run(tmp_path, fast=True, plots=False)["runs"]
    assert set(runs) == {"LSTM", "transformer"}
    for r in runs.values():
        assert r["test_accuracy"] > 0.15  # above chance after one epoch on 600 images


@pytest.mark.slow  # runs an experiment (fast form)
def test_residual_skips_carry_the_gradient_that_a_plain_sigmoid_stack_loses(tmp_path):
    runs = residual.run(tmp_path, fast=True, plots=False)["runs"]
    plain, skip = runs["sigmoid, plain"], runs["sigmoid, residual"]
    assert plain["first_layer_grad_epoch1"] < 1e-12 * skip["first_layer_grad_epoch1"]
    per_layer = plain["grad_norm_per_layer_epoch1"]
    assert all(a < b for a, b in zip(per_layer, per_layer[1:], strict=False))  # shrinks backwards
    for label in ("sigmoid, residual", "tanh, residual"):
        hidden = runs[label]["grad_norm_per_layer_epoch1"][: residual.DEPTH - 1]
        assert max(hidden) < 10 * min(hidden), label  # about flat across the 29 hidden layers
    assert runs["ReLU, residual"]["diverged"].startswith("non-finite")  # variance doubles/block
    assert runs["ReLU, plain"]["diverged"] == "no"


def test_residual_page_shows_the_numbers_of_its_results_file():
    """docs/experiments/residual.md's table is the full run's results.json, cell by cell."""
    page = (ROOT / "docs" / "experiments" / "residual.md").read_text()
    results = json.loads((ROOT / "docs" / "experiments" / "residual" / "results.json").read_text())
    assert results["fast"] is False and f"{results['epochs']} epochs" in page
    columns = [
        "first_layer_grad_epoch1",
        "last_layer_grad_epoch1",
        "first_over_last_epoch1",
        "epoch1_loss",
        "final_train_loss",
        "test_accuracy",
        "diverged",
    ]
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in results["runs"]:
            rows[cells[0]] = cells[1:]
    assert set(rows) == set(results["runs"])
    for label, run in results["runs"].items():
        assert rows[label] == [fmt(run[c]) for c in columns], label
    sigmoid = results["runs"]["sigmoid, plain"]["grad_norm_per_layer_epoch1"]
    assert f"{sigmoid[0]:.3g}" in page and f"{sigmoid[-1]:.2g}" in page  # the prose quotes them


@pytest.mark.parametrize(
    ("page", "label_column"),
    [
        ("exploding_through_time", "setting"),
        ("adding", "network"),
        ("sequential_mnist", "model"),
    ],
)
def test_sequence_pages_show_the_numbers_of_their_results_files(page, label_column):
    """Each sequence experiment page's table holds its full run's results.json, cell by cell
    (rows keyed by their first cells, which name the run)."""
    text = (ROOT / "docs" / "experiments" / f"{page}.md").read_text()
    results = json.loads((ROOT / "docs" / "experiments" / page / "results.json").read_text())
    assert results["fast"] is False
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    shown = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        shown[tuple(cells[:2])] = dict(zip(header, cells, strict=True))
    for run in results["runs"].values():
        key = (fmt(run[header[0]]), fmt(run[header[1]]))
        assert key in shown, key
        for column, cell in shown[key].items():
            assert cell == fmt(run[column]), (key, column)
    assert len(shown) == len(results["runs"])
