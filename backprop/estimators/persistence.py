"""``bp.save`` / ``bp.load`` for fitted estimators, through the ``backprop.io`` kind registry.

A file holds (see :mod:`backprop.io` for the container):

* config: the constructor parameters (plain JSON values), the fitted network's architecture,
  and the fitted scalars and curves (``n_iter_``, ``loss_curve_``, ``classes_`` as text, ...);
* arrays: the network's parameters and buffers (``classes_`` is JSON: numbers, bools and text
  keep their values and dtype).

A loaded estimator predicts, scores and reports its fitted attributes exactly as the saved one.
It does not carry the optimizer's state: further ``partial_fit`` training continues from the
saved weights with a fresh optimizer, but from the saved update count (``_updates``), so that the
pruning curve and a step-based learning-rate schedule go on where they were. A ``warm_start``
fit starts a fresh optimizer anyway: an MLP's continues exactly as the saved estimator's would
(the tol stop's count is kept). It does carry the state of the
network's random stream (``model_rng``: Dropout masks, RandomShift2D shifts), so a NeuralNet
estimator, whose every fit starts a fresh optimizer anyway, continues with ``warm_start``
bitwise as the saved one would have. Parameters that hold Python objects
(``callbacks``, a ``schedule`` instance, a ``RandomState``) cannot be written as plain values;
they are saved as None with a warning that names them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from .. import filecheck, io, pruning_files, schemas
from ..layers import Dense, Layer, layer_from_spec, layer_spec
from ..layers.base import unallocated
from .classifier import MLPClassifier
from .conventions import hidden_sizes
from .neuralnet import NeuralNetClassifier, NeuralNetRegressor
from .regressor import MLPRegressor
from .sparsity import updates_taken

FITTED_SCALARS = (
    "n_features_in_", "n_outputs_", "out_activation_", "n_layers_", "n_iter_", "t_", "loss_",
    "best_loss_", "best_validation_score_", "loss_curve_", "validation_loss_curve_",
    "validation_scores_", "feature_names_in_", "_no_improvement_count",
)  # fmt: skip
# NeuralNet estimators: fitted attributes, and the private state predict and warm_start read.
NEURALNET_FITTED = (
    "n_features_in_",
    "n_outputs_",
    "n_iter_",
    "loss_curve_",
    "history_",
    "_seed",
    "_y_1d",
    "_exp_link",
)


def _plain(value: Any) -> tuple[bool, Any]:
    """``(ok, json_value)``: numbers, strings, None, and lists/tuples/dicts of them."""
    if value is None or isinstance(value, bool | str):
        return True, value
    if isinstance(value, int | float | np.integer | np.floating):
        return True, value.item() if isinstance(value, np.generic) else value
    if isinstance(value, list | tuple | np.ndarray):
        items = [_plain(v) for v in list(value)]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict):  # class_weight: keys may be numbers, so store pairs
        items = [(_plain(k), _plain(v)) for k, v in value.items()]
        ok = all(a[0] and b[0] for a, b in items)
        return ok, {"__pairs__": [[a[1], b[1]] for a, b in items]}
    return False, None


def _unplain(name: str, value: Any) -> Any:
    if isinstance(value, dict) and "__pairs__" in value:
        return {k: v for k, v in value["__pairs__"]}
    if name == "hidden_layer_sizes" and isinstance(value, list):
        return tuple(value)
    if name == "layers" and isinstance(value, dict) and "__layers__" in value:
        with unallocated():  # the unfitted stack: its arrays are made when it is fitted
            return [layer_from_spec(spec) for spec in value["__layers__"]]
    return value


def _param(name: str, value: Any) -> tuple[bool, Any]:
    """A constructor parameter as JSON; a NeuralNet's layer list as the layers' own specs."""
    if name == "layers" and isinstance(value, list | tuple):
        if all(isinstance(layer, Layer) for layer in value):
            return True, {"__layers__": [layer_spec(layer) for layer in value]}
    return _plain(value)


def _classes_to_json(classes: np.ndarray, fitted: dict[str, Any]) -> None:
    classes = np.asarray(classes)
    kind = classes.dtype.kind
    if kind not in "biufUO":
        raise TypeError(f"cannot save class labels of dtype {classes.dtype}")
    # JSON holds ints, floats (exactly, by repr), bools and strings: no array needed.
    fitted["classes_"] = [str(c) for c in classes] if kind == "O" else classes.tolist()
    fitted["classes_dtype"] = "object" if kind == "O" else classes.dtype.str


def _classes_from_json(fitted: dict[str, Any]) -> np.ndarray:
    labels, dtype = fitted.pop("classes_"), fitted.pop("classes_dtype")
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"classes_ must be a non-empty list, got {labels!r}")
    if dtype == "object":
        return np.asarray(labels, dtype=object)
    try:  # labels the dtype cannot hold (10**19 in int64, 0.5 in int64) are refused, not cut
        classes = np.asarray(labels, dtype=np.dtype(dtype))
        exact = classes.tolist() == labels
    except OverflowError:
        exact = False
    if not exact:
        raise ValueError(f"classes_ {labels!r} are not all values of classes_dtype {dtype!r}")
    return classes


def _to_payload(est: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    check_is_fitted(est, "model_")
    params, dropped = {}, []
    for name, value in est.get_params(deep=False).items():
        ok, plain = _param(name, value)
        params[name] = plain if ok else None
        if not ok:
            dropped.append(name)
    if dropped:
        warnings.warn(
            f"{type(est).__name__} parameters {', '.join(dropped)} hold Python objects and are "
            "saved as None; the fitted network and attributes are saved in full",
            UserWarning,
            stacklevel=3,
        )
    fitted = {}
    for name in FITTED_SCALARS + NEURALNET_FITTED:
        if hasattr(est, name):
            ok, plain = _plain(getattr(est, name))
            fitted[name] = plain if ok else None
    # pruning hook (issue 15): a pruned network is stored compactly, with its mask
    model_config, arrays = pruning_files.compact_payload(
        est.model_, io.sequential_config(est.model_), est.model_.state_dict()
    )
    if isinstance(est, MLPClassifier | NeuralNetClassifier):
        _classes_to_json(est.classes_, fitted)
    if isinstance(est, MLPClassifier):
        fitted["y_type_"] = est._label_binarizer.y_type_
    if isinstance(est, MLPClassifier | MLPRegressor):  # where the next partial_fit goes on from
        fitted["_updates"] = updates_taken(est)
    # The network's random stream (Dropout, RandomShift2D): warm_start continues it.
    model_rng = est.model_.rng.bit_generator.state
    config = {"params": params, "model": model_config, "fitted": fitted, "model_rng": model_rng}
    return config, arrays


def _expected(config: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    dense = io.expected_sequential_arrays(config["model"])
    return pruning_files.expected_arrays(config["model"], dense)


def _from_payload(cls: type, config: dict[str, Any], arrays: dict[str, np.ndarray], where: str):
    mlp = cls in (MLPClassifier, MLPRegressor)
    make_schema = schemas.estimator_schema if mlp else schemas.neuralnet_schema
    schema = make_schema(cls._get_param_names(), cls in (MLPClassifier, NeuralNetClassifier))
    schemas.check(config, schema, where, "config")
    params = {k: _unplain(k, v) for k, v in config["params"].items()}
    est = cls(**params)
    if mlp:
        est._check_params()
    est.model_ = io.sequential_from_config(config["model"])
    arrays, mask = pruning_files.expand(est.model_, config["model"], arrays)
    est.model_.load_state_dict(arrays)
    pruning_files.pruning.set_mask(est.model_, mask)
    if config.get("model_rng") is not None:
        with filecheck.owner_refusals(where):  # NumPy's own checks (an OverflowError, say)
            est.model_.rng.bit_generator.state = config["model_rng"]
    fitted = dict(config["fitted"])
    names = fitted.pop("feature_names_in_", None)
    if names is not None:  # columns in another order are then refused, as before saving
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(f"feature_names_in_ must be a list of names, got {names!r}")
        if len(names) != est.model_.n_features_in:
            raise ValueError(
                f"{len(names)} feature_names_in_ for {est.model_.n_features_in} inputs"
            )
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if cls in (NeuralNetClassifier, NeuralNetRegressor):
        if cls is NeuralNetClassifier:
            est.classes_ = _classes_from_json(fitted)
        for name, value in fitted.items():
            if name not in NEURALNET_FITTED:
                raise ValueError(f"unexpected fitted attribute {name!r}")
            setattr(est, name, _unplain(name, value))
        _check_neuralnet_widths(est)
        return est
    _check_widths(est.model_, fitted)
    hidden = [layer.out_features for layer in est.model_.layers if isinstance(layer, Dense)][:-1]
    if hidden_sizes(est) != hidden:
        raise ValueError(f"hidden_layer_sizes is {est.hidden_layer_sizes!r}, the network {hidden}")
    if cls is MLPClassifier:
        est.classes_ = _classes_from_json(fitted)
        y_type = fitted.pop("y_type_")
        binarizer = LabelBinarizer()
        if y_type.startswith("multilabel"):
            binarizer.fit(np.eye(len(est.classes_), dtype=int))
        else:
            binarizer.fit(est.classes_)
        if binarizer.y_type_ != y_type:
            raise ValueError(f"classes {est.classes_!r} do not give label type {y_type!r}")
        _check_link(fitted["out_activation_"], y_type, len(est.classes_), est.model_)
        est._label_binarizer = binarizer
    for name, value in fitted.items():
        setattr(est, name, value)
    # Private state that _build() would set: continued training starts from the saved weights.
    est._trainer = None
    est._best_params = est.model_.flat_parameters.copy()
    est._best_buffers = {k: v.copy() for k, v in est.model_.buffers().items()}
    vars(est).setdefault("_no_improvement_count", 0)  # (files written before it was kept)
    return est


def _check_neuralnet_widths(est: Any) -> None:
    """The fitted widths of a NeuralNet estimator must be its network's own."""
    model, n_out = est.model_, est.n_outputs_
    if est.n_features_in_ != model.in_shape[0]:
        raise ValueError(
            f"n_features_in_ is {est.n_features_in_}, the network takes {model.in_shape}"
        )
    if model.out_shape != (n_out,):
        raise ValueError(f"n_outputs_ is {n_out}, the network gives {model.out_shape}")
    if hasattr(est, "classes_") and len(est.classes_) != n_out:
        raise ValueError(f"{len(est.classes_)} classes_ for a network of {n_out} outputs")


def _check_widths(model: Any, fitted: dict[str, Any]) -> None:
    """The fitted widths must be the network's own."""
    widths = [layer for layer in model.layers if isinstance(layer, Dense)]
    n_in, n_out = widths[0].in_features, widths[-1].out_features
    if fitted["n_features_in_"] != n_in:
        raise ValueError(f"n_features_in_ is {fitted['n_features_in_']}, the network takes {n_in}")
    if fitted["n_outputs_"] != n_out:
        raise ValueError(f"n_outputs_ is {fitted['n_outputs_']}, the network gives {n_out}")
    if fitted["n_layers_"] != len(widths) + 1:
        raise ValueError(f"n_layers_ is {fitted['n_layers_']}, the network has {len(widths) + 1}")


def _check_link(link: str, y_type: str, n_classes: int, model: Any) -> None:
    """A classifier's output link and width are those its label type needs."""
    need = "softmax" if y_type == "multiclass" else "logistic"
    if link != need:
        raise ValueError(f"out_activation_ is {link!r}; {y_type} labels need {need!r}")
    k = 1 if y_type == "binary" else n_classes
    n_out = [layer for layer in model.layers if isinstance(layer, Dense)][-1].out_features
    if n_out != k:
        raise ValueError(
            f"{n_classes} {y_type} classes need {k} outputs, the network gives {n_out}"
        )


for _cls in (MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor):
    io.register_kind(
        _cls.__name__,
        _cls,
        _to_payload,
        lambda config, arrays, where, _cls=_cls: _from_payload(_cls, config, arrays, where),
        _expected,
    )
