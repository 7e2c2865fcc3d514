"""NeuralNetClassifier / NeuralNetRegressor: scikit-learn estimators over any layer stack.

Where :class:`~backprop.MLPClassifier` reproduces scikit-learn's MLP to the last bit, these
estimators take a network as given and train it with the project's :class:`~backprop.Trainer`,
its options passed through unchanged::

    layers       a list of layers, or a function returning one (called at every fit)
    +            Dense(n_outputs) appended when output_layer=True (n_classes logits, or the
                 number of regression targets), so one stack serves any number of classes
    fit(X, y)    X (n_samples, *in_shape): tabular, images (n, h, w, c), sequences (n, t, d),
                 token ids (a first layer with integer_input=True takes them uncast)

The layers given are never modified: every fit builds a deep copy (or calls the function), so
``clone``, ``GridSearchCV`` and ``cross_val_score`` see the parameters they set. The fitted
network is ``model_`` (a Sequential), the per-epoch logs ``history_``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from .. import losses as losses_mod
from .. import optimizers as optimizers_mod
from ..layers import Dense, Layer, ReLU
from ..model import Sequential
from ..trainer import Trainer
from . import conventions
from .conventions import check_network_output, fitted_for, make_random_state, neuralnet_warm_start

LayerStack = Sequence[Layer] | Callable[[], Sequence[Layer]] | None


class NeuralNet(BaseEstimator):
    """Shared parameters, fitting and prediction (subclasses choose the loss and the targets).

    Parameters
    ----------
    layers : LayerStack, default None
        the network, without its output layer when ``output_layer`` is True: a list of
        layers (copied at every fit), or a function returning a fresh list. None: one hidden
        layer ``[Dense(100), ReLU()]``.
    output_layer : bool, default True
        append ``Dense(n_outputs)``.
    optimizer : Any, default 'adam'
        a name ("adam", "sgd", ..., "lbfgs") built with ``lr``, or an Optimizer
        instance (copied at every fit; ``lr`` is then ignored).
    lr : float, default 0.001
        learning rate for an optimizer given by name.
    mode, batch_size, epochs, shuffle, l1, l2, clip_norm, clip_value, schedule, callbacks
        the :class:`~backprop.Trainer`'s options (callbacks are copied at every fit).
    validation_split : float | None, default None
        fraction of the training data held out; ``history_`` then has
        ``val_loss``.
    dtype : str | None, default None
        "float32", "float64", or None (default) for the dtype of X (float32 X trains a
        float32 network; float64 X, like scikit-learn's, a float64 one; token ids float32).
    random_state : Any, default None
        None (fresh entropy from the OS; NumPy's global state is never used), an int, a
        RandomState or a Generator: initial weights, dropout, batch order.
    warm_start : bool, default False
        continue training ``model_`` on the next fit instead of starting over.
    """

    def __init__(
        self,
        layers: LayerStack = None,
        *,
        output_layer: bool = True,
        optimizer: Any = "adam",
        lr: float = 1e-3,
        mode: str = "minibatch",
        batch_size: int = 32,
        epochs: int = 10,
        shuffle: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        schedule: Any = None,
        callbacks: list | None = None,
        validation_split: float | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        warm_start: bool = False,
    ) -> None:
        self.layers = layers
        self.output_layer = output_layer
        self.optimizer = optimizer
        self.lr = lr
        self.mode = mode
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.l1 = l1
        self.l2 = l2
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.schedule = schedule
        self.callbacks = callbacks
        self.validation_split = validation_split
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start

    # -- hooks for the subclasses ---------------------------------------------------------------
    def _loss(self) -> losses_mod.Loss:
        raise NotImplementedError

    def _targets(self, y: Any, reset: bool) -> np.ndarray:
        """Encoded training targets; sets ``n_outputs_`` (and ``classes_``) when ``reset``."""
        raise NotImplementedError

    # -- fitting --------------------------------------------------------------------------------
    def _stack(self) -> list[Layer]:
        if self.layers is None:
            stack: list[Any] = [Dense(100), ReLU()]
        elif callable(self.layers):
            stack = list(self.layers())
        else:
            stack = copy.deepcopy(list(self.layers))
        for i, layer in enumerate(stack):
            if not isinstance(layer, Layer):
                raise ValueError(f"layers[{i}] is {layer!r}, not a backprop Layer")
        return stack

    def _validate_X(self, X: Any, reset: bool, integer: bool) -> np.ndarray:
        dtype = None if integer else (np.float64, np.float32)
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=dtype, accept_sparse="csr")
        if integer and X.dtype.kind not in "iu":
            raise ValueError(f"the first layer takes integer input, got X of dtype {X.dtype}")
        return X

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNet:
        """Train the network on ``X`` ``(n_samples, *in_shape)`` and targets ``y``, each sample's
        loss weighted by ``sample_weight`` (the Trainer's weighted mean) when given."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        continuing = neuralnet_warm_start(self) and hasattr(self, "model_")
        if continuing:
            model = fitted_for(self, X)  # samples of another shape are named as shapes
            X = self._validate_X(X, False, model.integer_input)
            Y = self._targets(y, reset=False)
        else:
            stack = self._stack()
            integer = bool(stack and stack[0].integer_input)
            X = self._validate_X(X, True, integer)
            Y = self._targets(y, reset=True)
            if self.output_layer:
                stack.append(Dense(self.n_outputs_))
            if not stack:
                raise ValueError("layers is empty and output_layer is False: no network to train")
            seed = int(make_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            self._seed = seed
            dtype = self.dtype
            if dtype is None:
                dtype = X.dtype if X.dtype.kind == "f" else np.float32
            model = Sequential(stack, input_shape=X.shape[1:], dtype=dtype, seed=seed)
            check_network_output(model, self.n_outputs_, hasattr(self, "classes_"))
        if X.shape[0] != len(Y):  # X.shape: a scipy.sparse X has no len()
            raise ValueError(f"X has {X.shape[0]} samples but y has {len(Y)}")
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            kwargs = {} if optimizer == "lbfgs" else {"lr": self.lr}
            optimizer = optimizers_mod.get(optimizer, **kwargs)
        trainer = Trainer(
            model,
            self._loss(),
            copy.deepcopy(optimizer),
            mode=self.mode,
            batch_size=self.batch_size,
            epochs=self.epochs,
            shuffle=self.shuffle,
            l1=self.l1,
            l2=self.l2,
            clip_norm=self.clip_norm,
            clip_value=self.clip_value,
            schedule=copy.deepcopy(self.schedule),
            callbacks=copy.deepcopy(list(self.callbacks or [])),
            metrics=[],
            seed=self._seed + 1 + (len(self.history_["loss"]) if continuing else 0),
        )
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.ndim == 0:  # one number for every sample, as in scikit-learn
                sample_weight = np.full(X.shape[0], sample_weight)
            if sample_weight.shape != (X.shape[0],):
                raise ValueError(
                    f"sample_weight.shape == {sample_weight.shape}, expected ({X.shape[0]},)!"
                )
            if sample_weight.sum() <= 0:
                raise ValueError("sample_weight sums to zero: no sample to learn from")
        history = trainer.fit(
            X, Y, validation_split=self.validation_split, sample_weight=sample_weight
        )
        logs = {k: [float(v) for v in values] for k, values in history.items()}
        self.history_ = conventions.merge_history(self.history_, logs) if continuing else logs
        self.model_ = model
        self.n_iter_ = len(self.history_["loss"])
        self.loss_curve_ = list(self.history_["loss"])
        if not np.all(np.isfinite(model.flat_parameters)):
            raise ValueError("training produced non-finite weights; lower lr or scale the data")
        return self

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's raw outputs for ``X`` (logits, log-rates or values)."""
        fitted_for(self, X)
        X = self._validate_X(X, False, self.model_.integer_input)
        return self.model_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.sparse = True  # as CSR, when the first layer takes it (a Dense does)
        return tags


class NeuralNetClassifier(ClassifierMixin, NeuralNet):
    """Classification over any layer stack: softmax cross-entropy on ``n_classes`` logits.

    ``y`` holds one label per sample (numbers or strings); ``classes_`` are the sorted labels.
    See :class:`NeuralNet` for the parameters.

    Parameters
    ----------
    layers, output_layer, optimizer, lr, mode, batch_size, epochs : see NeuralNet
        These and the other parameters are those of :class:`NeuralNet`.
    """

    def _loss(self) -> losses_mod.Loss:
        return losses_mod.SoftmaxCrossEntropy()

    def _targets(self, y: Any, reset: bool) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                    f"({self.classes_[0]!r})"
                )
            self.n_outputs_ = len(self.classes_)
            return codes.astype(np.int64)
        known = np.isin(y, self.classes_)
        if not known.all():
            raise ValueError(f"y has labels not seen in the first fit: {np.unique(y[~known])}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``: the softmax of the logits.

        Parameters
        ----------
        X : Any
            Input samples, of the shape the network was fitted on.

        Returns
        -------
        np.ndarray
            Probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``.
        """
        return special.softmax(self._outputs(X).astype(np.float64), axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return special.log_softmax(self._outputs(X).astype(np.float64), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample.

        Parameters
        ----------
        X : Any
            Input samples, of the shape the network was fitted on.

        Returns
        -------
        np.ndarray
            Labels ``(n_samples,)`` taken from ``classes_``.
        """
        z = self._outputs(X)  # checks that the estimator is fitted, first
        return self.classes_[np.argmax(z, axis=1)]


class NeuralNetRegressor(RegressorMixin, NeuralNet):
    """Regression over any layer stack.

    Parameters
    ----------
    loss : str, default 'mse'
        "mse" (default), "mae", "huber" or "poisson" (the network outputs log-rates and
        ``predict`` returns ``exp`` of them; targets must be counts >= 0).
        (the rest: see :class:`NeuralNet`)

    """

    LOSSES = ("mse", "mae", "huber", "poisson")

    # scikit-learn reads the parameter names from __init__'s signature: all of them are listed.
    def __init__(
        self,
        layers: LayerStack = None,
        *,
        loss: str = "mse",
        output_layer: bool = True,
        optimizer: Any = "adam",
        lr: float = 1e-3,
        mode: str = "minibatch",
        batch_size: int = 32,
        epochs: int = 10,
        shuffle: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        schedule: Any = None,
        callbacks: list | None = None,
        validation_split: float | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        warm_start: bool = False,
    ) -> None:
        super().__init__(
            layers,
            output_layer=output_layer,
            optimizer=optimizer,
            lr=lr,
            mode=mode,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=shuffle,
            l1=l1,
            l2=l2,
            clip_norm=clip_norm,
            clip_value=clip_value,
            schedule=schedule,
            callbacks=callbacks,
            validation_split=validation_split,
            dtype=dtype,
            random_state=random_state,
            warm_start=warm_start,
        )
        self.loss = loss

    def _loss(self) -> losses_mod.Loss:
        if self.loss not in self.LOSSES:
            raise ValueError(f"loss must be one of {self.LOSSES}, got {self.loss!r}")
        return losses_mod.get(self.loss)

    def _targets(self, y: Any, reset: bool) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            y = y.astype(np.float64)  # objects holding numbers; anything else raises here
        y = y.astype(np.float64)
        self._exp_link = self.loss == "poisson"  # predict's link: the loss of the last fit
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity")
        Y = y.reshape(len(y), -1)
        if reset:
            self.n_outputs_ = Y.shape[1]
            self._y_1d = y.ndim == 1
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} targets, the network {self.n_outputs_}")
        return Y  # float64; the loss casts it to the network's dtype batch by batch

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n_samples,)`` for a 1-D training target, else ``(n, n_outputs)``.

        Parameters
        ----------
        X : Any
            Input samples, of the shape the network was fitted on.

        Returns
        -------
        np.ndarray
            ``(n_samples,)`` for a 1-D training target, else ``(n_samples, n_outputs)``.
        """
        z = self._outputs(X).astype(np.float64)
        p = np.exp(z) if getattr(self, "_exp_link", self.loss == "poisson") else z
        return p.ravel() if self._y_1d and p.shape[1] == 1 else p

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
