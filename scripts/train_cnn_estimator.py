"""The networks of configs/mnist-cnn.toml and configs/fashion-cnn.toml through the scikit-learn
estimator ``bp.NeuralNetClassifier`` instead of ``backprop train``.

    python scripts/train_cnn_estimator.py mnist --epochs 15
    python scripts/train_cnn_estimator.py fashion-mnist [--epochs 10]

Same layers (the output Dense(10) is added by the estimator), optimizer (Adam, lr 1e-3), batch
size (64), per-epoch schedule and seed as the configs (MNIST: random shifts of up to 2 pixels
while training, dropout 0.25 before the last two Dense layers, a cosine decay to 1e-5 over the
epochs; Fashion-MNIST: exponential decay 0.8); the estimator trains on all 60,000 training
images (no validation split, no early stopping) and is scored on the 10,000 test images. Prints
and writes ``runs/estimator-NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402


def lenet5() -> list[bp.Layer]:
    return [
        bp.RandomShift2D(2),
        bp.Conv2D(6, 5, padding=2), bp.ReLU(), bp.MaxPool2D(2),
        bp.Conv2D(16, 5), bp.ReLU(), bp.MaxPool2D(2),
        bp.Flatten(), bp.Dense(120), bp.ReLU(), bp.Dropout(0.25),
        bp.Dense(84), bp.ReLU(), bp.Dropout(0.25),
    ]  # fmt: skip


def fashion_cnn() -> list[bp.Layer]:
    return [
        bp.Conv2D(16, 3, padding="same"), bp.ReLU(), bp.MaxPool2D(2),
        bp.Conv2D(32, 3, padding="same"), bp.ReLU(), bp.MaxPool2D(2),
        bp.Flatten(), bp.Dense(128), bp.ReLU(), bp.Dropout(0.3),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with np.load(ROOT / "data" / f"{args.data}.npz", allow_pickle=False) as f:
        X_train, y_train, X_test, y_test = (
            f[k] for k in ("X_train", "y_train", "X_test", "y_test")
        )
    as_images = lambda X: (X / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)  # noqa: E731
    if args.data == "mnist":
        layers = lenet5()
        schedule = bp.schedules.CosineDecay(total=args.epochs, min_lr=1e-5)
    else:
        layers, schedule = fashion_cnn(), bp.schedules.ExponentialDecay(0.8)
    clf = bp.NeuralNetClassifier(
        layers, lr=1e-3, batch_size=64, epochs=args.epochs, schedule=schedule, random_state=0,
    )  # fmt: skip
    start = time.perf_counter()
    clf.fit(as_images(X_train), y_train)
    seconds = time.perf_counter() - start
    result = {
        "data": args.data,
        "epochs": args.epochs,
        "test_accuracy": float(clf.score(as_images(X_test), y_test)),
        "train_loss": [float(v) for v in clf.history_["loss"]],
        "seconds": round(seconds, 1),
        "n_parameters": int(clf.model_.n_parameters),
    }
    out = ROOT / "runs" / f"estimator-{args.data}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
