"""Experiment: the training-run tools on sklearn's digits.

1. Learning-rate range test: the suggested rate against a hand-tuned one, for Adam and for SGD
   with momentum.
2. Loss landscapes: a small-batch and a full-batch minimum of the same network on the same data,
   compared along filter-normalized random directions (1-D profiles and 2-D contours with the
   training path projected).
3. MC dropout: a network trained on digits 0-8 is shown the 9s; predictive entropy on the unseen
   class against the seen ones. Calibration: ECE before and after temperature scaling.
4. Dataset cartography: 5% of the training labels flipped at random; how many of the 5% most
   suspicious samples are flipped ones.
5. Adaptive gradient clipping on the exploding-gradient network of ``exploding.py``.

    python -m scripts.experiments.tools            # about a minute
    python -m scripts.experiments.tools --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import backprop as bp
from backprop import landscape as ls
from backprop.app.tool_plots import (
    plot_cartography,
    plot_landscape_1d,
    plot_landscape_2d,
    plot_lr_find,
    plot_reliability,
)

from . import exploding
from ._common import SEED, accuracy, digits, main, table, write_summary

NAME = "tools"


def mlp(n_out: int = 10, dropout: float = 0.0, width: int = 64) -> bp.Sequential:
    layers: list[bp.Layer] = [bp.Dense(64, width), bp.ReLU()]
    if dropout:
        layers.append(bp.Dropout(dropout))
    layers += [bp.Dense(width, width), bp.ReLU()]
    if dropout:
        layers.append(bp.Dropout(dropout))
    layers.append(bp.Dense(width, n_out))
    return bp.Sequential(layers, seed=SEED)


def trainer(model, optimizer, epochs: int, batch_size: int = 32, **kw) -> bp.Trainer:
    return bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        optimizer,
        batch_size=batch_size,
        epochs=epochs,
        seed=SEED,
        **kw,
    )


# -- 1. learning-rate range test -------------------------------------------------------------------
OPTIMIZERS = {
    "Adam": (lambda lr: bp.Adam(lr), 1e-3),
    "SGD momentum 0.9": (lambda lr: bp.SGD(lr, momentum=0.9), 0.01),
}


def lr_section(data: dict, epochs: int, out_dir: Path, plots: bool) -> dict:
    rows, curves = [], {}
    for name, (make, hand) in OPTIMIZERS.items():
        result = bp.lr_find(trainer(mlp(), make(1e-3), epochs), data["X_train"], data["y_train"])
        curves[name] = result
        scores = {}
        for label, lr in (("hand-tuned", hand), ("suggested", result.suggestion)):
            model = mlp()
            trainer(model, make(lr), epochs).fit(data["X_train"], data["y_train"])
            scores[label] = accuracy(model, data["X_test"], data["y_test"])
        rows.append(
            {
                "optimizer": name,
                "hand_tuned_lr": hand,
                "hand_tuned_accuracy": scores["hand-tuned"],
                "suggested_lr": result.suggestion,
                "suggested_accuracy": scores["suggested"],
                "steps_tried": len(result.lrs),
            }
        )
    if plots:
        plot_lr_find(curves, out_dir / "tools_lr_find.png")
    return {"rows": rows}


# -- 2. loss landscapes ------------------------------------------------------------------------------
def landscape_section(data: dict, epochs: int, fast: bool, out_dir: Path, plots: bool) -> dict:
    X, y = data["X_train"], data["y_train"]
    n = len(X)
    settings = {"batch 8": 8, f"full batch ({n})": n}
    points = 9 if fast else 21
    grid = np.linspace(-1.0, 1.0, points)
    loss = bp.SoftmaxCrossEntropy()
    rows, profiles, panels, paths = [], {}, {}, {}
    for label, batch in settings.items():
        model = mlp()
        # Full batch takes one update per epoch: 20 times the epochs and a larger rate bring it
        # to a training loss as low as the small batch's, so that the minima compare.
        run_epochs, lr = (epochs, 1e-3) if batch < n else (20 * epochs, 1e-2)
        rec = bp.TrajectoryRecorder(every=max(1, run_epochs // 20))
        trainer(model, bp.Adam(lr), run_epochs, batch_size=batch, callbacks=[rec]).fit(X, y)
        rng = np.random.default_rng(SEED)
        d1 = ls.filter_normalized_direction(model, rng)
        d2 = ls.filter_normalized_direction(model, rng)
        center = model.flat_parameters
        alphas, profile = ls.loss_along_line(model, loss, X, y, center, center + d1)
        profiles[label] = (alphas, profile)
        Z = ls.loss_surface(model, loss, X, y, d1, d2, grid, grid)
        panels[label] = (grid, grid, Z, None)
        # the path on the plane of its own two principal directions
        snaps = np.stack(rec.snapshots)
        p1, p2, explained = ls.pca_directions(snaps, center)
        traj = ls.project_trajectory(snaps, center, p1, p2)
        reach = 1.2 * np.abs(traj).max(axis=0)
        a_grid, b_grid = (np.linspace(-r, r, points) for r in reach)
        Zp = ls.loss_surface(model, loss, X, y, p1, p2, a_grid, b_grid)
        paths[f"{label}: path explains {explained.sum():.0%}"] = (a_grid, b_grid, Zp, traj)
        rows.append(
            {
                "setting": label,
                "updates": run_epochs * int(np.ceil(n / batch)),
                "train_loss": float(profile[np.argmin(np.abs(alphas))]),
                "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
                "sharpness_0.25": ls.sharpness(alphas, profile, 0.25),
                "loss_at_alpha_1": float(profile[np.argmin(np.abs(alphas - 1))]),
                "mean_loss_2d": float(Z.mean()),
            }
        )
    if plots:
        plot_landscape_1d(
            profiles,
            out_dir / "tools_landscape_1d.png",
            "alpha along one filter-normalized random direction (0: the trained weights)",
        )
        plot_landscape_2d(panels, out_dir / "tools_landscape_2d.png")
        plot_landscape_2d(paths, out_dir / "tools_landscape_path.png", normalized=False)
    return {"rows": rows}


# -- 3. MC dropout and calibration ------------------------------------------------------------------
def uncertainty_section(data: dict, epochs: int, samples: int, out_dir: Path, plots: bool) -> dict:
    seen = data["y_train"] != 9
    model = mlp(n_out=9, dropout=0.3, width=128)
    trainer(model, bp.Adam(1e-3), epochs).fit(data["X_train"][seen], data["y_train"][seen])
    Xt, yt = data["X_test"], data["y_test"]
    mc = bp.mc_dropout_predict(model, Xt, n_samples=samples, seed=SEED)
    unseen = yt == 9
    # calibration on the seen classes: temperature fitted on half of the seen test digits
    Xs, ys = Xt[~unseen], yt[~unseen]
    half = np.arange(len(ys)) % 2 == 0
    logits = model.predict(Xs).astype(np.float64)
    ts = bp.TemperatureScaling().fit(logits[half], ys[half])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    before = bp.expected_calibration_error(probs[~half], ys[~half])
    scaled = ts.transform(logits[~half])
    after = bp.expected_calibration_error(scaled, ys[~half])
    if plots:
        plot_reliability(
            {
                "as trained": (*bp.reliability_curve(probs[~half], ys[~half]), before),
                f"temperature {ts.temperature_:.3g}": (
                    *bp.reliability_curve(scaled, ys[~half]),
                    after,
                ),
            },
            out_dir / "tools_reliability.png",
        )
    return {
        "mc_samples": samples,
        "entropy_seen": float(mc.entropy[~unseen].mean()),
        "entropy_unseen": float(mc.entropy[unseen].mean()),
        "mutual_information_seen": float(mc.mutual_information[~unseen].mean()),
        "mutual_information_unseen": float(mc.mutual_information[unseen].mean()),
        "accuracy_seen": float(np.mean(mc.mean[~unseen].argmax(axis=1) == yt[~unseen])),
        "temperature": ts.temperature_,
        "ece_before": before,
        "ece_after": after,
    }


# -- 4. cartography ----------------------------------------------------------------------------------
def cartography_section(data: dict, epochs: int, out_dir: Path, plots: bool) -> dict:
    X, y = data["X_train"], data["y_train"]
    rng = np.random.default_rng(SEED)
    n_flip = int(round(0.05 * len(y)))
    flipped = rng.choice(len(y), n_flip, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, n_flip)) % 10  # always another class
    carto = bp.Cartography(X, noisy)
    trainer(mlp(), bp.Adam(1e-3), epochs, callbacks=[carto]).fit(X, noisy)
    top = carto.suspicious(n_flip)
    is_flipped = np.zeros(len(y), bool)
    is_flipped[flipped] = True
    if plots:
        plot_cartography(
            carto.confidence(),
            carto.variability(),
            out_dir / "tools_cartography.png",
            flipped=is_flipped,
            flagged=top,
        )
    return {
        "n_train": len(y),
        "flipped": n_flip,
        "flagged": len(top),
        "precision": float(is_flipped[top].mean()),
        "chance": n_flip / len(y),
    }


# -- 5. adaptive gradient clipping -------------------------------------------------------------------
def agc_section(data: dict, epochs: int) -> dict:
    rows = []
    for label, kw in (
        ("no clipping", {}),
        ("clip_norm=1", {"clip_norm": 1.0}),
        ("AGC 0.01", {"clip_mode": "agc", "clip_factor": 0.01}),
        ("AGC 0.1", {"clip_mode": "agc", "clip_factor": 0.1}),
    ):
        model = exploding.make_model()
        t = trainer(model, bp.SGD(lr=exploding.LR), epochs, **kw)
        diverged = "no"
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                t.fit(data["X_train"], data["y_train"])
        except bp.TrainingDivergedError as exc:
            diverged = str(exc).split(":")[0]
        with np.errstate(over="ignore", invalid="ignore"):
            loss = t.evaluate(data["X_train"], data["y_train"])["loss"]
            acc = accuracy(model, data["X_test"], data["y_test"])
        rows.append(
            {
                "setting": label,
                "diverged": diverged,
                "updates": t.step_count,
                "final_train_loss": loss,
                "test_accuracy": acc,
            }
        )
    return {"rows": rows}


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Run the five sections; write figures, summary and results; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 4 if fast else 30
    results = {
        "fast": fast,
        "epochs": epochs,
        "lr_find": lr_section(data, epochs, out_dir, plots),
        "landscape": landscape_section(data, epochs, fast, out_dir, plots),
        "uncertainty": uncertainty_section(data, epochs, 10 if fast else 50, out_dir, plots),
        "cartography": cartography_section(data, epochs, out_dir, plots),
        "agc": agc_section(data, 3 if fast else epochs),
    }
    u, c = results["uncertainty"], results["cartography"]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images, {epochs} epochs.

## Learning-rate range test

{table(results["lr_find"]["rows"])}

## Loss landscapes: small batch and full batch

{table(results["landscape"]["rows"])}

## MC dropout and calibration

| measure | value |
| --- | --- |
| mean predictive entropy, digits 0-8 (seen) | {u["entropy_seen"]:.4f} |
| mean predictive entropy, digit 9 (unseen) | {u["entropy_unseen"]:.4f} |
| mutual information, seen / unseen | {u["mutual_information_seen"]:.4f} / {u["mutual_information_unseen"]:.4f} |
| fitted temperature | {u["temperature"]:.4f} |
| ECE before / after temperature scaling | {u["ece_before"]:.4f} / {u["ece_after"]:.4f} |

## Dataset cartography

{c["flipped"]} of {c["n_train"]} labels flipped; of the {c["flagged"]} most suspicious samples,
a share of {c["precision"]:.4f} are flipped ones (chance: {c["chance"]:.4f}).

## Adaptive gradient clipping

{table(results["agc"]["rows"])}
"""
    write_summary(out_dir, "Tools for a training run", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
