"""The systems under test, behind one small protocol, and the GEMM-only bound.

Protocol: ``system.unavailable() -> str | None`` (why it cannot run here), ``system.supports(w)
-> str | None`` (why it skips a workload), ``system.fit(w) -> (fitted, n_steps)`` trains a fresh
model from scratch (construction and initialization included, as a user pays them), and
``system.predict(fitted, X)`` returns labels (classification) or values (regression).

Every system gets the same float32 arrays, the same layer sizes, ReLU, the same optimizer
settings, batch size and epoch count, no weight penalty, and shuffles every epoch.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from .workloads import Workload


class System:
    name = "system"
    reports_to_tracemalloc = True  # numpy and Python allocations are visible to tracemalloc

    def unavailable(self) -> str | None:
        return None

    def supports(self, w: Workload) -> str | None:
        return None

    def fit(self, w: Workload) -> tuple[Any, int]:
        raise NotImplementedError

    def predict(self, fitted: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class BackpropTrainer(System):
    """``bp.Sequential`` + ``bp.Trainer`` with its defaults (per-batch loss, accuracy or R2,
    gradient norm and finiteness check all on)."""

    name = "backprop"

    def fit(self, w: Workload):
        import backprop as bp

        sizes = w.layer_sizes
        layers: list[bp.Layer] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [bp.Dense(a, b), bp.ReLU()]
        model = bp.Sequential(layers[:-1], dtype="float32", seed=0)
        loss = "cross_entropy" if w.task == "classification" else "mse"
        if w.solver == "lbfgs":
            trainer = bp.Trainer(
                model, loss, bp.LBFGS(tol=0.0), mode="batch", epochs=w.epochs, seed=0
            )
        else:
            opt = bp.Adam(lr=w.lr) if w.solver == "adam" else bp.SGD(lr=w.lr, momentum=w.momentum)
            trainer = bp.Trainer(model, loss, opt, batch_size=w.batch_size, epochs=w.epochs, seed=0)
        trainer.fit(w.X_train, w.y_train)
        steps = trainer.epoch if w.solver == "lbfgs" else trainer.step_count
        return model, steps

    def predict(self, fitted, X):
        out = fitted.predict(X)
        return out.argmax(axis=1) if out.shape[1] > 1 else out[:, 0]


def sklearn_params(w: Workload) -> dict[str, Any]:
    """scikit-learn ``MLPClassifier``/``MLPRegressor`` settings equal to the workload's (no
    early stop by ``tol``: ``tol=0`` and a patience longer than the run)."""
    sgd = (
        {"momentum": w.momentum, "nesterovs_momentum": False, "learning_rate": "constant"}
        if w.solver == "sgd"
        else {}
    )
    return {
        **sgd,
        "hidden_layer_sizes": w.hidden,
        "activation": "relu",
        "solver": w.solver,
        "alpha": 0.0,
        "batch_size": w.batch_size if w.batch_size is not None else "auto",
        "learning_rate_init": w.lr,
        "max_iter": w.epochs,
        "shuffle": True,
        "random_state": 0,
        "tol": 0.0,
        "n_iter_no_change": w.epochs + 1,
        "early_stopping": False,
    }


class SklearnLike(System):
    """scikit-learn's MLP (or an estimator with the same constructor), ``max_iter`` epochs."""

    def _classes(self):
        raise NotImplementedError

    def fit(self, w: Workload):
        from sklearn.exceptions import ConvergenceWarning

        classifier, regressor = self._classes()
        cls = classifier if w.task == "classification" else regressor
        est = cls(**sklearn_params(w))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(w.X_train, w.y_train)
        return est, int(est.n_iter_) * w.steps_per_epoch

    def predict(self, fitted, X):
        return np.asarray(fitted.predict(X)).reshape(X.shape[0])


class Sklearn(SklearnLike):
    name = "sklearn"

    def _classes(self):
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        return MLPClassifier, MLPRegressor


class BackpropEstimator(SklearnLike):
    """``bp.MLPClassifier``/``bp.MLPRegressor`` (the sklearn-compatible adapter over Trainer)."""

    name = "backprop-est"

    def unavailable(self):
        import backprop as bp

        if not (hasattr(bp, "MLPClassifier") and hasattr(bp, "MLPRegressor")):
            return "backprop.MLPClassifier/MLPRegressor not in this build: estimator rows skipped"
        return None

    def _classes(self):
        import backprop as bp

        return bp.MLPClassifier, bp.MLPRegressor


class Torch(System):
    """PyTorch eager on the CPU: ``nn.Sequential`` of ``Linear``/``ReLU``, ``torch.optim.Adam``
    (or ``SGD`` with momentum), a plain loop over ``randperm`` batches with ``loss.item()`` per batch."""

    name = "torch"
    reports_to_tracemalloc = False  # its C++ allocator does not report to tracemalloc

    def unavailable(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch not importable: PyTorch rows skipped (pip install torch==2.13.0)"
        return None

    def supports(self, w):
        if w.solver == "lbfgs":
            return "torch.optim.LBFGS has its own line search and stopping rules: not comparable"
        return None

    def fit(self, w: Workload):
        import torch
        from torch import nn
        from torch.nn import functional as F

        torch.manual_seed(0)
        sizes = w.layer_sizes
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        if w.solver == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=w.lr, momentum=w.momentum)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=w.lr, betas=(0.9, 0.999), eps=1e-8)
        X = torch.from_numpy(w.X_train)
        if w.task == "classification":
            y, loss_fn = torch.from_numpy(w.y_train), F.cross_entropy
        else:
            y, loss_fn = torch.from_numpy(w.y_train.reshape(-1, 1)), F.mse_loss
        n, bs = X.shape[0], w.batch_size
        gen = torch.Generator().manual_seed(0)
        steps = 0
        model.train()
        for _ in range(w.epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(X[idx]), y[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                steps += 1
        return model, steps

    def predict(self, fitted, X):
        import torch

        with torch.no_grad():
            out = fitted(torch.from_numpy(X)).numpy()
        return out.argmax(axis=1) if out.shape[1] > 1 else out[:, 0]


ALL = (BackpropTrainer(), BackpropEstimator(), Sklearn(), Torch())


def gemm_epoch_seconds(w: Workload, rng: np.random.Generator) -> float:
    """Time of exactly the matrix products one epoch of ``w`` needs, and nothing else.

    Per batch of ``m`` rows and per Dense layer ``W`` ``(a, b)``: forward ``x @ W`` ``(m, a) @
    (a, b)``; backward ``x.T @ g`` ``(a, m) @ (m, b)``, and ``g @ W.T`` ``(m, b) @ (b, a)`` for
    every layer but the first (nobody needs dL/dX). Same shapes and dtype (float32), results
    written with ``out=`` into preallocated arrays. For L-BFGS this is one full-batch
    evaluation per iteration, a lower bound (line searches can evaluate more than once).
    """
    sizes = w.layer_sizes
    dt = np.float32
    biggest = max(w.batch_sizes())
    Ws = [rng.standard_normal((a, b), dtype=dt) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    acts = [rng.random((biggest, a), dtype=dt) for a in sizes]  # acts[l]: input of layer l
    grads = [rng.standard_normal((biggest, b), dtype=dt) for b in sizes[1:]]
    y_out = [np.empty((biggest, b), dtype=dt) for b in sizes[1:]]
    dW_out = [np.empty_like(W) for W in Ws]
    dx_out = [np.empty((biggest, a), dtype=dt) for a in sizes[:-1]]
    batches = w.batch_sizes()
    start = time.perf_counter()
    for _ in range(w.epochs):
        for m in batches:
            for layer, W in enumerate(Ws):
                np.matmul(acts[layer][:m], W, out=y_out[layer][:m])
            for layer in range(len(Ws) - 1, -1, -1):
                g = grads[layer][:m]
                np.matmul(acts[layer][:m].T, g, out=dW_out[layer])
                if layer > 0:
                    np.matmul(g, Ws[layer].T, out=dx_out[layer][:m])
    return (time.perf_counter() - start) / w.epochs


def score(w: Workload, pred: np.ndarray) -> float:
    """Test accuracy (classification) or R2 (regression)."""
    if w.task == "classification":
        return float(np.mean(pred == w.y_test))
    resid = float(np.sum((w.y_test - pred) ** 2, dtype=np.float64))
    total = float(np.sum((w.y_test - w.y_test.mean()) ** 2, dtype=np.float64))
    return 1.0 - resid / total if total > 0 else math.nan
