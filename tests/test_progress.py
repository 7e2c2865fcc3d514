"""Progress where people run it: a live bar, plain lines, early stopping and resume notes."""

import io
import json
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.app.cli import main
from backprop.app.experiment import nothing_to_train


def _fit(callbacks, epochs=4, X=None, y=None, validation=True):
    X = np.random.default_rng(0).normal(size=(40, 3)) if X is None else X
    y = (X[:, 0] > 0).astype(int) if y is None else y
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", "adam", epochs=epochs, batch_size=8, seed=0, callbacks=callbacks
    )
    trainer.fit(X, y, validation_split=0.25 if validation else 0.0)
    return trainer


def test_live_bar_draws_batches_and_keeps_the_epoch_lines():
    stream = io.StringIO()
    _fit([bp.ProgressBar(stream=stream, live=True)], epochs=2)
    text = stream.getvalue()
    assert "\r" in text and "batch" in text  # tqdm redraws its bar in place
    epoch_lines = [
        line for line in text.replace("\r", "\n").splitlines() if line.startswith("epoch ")
    ]
    assert any(line.startswith("epoch 1/2  loss") for line in epoch_lines)
    assert any(line.startswith("epoch 2/2  loss") for line in epoch_lines)


def test_disabled_bar_prints_nothing_even_on_early_stop():
    stream = io.StringIO()
    es = bp.EarlyStopping(patience=0, min_delta=1e9)
    _fit([es, bp.ProgressBar(stream=stream, enabled=False, live=True)])
    assert es.stopped_epoch is not None and stream.getvalue() == ""


def test_early_stopping_is_announced_with_the_restored_epoch():
    stream = io.StringIO()
    es = bp.EarlyStopping(patience=1, min_delta=1e9)  # nothing counts as an improvement
    trainer = _fit([es, bp.ProgressBar(stream=stream)], epochs=10)
    last = stream.getvalue().splitlines()[-1]
    assert trainer.epoch == 2
    assert last.startswith("early stopping at epoch 2: val_loss has not improved for 1 epochs")
    assert last.endswith("at epoch 1; restored its weights")


def test_resume_with_nothing_to_train_says_why(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nsource = "iris"\n[[model.layers]]\ntype = "Dense"\n[loss]\nname = "cross_entropy"\n'
        "[trainer]\nepochs = 2\n[output]\nplots = false\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress at all
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train: the checkpoint is at epoch 2 and trainer.epochs is 2" in out
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_nothing_to_train_after_early_stopping_names_the_epochs():
    es = bp.EarlyStopping()
    es.stopped_epoch, es.best_epoch = 6, 3
    assert nothing_to_train(7, 50, es) == (
        "nothing to train: early stopping ended this run at epoch 7 (best epoch 4, restored); "
        "evaluating and saving it again"
    )


def test_string_labels_get_an_error_that_shows_the_way():
    import pytest

    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", epochs=1)
    with pytest.raises(ValueError, match=r"not numbers \('cat', 'dog'.*np.unique.*MLPClassifier"):
        trainer.fit(np.eye(2), np.array(["cat", "dog"]))
    # an object array of numbers (a pandas column of ints and floats) was called "not numbers"
    trainer.fit(np.eye(2), np.array([0, 1.0], dtype=object))
    with pytest.raises(ValueError, match=r"not numbers \('1', 'None'"):
        trainer.fit(np.eye(2), np.array([1, None], dtype=object))


def test_a_notebook_gets_the_live_display(monkeypatch):
    import types

    from backprop.progress import ProgressBar, in_notebook

    assert not in_notebook()
    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert in_notebook()
    assert ProgressBar()._is_live()  # stderr of a kernel is no terminal, yet the bar is live
    assert not ProgressBar(live=False)._is_live()


def test_a_stream_that_cannot_be_written_is_refused_at_once(tmp_path):
    """``ProgressBar(stream="train.log")`` (a path, not a file) trained a whole epoch and then
    failed with "'str' object has no attribute 'write'"."""
    for bad in ("train.log", tmp_path, 3):
        with pytest.raises(ValueError, match=r"stream must be a text stream .*open\(path, 'w'\)"):
            bp.ProgressBar(stream=bad)
    out = io.StringIO()
    _fit([bp.ProgressBar(stream=out)], epochs=1)
    assert out.getvalue().startswith("epoch 1/1")
