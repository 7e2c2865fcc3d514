"""The ``backprop`` command (also ``python -m backprop``).

    backprop train CONFIG [--set section.key=value ...] [--out DIR [--force]] [--resume RUN_DIR]
                   [--quiet]
    backprop train --example NAME [...] | backprop train --list-examples
    backprop evaluate MODEL --data CONFIG.toml|FILE [--target COLUMN]
    backprop predict MODEL INPUT --output FILE [--target COLUMN] [--proba]
    backprop gradcheck CONFIG [--set ...] [--samples N]
    backprop plot RUN_DIR
    backprop lr-find CONFIG | landscape RUN_DIR | uncertainty RUN_DIR | cartography CONFIG
    backprop bench [ARGS ...]

Exit codes: 0 success, 2 usage or config error (also a missing, malformed or unwritable file, a
full disk), 1 training failure (a diverged run, a failed gradient check), 130 interrupted (Ctrl-C).
Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..data import R2
from ..io import ModelFileError
from ..memory import keep_freed_memory
from . import config as config_mod
from . import tools
from .config import ConfigError
from .modelfile import checked_model_file
from .plotting import Preprocessing, class_codes


def _error(message: str) -> int:
    print(f"backprop: error: {message}", file=sys.stderr)
    return 2


# -- train ---------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import claim_run_dir, new_run_dir, run
    from .shipped import example_path, list_examples

    if args.list_examples:
        print("\n".join(list_examples()))
        return 0
    if args.example is not None:
        if args.config is not None:
            return _error("give a CONFIG or --example NAME, not both")
        args.config = str(example_path(args.example))
    if args.config is None and args.resume is None:
        return _error("train needs a CONFIG (or --resume RUN_DIR), or --example NAME")
    if args.resume is not None:
        if flag := "--out" if args.out is not None else "--force" if args.force else None:
            return _error(f"{flag} does not go with --resume, which continues the run in place")
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            what = "is not a directory" if run_dir.exists() else "run directory not found"
            return _error(f"--resume {run_dir}: {what}")
        if args.config is None and not (run_dir / "config.toml").is_file():
            return _error(f"--resume {run_dir}: not a run directory (it has no config.toml)")
    config = config_mod.load_config(args.config or run_dir / "config.toml", args.set)
    if args.resume is not None and (run_dir / "config.toml").is_file():
        saved = config_mod.load_config(run_dir / "config.toml")
        if refusal := config_mod.resume_refusal(saved, config):
            return _error(f"--resume {run_dir}: {refusal}")
    replace: list[str] = []  # with --force: the old run's files, deleted once this one is checked
    if args.resume is None:
        run_dir = new_run_dir(config, args.out)
        replace = claim_run_dir(run_dir, args.force)
    code, _ = run(config, run_dir, args.resume is not None, args.quiet, replace=replace)
    return code


# -- evaluate / predict ----------------------------------------------------------------------------
#: Sources whose pixels are scaled to [0, 1] outside the model: its model.npz expects them so.
PIXEL_SOURCES = ("mnist", "fashion_mnist")


def _outputs(mf: Any, X: np.ndarray) -> np.ndarray:
    from ..sparse import is_sparse
    from .sources import transform_X

    shape = mf.obj.in_shape
    if is_sparse(X):  # the TF-IDF rows of a text config's test split stay sparse, as in training
        if X.shape[1:] != shape:
            raise ConfigError(f"the model expects {shape[0]} features, the input has {X.shape}")
        if not np.isfinite(X.data).all():
            raise ConfigError("the input holds non-finite values; predictions need finite ones")
        return mf.obj.predict(X)
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"the input must hold numbers, got {np.asarray(X).dtype}") from None
    # Flat rows (a CSV) for a model of images or sequences, or images for a model of flat rows
    # (a Reshape inside): viewed row-major, as the mnist source's as_sequence makes them.
    flat = X.ndim == 2 and len(shape) > 1 or X.ndim > 2 and len(shape) == 1
    if flat and X.ndim >= 2 and np.prod(X.shape[1:]) == np.prod(shape):
        X = X.reshape(len(X), *shape)
    if X.shape[1:] != shape:
        want = f"{shape[0]} features" if len(shape) == 1 else f"samples of shape {shape}"
        extra = X.ndim == 2 and len(shape) == 1 and X.shape[1] == shape[0] + 1
        hint = "; if one column is the target, leave it out with --target COLUMN" if extra else ""
        raise ConfigError(f"the model expects {want}, the input has shape {X.shape}{hint}")
    bad = np.argwhere(~np.isfinite(X.reshape(len(X), -1)))
    if len(bad):
        r, c = bad[0]
        raise ConfigError(
            f"the input holds {X.reshape(len(X), -1)[r, c]} at row {r + 1}, column {c + 1} "
            f"({len(bad)} non-finite values in all); predictions need finite features"
        )
    source = mf.metadata.get("source")
    if source in PIXEL_SOURCES and X.size and X.max() > 1:  # raw 0..255 pixels: wrong answers
        raise ConfigError(
            f"the model was trained on {source} pixels scaled to [0, 1] (the source divides them "
            f"by 255 before the model sees them), but the input holds values up to {X.max():g}: "
            "divide raw pixels by 255 first"
        )
    return mf.obj.predict(transform_X(Preprocessing(mf.extras), X, mf.obj.dtype))


def _predictions(mf: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predictions in the data's own terms (Poisson: the rates exp(z)), raw outputs)."""
    from ..inference import values_from_outputs as values
    from .sources import inverse_y

    out = _outputs(mf, X)
    if mf.metadata.get("task") == "classification":
        return np.asarray(mf.metadata["classes"])[class_codes(out)], out
    return inverse_y(Preprocessing(mf.extras), values(out, mf.metadata.get("loss", "mse"))), out


def _raw_data(data: str, target: str | None, trained: Any = None) -> tuple[np.ndarray, Any]:
    from .sources import read_table

    if data.endswith(".toml"):
        if target is not None:
            raise ConfigError(f"--target {target}: a config ({data}) names its own target")
        return config_mod.evaluation_split(data, trained)
    X, y = read_table(
        data, target if target is not None else ("y" if data.endswith(".npz") else None)
    )
    if y is None:
        raise ConfigError(f"{data}: no target; name the target column with --target")
    return X, y


def _same_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise label equality; numbers compare as numbers (a CSV's "3.0" is class 3)."""
    try:
        return a.astype(np.float64) == b.astype(np.float64)
    except ValueError:
        return a.astype(str) == b.astype(str)


def cmd_evaluate(args: argparse.Namespace) -> int:
    mf = checked_model_file(args.model)
    try:
        X, y = _raw_data(args.data, args.target, mf.metadata.get("data"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        pred, _ = _predictions(mf, X)
    except ConfigError as exc:
        raise ConfigError(f"{args.data}: {exc}") from None
    result: dict[str, Any] = {"n_samples": int(X.shape[0])}
    if mf.metadata.get("task") == "classification":
        result["accuracy"] = float(np.mean(_same_labels(pred, np.asarray(y))))
    else:
        y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
        r2 = R2()  # per output, averaged (scikit-learn's r2_score), as the run's metrics.json
        r2.update(pred, y)
        result["r2"] = r2.result()
        result["rmse"] = float(np.sqrt(np.mean((y - pred) ** 2)))
        result["mae"] = float(np.mean(np.abs(y - pred)))
    # strict JSON: a NaN figure (R2 of a constant target) is null, as in metrics.json
    print(json.dumps({k: v if np.isfinite(v) else None for k, v in result.items()}, indent=2))
    return 0


def _probabilities(mf: Any, out: np.ndarray) -> np.ndarray:
    from ..inference import proba_from_outputs

    if mf.metadata.get("task") != "classification":
        raise ConfigError("--proba needs a classification model; this one predicts values")
    return proba_from_outputs(out, mf.metadata.get("loss", "cross_entropy"))


def cmd_predict(args: argparse.Namespace) -> int:
    from .sources import read_table

    mf = checked_model_file(args.model)
    try:
        X, _ = read_table(args.input, args.target)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        pred, out = _predictions(mf, X)
    except ConfigError as exc:
        raise ConfigError(f"{args.input}: {exc}") from None
    path = Path(args.output)
    if path.suffix not in (".npy", ".npz", ".csv"):
        return _error(f"--output {path}: use a .npy, .npz or .csv file name")
    for what, given in (("model", args.model), ("input", args.input)):  # never write over them
        if path.exists() and path.resolve() == Path(given).resolve():
            return _error(f"--output {path}: that is the {what} file; write to another")
    shown, names = pred, None
    if args.proba:
        shown = _probabilities(mf, out)
        names = [f"proba_{c}" for c in mf.metadata.get("classes", range(shown.shape[1]))]
    if path.suffix == ".npy":
        np.save(path, shown, allow_pickle=False)
    elif path.suffix == ".npz":
        extra = {"proba": shown} if args.proba else {}
        np.savez(path, y_pred=pred, outputs=out, **extra)
    else:
        cols = shown.reshape(len(shown), -1)
        if names is None or len(names) != cols.shape[1]:
            names = (
                ["prediction"]
                if cols.shape[1] == 1
                else [f"prediction_{j}" for j in range(cols.shape[1])]
            )
        with open(path, "w", newline="") as f:  # quoted: class names may hold commas
            csv.writer(f, lineterminator="\n").writerows([names, *cols.tolist()])
    what = "probability rows" if args.proba else "predictions"
    print(f"wrote {len(pred)} {what} to {path}")
    return 0


# -- gradcheck, plot, bench ------------------------------------------------------------------------
def cmd_gradcheck(args: argparse.Namespace) -> int:
    from ..gradcheck import check_gradients
    from .experiment import load_data, n_model_outputs

    config = config_mod.load_config(args.config, [*args.set, "model.dtype=float64"])
    ds = load_data(config, np.float64)
    model = config_mod.build_model(config, ds.X_train.shape[1:], n_model_outputs(config, ds))
    n = min(args.samples, ds.X_train.shape[0])  # both positive (see _positive_int); CSR too
    report = check_gradients(
        model,
        config_mod.build_loss(config),
        ds.X_train[:n],
        ds.y_train[:n],
        l1=config["trainer"]["l1"],
        l2=config["trainer"]["l2"],
        max_entries=args.max_entries,
    )
    print(report)
    return 0 if report.passed else 1


def cmd_plot(args: argparse.Namespace) -> int:
    from .plotting import draw_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _error(f"run directory not found: {run_dir}")
    written = draw_run(run_dir)
    if not written:
        return _error(f"{run_dir}: nothing to plot (no model.npz, no epoch in history.csv)")
    for path in written:
        print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    script = Path("benchmarks/run.py")
    if not script.is_file():
        return _error(
            f"{script} not found: the benchmark harness is not part of the installed package; "
            "in a checkout of the repository run `make bench` (or `backprop bench` from its root)"
        )
    # As `python benchmarks/run.py` would: its folder and the repository root on the path.
    added = [p for p in (str(script.parent.resolve()), str(Path.cwd())) if p not in sys.path]
    sys.path[:0] = added
    try:
        spec = importlib.util.spec_from_file_location("backprop_benchmarks_run", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return int(module.main(list(args.args)) or 0)
    finally:
        for p in added:
            sys.path.remove(p)


# -- the parser ----------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


SET_HELP = "override one config value, e.g. --set trainer.epochs=5 (repeatable)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Train, evaluate and inspect neural networks from TOML configs.",
        epilog="exit codes: 0 success, 2 usage, config or file error, 1 training failure, "
        "130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train from a config and write a run directory")
    p.add_argument("config", nargs="?", help="a TOML config (default with --resume: its own)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--example", metavar="NAME", help="a shipped example config, e.g. digits")
    p.add_argument("--list-examples", action="store_true", help="list the shipped examples")
    p.add_argument("--out", help="run directory (default: output.dir/NAME-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR, in place")
    p.add_argument("--force", action="store_true", help="replace the run in --out (else refused)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model file on labelled data")
    p.add_argument("model", help="a model file (model.npz of a run)")
    p.add_argument("--data", required=True, help="a config (its test split) or .npz/.npy/.csv")
    p.add_argument("--target", help="target column (.csv name, .npy index, .npz array)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict for the rows of a file")
    p.add_argument("model", help="a model file")
    p.add_argument("input", help="features as .npy, .npz (array X) or .csv (header row)")
    p.add_argument("--output", required=True, help="where to write: .npy, .npz or .csv")
    p.add_argument("--target", help="a column of the input to leave out")
    p.add_argument(
        "--proba", action="store_true", help="write class probabilities instead of labels"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("gradcheck", help="finite-difference gradient report for a config's model")
    p.add_argument("config", help="a TOML config: its model, checked on its first training rows")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument(
        "--samples", type=_positive_int, default=16, help="batch size for the check (default 16)"
    )
    p.add_argument(
        "--max-entries",
        type=_positive_int,
        default=200,
        help="entries checked per parameter, drawn at random (default 200)",
    )
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("plot", help="re-draw a run directory's figures")
    p.add_argument("run_dir", help="a run directory written by backprop train")
    p.set_defaults(func=cmd_plot)

    tools.add_parsers(sub)

    p = sub.add_parser("bench", help="run the benchmark table (benchmarks/run.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to benchmarks/run.py")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 usage/config, 1 training failure)."""
    parser = build_parser()
    if argv is None:  # the program owns its process: keep freed arrays for the next step
        keep_freed_memory()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:  # everything after "bench" belongs to benchmarks/run.py
            args = argparse.Namespace(func=cmd_bench, args=argv[1:])
        else:
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return args.func(args)
    except (ConfigError, ModelFileError, FileNotFoundError) as exc:
        return _error(str(exc))
    except OSError as exc:  # an unwritable folder, a full disk, a path through a file
        where = f"{exc.filename}: " if exc.filename else "I/O error: "
        return _error(f"{where}{exc.strerror or exc}")
    except MemoryError as exc:
        return _error(f"out of memory ({exc})")
    except KeyboardInterrupt:
        print("backprop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
