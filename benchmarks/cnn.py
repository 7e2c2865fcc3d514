"""LeNet-5 on MNIST: one training epoch of backprop against PyTorch eager on the CPU, same process.

Run from the repository root::

    python benchmarks/cnn.py                      # full MNIST epoch, batch 64 and 256
    python benchmarks/cnn.py --rows 6000 --repeats 1   # a quick look

The network (LeCun et al. 1998, with ReLU and max pooling as is usual today), on 28x28 inputs::

    conv 5x5, 6 filters, padding 2 -> ReLU -> max pool 2 -> conv 5x5, 16 filters -> ReLU
    -> max pool 2 -> flatten (400) -> dense 120 -> ReLU -> dense 84 -> ReLU -> dense 10

backprop runs it channels last ``(n, 28, 28, 1)`` through ``bp.Trainer``; PyTorch runs its own
defaults, NCHW ``(n, 1, 28, 28)``, ``nn.Conv2d``/``nn.MaxPool2d``, with ``torch.optim.Adam`` and a
shuffled index per epoch, as the backprop Trainer does. Both use float32, Adam(lr=1e-3) and BLAS
pinned to ``--threads`` threads (threadpoolctl for NumPy, ``torch.set_num_threads``).

The process first calls ``bp.keep_freed_memory()`` (as the ``backprop`` command does), so that
the arrays of one step reuse the heap of the last instead of being faulted in again page by page
(``--free-memory`` leaves glibc's defaults; PyTorch runs in the same process either way).

Method: one warm-up epoch on ``--warmup`` rows per system, then ``--repeats`` rounds, each timing
one epoch of every system back to back (order rotated per round); reported: median seconds per
epoch and the median of per-round ratios backprop/torch. Memory: after training, the bytes held by
the reused scratch buffers (the convolution workspace that every conv layer shares, holding one
chunk's padded input and im2col matrix, plus any layer's own buffers, ``workspace_nbytes``;
the workspace is emptied before each batch size) against the largest activation of one batch
(the largest ``batch * prod(out_shape)`` of any layer, in bytes).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop.app.datasets import load_mnist
from backprop.layers import conv


def lenet5_backprop(seed: int = 0) -> bp.Sequential:
    layers = [
        bp.Conv2D(6, 5, padding=2),
        bp.ReLU(),
        bp.MaxPool2D(2),
        bp.Conv2D(16, 5),
        bp.ReLU(),
        bp.MaxPool2D(2),
        bp.Flatten(),
        bp.Dense(120),
        bp.ReLU(),
        bp.Dense(84),
        bp.ReLU(),
        bp.Dense(10),
    ]
    return bp.Sequential(layers, input_shape=(28, 28, 1), dtype="float32", seed=seed)


def backprop_epoch(X: np.ndarray, y: np.ndarray, batch: int, model=None):
    """One epoch of Adam through the Trainer; returns (seconds, model)."""
    model = lenet5_backprop() if model is None else model
    trainer = bp.Trainer(
        model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3), batch_size=batch, epochs=1, seed=0
    )
    start = time.perf_counter()
    trainer.fit(X, y)
    return time.perf_counter() - start, model


def torch_epoch(X: np.ndarray, y: np.ndarray, batch: int) -> float:
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    Xt = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))  # NCHW, its default
    yt = torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    order = torch.randperm(Xt.shape[0], generator=gen)
    for s in range(0, Xt.shape[0], batch):
        idx = order[s : s + batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def memory_report(model: bp.Sequential, batch: int) -> tuple[int, int]:
    """(scratch bytes: the shared convolution workspace and every layer's own buffers; bytes
    of the largest activation of one batch)."""
    own = sum(getattr(layer, "workspace_nbytes", 0) for layer in model.layers)
    scratch = conv.shared_workspace_nbytes() + own
    item = model.dtype.itemsize
    largest = max(batch * math.prod(layer.out_shape) * item for layer in model.layers)
    return scratch, largest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    parser.add_argument("--warmup", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--free-memory",
        action="store_true",
        help="leave glibc's defaults (freed arrays go back to the kernel, faulted in again "
        "every step) instead of bp.keep_freed_memory(), which the backprop command calls",
    )
    args = parser.parse_args(argv)
    kept = False if args.free_memory else bp.keep_freed_memory()

    path = None if args.data_dir is None else Path(args.data_dir) / "mnist.npz"
    X_train, y_train, _, _ = load_mnist(path)
    X = (X_train[: args.rows].astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    y = y_train[: args.rows].astype(np.int64)
    try:
        import torch

        torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        print("torch not importable: backprop only (pip install torch==2.13.0)")
        have_torch = False

    print(
        f"LeNet-5, MNIST {X.shape[0]} rows, float32, {args.threads} BLAS threads, "
        f"{args.repeats} rounds, freed memory {'kept' if kept else 'returned'} "
        "(shared, busy machine: absolute times move with the load)"
    )
    print(
        f"{'batch':>6} {'backprop s':>11} {'torch s':>8} {'ratio':>6} "
        f"{'scratch MB':>11} {'largest act MB':>15} {'scratch/act':>12}"
    )
    with threadpool_limits(limits=args.threads):
        for batch in args.batches:
            conv.clear_shared_workspace()  # measure this batch size's workspace only
            backprop_epoch(X[: args.warmup], y[: args.warmup], batch)
            if have_torch:
                torch_epoch(X[: args.warmup], y[: args.warmup], batch)
            ours, theirs, ratios, model = [], [], [], None
            for r in range(args.repeats):
                if r % 2 == 0 or not have_torch:
                    t_bp, model = backprop_epoch(X, y, batch)
                    t_pt = torch_epoch(X, y, batch) if have_torch else math.nan
                else:
                    t_pt = torch_epoch(X, y, batch)
                    t_bp, model = backprop_epoch(X, y, batch)
                ours.append(t_bp)
                theirs.append(t_pt)
                ratios.append(t_bp / t_pt)
            scratch, largest = memory_report(model, batch)
            print(
                f"{batch:>6} {statistics.median(ours):>11.2f} {statistics.median(theirs):>8.2f} "
                f"{statistics.median(ratios):>6.2f} {scratch / 2**20:>11.2f} "
                f"{largest / 2**20:>15.2f} {scratch / largest:>12.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
