"""MLPRegressor: scikit-learn's regressor, trained by the project's Trainer.

``loss="squared_error"``: identity output, half squared error; ``loss="poisson"``: exp output,
half Poisson deviance (see :mod:`.losses` for the exact conventions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import column_or_1d, validate_data

from .base import BaseMLP


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Same parameters, extras and fitted attributes as :class:`MLPClassifier` (without
    ``class_weight`` and ``classes_``), plus scikit-learn's ``loss`` ("squared_error" or
    "poisson"). Single- and multi-output targets; ``predict`` returns ``(n_samples,)`` for one
    output and ``(n_samples, n_outputs)`` otherwise.

    Parameters
    ----------
    loss : str, default "squared_error"
        "squared_error" or "poisson", as in scikit-learn.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate : see MLPClassifier
        These and the other parameters are those of :class:`MLPClassifier` (scikit-learn's and
        the extras), without ``class_weight``.
    """

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        dropout: Any = 0.0,
        normalization: str | None = None,
        l1: float = 0.0,
        clip_norm: float | None = None,
        weight_decay: float = 0.01,
        schedule: Any = None,
        dtype: Any = None,
        callbacks: Any = None,
        l1_method: str = "subgradient",
        sparsity: float = 0.0,
        pruning_epochs: int = 10,
    ) -> None:
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.normalization = normalization
        self.l1 = l1
        self.clip_norm = clip_norm
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.dtype = dtype
        self.callbacks = callbacks
        self.l1_method = l1_method
        self.sparsity = sparsity
        self.pruning_epochs = pruning_epochs

    def fit(self, X: Any, y: Any, sample_weight: Any = None, validation_data: Any = None):
        """Fit on ``X`` ``(n_samples, n_features)`` and targets ``y`` ``(n_samples,)`` or
        ``(n_samples, n_outputs)``; returns self."""
        return self._fit(X, y, sample_weight, incremental=False, validation_data=validation_data)

    @available_if(lambda est: est.partial_fit_available())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_params(self) -> None:
        from .conventions import check_options

        check_options(self, "loss", ("squared_error", "poisson"))
        super()._check_params()

    def _check_same_network(self) -> None:
        """Also the loss: the fitted network's output link (``exp`` for Poisson) and its loss
        are kept when training continues, so a loss changed since is refused."""
        super()._check_same_network()
        if self._out_activation() != self.out_activation_:
            raise ValueError(
                f"loss={self.loss!r} does not match the fitted network (output "
                f"{self.out_activation_!r}): warm_start and partial_fit continue that network "
                "with its loss. Set loss back, or fit from scratch (warm_start=False)."
            )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=True,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative targets y, got negative values")
        return X, y.reshape(-1, 1) if y.ndim == 1 else y, y

    def _validate_eval(self, X, y):
        return self._validate_input(X, y, True, False)

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _score_raw(self, z, y, sample_weight=None) -> float:
        if not np.all(np.isfinite(z)):
            return np.nan
        p = self._link(z)
        return float(r2_score(y, p.ravel() if p.shape[1] == 1 else p, sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n_samples,)`` for one output, else ``(n_samples, n_outputs)``.

        Parameters
        ----------
        X : Any
            Input rows ``(n_samples, n_features)``, dense or scipy.sparse.

        Returns
        -------
        np.ndarray
            ``(n_samples,)`` for one output, else ``(n_samples, n_outputs)``.
        """
        p = self._link(self._forward(X))
        return p.ravel() if p.shape[1] == 1 else p

    def predict_mc(
        self, X: Any, n_samples: int = 30, random_state: int | None = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """MC dropout (Gal & Ghahramani 2016): mean and standard deviation of the predictions
        over ``n_samples`` passes with dropout on. Needs ``dropout > 0``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        n_samples : int
        random_state : int or None
            The dropout masks.

        Returns
        -------
        mean, std : ndarray, shaped like :meth:`predict`'s output
        """
        from sklearn.utils.validation import check_is_fitted

        from ..uncertainty import mc_dropout_predict

        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=False)
        output = "exp" if self.out_activation_ == "exp" else "identity"  # Poisson: the rates
        mc = mc_dropout_predict(self.model_, X, n_samples, output=output, seed=random_state)
        if mc.mean.shape[1] == 1:
            return mc.mean.ravel(), mc.std.ravel()
        return mc.mean, mc.std
