"""Pruning LeNet-300-100 on MNIST: magnitude, random and lottery-ticket pruning, gradual
(Zhu & Gupta 2017) and iterative (Han et al. 2015) schedules, and structured pruning.

Stages, each one's numbers cached in ``runs/pruning-cache/`` (a re-run skips what is done):

1. dense: LeNet-300-100 (784-300-100-10, ReLU), Adam, cosine decay, ``EPOCHS`` epochs; weight
   snapshots at initialization and after ``REWIND_STEP`` updates.
2. gradual: from the dense weights, sparsity 0 -> ``GRADUAL_TARGET`` along the cubic curve over
   ``GRADUAL_EPOCHS`` epochs, then ``FINETUNE_EPOCHS`` more with the mask fixed.
3. iterative (Han): prune to 1 - (1 - s)^(r / R) after each of R rounds, retraining in between.
4. curve: for each sparsity, one-shot magnitude pruning + short fine-tuning, random pruning +
   the same fine-tuning, the lottery ticket (magnitude mask, weights rewound to their initial
   values, trained ``EPOCHS`` epochs) and its control (same mask, fresh random weights).
5. structured: remove hidden units by mean activation, fine-tune, time inference.

``--fast`` runs the same code on sklearn's 8x8 digits with a small network in seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import backprop as bp
from backprop import pruning
from backprop.app.datasets import load_mnist
from scripts.experiments._common import ROOT, SEED, digits, main, write_summary
from scripts.experiments.pruning_report import LABELS, figures, summary

NAME = "pruning"
MNIST_PATH = ROOT / "data" / "mnist.npz"
FULL = {
    "hidden": [300, 100],
    "batch_size": 128,
    "lr": 1e-3,
    "epochs": 12,
    "rewind_step": 500,
    "gradual_targets": [0.95, 0.92],
    "gradual_lr": 1e-3,
    "gradual_begin": 1,
    "gradual_epochs": 9,
    "finetune_epochs": 10,
    "han_rounds": 3,
    "han_epochs": 2,
    "curve": [0.5, 0.8, 0.9, 0.95, 0.98],
    "curve_finetune_epochs": 2,
    "ticket_sparsity": 0.9,
    "unit_fraction": 0.5,
}
FAST = {
    **FULL,
    "hidden": [48, 24],
    "batch_size": 32,
    "lr": 3e-3,
    "epochs": 12,
    "rewind_step": 20,
    "gradual_targets": [0.8],
    "gradual_lr": 3e-3,
    "gradual_begin": 1,
    "gradual_epochs": 6,
    "finetune_epochs": 4,
    "han_rounds": 2,
    "han_epochs": 3,
    "curve": [0.5, 0.9],
    "curve_finetune_epochs": 3,
    "ticket_sparsity": 0.5,
}


def load_data(fast: bool) -> dict[str, np.ndarray]:
    if fast:
        d = digits()
        return {k: d[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    X_train, y_train, X_test, y_test = load_mnist(MNIST_PATH)
    scale = np.float32(1 / 255)
    return {
        "X_train": X_train.astype(np.float32) * scale,
        "y_train": y_train.astype(np.int64),
        "X_test": X_test.astype(np.float32) * scale,
        "y_test": y_test.astype(np.int64),
    }


def build(cfg: dict[str, Any], n_features: int, seed: int) -> bp.Sequential:
    h1, h2 = cfg["hidden"]
    layers = [bp.Dense(n_features, h1), bp.ReLU(), bp.Dense(h1, h2), bp.ReLU(), bp.Dense(h2, 10)]
    return bp.Sequential(layers, seed=seed)


def fit(model, data, cfg, epochs, lr=None, callbacks=(), seed=SEED) -> bp.Trainer:
    """Adam with a cosine decay to zero over ``epochs``: every stage trains this way."""
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.Adam(cfg["lr"] if lr is None else lr),
        batch_size=cfg["batch_size"],
        epochs=epochs,
        schedule=bp.CosineDecay(total=epochs),
        callbacks=list(callbacks),
        seed=seed,
    )
    trainer.fit(data["X_train"], data["y_train"])
    return trainer


def test_error(model: bp.Sequential, data: dict[str, np.ndarray]) -> float:
    return float(np.mean(np.argmax(model.predict(data["X_test"]), axis=1) != data["y_test"]))


def kept(model: bp.Sequential) -> float:
    return 1.0 - model.sparsity()["total"]


class ErrorCurve(bp.Callback):
    """Test error and sparsity after every epoch."""

    def __init__(self, data):
        self.data, self.error, self.sparsity = data, [], []

    def on_epoch_end(self, trainer, epoch, logs):
        self.error.append(test_error(trainer.model, self.data))
        self.sparsity.append(trainer.model.sparsity()["total"])


# -- stages -------------------------------------------------------------------------------------
def stage_dense(cfg, data, cache):
    model = build(cfg, data["X_train"].shape[1], SEED)
    init = pruning.WeightSnapshot(0)
    early = pruning.WeightSnapshot(cfg["rewind_step"])
    start = time.perf_counter()
    fit(model, data, cfg, cfg["epochs"], callbacks=[init, early])
    np.savez(
        cache / "dense.npz", trained=model.flat_parameters, init=init.params, early=early.params
    )
    return {"test_error": test_error(model, data), "seconds": time.perf_counter() - start}


def dense_model(cfg, data, cache, which="trained") -> bp.Sequential:
    model = build(cfg, data["X_train"].shape[1], SEED)
    with np.load(cache / "dense.npz", allow_pickle=False) as f:
        model.flat_parameters[...] = f[which]
    return model


def stage_gradual(target, longer: int = 1, seed: int = SEED):
    """Gradual pruning during training from the initialization (as Zhu & Gupta): dense for
    ``gradual_begin`` epochs, sparsity 0 -> ``target`` over ``gradual_epochs`` epochs, then
    ``finetune_epochs`` with the mask fixed; one cosine learning-rate decay over all of it.
    ``longer`` multiplies the pruning and fine-tuning epochs; ``seed`` sets the initial weights
    and the batch order."""

    def stage(cfg, data, cache):
        model = build(cfg, data["X_train"].shape[1], seed)
        n = int(np.ceil(len(data["y_train"]) / cfg["batch_size"]))
        begin = cfg["gradual_begin"] * n
        end = begin + longer * cfg["gradual_epochs"] * n
        gradual = pruning.GradualPruning(target, begin, end, frequency=max(1, n // 4))
        curve = ErrorCurve(data)
        epochs = [
            cfg["gradual_begin"],
            longer * cfg["gradual_epochs"],
            longer * cfg["finetune_epochs"],
        ]
        fit(model, data, cfg, sum(epochs), cfg["gradual_lr"], [gradual, curve], seed)
        per_layer = {k: v for k, v in model.sparsity().items() if k != "total"}
        return {
            "test_error": test_error(model, data),
            "kept": kept(model),
            "start": "init" if seed == SEED else f"init (seed {seed})",
            "lr": cfg["gradual_lr"],
            "epochs": epochs,
            "per_layer_sparsity": per_layer,
            "error_per_epoch": curve.error,
            "sparsity_per_epoch": curve.sparsity,
        }

    return stage


def stage_han(cfg, data, cache):
    model = dense_model(cfg, data, cache)
    trainer = bp.Trainer(
        model, "cross_entropy", bp.Adam(cfg["lr"] / 2), batch_size=cfg["batch_size"], seed=SEED
    )
    rounds = pruning.iterative_pruning(
        trainer,
        data["X_train"],
        data["y_train"],
        cfg["gradual_targets"][0],
        cfg["han_rounds"],
        cfg["han_epochs"],
        evaluate=(data["X_test"], data["y_test"]),
    )
    return {
        "test_error": test_error(model, data),
        "kept": kept(model),
        "rounds": [{"kept": 1 - r["sparsity"], "test_error": 1 - r["accuracy"]} for r in rounds],
    }


def ticket(cfg, data, cache, s, rewind="init", fresh_seed=None):
    """Train the magnitude mask of sparsity ``s`` (from the dense weights) from the snapshot
    ``rewind`` or, with ``fresh_seed``, from new random weights."""
    mask = pruning.compute_mask(dense_model(cfg, data, cache), s)
    if fresh_seed is None:
        model = dense_model(cfg, data, cache, rewind)
    else:
        model = build(cfg, data["X_train"].shape[1], fresh_seed)
    pruning.set_mask(model, mask)
    fit(model, data, cfg, cfg["epochs"])
    return {"test_error": test_error(model, data), "kept": kept(model)}


def finetuned(cfg, data, cache, s, method):
    model = dense_model(cfg, data, cache)
    rng = np.random.default_rng(SEED)
    pruning.prune(model, s, method=method, rng=rng)
    after_prune = test_error(model, data)
    fit(model, data, cfg, cfg["curve_finetune_epochs"], lr=cfg["lr"] / 2)
    return {"error_after_pruning": after_prune, "test_error": test_error(model, data)}


def stage_tickets(cfg, data, cache):
    """At ``ticket_sparsity``: the ticket rewound to init and to update k, and its control."""
    s = cfg["ticket_sparsity"]
    return {
        "ticket": ticket(cfg, data, cache, s),
        "reinit": ticket(cfg, data, cache, s, fresh_seed=SEED + 1),
        "ticket_rewind_k": ticket(cfg, data, cache, s, rewind="early"),
    }


def curve_point(s, method):
    def stage(cfg, data, cache):
        if method == "ticket":
            return ticket(cfg, data, cache, s)
        if method == "reinit":
            return ticket(cfg, data, cache, s, fresh_seed=SEED + 1)
        return finetuned(cfg, data, cache, s, method)

    return stage


def stage_structured(cfg, data, cache):
    from backprop import structured

    model = dense_model(cfg, data, cache)
    X = data["X_train"][:10000]
    dead = structured.dead_units(model, X)
    slim_dead = structured.remove_units(model, dead)
    on_X = float(np.max(np.abs(slim_dead.predict(X) - model.predict(X))))
    same = float(np.max(np.abs(slim_dead.predict(data["X_test"]) - model.predict(data["X_test"]))))
    keep = {
        i: int(round(cfg["unit_fraction"] * n)) for i, n in structured.unit_counts(model).items()
    }
    slim = structured.prune_units(model, keep, criterion="activation", X=X)
    before_ft = test_error(slim, data)
    fit(slim, data, cfg, cfg["curve_finetune_epochs"], lr=cfg["lr"] / 2)
    times = {}
    for label, m in (("dense", model), ("structured", slim)):
        m.predict(data["X_test"])  # warm-up
        best = min(_timed(m, data["X_test"]) for _ in range(5))
        times[label] = best
    return {
        "dead_units": {str(k): len(v) for k, v in dead.items()},
        "dead_removed_max_abs_change_on_X": on_X,
        "dead_removed_max_abs_change": same,
        "dead_removed_test_error": test_error(slim_dead, data),
        "units_kept": {str(k): v for k, v in keep.items()},
        "parameters": {"dense": model.n_parameters, "structured": slim.n_parameters},
        "error_before_finetune": before_ft,
        "test_error": test_error(slim, data),
        "dense_test_error": test_error(model, data),
        "predict_seconds": times,
        "speedup": times["dense"] / times["structured"],
    }


def _timed(model, X) -> float:
    start = time.perf_counter()
    model.predict(X)
    return time.perf_counter() - start


def stages(cfg) -> dict[str, Any]:
    """Every unit of work by name, most important first (each is cached on its own)."""
    out = {"dense": stage_dense}
    out.update({f"gradual/{t} from init": stage_gradual(t) for t in cfg["gradual_targets"]})
    out["tickets"] = stage_tickets
    for method in ("magnitude", "random"):
        out.update({f"curve/{s}/{method}": curve_point(s, method) for s in cfg["curve"]})
    out["han"] = stage_han
    out["structured"] = stage_structured
    t = cfg["gradual_targets"][0]
    out[f"gradual/{t} from init, twice as long"] = stage_gradual(t, longer=2)
    for t in cfg["gradual_targets"]:  # the same runs with another seed: how much is noise
        out[f"gradual/{t} from init, seed 1"] = stage_gradual(t, seed=SEED + 1)
    for s in sorted(cfg["curve"], reverse=True):  # the sparsest first: tickets matter most there
        if s != cfg["ticket_sparsity"]:
            for method in ("ticket", "reinit"):
                out[f"curve/{s}/{method}"] = curve_point(s, method)
    return out


def collect(done: dict[str, Any], cfg) -> dict[str, Any]:
    """The cached pieces arranged for the page: ``results["curve"][s][method]``."""
    results = {k: v for k, v in done.items() if "/" not in k}
    results["gradual"] = {
        k.split("/", 1)[1]: v for k, v in done.items() if k.startswith("gradual/")
    }
    curve: dict[str, dict[str, Any]] = {}
    for s in cfg["curve"]:
        point = {}
        for method in LABELS:
            if s == cfg["ticket_sparsity"] and method in ("ticket", "reinit"):
                point[method] = done["tickets"][method]
            elif f"curve/{s}/{method}" in done:
                point[method] = done[f"curve/{s}/{method}"]
        curve[str(s)] = point
    results["curve"] = curve
    return results


# -- figures and page ---------------------------------------------------------------------------
def run(
    out_dir: Path,
    fast: bool = False,
    plots: bool = True,
    cache: Path | None = None,
    only: tuple[str, ...] | None = None,
):
    cfg = FAST if fast else FULL
    cache = cache or (out_dir / "cache" if fast else ROOT / "runs" / "pruning-cache")
    cache.mkdir(parents=True, exist_ok=True)
    data = load_data(fast)
    done_file = cache / "stages.json"
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    if "structured" in done and "dead_removed_max_abs_change_on_X" not in done["structured"]:
        del done["structured"]  # measured before the change on X itself was recorded
    # Earlier runs that pruned the trained dense network (restarting Adam) and did worse:
    # kept on the page as measured. Their records predate the "start" field.
    if "gradual" in done:  # lr 1e-3, 12 + 8 epochs
        done["gradual/0.95/lr=0.001"] = {**done.pop("gradual"), "lr": 1e-3, "epochs": [12, 8]}
    for old, new in (
        ("gradual/0.95/lr=0.001", "0.95 from dense, lr 0.001"),
        ("gradual/0.95", "0.95 from dense, lr 0.00025"),
    ):
        if old in done:
            done[f"gradual/{new}"] = {"start": "dense", **done.pop(old)}
    for name, stage in stages(cfg).items():
        if name not in done and (only is None or name in only or name == "dense"):
            start = time.perf_counter()
            done[name] = stage(cfg, data, cache)
            done[name]["stage_seconds"] = time.perf_counter() - start
            done_file.write_text(json.dumps(done, indent=1))
            print(f"{name}: {done[name].get('test_error')} ({done[name]['stage_seconds']:.0f} s)")
    results = {"fast": fast, "config": cfg, **collect(done, cfg)}
    if plots:
        figures(results, cfg, out_dir)
    write_summary(out_dir, "Pruning LeNet-300-100", summary(results, cfg), results)
    return results


if __name__ == "__main__":
    main(run, NAME)
