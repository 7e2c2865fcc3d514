"""scikit-learn's conventions, reproduced draw for draw: random state, initial weights, the
early-stopping split, the per-epoch shuffle, and constructor-parameter validation.

scikit-learn's MLP draws everything from one ``np.random.RandomState``, re-created from
``random_state`` at every call to ``fit``/``partial_fit``, in this order:

1. (first fit only) for each layer ``i``: ``W_i ~ U(-a, a)`` of shape ``(fan_in, fan_out)``,
   then ``b_i ~ U(-a, a)`` of shape ``(fan_out,)``, with ``a = sqrt(f / (fan_in + fan_out))``,
   ``f = 2`` for the logistic activation and ``f = 6`` otherwise (Glorot et al.);
2. (early stopping only) the train/validation split, ``train_test_split(...,
   test_size=validation_fraction)``, stratified only for single-output classification;
3. once per epoch: the order of the training indices, ``RandomState.shuffle(arange(n))``.

This is the one place in the project that uses a ``RandomState``: bit-for-bit parity needs it.
The global NumPy state is never used: ``random_state=None`` seeds a fresh ``RandomState`` from
the operating system's entropy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from .. import checks
from .sklearn_private import InvalidParameterError

#: Hidden activations we accept: scikit-learn's four plus the project's extra layers.
ACTIVATIONS = (
    "identity",
    "logistic",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "softplus",
)


def make_random_state(random_state: Any) -> np.random.RandomState:
    """A ``RandomState`` from None (fresh OS entropy), an int, a ``RandomState`` (used as is,
    so its stream advances, as in scikit-learn) or a ``Generator`` (seeds a new one)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(random_state.integers(0, 2**32, size=4, dtype=np.uint32))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise ValueError(
        f"random_state must be None, an int, a numpy RandomState or Generator; got {random_state!r}"
    )


def model_seed(random_state: Any, rs: np.random.RandomState) -> np.random.Generator:
    """The Generator for dropout masks, derived without advancing ``rs`` (so that switching
    dropout on never changes the initial weights, the split or the batches)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(np.random.SeedSequence([int(random_state), 0x5EED]))
    return np.random.default_rng(np.random.SeedSequence(rs.get_state(legacy=True)[1]))


def glorot_uniform(
    rs: np.random.RandomState, layer_units: Sequence[int], factors: Sequence[float], dtype: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's initial ``(W_i, b_i)`` for each pair of consecutive layer widths, drawn in
    float64 and cast to ``dtype``; ``factors[i]`` is the ``f`` of layer ``i``."""
    out = []
    for fan_in, fan_out, f in zip(layer_units[:-1], layer_units[1:], factors, strict=True):
        bound = np.sqrt(f / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False)
        b = rs.uniform(-bound, bound, fan_out).astype(dtype, copy=False)
        out.append((W, b))
    return out


def init_factor(activation: str) -> float:
    """Glorot's ``f``: 2 for the logistic sigmoid, 6 for everything else."""
    return 2.0 if activation == "logistic" else 6.0


class ShuffleSampler:
    """The Trainer's ``sampler``, reproducing scikit-learn's epoch order: it keeps the previous
    epoch's order and permutes *that* (``order = order[perm]``, ``perm`` from
    ``rs.shuffle(arange(n))``, the draw ``sklearn.utils.shuffle`` makes), starting from the
    indices as given. A class, not a closure, so that fitted estimators pickle."""

    def __init__(self, rs: np.random.RandomState) -> None:
        self.rs = rs
        self.order: np.ndarray | None = None

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        if self.order is None or len(self.order) != len(indices):
            self.order = np.asarray(indices)
        perm = np.arange(len(indices))
        self.rs.shuffle(perm)
        self.order = self.order[perm]
        return self.order


def early_stopping_split(
    rs: np.random.RandomState, n_samples: int, fraction: float, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices, in the order scikit-learn gathers its rows."""
    idx = np.arange(n_samples)
    train, val = train_test_split(idx, random_state=rs, test_size=fraction, stratify=stratify)
    return train, val


def checked_weights(w: np.ndarray | None) -> np.ndarray | None:
    """Per-sample weights (class weights applied) that train or score something: finite, not
    negative, and not all zero (scikit-learn's message; a validation set weighted all zero
    cannot be scored), checked before any training."""
    if w is None:
        return None
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinity")
    if np.any(w < 0):
        raise ValueError("Negative values in data passed to sample_weight")
    if not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w


def check_validation_set(Y_val: np.ndarray, n_outputs: int, given: bool) -> None:
    """A validation set the monitor can score: at least 2 samples (r2 of one sample is NaN, and
    early stopping on NaN scores never keeps a best epoch) and the training targets' width.
    ``given``: from ``validation_data`` rather than scikit-learn's split of the training data."""
    if Y_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. "
            + (
                f"validation_data has {Y_val.shape[0]} sample(s); pass at least 2."
                if given
                else "Increase 'validation_fraction' or the size of your dataset."
            )
        )
    if Y_val.shape[1] != n_outputs:
        raise ValueError(
            f"validation_data has {Y_val.shape[1]} output(s) per sample, the training targets "
            f"{n_outputs}"
        )


# -- constructor-parameter validation, with scikit-learn's wording --------------------------------
_is_real = checks.is_real  # one definition of a number for the library (backprop.checks)
_is_int = checks.is_integer


def _fail(est: Any, name: str, must: str, value: Any) -> None:
    # scikit-learn's own error class (a ValueError and a TypeError), so that callers catching
    # it, or TypeError, work unchanged
    raise InvalidParameterError(
        f"The {name!r} parameter of {type(est).__name__} must be {must}. Got {value!r} instead."
    )


def check_real(est: Any, name: str, low: float, high: float | None = None, closed: str = "left"):
    """``low <= value`` (or ``<`` when ``closed`` excludes it) and likewise for ``high``."""
    v = getattr(est, name)
    lo_ok = _is_real(v) and (v >= low if closed in ("left", "both") else v > low)
    hi_ok = high is None or (
        _is_real(v) and (v <= high if closed in ("right", "both") else v < high)
    )
    if not (lo_ok and hi_ok) or (_is_real(v) and not np.isfinite(v)):  # "[0, inf)" excludes inf
        left = "[" if closed in ("left", "both") else "("
        right = "]" if closed in ("right", "both") else ")"
        _fail(
            est,
            name,
            f"a float in the range {left}{low}, {'inf' if high is None else high}{right}",
            v,
        )


def check_int(est: Any, name: str, low: int, allow_inf: bool = False) -> None:
    v = getattr(est, name)
    if allow_inf and _is_real(v) and v == np.inf:
        return
    if not (_is_int(v) and v >= low):
        extra = " or inf" if allow_inf else ""
        _fail(est, name, f"an int in the range [{low}, inf){extra}", v)


def check_options(est: Any, name: str, options: Sequence[Any]) -> None:
    v = getattr(est, name)
    if not isinstance(v, str) or v not in options:
        _fail(est, name, f"a str among {sorted(options)}", v)


def check_bool(est: Any, name: str) -> None:
    v = getattr(est, name)
    if not isinstance(v, bool | np.bool_):
        _fail(est, name, "an instance of 'bool'", v)


def per_layer(est: Any, name: str, n_hidden: int) -> list[Any]:
    """A per-hidden-layer setting given once (applies to every hidden layer) or as a list."""
    v = getattr(est, name)
    if isinstance(v, np.ndarray) and v.ndim == 1:  # a list in an array, as hidden_layer_sizes
        v = v.tolist()
    if isinstance(v, str) or not isinstance(v, Sequence):
        return [v] * n_hidden
    if len(v) != n_hidden:
        raise ValueError(
            f"{name} has {len(v)} entries but there are {n_hidden} hidden layers "
            f"(hidden_layer_sizes={est.hidden_layer_sizes!r})"
        )
    return list(v)


def hidden_sizes(est: Any) -> list[int]:
    """``hidden_layer_sizes`` as a list of positive ints (an int means one hidden layer)."""
    sizes = est.hidden_layer_sizes
    if not hasattr(sizes, "__iter__"):
        sizes = [sizes]
    sizes = list(sizes)
    for s in sizes:
        if not _is_int(s) or s <= 0:
            raise InvalidParameterError(
                f"hidden_layer_sizes must be > 0, got {est.hidden_layer_sizes!r}."
            )
    return [int(s) for s in sizes]


def check_layer_list(est: Any) -> None:
    """``layers`` must be a list of layers or a function returning one: a single layer, table or
    string (which ``list()`` would take apart letter by letter) is refused by name."""
    from ..layers.base import Layer

    if isinstance(est.layers, Layer | str | dict):
        raise TypeError(
            f"{type(est).__name__}: layers must be a list of layers (or a function returning "
            f"one), got {est.layers!r}"
        )


def fitted_for(est: Any, X: Any) -> Any:
    """``est`` is fitted, and ``X`` holds samples of its network's shape (named as shapes:
    scikit-learn's own message, kept for flat data, counts ``X.shape[1]``, an image's height, as
    its features); returns the network ``est.model_``."""
    check_is_fitted(est, "model_")
    in_shape = est.model_.in_shape
    shape = getattr(X, "shape", None)  # arrays; nested lists by their shape; anything else
    if shape is None and isinstance(X, list | tuple):  # (ragged lists) is validate_data's
        try:
            shape = np.shape(X)
        except ValueError:
            shape = None
    shape = tuple(shape)[1:] if isinstance(shape, tuple) else tuple(in_shape)
    if (len(shape) > 1 or len(in_shape) > 1) and shape != tuple(in_shape):
        raise ValueError(
            f"X has samples of shape {shape}, but {type(est).__name__} was fitted on samples "
            f"of shape {tuple(in_shape)}"
        )
    return est.model_


def check_network_output(model: Any, n_outputs: int, classifier: bool) -> None:
    """A NeuralNet* network must give ``(n_outputs,)`` raw values per sample (logits for a
    classifier, whose loss applies the softmax). Else predict_proba would have other columns than
    ``classes_`` (or ``predict`` an index past them), or probabilities of probabilities."""
    last = model.layers[-1]
    if model.out_shape != (n_outputs,) or (classifier and type(last).__name__ == "Softmax"):
        raise ValueError(
            f"the network ends in {last!r} with {model.out_shape} outputs per sample; the "
            f"estimator needs ({n_outputs},) raw values (a classifier's logits: its loss applies "
            "the softmax). End the layers in features (n, k), e.g. with Flatten, and let "
            "output_layer=True add Dense(n_outputs)"
        )


def neuralnet_warm_start(est: Any) -> bool:
    """A NeuralNet estimator's ``warm_start``, once it and ``output_layer`` are checked to be
    bools (a string such as "no" is true: it would continue training, or add a layer) and
    ``layers`` to be a list (:func:`check_layer_list`): the parameters ``fit`` reads first."""
    check_layer_list(est)
    for name in ("warm_start", "output_layer"):
        if not isinstance(getattr(est, name), bool | np.bool_):
            raise ValueError(f"{name} must be True or False, got {getattr(est, name)!r}")
    if est.warm_start and hasattr(est, "model_"):
        check_same_stack(est)
    return bool(est.warm_start)


def check_same_stack(est: Any) -> None:
    """A warm fit continues ``est.model_``: a ``layers`` list or ``output_layer`` changed since
    it was built would be ignored without a word, so it is refused. Layers are compared by
    their specs (type and settings; ``trainable`` may differ: freezing is fine-tuning); a
    function's stack, or one with unregistered layers, is not compared."""
    from ..layers import Dense, ReLU, layer_spec

    given = [Dense(100), ReLU()] if est.layers is None else est.layers
    if callable(given):
        return
    built = est.model_.layers[:-1] if est.output_layer else est.model_.layers

    def spec(layer: Any) -> tuple:
        full = layer_spec(layer)
        return full["type"], full["config"]

    same = len(given) == len(built)
    try:
        same = same and all(spec(a) == spec(b) for a, b in zip(given, built, strict=True))
    except TypeError:  # an unregistered layer: only the number of layers is compared
        pass
    if not same:
        raise ValueError(
            f"layers={given!r} and output_layer={est.output_layer!r} do not match the fitted "
            f"network ({[type(layer).__name__ for layer in est.model_.layers]}): warm_start "
            "continues that network unchanged. Set them back, or fit from scratch "
            "(warm_start=False)."
        )


def merge_history(old: dict[str, list], new: dict[str, list]) -> dict[str, list]:
    """The per-epoch logs of a warm fit appended to those of the fits before: every key keeps
    one value per epoch (NaN where a fit did not log it, e.g. ``val_loss`` of a fit without
    validation), and ``epoch`` counts on from the last one."""
    n_old, n_new = len(old.get("loss", [])), len(new.get("loss", []))
    shift = old["epoch"][-1] if old.get("epoch") else 0.0
    new = {**new, "epoch": [shift + e for e in new["epoch"]]} if "epoch" in new else new
    return {
        key: list(old.get(key, [math.nan] * n_old)) + list(new.get(key, [math.nan] * n_new))
        for key in {**old, **new}
    }
