"""The command line of the training-run tools::

    backprop lr-find CONFIG [--set ...] [--start 1e-7] [--end 10] [--steps 100] [--out PNG]
    backprop landscape RUN_DIR [--points 21] [--span 1.0] [--samples 2000]
    backprop uncertainty RUN_DIR [--samples 30]
    backprop cartography CONFIG [--set ...] [--top 20] [--out DIR]

Each prints its numbers and writes its figures; see ``docs/tools.md``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from .. import landscape as ls
from ..cartography import Cartography
from ..io import ModelFileError, load_file
from ..layers import Dropout
from ..layers.containers import named_layers
from ..lr_finder import lr_find
from ..uncertainty import (
    TemperatureScaling,
    expected_calibration_error,
    mc_dropout_predict,
    output_transform,
    reliability_curve,
)
from . import config as config_mod
from .config import ConfigError
from .curves import write_json
from .experiment import load_data, n_model_outputs, without_preprocessing


def _model_and_trainer(config: Any, ds: Any, callbacks: list) -> tuple[Any, Any]:
    model = config_mod.build_model(config, ds.X_train.shape[1:], n_model_outputs(config, ds))
    return model, config_mod.build_trainer(config, model, callbacks)


def _default_path(config: Any, suffix: str) -> Path:
    name = config["output"]["name"] or Path(config.path).stem
    return Path(config["output"]["dir"]) / f"{name}-{suffix}"


def _check_counts(args: argparse.Namespace, **minimums: int) -> None:
    for name, low in minimums.items():
        value = getattr(args, name)
        if value < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


# -- lr-find -------------------------------------------------------------------------------------
def cmd_lr_find(args: argparse.Namespace) -> int:
    from .tool_plots import check_figure_path, plot_lr_find

    _check_counts(args, steps=5)
    config = config_mod.load_config(args.config, args.set)
    out = Path(args.out) if args.out else _default_path(config, "lr-find.png")
    try:
        check_figure_path(out)
    except ValueError as exc:
        raise ConfigError(f"--out {exc}") from None
    ds = load_data(config)
    _, trainer = _model_and_trainer(config, ds, [])
    try:
        result = lr_find(
            trainer, ds.X_train, ds.y_train, start=args.start, end=args.end, steps=args.steps
        )
    except ValueError as exc:
        raise ConfigError(f"lr-find: {exc}") from None
    plot_lr_find({type(trainer.optimizer).__name__: result}, out)
    stop = "the loss diverged" if result.diverged else "the last rate was reached"
    print(
        f"tried {len(result.lrs)} rates from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g} "
        f"({stop}); smoothed loss lowest at {result.suggestion * 10:.3g}"
    )
    print(
        f"suggested learning rate: {result.suggestion:.3g}  (steepest descent at "
        f"{result.lr_steepest:.3g})"
    )
    print(f"figure: {out}")
    return 0


# -- run directories -----------------------------------------------------------------------------
def _load_run(run_dir: Path) -> tuple[Any, Any, Any, Any, Any]:
    """(config, data, initial model rebuilt from the config's seed, trained model, trainer)."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    config = config_mod.load_config(run_dir / "config.toml", [])
    ds = load_data(config)
    initial, trainer = _model_and_trainer(config, ds, [])
    trained = initial.copy()
    model_file = load_file(run_dir / "model.npz")
    saved = without_preprocessing(model_file.obj, model_file.metadata)  # the trained network
    flat = getattr(saved, "flat_parameters", None)
    if flat is None or flat.shape != trained.flat_parameters.shape:
        raise ModelFileError(
            f"{run_dir / 'model.npz'}: its parameters do not match the model that "
            f"{run_dir / 'config.toml'} builds"
        )
    trained.load_state_dict(saved.state_dict())
    return config, ds, initial, trained, trainer


def cmd_landscape(args: argparse.Namespace) -> int:
    from .tool_plots import plot_landscape_1d, plot_landscape_2d

    _check_counts(args, points=3, samples=1)
    if args.points % 2 == 0:  # an even grid has no point at 0: its "center" would be off it
        raise ConfigError(
            f"--points must be odd, so that the grid's center is the trained weights; got "
            f"{args.points}"
        )
    if not args.span > 0:
        raise ConfigError(f"--span must be positive, got {args.span}")
    run_dir = Path(args.run_dir)
    config, ds, initial, trained, trainer = _load_run(run_dir)
    n = min(args.samples, ds.X_train.shape[0])  # a CSR matrix has no len()
    X, y = ds.X_train[:n], ds.y_train[:n]
    kw = {"l1": trainer.l1, "l2": trainer.l2}
    alphas, line = ls.loss_along_line(
        trained, trainer.loss, X, y, initial.flat_parameters, trained.flat_parameters, **kw
    )
    rng = np.random.default_rng(config["model"]["seed"])
    d1 = ls.filter_normalized_direction(trained, rng)
    d2 = ls.filter_normalized_direction(trained, rng)
    grid = np.linspace(-args.span, args.span, args.points)
    Z = ls.loss_surface(trained, trainer.loss, X, y, d1, d2, grid, grid, **kw)
    figs = run_dir / "figures"
    written, traj = [], None  # the training path only when the run recorded it
    path = run_dir / "trajectory.npy"
    if path.is_file():
        snaps = np.load(path, allow_pickle=False)
        if snaps.ndim != 2 or snaps.shape[1] != trained.n_parameters or len(snaps) < 3:
            raise ModelFileError(
                f"{path}: expected (>= 3, {trained.n_parameters}) weights, got {snaps.shape}"
            )
        center = trained.flat_parameters
        p1, p2, explained = ls.pca_directions(snaps, center)
        traj = ls.project_trajectory(snaps, center, p1, p2)
        reach = 1.2 * np.abs(traj).max(axis=0)
        a_grid, b_grid = (np.linspace(-r, r, args.points) for r in reach)
        Zp = ls.loss_surface(trained, trainer.loss, X, y, p1, p2, a_grid, b_grid, **kw)
        title = f"training path ({explained.sum():.0%} of its squared distance)"
        written.append(
            plot_landscape_2d(
                {title: (a_grid, b_grid, Zp, traj)}, figs / "landscape_path.png", normalized=False
            )
        )
    p1 = plot_landscape_1d(
        {"from the initial (0) to the trained (1) weights": (alphas, line)},
        figs / "landscape_1d.png",
        "alpha: theta_0 + alpha (theta_1 - theta_0)",
    )
    p2 = plot_landscape_2d({run_dir.name: (grid, grid, Z, None)}, figs / "landscape_2d.png")
    center = Z[args.points // 2, args.points // 2]
    print(
        f"loss at the initial weights {line[np.argmin(np.abs(alphas))]:.4g}, trained "
        f"{line[np.argmin(np.abs(alphas - 1))]:.4g}"
    )
    buffers = initial.buffers()
    if any(not np.array_equal(v, buffers[k]) for k, v in trained.buffers().items()):
        # the line moves the parameters only; BatchNorm's statistics stay the trained ones
        own = ls.loss_along_line(initial, trainer.loss, X, y, initial.flat_parameters, **kw)
        print(
            f"  (along the line the running statistics are the trained model's; the initial "
            f"model itself: {own[1][np.argmin(np.abs(own[0]))]:.4g})"
        )
    print(
        f"2-D, +-{args.span} filter-normalized: center {center:.4g}, largest {Z.max():.4g}, "
        f"mean {Z.mean():.4g}"
    )
    if traj is None:
        print(
            "no trajectory.npy in the run: train with --set output.trajectory=true to draw "
            "the training path"
        )
    print(f"figures: {' '.join(str(p) for p in [p1, p2, *written])}")
    return 0


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from .tool_plots import plot_reliability

    _check_counts(args, samples=2)
    run_dir = Path(args.run_dir)
    config, ds, _, trained, trainer = _load_run(run_dir)
    if ds.task != "classification" or output_transform(trainer.loss) != "softmax":
        raise ConfigError("uncertainty needs a classifier trained with softmax cross-entropy")
    y_test = np.asarray(ds.y_test)
    logits = trained.predict(ds.X_test).astype(np.float64)
    probs = special.softmax(logits, axis=1)
    ece = expected_calibration_error(probs, y_test)
    curves = {"as trained": (*reliability_curve(probs, y_test), ece)}
    result: dict[str, Any] = {"test_ece": ece}
    if ds.X_val is not None:
        ts = TemperatureScaling().fit(trained.predict(ds.X_val), np.asarray(ds.y_val))
        scaled = ts.transform(logits)
        ece_t = expected_calibration_error(scaled, y_test)
        curves[f"temperature {ts.temperature_:.3g}"] = (*reliability_curve(scaled, y_test), ece_t)
        result.update(temperature=ts.temperature_, test_ece_after=ece_t)
    else:
        print("no validation part in this run: temperature scaling skipped")
    if any(isinstance(la, Dropout) for _, la, _ in named_layers(trained.layers)):  # nested too
        mc = mc_dropout_predict(trained, ds.X_test, n_samples=args.samples, seed=0)
        ece_mc = expected_calibration_error(mc.mean, y_test)
        right = mc.mean.argmax(axis=1) == y_test
        curves[f"MC dropout x{args.samples}"] = (*reliability_curve(mc.mean, y_test), ece_mc)
        result.update(
            mc_ece=ece_mc,
            mc_accuracy=float(right.mean()),
            mc_entropy_right=float(mc.entropy[right].mean()),
            mc_entropy_wrong=float(mc.entropy[~right].mean()) if (~right).any() else None,
        )
    else:
        print("no Dropout layer in this model: MC dropout skipped")
    path = plot_reliability(curves, run_dir / "figures" / "reliability.png")
    write_json(result, run_dir / "uncertainty.json")
    for k, v in result.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    print(f"figure: {path}")
    return 0


def cmd_cartography(args: argparse.Namespace) -> int:
    from .tool_plots import plot_cartography

    _check_counts(args, top=1)
    config = config_mod.load_config(args.config, args.set)
    ds = load_data(config)
    if ds.task != "classification":
        raise ConfigError("cartography needs a classification config")
    if n_model_outputs(config, ds) < 2:  # Cartography reads p(label) from a softmax over k scores
        raise ConfigError(
            f"cartography needs one output per class (loss.name = 'cross_entropy'); "
            f"{config.path} trains one logit with loss.name = {config['loss']['name']!r}"
        )
    y = np.asarray(ds.y_train)
    carto = Cartography(ds.X_train, y)
    _, trainer = _model_and_trainer(config, ds, [carto])
    trainer.fit(ds.X_train, y)
    out = Path(args.out) if args.out else _default_path(config, "cartography")
    out.mkdir(parents=True, exist_ok=True)
    top = carto.suspicious(args.top)
    conf, var = carto.confidence(), carto.variability()
    label = np.asarray(ds.classes)[y]  # the data's own labels, not the internal class codes
    rows = [[r + 1, i, label[i], f"{conf[i]:.4f}", f"{var[i]:.4f}"] for r, i in enumerate(top)]
    with open(out / "suspicious.csv", "w", newline="") as f:  # quoted: labels may hold commas
        csv.writer(f, lineterminator="\n").writerows(
            [["rank", "index", "given_label", "confidence", "variability"], *rows]
        )
    fig = plot_cartography(conf, var, out / "cartography.png", flagged=top)
    print(f"{len(top)} most suspicious training samples (index in the training part, label):")
    print("  " + ", ".join(f"{i} ({label[i]})" for i in top))
    print(f"list: {out / 'suspicious.csv'}  figure: {fig}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add the tools' sub-commands to the ``backprop`` parser."""
    sets = {"action": "append", "default": [], "metavar": "SECTION.KEY=VALUE"}
    sets["help"] = "override one config value, e.g. --set trainer.epochs=5 (repeatable)"
    config = {"help": "a TOML config"}
    run_dir = {"help": "a run directory written by backprop train"}
    p = sub.add_parser("lr-find", help="learning-rate range test for a config's model")
    p.add_argument("config", **config)
    p.add_argument("--set", **sets)
    p.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=100, help="updates, one per rate (default 100)")
    p.add_argument("--out", help="figure path (default output.dir/NAME-lr-find.png)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("landscape", help="loss along the training line and around the minimum")
    p.add_argument("run_dir", **run_dir)
    p.add_argument(
        "--points", type=int, default=21, help="grid points per axis, odd, 2-D (default 21)"
    )
    p.add_argument("--span", type=float, default=1.0, help="the 2-D grid covers +-span (default 1)")
    p.add_argument(
        "--samples", type=int, default=2000, help="training rows evaluated (default 2000)"
    )
    p.set_defaults(func=cmd_landscape)

    p = sub.add_parser("uncertainty", help="calibration, temperature scaling and MC dropout")
    p.add_argument("run_dir", **run_dir)
    p.add_argument("--samples", type=int, default=30, help="MC dropout passes (default 30)")
    p.set_defaults(func=cmd_uncertainty)

    p = sub.add_parser("cartography", help="train and rank likely mislabeled samples")
    p.add_argument("config", **config)
    p.add_argument("--set", **sets)
    p.add_argument("--top", type=int, default=20, help="how many samples to list (default 20)")
    p.add_argument("--out", help="folder (default output.dir/NAME-cartography)")
    p.set_defaults(func=cmd_cartography)
