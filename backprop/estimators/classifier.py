"""MLPClassifier: scikit-learn's classifier, trained by the project's Trainer.

Targets are encoded with a ``LabelBinarizer`` exactly as scikit-learn does: multi-class ->
one-hot rows and a softmax output (``LogLoss``); binary -> one column and a sigmoid output;
multi-label indicator matrices -> one sigmoid per label (``BinaryLogLoss``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .base import BaseMLP


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Every scikit-learn 1.9 parameter keeps its default and meaning (see its documentation). With
    float64 data and the same ``random_state``, ``fit`` reproduces scikit-learn's initial
    weights, batches, updates, ``loss_curve_`` and early-stopping split.

    Parameters
    ----------
    hidden_layer_sizes, alpha, batch_size, learning_rate, learning_rate_init, power_t : see scikit-learn
        As in scikit-learn, with its defaults and meanings; so are ``max_iter``, ``shuffle``,
        ``random_state``, ``tol``, ``verbose``, ``warm_start``, ``momentum``,
        ``nesterovs_momentum``, ``early_stopping``, ``validation_fraction``, ``beta_1``,
        ``beta_2``, ``epsilon``, ``n_iter_no_change`` and ``max_fun``.
    activation
        also "leaky_relu", "elu", "gelu", "silu", "softplus", or a list with one
        name per hidden layer.
    solver
        also "rmsprop", "adagrad", "adamw" (``learning_rate_init``, ``epsilon``,
        ``beta_1``/``beta_2`` and ``weight_decay`` apply).
    dropout
        fraction of units dropped after each hidden activation (one rate, or a list);
        refused with ``solver="lbfgs"``, whose line search needs a deterministic loss.
    normalization
        None, "batch" or "layer" (after each hidden Dense, before activation;
        with "batch" a last batch of one row joins the previous batch).
    l1
        L1 penalty on the weights, scaled per sample like ``alpha``.
    clip_norm
        clip the global gradient norm of every update to this bound.
    weight_decay
        decoupled weight decay of the "adamw" solver.
    schedule
        a backprop Schedule for the stochastic solvers, replacing ``learning_rate``;
        or the name of one that needs no arguments ("constant", "invscaling",
        "plateau"); "step", "exponential" and "cosine" need an instance
        (``bp.CosineDecay(total=...)``).
    class_weight
        None, "balanced" or ``{class: weight}``; multiplies ``sample_weight``.
    dtype
        None (the data's: float32 stays float32, the rest float64), "float32" or
        "float64": the dtype of the weights and of the training arithmetic.
    callbacks
        backprop Callbacks, run by the Trainer after the estimator's own.
    l1_method
        "subgradient" (``l1 * sign(w)`` in the gradient) or "proximal" (soft-thresholding
        after each step: exact zeros; not with "lbfgs").
    sparsity
        fraction of the weights to prune by magnitude (:mod:`backprop.pruning`), raised along
        Zhu & Gupta's cubic curve over the first ``pruning_epochs`` epochs; if training stops
        before that, the rest is pruned in one shot at the end (with a warning). 0 prunes
        nothing. Each ``partial_fit`` call is one epoch of the curve: ``sparsity`` is reached
        after ``pruning_epochs`` calls of equal size.
    pruning_epochs
        epochs over which the sparsity rises to ``sparsity``.

    Notes
    -----
    Extra fit argument ``validation_data=(X_val, y_val[, w_val])``: the validation set for
    ``early_stopping`` instead of a split of (X, y), and for ``validation_loss_curve_`` and
    ``validation_scores_`` even without early stopping.

    Fitted attributes: scikit-learn's (``classes_``, ``coefs_``, ``intercepts_``, ``loss_``,
    ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
    ``n_iter_``, ``t_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``,
    ``n_features_in_``), plus ``model_`` (the Sequential, raw logits out) and
    ``validation_loss_curve_`` (the loss on the validation set after each epoch, without the
    penalty terms). ``coefs_``/``intercepts_`` are views into ``model_``;
    with ``solver="lbfgs"`` ``loss_curve_`` holds the loss of every iteration.
    """

    def __init__(
        self,
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
        class_weight: Any = None,
        dtype: Any = None,
        callbacks: Any = None,
        l1_method: str = "subgradient",
        sparsity: float = 0.0,
        pruning_epochs: int = 10,
    ) -> None:
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
        self.class_weight = class_weight
        self.dtype = dtype
        self.callbacks = callbacks
        self.l1_method = l1_method
        self.sparsity = sparsity
        self.pruning_epochs = pruning_epochs

    def fit(self, X: Any, y: Any, sample_weight: Any = None, validation_data: Any = None):
        """Fit on ``X`` ``(n_samples, n_features)`` and labels ``y`` ``(n_samples,)`` (or a
        label-indicator matrix ``(n_samples, n_labels)``); returns self."""
        return self._fit(X, y, sample_weight, incremental=False, validation_data=validation_data)

    @available_if(lambda est: est.partial_fit_available())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None):
        """One epoch over (X, y). ``classes`` (every label) is required on the first call."""
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and getattr(self, "classes_", None) is not None:
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                    f"was: {self.classes_!r}"
                )
        elif classes is not None:
            self.classes_ = unique_labels(classes)
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y), y

    def _validate_eval(self, X, y):
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            reset=False,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unknown):
            raise ValueError(
                f"validation labels {unknown} are not among the classes {self.classes_}"
            )
        return X, self._label_binarizer.transform(y), y

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self) -> bool:
        return self.n_outputs_ == 1

    def _fit_class_weights(self, y_raw, incremental):
        """One weight per class, from the training labels of this fit: validation data gets
        the same weights (never weights from its own class counts)."""
        self._class_weights = None
        if self.class_weight is None:
            return
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported for multi-label targets")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                f"class_weight={self.class_weight!r} is not supported by partial_fit: one chunk's "
                "class counts are not the data's (and a chunk may miss a class). Compute the "
                "weights once, e.g. sklearn.utils.class_weight.compute_class_weight('balanced', "
                "classes=classes, y=y_sample), and pass them as a {class: weight} dict"
            )
        self._class_weights = compute_class_weight(
            self.class_weight, classes=self.classes_, y=y_raw
        )

    def _class_weight(self, sw, y_raw):
        if self.class_weight is None:
            return sw
        per_sample = self._class_weights[np.searchsorted(self.classes_, y_raw)]
        return per_sample if sw is None else sw * per_sample

    def _decode(self, z: np.ndarray):
        p = self._link(z)
        return self._label_binarizer.inverse_transform(p.ravel() if self.n_outputs_ == 1 else p)

    def _score_raw(self, z, y, sample_weight=None) -> float:
        if not np.all(np.isfinite(z)):
            return np.nan
        return float(accuracy_score(y, self._decode(z), sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``(n_samples,)`` (or an indicator matrix for multi-label).

        Parameters
        ----------
        X : Any
            Input rows ``(n_samples, n_features)``, dense or scipy.sparse.

        Returns
        -------
        np.ndarray
            Labels ``(n_samples,)``, or an indicator matrix ``(n_samples, n_classes)`` for multi-label targets.
        """
        return self._decode(self._forward(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n_samples, n_classes)`` in the order of ``classes_``.

        Parameters
        ----------
        X : Any
            Input rows ``(n_samples, n_features)``, dense or scipy.sparse.

        Returns
        -------
        np.ndarray
            Probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``.
        """
        check_is_fitted(self, "model_")
        p = self._link(self._forward(X))
        if self.n_outputs_ == 1:
            p = p.ravel()
            return np.vstack([1 - p, p]).T
        return p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``.

        Parameters
        ----------
        X : Any
            Input rows ``(n_samples, n_features)``, dense or scipy.sparse.

        Returns
        -------
        np.ndarray
            Log-probabilities ``(n_samples, n_classes)``.
        """
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def predict_proba_mc(
        self, X: Any, n_samples: int = 30, random_state: int | None = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """MC dropout (Gal & Ghahramani 2016): ``predict_proba`` averaged over ``n_samples``
        passes with dropout on (see :func:`backprop.mc_dropout_predict`). Needs ``dropout > 0``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        n_samples : int
            Forward passes, each with new dropout masks.
        random_state : int or None
            The masks (the fitted model's own random stream is not used).

        Returns
        -------
        mean, std : ndarray (n_samples, n_classes)
            Mean and standard deviation of the probabilities, in the order of ``classes_``.
        """
        from ..uncertainty import mc_dropout_predict

        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=False)
        kind = "softmax" if self.out_activation_ == "softmax" else "sigmoid"
        mc = mc_dropout_predict(self.model_, X, n_samples, output=kind, seed=random_state)
        if self.n_outputs_ == 1:
            p, s = mc.mean.ravel(), mc.std.ravel()
            return np.vstack([1 - p, p]).T, np.vstack([s, s]).T
        return mc.mean, mc.std

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
