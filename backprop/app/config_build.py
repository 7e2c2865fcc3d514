"""Objects from a validated config: the model, loss, optimizer, schedule, Trainer and callbacks.

Every builder takes a :class:`~backprop.app.config_schema.Config` (already validated by
:func:`~backprop.app.config.load_config`) and turns a constructor's refusal (TypeError or
ValueError) into a :class:`ConfigError` that names the file and the table. Library modules are
imported inside the builders, so reading a config loads no more of the library than it needs.
"""

from __future__ import annotations

from typing import Any

from .. import layers as layers_mod
from .config_schema import FIXED, Config, ConfigError, _named_class


def build_model(config: Config, n_features: int | tuple[int, ...], n_outputs: int):
    """The Sequential described by ``[model]``, built for input of ``n_features`` (an int, or a
    per-sample shape); the last layer that declares an ``output_size_argument`` (Dense's
    ``out_features``) gets ``n_outputs`` unless the config sets it."""
    from ..model import Sequential

    specs = config["model"]["layers"]
    classes = [layers_mod.get(spec["type"]) for spec in specs]
    last = max((i for i, c in enumerate(classes) if c.output_size_argument), default=None)
    layers = []
    for i, (spec, cls) in enumerate(zip(specs, classes, strict=True)):
        kwargs = {k: v for k, v in spec.items() if k not in ("type", "trainable")}
        if i == last:
            kwargs.setdefault(cls.output_size_argument, n_outputs)
        try:
            layer = cls(**kwargs)
        except ConfigError:  # already names its place
            raise
        except (TypeError, ValueError) as exc:
            at = config.where("model.layers", None, i)  # the layer's [[model.layers]] line
            raise ConfigError(f"{at}: layer {i} ({cls.__name__}): {exc}") from None
        layer.trainable = spec.get("trainable", True)
        layers.append(layer)
    shape = (n_features,) if isinstance(n_features, int) else tuple(n_features)
    try:
        return Sequential(
            layers, input_shape=shape, dtype=config["model"]["dtype"], seed=config["model"]["seed"]
        )
    except ConfigError:  # already names its place
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.at('model')}: [model]: {exc}") from None


def _build_named(config: Config, section: str):
    table = config[section]
    if table is None:
        return None
    kwargs = {k: v for k, v in table.items() if k != "name"}
    try:
        return _named_class(section, table["name"])(**kwargs)
    except ConfigError:  # already names its place
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.at(section)}: [{section}]: {exc}") from None


def build_loss(config: Config):
    return _build_named(config, "loss")


def build_optimizer(config: Config):
    return _build_named(config, "optimizer")


def build_schedule(config: Config):
    """The ``[schedule]``, or None; a floor ``min_lr`` above ``optimizer.lr`` is refused (the
    cosine "decay" would raise the rate to it, the plateau schedule set it there at once)."""
    table, lr = config["schedule"], config["optimizer"].get("lr")
    if table and lr is not None and table.get("min_lr", 0.0) > lr:
        raise ConfigError(
            f"{config.where('schedule', 'min_lr')}: schedule.min_lr = {table['min_lr']} is above "
            f"optimizer.lr = {lr}: the rate would rise to it; min_lr is the floor of the decay"
        )
    return _build_named(config, "schedule")


def build_trainer(config: Config, model: Any, callbacks: list) -> Any:
    """The Trainer for ``model`` from ``[loss]``, ``[optimizer]``, ``[schedule]``, ``[trainer]``."""
    from ..trainer import Trainer

    table = config["trainer"]
    default = FIXED["trainer"]["clip_factor"][1]
    if table.get("clip_mode") is None and table["clip_factor"] != default:  # would be unused
        raise ConfigError(
            f"{config.where('trainer', 'clip_factor')}: trainer.clip_factor = "
            f'{table["clip_factor"]} does nothing without clip_mode = "agc" (adaptive gradient '
            'clipping is what it bounds): set clip_mode = "agc", or leave clip_factor out'
        )
    if table["mode"] != "minibatch" and table["batch_size"] != FIXED["trainer"]["batch_size"][1]:
        rows = "all the training rows" if table["mode"] == "batch" else "one row"
        raise ConfigError(
            f"{config.where('trainer', 'batch_size')}: trainer.batch_size = "
            f"{table['batch_size']} is not used with mode = {table['mode']!r} (every update "
            f'takes {rows}): use mode = "minibatch", or leave batch_size out'
        )
    try:
        return Trainer(
            model,
            build_loss(config),
            build_optimizer(config),
            schedule=build_schedule(config),
            callbacks=callbacks,
            **config["trainer"],
        )
    except ConfigError:  # already names its place
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.at('trainer')}: [trainer]: {exc}") from None


def build_pruning(config: Config, n_train: int | None = None):
    """The GradualPruning callback of ``[pruning]``, or None when its sparsity is 0. With the
    number of training rows, a schedule whose ``end_step`` comes after the run's last update is
    refused: the run would end short of the sparsity asked for, without a word."""
    from ..pruning import GradualPruning

    table = dict(config["pruning"])
    if not 0 <= table["sparsity"] < 1:  # GradualPruning would call it `final`
        raise ConfigError(
            f"{config.at('pruning')}: pruning.sparsity must be in [0, 1), got {table['sparsity']!r}"
        )
    if not table["sparsity"]:
        return None
    trainer = config["trainer"]
    if n_train:  # updates per epoch, as Trainer.resolve_batch_size makes the batches
        size = {"stochastic": 1, "batch": n_train}.get(trainer["mode"], trainer["batch_size"])
        per_epoch = -(-n_train // min(size, n_train))
        last = trainer["epochs"] * per_epoch
        if table["end_step"] > last:
            raise ConfigError(
                f"{config.where('pruning', 'end_step')}: pruning.end_step = {table['end_step']} "
                f"is past the run's last update ({last}: {trainer['epochs']} epochs of "
                f"{per_epoch}), so the sparsity would never reach {table['sparsity']}: lower "
                "end_step or raise trainer.epochs"
            )
    try:
        return GradualPruning(table.pop("sparsity"), **table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.at('pruning')}: [pruning]: {exc}") from None


def build_early_stopping(config: Config):
    """The EarlyStopping callback of ``[early_stopping]``, or None when it is not enabled. Its
    ``monitor`` must be a value the run logs (the loss, the task's metric, or their ``val_``
    forms): checked here, as a config error, not after the first epoch."""
    from ..callbacks import EarlyStopping
    from ..training_checks import make_metrics

    table = dict(config["early_stopping"])
    if not table.pop("enabled"):
        return None
    logged = ["loss", *make_metrics(build_loss(config), "auto", names_only=True)]
    logged += [f"val_{name}" for name in logged]
    if table["monitor"] not in logged:
        raise ConfigError(
            f"{config.at('early_stopping')}: early_stopping.monitor = {table['monitor']!r} is "
            f"not a value the run logs; valid: {', '.join(logged)}"
        )
    try:
        return EarlyStopping(**table)
    except ConfigError:  # already names its place
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.at('early_stopping')}: [early_stopping]: {exc}") from None


def check_output_width(
    config: Config, shape: tuple[int, ...], wanted: int, classes: list | None
) -> None:
    """Refuse a model whose outputs per sample (``shape[1]`` of a 2-D output) are not the
    ``wanted`` that the data needs (one logit per class, one for two classes under binary
    cross-entropy, one output per target): a last layer sized by hand, which would fail
    mid-training at the first label it cannot score, or after training, writing the model."""
    if len(shape) != 2 or shape[1] == wanted:
        return
    specs = config["model"]["layers"]
    sized = [i for i, s in enumerate(specs) if layers_mod.get(s["type"]).output_size_argument]
    need = "one output per target column" if classes is None else f"{len(classes)} classes"
    need += "; binary cross-entropy takes one logit" if classes is not None and wanted == 1 else ""
    what, place = "[model]", config.at("model")
    if sized:
        i = sized[-1]
        key = layers_mod.get(specs[i]["type"]).output_size_argument
        if key in specs[i]:
            place = config.where("model.layers", key, i)
            what = f"layer {i} ({specs[i]['type']}) {key} = {specs[i][key]}"
            need += f"; leave {key} out to have it inferred"
    raise ConfigError(
        f"{place}: {what} gives {shape[1]} outputs per sample, but the data needs {wanted} ({need})"
    )


def check_loss_fits(config: Config, ds: Any, trainer: Any, n_outputs: int) -> None:
    """Refuse, before the run directory exists, a loss that cannot score the data: a regression
    loss on class labels, a classification loss on real-valued targets, or any loss whose
    forward pass rejects a sample of the targets; and a model without the ``n_outputs`` the
    data needs (see :func:`check_output_width`)."""
    from ..losses import BinaryCrossEntropy, SoftmaxCrossEntropy

    name = config["loss"]["name"]
    try:  # the model first: its refusal (integer ids for an Embedding, ...) is not the loss's
        out = trainer.model.predict(ds.X_train[:2])
    except ValueError as exc:
        raise ConfigError(f"{config.at('model')}: [model] cannot take the data: {exc}") from None
    classifier_loss = isinstance(trainer.loss, SoftmaxCrossEntropy | BinaryCrossEntropy)
    specs = config["model"]["layers"]
    if classifier_loss and specs[-1]["type"] in ("Softmax", "Sigmoid"):  # as the estimators
        squash = "softmax" if isinstance(trainer.loss, SoftmaxCrossEntropy) else "sigmoid"
        raise ConfigError(
            f"{config.where('model.layers', None, len(specs) - 1)}: layer {len(specs) - 1} "
            f"({specs[-1]['type']}) squashes the logits that loss.name = {name!r} takes (the "
            f"loss applies the {squash} itself): remove the layer; predict --proba gives the "
            "probabilities"
        )
    if classifier_loss != (ds.task == "classification"):
        use = "cross_entropy or binary_cross_entropy" if ds.task == "classification" else "mse"
        if config["data"].get("task") == "auto":  # a file's task, guessed from its targets
            other = "regression" if ds.task == "classification" else "classification"
            use += f', or data.task = "{other}" (the task was guessed from the targets)'
        raise ConfigError(
            f"{config.at('loss')}: loss.name = {name!r} does not fit the data "
            f"({config['data']['source']} is a {ds.task} task); use {use}"
        )
    # after the task: a width sized for the other task (1 for a regression the file's targets
    # made a guessed classification) would otherwise be blamed instead of the loss or data.task
    check_output_width(config, out.shape, n_outputs, ds.classes)
    try:
        trainer.evaluate(ds.X_train[:2], ds.y_train[:2])
    except ValueError as exc:
        raise ConfigError(
            f"{config.at('loss')}: loss.name = {name!r} cannot score the data: {exc}"
        ) from None
