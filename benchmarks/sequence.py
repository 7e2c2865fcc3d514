"""Sequence models against PyTorch on the CPU, in one process, BLAS pinned to ``--threads``.

    python benchmarks/sequence.py [--batches 60] [--repeats 5] [--threads 2] [--out FILE]

1. **LSTM epoch of sequential MNIST**: ``LSTM(128) -> Dense(10)``, softmax cross-entropy, Adam,
   batch 128, 28 steps of 28 pixels. Each system trains ``--batches`` batches (a partial epoch:
   the first ``batches * 128`` training images of data/mnist.npz; random images, said so in the
   output, when that file is missing) and the time is scaled to a 60,000-image epoch (469
   batches). Ours goes through ``bp.Trainer``;
   torch through ``nn.LSTM(batch_first=True)``, ``nn.Linear``, ``nn.CrossEntropyLoss`` and
   ``torch.optim.Adam`` in the usual loop.
2. **One transformer encoder block, forward + backward** on ``(128, 28, 64)``: pre-norm,
   4 heads of 16, feed-forward 128 with GELU, no dropout. Ours: ``Residual([LayerNorm,
   MultiHeadSelfAttention])`` and ``Residual([LayerNorm, Dense, GELU, Dense])`` in a Sequential;
   torch: ``nn.TransformerEncoderLayer(64, 4, 128, dropout=0, activation="gelu",
   norm_first=True, batch_first=True)``.

Rounds alternate the systems (so drifting load hits both); reported times are medians over
``--repeats`` rounds after one warm-up, and the ratio is the median over rounds of ours / torch's
(> 1: we are slower); the quartiles and range of the rounds' ratios and the ratio of the two
fastest rounds are printed too, so that a loaded machine's noise shows. On a shared machine,
many short rounds (``--batches 5 --repeats 41``) interleave the systems more finely than a few
long ones.
The output names the data, the threads and the load averages (``os.getloadavg``) before and
after; ``--out FILE`` writes it to FILE as well (e.g. benchmarks/sequence-latest.txt).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import backprop as bp  # noqa: E402
from backprop.app.datasets import load_mnist  # noqa: E402

BATCH, T, D, H = 128, 28, 28, 128
D_MODEL, HEADS, FFN = 64, 4, 128


def mnist_rows(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``n`` MNIST training images as ``(n, 28, 28)`` float32 rows in [0, 1], their
    labels, and where they came from (random pixels and labels when data/mnist.npz is missing)."""
    try:
        X, y, _, _ = load_mnist()
        X, y = X[:n], y[:n]
        source = f"MNIST, the first {len(X)} training images"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        X, y = rng.integers(0, 256, size=(n, T * D)), rng.integers(0, 10, size=n)
        source = f"RANDOM images ({n}; data/mnist.npz missing), not MNIST"
    X = (X.reshape(len(X), T, D) / np.float32(255)).astype(np.float32)
    return X, y.astype(np.int64), source


def ours_lstm(X: np.ndarray, y: np.ndarray) -> float:
    model = bp.Sequential([bp.LSTM(H), bp.Dense(10)], input_shape=(T, D), seed=0)
    trainer = bp.Trainer(
        model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3), batch_size=BATCH, epochs=1, seed=0
    )
    start = time.perf_counter()
    trainer.fit(X, y)
    return time.perf_counter() - start


def torch_lstm(X: np.ndarray, y: np.ndarray) -> float:
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, H, batch_first=True)
    head = torch.nn.Linear(H, 10)
    opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    order = torch.randperm(len(X))
    start = time.perf_counter()
    for i in range(0, len(X), BATCH):
        idx = order[i : i + BATCH]
        opt.zero_grad()
        out, _ = lstm(Xt[idx])
        loss = loss_fn(head(out[:, -1]), yt[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def ours_block(x: np.ndarray, g: np.ndarray):
    model = bp.Sequential(
        [
            bp.Residual(
                [bp.LayerNorm(D_MODEL), bp.MultiHeadSelfAttention(HEADS, D_MODEL // HEADS)]
            ),
            bp.Residual([bp.LayerNorm(D_MODEL), bp.Dense(FFN), bp.GELU(), bp.Dense(D_MODEL)]),
        ],
        input_shape=(T, D_MODEL),
        seed=0,
    )

    def step() -> float:
        start = time.perf_counter()
        model.forward(x, training=True)
        model.backward(g)
        return time.perf_counter() - start

    return step


def torch_block(x: np.ndarray, g: np.ndarray):
    import torch

    block = torch.nn.TransformerEncoderLayer(
        D_MODEL, HEADS, FFN, dropout=0.0, activation="gelu", norm_first=True, batch_first=True
    )
    xt, gt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(g)

    def step() -> float:
        start = time.perf_counter()
        block(xt).backward(gt)
        return time.perf_counter() - start

    return step


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


def compare(name: str, ours, theirs, repeats: int, scale: float = 1.0) -> dict:
    ours(), theirs()  # warm-up
    a, b = [], []
    for r in range(repeats):
        pair = [(a, ours), (b, theirs)]
        for times, fn in pair if r % 2 == 0 else pair[::-1]:
            times.append(fn() * scale)
    ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
    row = {"benchmark": name, "backprop_s": statistics.median(a), "torch_s": statistics.median(b)}
    row["ratio"] = ratio
    row["ratio_of_fastest"] = min(a) / min(b)
    row["round_ratios"] = [x / y for x, y in zip(a, b, strict=True)]
    row["line"] = f"{name:44s} {row['backprop_s']:9.4f} s {row['torch_s']:9.4f} s {ratio:6.2f}x"
    q1, q2, q3 = np.percentile(row["round_ratios"], [25, 50, 75])
    row["detail"] = (
        f"    {repeats} rounds; their ratios: quartiles {q1:.2f} {q2:.2f} {q3:.2f}, "
        f"range {min(row['round_ratios']):.2f} to {max(row['round_ratios']):.2f}; "
        f"fastest rounds {min(a):.4g} s vs {min(b):.4g} s = {row['ratio_of_fastest']:.2f}x"
    )
    print(row["line"], row["detail"], sep="\n", flush=True)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="LSTM batches timed per round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(f"--batches, --repeats and --threads must be >= 1, got {vars(args)}")
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    lines = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with threadpool_limits(limits=args.threads):
        X, y, source = mnist_rows(args.batches * BATCH)
        say(f"threads={args.threads}, torch {torch.__version__}, numpy {np.__version__}")
        say(f"before: {load()}")
        say(
            f"LSTM: {len(X) // BATCH} batches of {BATCH} ({source}), a partial epoch, timed "
            f"and scaled to 469 batches; median of {args.repeats} rounds"
        )
        say(f"{'':44s} {'backprop':>11s} {'torch':>11s}  ratio")
        scale = 469 / (len(X) / BATCH)  # seconds per 60,000-image epoch
        rows.append(
            compare(
                "LSTM(128) epoch, sequential MNIST (s/epoch)",
                lambda: ours_lstm(X, y),
                lambda: torch_lstm(X, y),
                args.repeats,
                scale,
            )
        )
        lines += [rows[-1]["line"], rows[-1]["detail"]]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, T, D_MODEL)).astype(np.float32)
        g = rng.standard_normal((BATCH, T, D_MODEL)).astype(np.float32)
        rows.append(
            compare(
                "transformer block fwd+bwd (128x28x64) (s)",
                ours_block(x, g),
                torch_block(x, g),
                args.repeats * 4,
            )
        )
        lines += [rows[-1]["line"], rows[-1]["detail"]]
        say(f"after: {load()}")
    for row in rows:
        row["data"] = source if row["benchmark"].startswith("LSTM") else "random (128, 28, 64)"
    if args.out is not None:
        command = " ".join(["python benchmarks/sequence.py", *(argv or sys.argv[1:])])
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        args.out.write_text(f"# {command}   ({stamp})\n" + "\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
