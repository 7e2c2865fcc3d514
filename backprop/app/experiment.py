"""One experiment from a config: data -> model + trainer -> fit -> evaluation -> run directory.

The run directory (``output.dir/<name>-<time>`` or ``--out``) holds::

    config.toml        the resolved config (defaults filled in, --set applied)
    checkpoint.npz     the latest full training state (every ``checkpoint_every`` epochs)
    checkpoint-best.npz  the state at the best validation loss (``save_best``)
    model.npz          the final model, with preprocessing and class names (bp.load reads it)
    history.csv        one row per epoch: loss, metrics, val_*, lr, grad norms, time
    predictions.npz    test-set targets and predictions (and 2-D inputs) for the figures
    metrics.json       final train / validation / test figures, epochs, the run's whole time
    figures/*.png      see backprop.app.plotting
"""

from __future__ import annotations

import copy
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint, restore_early_stopping, stopped_early
from ..inference import values_from_outputs
from ..io import save
from ..landscape import TrajectoryRecorder
from ..layers import Standardize
from ..losses import BinaryCrossEntropy
from ..model import Sequential
from ..monitors import ActivationRecorder, GradientMonitor, UpdateRatioMonitor
from ..progress import ProgressBar
from ..pruning import enforce, set_mask
from . import config as config_mod
from . import datasets, sources
from .config import Config, ConfigError
from .curves import earlier_seconds, write_json
from .plotting import class_codes, write_history


def load_data(config: Config, dtype: Any = None) -> sources.Dataset:
    """The config's data, split and standardized; data problems become ConfigErrors."""
    dtype = config["model"]["dtype"] if dtype is None else dtype
    try:
        return sources.prepare(config["data"], dtype)
    except FileNotFoundError as exc:  # say which key, and where a relative path was read
        note = datasets.relative_note(config["data"])
        raise ConfigError(f"{config.where('data', 'path')}: {exc}{note}") from None
    except ConfigError:  # already names its place
        raise
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"{config.at('data')}: [data]: {exc}") from None


def n_model_outputs(config: Config, ds: sources.Dataset) -> int:
    """Output width: one logit for two classes under binary cross-entropy, else k."""
    if ds.task == "classification" and len(ds.classes) == 2:
        if isinstance(config_mod.build_loss(config), BinaryCrossEntropy):
            return 1
    return ds.n_outputs


def new_run_dir(config: Config, out: str | None) -> Path:
    if out:
        return Path(out)
    name = config["output"]["name"] or Path(config.path).stem
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = Path(config["output"]["dir"]) / f"{name}-{stamp}"
    first, k = path, 1
    while path.exists():
        k += 1
        path = Path(config["output"]["dir"]) / f"{name}-{stamp}-{k}"
    if k > 1:  # never reuse a run directory silently
        print(f"backprop: {first} exists; this run writes to {path}", file=sys.stderr)
    return path


# The files a run writes (and ``--force`` replaces); other files in the folder are left alone.
RUN_FILES = (
    "config.toml", "checkpoint.npz", "checkpoint-best.npz", "model.npz", "history.csv",
    "predictions.npz", "metrics.json", "trajectory.npy", "activations.npz", "uncertainty.json",
)  # fmt: skip


def claim_run_dir(path: Path, force: bool = False) -> list[str]:
    """Refuse ``--out`` naming a file, or a folder that already holds a run (unless ``force``).
    Returns that run's files: :func:`run` deletes them, and the figures, only once the new run
    has passed its checks (a refused config must not cost the old run)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: is a file, not a directory")
    old = [name for name in RUN_FILES if (path / name).exists()]
    if old and not force:
        raise ConfigError(
            f"--out {path}: already holds a run ({', '.join(old)}); pass --force to replace it, "
            f"--resume {path} to continue it, or choose another --out"
        )
    return old


def build(config: Config, ds: sources.Dataset, run_dir: Path, quiet: bool):
    """(model, trainer, early_stopping, checkpoint) for ``config``; Checkpoint comes last."""
    model = config_mod.build_model(config, ds.X_train.shape[1:], n_model_outputs(config, ds))
    es = config_mod.build_early_stopping(config)
    if es is not None and es.monitor.startswith("val_") and ds.X_val is None:
        raise ConfigError(
            f"{config.path}: early_stopping.monitor is {es.monitor!r} but data.validation_size "
            "is 0; set a validation size, monitor 'loss', or set early_stopping.enabled = false"
        )
    out = config["output"]
    callbacks: list = []
    if out["gradient_monitor"]:
        callbacks += [GradientMonitor(), UpdateRatioMonitor()]
    if out["trajectory"]:  # for `backprop landscape`: the weights after every epoch
        callbacks.append(TrajectoryRecorder())
    pruning = config_mod.build_pruning(
        config, ds.X_train.shape[0]
    )  # [pruning] (issue 15): before the checkpoint
    if pruning is not None:
        callbacks.append(pruning)
    if es is not None:
        callbacks.append(es)
    if out["gradient_monitor"]:  # after early stopping: "end" is the restored model
        callbacks.append(ActivationRecorder(ds.X_train[:512]))
    callbacks.append(ProgressBar(force=not quiet, enabled=not quiet))
    best = run_dir / "checkpoint-best.npz" if out["save_best"] and ds.X_val is not None else None
    try:
        ckpt = Checkpoint(run_dir / "checkpoint.npz", out["checkpoint_every"], best_path=best)
    except ValueError as exc:
        raise ConfigError(f"{config.at('output')}: output.checkpoint_every: {exc}") from None
    callbacks.append(ckpt)
    trainer = config_mod.build_trainer(config, model, callbacks)
    return model, trainer, es, ckpt


def evaluate_all(trainer: Any, ds: sources.Dataset) -> dict[str, dict[str, float]]:
    parts = {"train": (ds.X_train, ds.y_train), "test": (ds.X_test, ds.y_test)}
    if ds.X_val is not None:
        parts["validation"] = (ds.X_val, ds.y_val)
    result = {name: trainer.evaluate(X, y) for name, (X, y) in parts.items()}
    if ds.task == "regression":
        pred = sources.inverse_y(ds, values_from_outputs(trainer.predict(ds.X_test), trainer.loss))
        true = sources.inverse_y(ds, ds.y_test)
        result["test"]["rmse"] = float(np.sqrt(np.mean((pred - true) ** 2)))
        result["test"]["mae"] = float(np.mean(np.abs(pred - true)))
    return {k: {m: float(v) for m, v in d.items()} for k, d in result.items()}


def with_preprocessing(model: Any, ds: sources.Dataset) -> Any:
    """``model`` with the data's standardization as layers: ``Standardize`` first (features),
    ``Standardize(inverse=True)`` last (regression targets), so that the saved model predicts
    from raw features in the data's own units. The trained layers' values are copied unchanged."""
    front = [] if ds.x_mean is None else [Standardize(ds.n_features, ds.x_mean, ds.x_scale)]
    back = []
    if ds.y_mean is not None:
        back = [Standardize(len(ds.y_mean), ds.y_mean, ds.y_scale, inverse=True)]
    if not front and not back:
        return model
    layers = front + copy.deepcopy(model.layers) + back
    shape = None if front else model.in_shape  # a Reshape first fixes none: unbuilt, unsavable
    full = Sequential(layers, input_shape=shape, dtype=model.dtype, seed=0)
    shift = len(front)
    state = full.state_dict()  # the Standardize buffers, as constructed
    for key, value in model.state_dict().items():
        index, rest = key.split(".", 1)
        state[f"{int(index) + shift}.{rest}"] = value
    full.load_state_dict(state)
    # Standardize has no weights, so the flat weight layout, and a pruning mask over it, is the
    # trained model's own.
    set_mask(full, model.weight_mask)
    return full


def without_preprocessing(saved: Any, metadata: dict[str, Any]) -> Any:
    """The trained network inside a run's ``model.npz``: :func:`with_preprocessing` undone, using
    the layer counts it recorded in the file's metadata (``preprocessing_layers``)."""
    front, back = metadata.get("preprocessing_layers", [0, 0])
    if not front and not back:
        return saved
    inner = copy.deepcopy(saved.layers[front : len(saved.layers) - back])
    model = Sequential(inner, input_shape=inner[0].in_shape, dtype=saved.dtype, seed=0)
    state = {}
    for key, value in saved.state_dict().items():
        index, rest = key.split(".", 1)
        if front <= int(index) < len(saved.layers) - back:
            state[f"{int(index) - front}.{rest}"] = value
    model.load_state_dict(state)
    set_mask(model, saved.weight_mask)
    return model


def save_model(path: Path, model: Any, ds: sources.Dataset, config: Config) -> None:
    """``model.npz``: the model with its preprocessing inside (see :func:`with_preprocessing`),
    so ``bp.load(path).predict(raw_X)`` is what ``backprop predict`` computes."""
    metadata = {
        "task": ds.task,
        "classes": ds.classes,
        "image_shape": list(ds.image_shape) if ds.image_shape else None,
        "n_features": ds.n_features,
        "source": config["data"]["source"],
        "loss": config["loss"]["name"],
        "data": config["data"],  # evaluate --data CONFIG checks that it splits the rows alike
        # Standardize layers added in front of and behind the trained network
        "preprocessing_layers": [int(ds.x_mean is not None), int(ds.y_mean is not None)],
    }
    save(with_preprocessing(model, ds), path, metadata=metadata)


def save_predictions(path: Path, model: Any, ds: sources.Dataset, loss: str) -> None:
    out = model.predict(ds.X_test)
    arrays: dict[str, np.ndarray] = {}
    if ds.task == "classification":
        arrays["y_true"] = np.asarray(ds.y_test, dtype=np.int64)
        arrays["y_pred"] = class_codes(out)
    else:
        arrays["y_true"] = sources.inverse_y(ds, ds.y_test)
        arrays["y_pred"] = sources.inverse_y(ds, values_from_outputs(out, loss))  # Poisson: rates
    conv = any(p.ndim > 2 for p in model.parameters().values())  # feature maps need an image
    if conv or ds.n_features == 2:  # raw rows, as model.npz (Standardize first) takes them
        X = np.asarray(ds.X_test[: None if ds.n_features == 2 else 1], dtype=np.float64)
        X = X if ds.x_mean is None else X * ds.x_scale + ds.x_mean
        arrays.update({"image": X[:1]} if conv else {})
        arrays.update({"X": X} if ds.n_features == 2 else {})
    np.savez(path, **arrays)


def run(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    quiet: bool = False,
    log: Any = print,
    replace: Sequence[str] = (),
) -> tuple[int, dict[str, Any]]:
    """Train and write the run directory (after deleting ``replace``, the files of the run that
    ``--force`` replaces, and its figures); returns (exit code, metrics)."""
    ds = load_data(config)
    model, trainer, es, ckpt = build(config, ds, run_dir, quiet)
    config_mod.check_loss_fits(config, ds, trainer, n_model_outputs(config, ds))
    if replace:  # the new run passed its checks: now the old one may go
        for path in [*(run_dir / name for name in replace), *(run_dir / "figures").glob("*.png")]:
            path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    total = config["trainer"]["epochs"]
    finished = False
    if resume:
        if not ckpt.path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {ckpt.path}")
        header = ckpt.resume(trainer)
        # a run that is over (stopped early, all epochs done) is rebuilt, never retrained
        finished = stopped_early(header) or trainer.epoch >= total
        log(f"resuming {run_dir} at epoch {trainer.epoch} of {total}")
        lr = config["optimizer"].get("lr")  # --set optimizer.lr: the checkpoint's would win
        if lr is not None and not finished and (old := trainer._rebase_lr(lr)) is not None:
            log(f"optimizer.lr {old:g} -> {lr:g} from epoch {trainer.epoch + 1} on")
    if not finished:  # a run that is over keeps the config it was trained with
        (run_dir / "config.toml").write_text(config_mod.dumps(config.resolved))
    if not quiet:
        log(model.summary())
        log(f"data: {ds.info}; task: {ds.task}")
    remaining = total - trainer.epoch
    earlier = earlier_seconds(run_dir, trainer.epoch, trainer.history) if resume else 0.0
    start = time.perf_counter()
    validation = None if ds.X_val is None else (ds.X_val, ds.y_val)
    if remaining > 0 and not finished:
        try:
            # a diverging run overflows before the loss check stops it with its one-line reason:
            # numpy's warnings (a file and a source line each) would only bury that line
            with interrupts() as interrupted, np.errstate(over="ignore", invalid="ignore"):
                trainer.fit(ds.X_train, ds.y_train, validation_data=validation, epochs=remaining)
        except (FloatingPointError, ValueError, RuntimeError) as exc:
            print(f"backprop: training failed: {exc}", file=sys.stderr)
            write_history(trainer.history, run_dir / "history.csv")
            return 1, {}
        if interrupted:
            return interrupted_exit(run_dir, model, ds, config, trainer, total), {}
    elif finished and es is not None:
        # the run was over: put back early stopping's best weights, as the run's end did
        restore_early_stopping(trainer, header)
        es.on_train_end(trainer)
        enforce(model, trainer.optimizer)  # its best weights predate later pruning, as fit does
    if resume and (remaining <= 0 or finished):
        log(nothing_to_train(trainer.epoch, total, es if finished else None))
    seconds = earlier + (time.perf_counter() - start if remaining > 0 and not finished else 0.0)
    metrics: dict[str, Any] = evaluate_all(trainer, ds)
    metrics.update(
        epochs=trainer.epoch,
        steps=trainer.step_count,
        time_seconds=round(seconds, 3),
        stopped_early=es is not None and es.stopped_epoch is not None,
        best_epoch=None if es is None or es.best_epoch is None else es.best_epoch + 1,
        n_parameters=model.n_parameters,
        test_is_training_data=ds.test_is_train,
        data=ds.info,
    )
    save_model(run_dir / "model.npz", model, ds, config)
    save_predictions(run_dir / "predictions.npz", model, ds, config["loss"]["name"])
    for cb in trainer.callbacks:
        if isinstance(cb, TrajectoryRecorder) and cb.snapshots:  # none if nothing was trained
            np.save(run_dir / "trajectory.npy", np.stack(cb.snapshots), allow_pickle=False)
    write_history(trainer.history, run_dir / "history.csv")
    for cb in trainer.callbacks:
        if isinstance(cb, ActivationRecorder) and cb.end:
            np.savez(run_dir / "activations.npz", **cb.arrays())
    write_json(metrics, run_dir / "metrics.json")
    if config["output"]["plots"]:
        from .plotting import draw_run

        draw_run(run_dir)
    test = metrics["test"]
    # a standardized target's loss is in its standard deviations; rmse and mae in its units
    scaled = {"loss": "loss (standardized target)"} if ds.y_mean is not None else {}
    shown = ", ".join(f"{scaled.get(k, k)} {v:.4f}" for k, v in test.items())
    part = "test (the training data, test_size = 0)" if ds.test_is_train else "test"
    log(f"{part}: {shown}  ({trainer.epoch} epochs, {seconds:.1f}s)")
    log(f"run directory: {run_dir}")
    return 0, metrics


@contextmanager
def interrupts() -> Iterator[list[bool]]:
    """Note a Ctrl-C (SIGINT) whether or not the code inside swallows its KeyboardInterrupt:
    yields a list that holds True afterwards if one arrived. The trainer's own warning about it
    is silenced (the caller reports the interruption in its own words)."""
    seen: list[bool] = []

    def handler(signum, frame):
        seen[:] = [True]
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: only a re-raised KeyboardInterrupt is seen
        previous = None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "training interrupted", RuntimeWarning)
            yield seen
    except KeyboardInterrupt:
        seen[:] = [True]
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def interrupted_exit(
    run_dir: Path, model: Any, ds: sources.Dataset, config: Config, trainer: Any, total: int
) -> int:
    """After Ctrl-C: keep the model as training left it (the weights reached, or early stopping's
    best so far), its test predictions and the history (an earlier session's metrics.json, of
    another model, goes), say so in one line, and return 130 (128 + SIGINT)."""
    save_model(run_dir / "model.npz", model, ds, config)
    save_predictions(run_dir / "predictions.npz", model, ds, config["loss"]["name"])
    (run_dir / "metrics.json").unlink(missing_ok=True)
    write_history(trainer.history, run_dir / "history.csv")
    then = f"checkpoint.npz the last saved epoch (continue with: backprop train --resume {run_dir})"
    if not (run_dir / "checkpoint.npz").is_file():  # nothing to resume from before the first save
        again = f"backprop train {run_dir / 'config.toml'} --out {run_dir} --force"
        then = f"no checkpoint was saved yet (train it again: {again})"
    print(
        f"backprop: interrupted after {trainer.epoch} of {total} epochs; {run_dir / 'model.npz'} "
        f"holds the model as training left it and {then}",
        file=sys.stderr,
    )
    return 130


def nothing_to_train(epoch: int, total: int, es: Any = None) -> str:
    """Why a resumed run trains no further epoch, and what would make it train."""
    if es is not None and es.stopped_epoch is not None:
        best = "" if es.best_epoch is None else f" (best epoch {es.best_epoch + 1}, restored)"
        return (
            f"nothing to train: early stopping ended this run at epoch {es.stopped_epoch + 1}"
            f"{best}; evaluating and saving it again"
        )
    return (
        f"nothing to train: the checkpoint is at epoch {epoch} and trainer.epochs is {total}; "
        f"add --set trainer.epochs=N with N > {epoch} to train further"
    )
