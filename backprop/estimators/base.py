"""BaseMLP: the adapter shared by MLPClassifier and MLPRegressor.

``fit`` validates the data (scikit-learn's ``validate_data``), builds a :class:`Sequential`
``Dense -> [norm] -> activation -> [dropout] -> ... -> Dense`` whose initial weights are
scikit-learn's draws, and hands it to the project's :class:`Trainer` with a scikit-learn loss
(:mod:`.losses`), ``l2=alpha`` scaled per sample, the epoch order drawn by
:class:`.conventions.ShuffleSampler`, and :class:`.monitor.SklearnMonitor` for the bookkeeping.
There is no training loop here: ``Trainer.fit`` is the loop. The parameter checks and the
solver's optimizer are :mod:`.mlp_params`.

``model_`` outputs the raw last layer ``z`` (logits for classifiers); ``out_activation_`` names
the link that ``predict``/``predict_proba`` apply. ``coefs_[i]`` and ``intercepts_[i]`` are
*views* of the Dense weights inside ``model_`` (``(fan_in, fan_out)`` and ``(fan_out,)``):
reading them costs nothing, and writing into them changes the model.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import layers as L
from ..model import Sequential
from ..schedules import ReduceLROnPlateau
from ..schedules import get as get_schedule
from ..trainer import Trainer, TrainingDivergedError
from . import conventions as C
from . import sparsity
from .losses import for_output
from .mlp_params import (  # noqa: F401  (re-exported: they were defined here first)
    ACTIVATION_LAYERS,
    SOLVERS,
    STOCHASTIC,
    check_params,
    make_optimizer,
)
from .monitor import CURVES, SklearnMonitor, rate_rule, record_divergence, resume_bookkeeping
from .sklearn_private import SklearnPrivateMixin, WeightViews, load_hand_set, write_weights


class BaseMLP(SklearnPrivateMixin, BaseEstimator):
    """Shared parameters, fitting and prediction. Subclasses define ``__init__`` (scikit-learn
    reads the parameter names from its signature), ``_validate_input`` and ``_score_raw``."""

    def _check_params(self) -> None:
        check_params(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR/CSC X is trained on as CSR, never made dense
        return tags

    # -- fitted attributes that live in the model -----------------------------------------------
    def _dense_layers(self) -> list[L.Dense]:
        check_is_fitted(self, "model_")
        return [layer for layer in self.model_.layers if isinstance(layer, L.Dense)]

    def _weights(self, key: str) -> list[np.ndarray]:
        if "model_" not in vars(self) and f"_hand_set_{key}" in vars(self):
            return vars(self)[f"_hand_set_{key}"]  # set by hand before fit (see _set_weights)
        return WeightViews(layer.params[key] for layer in self._dense_layers())

    def _set_weights(self, key: str, values: list[np.ndarray]) -> None:
        if "model_" not in vars(self):  # kept as given; partial_fit or warm_start starts there
            vars(self)[f"_hand_set_{key}"] = values if isinstance(values, list) else list(values)
            return
        write_weights(self._dense_layers(), key, values)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Views of each Dense layer's ``W`` ``(fan_in, fan_out)`` inside ``model_``."""
        return self._weights("W")

    @coefs_.setter
    def coefs_(self, values: list[np.ndarray]) -> None:
        self._set_weights("W", values)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Views of each Dense layer's ``b`` ``(fan_out,)`` inside ``model_``."""
        return self._weights("b")

    @intercepts_.setter
    def intercepts_(self, values: list[np.ndarray]) -> None:
        self._set_weights("b", values)

    # -- building -------------------------------------------------------------------------------
    def _train_dtype(self, X: np.ndarray) -> np.dtype:
        return np.dtype(self.dtype) if self.dtype is not None else X.dtype

    def _build(self, n_features: int, dtype: np.dtype, rs: np.random.RandomState) -> None:
        """``model_`` with scikit-learn's initial weights, and the fitted bookkeeping."""
        sizes = C.hidden_sizes(self)
        n_hidden = len(sizes)
        acts = C.per_layer(self, "activation", n_hidden)
        drops = C.per_layer(self, "dropout", n_hidden)
        units = [n_features, *sizes, self.n_outputs_]
        layers: list[L.Layer] = []
        for i, width in enumerate(sizes):
            layers.append(L.Dense(units[i], width))
            if self.normalization == "batch":
                layers.append(L.BatchNorm(width))
            elif self.normalization == "layer":
                layers.append(L.LayerNorm(width))
            layers.append(ACTIVATION_LAYERS[acts[i]]())
            if drops[i] > 0:
                layers.append(L.Dropout(drops[i]))
        layers.append(L.Dense(units[-2], self.n_outputs_))
        self.model_ = Sequential(layers, dtype=dtype, seed=C.model_seed(self.random_state, rs))
        last = acts[-1] if acts else (self.activation if isinstance(self.activation, str) else "")
        factors = [C.init_factor(a) for a in acts] + [C.init_factor(last)]
        draws = C.glorot_uniform(rs, units, factors, dtype)
        for layer, (W, b) in zip(self._dense_layers(), draws, strict=True):
            layer.params["W"][...] = W
            layer.params["b"][...] = b
        self.n_layers_ = len(units)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.validation_loss_curve_ = []
        self._best_params = self.model_.flat_parameters.copy()
        self._best_buffers = {k: v.copy() for k, v in self.model_.buffers().items()}
        self._trainer = None
        self._no_improvement_count = 0
        if self.solver in STOCHASTIC and self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf if self.solver in STOCHASTIC else None
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _check_same_network(self) -> None:
        """warm_start and partial_fit continue ``model_`` as it was built: hidden layer sizes,
        an activation, dropout, normalization or dtype changed since then would be ignored without a
        word (and the file saved afterwards would not load), so they are refused."""
        sizes = [layer.out_features for layer in self._dense_layers()[:-1]]
        n_hidden = len(C.hidden_sizes(self))  # the per-layer settings are checked against it
        norm = {"batch": L.BatchNorm, "layer": L.LayerNorm}.get(self.normalization)
        acts = C.per_layer(self, "activation", n_hidden)
        wanted: list[tuple] = []
        for act, rate in zip(acts, C.per_layer(self, "dropout", n_hidden), strict=True):
            wanted += [(norm, None)] if norm else []
            wanted += [(ACTIVATION_LAYERS[act], None)]
            wanted += [(L.Dropout, float(rate))] if rate > 0 else []
        built = [
            (type(layer), getattr(layer, "drop_rate", None))
            for layer in self.model_.layers
            if not isinstance(layer, L.Dense)
        ]
        dtype = self.model_.dtype if self.dtype is None else np.dtype(self.dtype)
        if built != wanted or C.hidden_sizes(self) != sizes or dtype != self.model_.dtype:
            names = [f"{t.__name__}({r})" if r else t.__name__ for t, r in built]
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r}, activation={self.activation!r}"
                f", dropout={self.dropout!r}, normalization={self.normalization!r}, dtype="
                f"{self.dtype!r} do not match the fitted network ({self.model_.dtype}, hidden "
                f"sizes {sizes}, {names} between its Dense layers): "
                "warm_start and partial_fit continue that network unchanged. Set the parameters "
                "back, or fit from scratch (warm_start=False)."
            )

    def _make_optimizer(self):
        return make_optimizer(self)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                stacklevel=4,
            )
        return int(np.clip(self.batch_size, 1, n))

    # -- fitting --------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False, validation_data=None):
        self._check_params()
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, Y, y_raw = self._validate_input(X, y, incremental, reset=first_pass)
        if not first_pass and Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {Y.shape[1]} output(s) per sample, but {type(self).__name__} was fitted "
                f"on {self.n_outputs_}: warm_start and partial_fit continue that network. Pass "
                "targets of the fitted width, or fit from scratch (warm_start=False)."
            )
        sw = self._sample_weight(sample_weight, X, y_raw, training=True, incremental=incremental)
        dtype = self._train_dtype(X) if first_pass else self.model_.dtype
        Y = Y.astype(dtype)
        rs = C.make_random_state(self.random_state)
        if first_pass:
            self.n_outputs_ = Y.shape[1]
            self.out_activation_ = self._out_activation()
            self._build(X.shape[1], dtype, rs)
            load_hand_set(self, incremental or self.warm_start)
        else:
            self._check_same_network()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        resume_bookkeeping(self)  # (a no-op on a first pass)
        train, validation = self._split(X, Y, y_raw, sw, rs, validation_data)
        if validation is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        Xt, Yt, wt = train
        n = Xt.shape[0]
        batch = n if self.solver == "lbfgs" else self._batch_size(n)
        monitor = SklearnMonitor(self, n, batch, validation, incremental)
        # partial_fit continues the optimizer of the last fit unless that was L-BFGS (whose
        # solver was switched since; scikit-learn then makes a new one too)
        resumable = incremental and getattr(self._trainer, "mode", "batch") != "batch"
        trainer = self._trainer if resumable else None
        if trainer is None:
            # A fresh fit gets a fresh copy of the schedule: the constructor's object is never
            # started or stepped (fit must not change constructor parameters), and no state
            # (a base rate, a plateau's reduced scale) carries over from an earlier fit.
            schedule = copy.deepcopy(get_schedule(self.schedule))
            plateau = schedule if isinstance(schedule, ReduceLROnPlateau) else None
            trainer = Trainer(
                self.model_,
                for_output(self.out_activation_),
                self._make_optimizer(),
                mode="batch" if self.solver == "lbfgs" else "minibatch",
                batch_size=batch,
                epochs=int(self.max_iter),
                shuffle=bool(self.shuffle),
                l1=float(self.l1),
                l2=float(self.alpha),
                clip_norm=self.clip_norm,
                schedule=None if self.solver == "lbfgs" or plateau else schedule,
                metrics=[],
                seed=0,  # unused: the sampler draws the order
                penalty_scale="per_sample",
                l1_method=self.l1_method,
            )
            self._trainer, self._rate_rule = trainer, rate_rule(self)
            trainer.step_count = sparsity.carried_updates(self, incremental)
            # a plateau watches the validation the monitor adds: it runs right after it
            self._plateau = [plateau] if plateau is not None else []
        trainer.batch_size = batch
        # penalties and shuffle as set now: a partial_fit after set_params(alpha=..., shuffle=...)
        # uses the new values, as scikit-learn's does (it reads them at every call)
        trainer.l1, trainer.l2 = float(self.l1), float(self.alpha)
        trainer.l1_method, trainer.clip_norm = self.l1_method, self.clip_norm
        trainer.shuffle = bool(self.shuffle)
        trainer.sampler = C.ShuffleSampler(rs)
        gradual = sparsity.callbacks(self, n, batch)  # pruning (issue 15): [] when sparsity=0
        trainer.callbacks = [
            monitor,
            *getattr(self, "_plateau", []),
            *gradual,
            *(self.callbacks or []),
        ]
        saved = self._snapshot(trainer) if incremental else None
        if self.solver != "lbfgs":
            self.n_iter_ = 0
        try:
            trainer.fit(
                Xt,
                Yt,
                sample_weight=wt,
                epochs=1 if incremental else int(self.max_iter),
                # Ctrl-C in partial_fit rolls back (below) and reaches the caller's loop
                interrupt="raise" if incremental else "warn",
            )
        except BaseException as exc:
            if saved is not None:  # a failed partial_fit changes nothing
                self._restore(trainer, saved)
            if not isinstance(exc, TrainingDivergedError):
                raise
            if not (self.early_stopping and self.solver in STOCHASTIC and saved is None):
                raise ValueError(
                    "Solver produced non-finite parameter weights. The input data may contain "
                    f"large values and need to be preprocessed. ({exc})"
                ) from exc
            record_divergence(self, exc)
        if self.solver == "lbfgs":
            self._finish_lbfgs(trainer.optimizer.result)
        elif monitor.max_iter_reached:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if not incremental:  # partial_fit: the next call carries the schedule on
            sparsity.finish(self, trainer)
        if not np.all(np.isfinite(self.model_.flat_parameters)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large "
                "values and need to be preprocessed."
            )
        return self

    def _snapshot(self, trainer: Trainer) -> tuple:
        """All one partial_fit call may change: fitted attributes (the curves, which only grow,
        by their lengths: copying them made each call slower than the last), the network and its
        mask, the dropout stream, the trainer (optimizer state, counters, shuffle, history)."""
        curves = {k: (v, len(v)) for k, v in vars(self).items() if k in CURVES and v is not None}
        skip = {"model_", "_trainer", "_plateau", *curves, *self.get_params(deep=False)}
        attrs = {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in skip}
        model = self.model_
        rng_state = copy.deepcopy(model.rng.bit_generator.state)
        mask = model.weight_mask  # (pruning replaces the mask, never edits it in place)
        return attrs, curves, model.state_dict(), rng_state, trainer.state_dict(), mask

    def _restore(self, trainer: Trainer, saved: tuple) -> None:
        attrs, curves, weights, rng_state, trainer_state, mask = saved
        vars(self).update(attrs)
        for name, (curve, n) in curves.items():
            del curve[n:]
            setattr(self, name, curve)
        self.model_.load_state_dict(weights)
        sparsity.pruning.set_mask(self.model_, mask)  # a GradualPruning step is undone too
        self.model_.rng.bit_generator.state = rng_state
        self.model_.zero_grad()
        trainer.load_state_dict(trainer_state)
        trainer.restore_callbacks()  # the same callbacks as at the snapshot: restore them now

    def _finish_lbfgs(self, result) -> None:
        """``n_iter_``, ``loss_`` and scikit-learn's warning when L-BFGS did not converge (the
        trainer stops SciPy through its callback at ``max_iter``, hence our own message)."""
        self.n_iter_ = min(int(result.nit), int(self.max_iter))
        self.loss_ = float(result.fun)
        if result.status != 0:
            reason = "the iteration limit max_iter" if self.n_iter_ >= self.max_iter else None
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s): stopped by "
                f"{reason or result.message}. Increase the number of iterations (max_iter) or "
                "scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _sample_weight(self, sample_weight, X, y_raw, training=False, incremental=False):
        """Checked weights with class weights applied; the class weights are computed from
        the training labels of a fit (``training=True``) and reused for validation data."""
        if training:
            self._fit_class_weights(y_raw, incremental)
        if sample_weight is None:
            return C.checked_weights(self._class_weight(None, y_raw))
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.ndim == 0:  # one number weighs every sample alike, as in scikit-learn
            sw = np.full(X.shape[0], sw)
        if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({X.shape[0]},)!")
        return C.checked_weights(self._class_weight(sw, y_raw))

    def _fit_class_weights(self, y_raw, incremental):
        pass

    def _class_weight(self, sw, y_raw):
        return sw

    def _split(self, X, Y, y_raw, sw, rs, validation_data):
        """(train, validation): ``(X, Y, w)`` and ``(X_val, y_val, Y_val, w_val)`` or None."""
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, w_val)")
            Xv, Yv, yv = self._validate_eval(validation_data[0], validation_data[1])
            w_given = validation_data[2] if len(validation_data) == 3 else None
            wv = self._sample_weight(w_given, Xv, yv)  # checked, class weights applied
            C.check_validation_set(Yv, Y.shape[1], given=True)
            return (X, Y, sw), (Xv, yv, Yv.astype(self.model_.dtype), wv)
        if not (self.early_stopping and self.solver in STOCHASTIC):
            return (X, Y, sw), None
        stratify = Y.astype(bool) if self._stratify() else None
        tr, va = C.early_stopping_split(rs, X.shape[0], self.validation_fraction, stratify)
        C.check_validation_set(Y[va], Y.shape[1], given=False)
        w_tr = None if sw is None else sw[tr]
        w_va = None if sw is None else sw[va]
        return (X[tr], Y[tr], w_tr), (X[va], y_raw[va], Y[va], w_va)

    def _stratify(self) -> bool:
        return False

    # -- prediction -----------------------------------------------------------------------------
    def _forward(self, X) -> np.ndarray:
        """Validated ``X`` through ``model_``: the raw outputs ``z`` ``(n_samples, n_outputs)``."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=False)
        return self.model_.predict(X)

    def _link(self, z: np.ndarray) -> np.ndarray:
        return for_output(self.out_activation_).link(z)

    def partial_fit_available(self) -> bool:
        if self.solver not in STOCHASTIC:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic."
            )
        return True
